//! Integration tests against a real kube-apiserver (etcd + apiserver from
//! `e2e/cluster/local/control-plane.sh up`, or any cluster): the CRD's validation,
//! and one McpServer reconciled into real children, with the second reconcile
//! counted to make no write.
//!
//! Set MCP_TEST_KUBECONFIG to the kubeconfig. Without it the tests skip, unless
//! MCP_REQUIRE_APISERVER=1 (CI), where a missing API server is a failure.
use http::{Method, Request};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::client::{Body, ClientBuilder};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::{Client, Config, CustomResourceExt};
use mcp_operator::api::McpServer;
use mcp_operator::controller::context::Context;
use mcp_operator::controller::reconcile::reconcile;
use mcp_operator::telemetry::metrics::Metrics;
use serde::Deserialize;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Log = Arc<Mutex<Vec<(Method, String)>>>;

async fn client() -> Option<(Client, Log)> {
    let path = match std::env::var("MCP_TEST_KUBECONFIG") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            assert!(
                std::env::var("MCP_REQUIRE_APISERVER").as_deref() != Ok("1"),
                "MCP_REQUIRE_APISERVER=1 but MCP_TEST_KUBECONFIG is unset"
            );
            eprintln!("skipping: MCP_TEST_KUBECONFIG unset");
            return None;
        }
    };
    let kc = Kubeconfig::read_from(&path).expect("kubeconfig readable");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig valid");
    let log: Log = Arc::default();
    let rec = log.clone();
    let layer = tower::util::MapRequestLayer::new(move |req: Request<Body>| {
        if let Ok(mut l) = rec.lock() {
            l.push((req.method().clone(), req.uri().path().to_string()));
        }
        req
    });
    let client = ClientBuilder::try_from(config)
        .expect("client builder")
        .with_layer(&layer)
        .build();
    Some((client, log))
}

async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = McpServer::crd();
    let name = crd.metadata.name.clone().expect("crd name");
    crds.patch(
        &name,
        &PatchParams::apply("mcp-operator-test").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("CRD applied");
    for _ in 0..100 {
        let c = crds.get(&name).await.expect("crd get");
        let established = c.status.and_then(|s| s.conditions).is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
        if established {
            // Discovery may still lag a moment behind Established.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("CRD never became Established");
}

async fn namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
    .expect("ns");
    api.patch(
        name,
        &PatchParams::apply("mcp-operator-test").force(),
        &Patch::Apply(&ns),
    )
    .await
    .expect("namespace");
}

fn server(name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "mcp.operator.dev/v1alpha1", "kind": "McpServer", "metadata": {"name": name}, "spec": spec})
}

async fn create_err(api: &Api<McpServer>, obj: serde_json::Value) -> String {
    let data: McpServer = match serde_json::from_value(obj.clone()) {
        Ok(d) => d,
        // Some invalid specs (an unknown enum) cannot even be typed; send them raw.
        Err(_) => {
            let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
                api.clone().into_client(),
                "validation",
                &kube::discovery::ApiResource::erase::<McpServer>(&()),
            );
            let d: kube::api::DynamicObject = serde_json::from_value(obj).expect("dynamic");
            return match raw.create(&PostParams::default(), &d).await {
                Ok(_) => panic!("invalid McpServer was accepted"),
                Err(e) => e.to_string(),
            };
        }
    };
    match api.create(&PostParams::default(), &data).await {
        Ok(_) => panic!("invalid McpServer was accepted: {obj}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn crd_rejects_bad_specs_with_field_messages() {
    let Some((client, _)) = client().await else {
        return;
    };
    install_crd(&client).await;
    namespace(&client, "validation").await;
    let api: Api<McpServer> = Api::namespaced(client.clone(), "validation");
    let db = json!({"urlSecretRef": {"name": "s", "key": "url"}});

    let e = create_err(
        &api,
        server(
            "bad-replicas",
            json!({"image": "x", "replicas": {"min": 3, "max": 2}}),
        ),
    )
    .await;
    assert!(e.contains("replicas.min must be <= replicas.max"), "{e}");

    let mut d = db.clone();
    d["pool"] = json!({"min": 5, "max": 2});
    let e = create_err(
        &api,
        server("bad-pool", json!({"image": "x", "database": d})),
    )
    .await;
    assert!(
        e.contains("database.pool.min must be <= database.pool.max"),
        "{e}"
    );

    let e = create_err(&api, server("bad-port", json!({"image": "x", "port": 0}))).await;
    assert!(e.contains("spec.port"), "{e}");

    let e = create_err(
        &api,
        server(
            "bad-transport",
            json!({"image": "x", "transport": "carrier-pigeon"}),
        ),
    )
    .await;
    assert!(
        e.contains("spec.transport") && e.contains("streamable-http"),
        "{e}"
    );

    let mut d = db.clone();
    d["maxConnections"] = json!(20);
    d["pool"] = json!({"min": 1, "max": 10});
    let e = create_err(
        &api,
        server(
            "bad-budget",
            json!({"image": "x", "replicas": {"min": 3, "max": 3}, "database": d}),
        ),
    )
    .await;
    assert!(
        e.contains("database.pool.max * replicas.max must be <= database.maxConnections"),
        "{e}"
    );

    let e = create_err(&api, server("no-image", json!({"port": 8080}))).await;
    assert!(e.contains("spec.image"), "{e}");
}

#[tokio::test]
async fn reconcile_creates_children_and_then_writes_nothing() {
    let Some((client, log)) = client().await else {
        return;
    };
    install_crd(&client).await;
    let ns = "reconcile-real";
    namespace(&client, ns).await;
    let pp = PatchParams::apply("mcp-operator-test").force();

    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "notes-db"}, "stringData": {"url": "postgres://app:hunter2@postgres:5432/notes"}})).expect("secret");
    secrets
        .patch("notes-db", &pp, &Patch::Apply(&secret))
        .await
        .expect("secret applied");
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let svc: Service = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "postgres"},
        "spec": {"ports": [{"port": 5432}], "selector": {"app": "postgres"}}}),
    )
    .expect("svc");
    services
        .patch("postgres", &pp, &Patch::Apply(&svc))
        .await
        .expect("service applied");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let slice: EndpointSlice = serde_json::from_value(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "postgres-1", "labels": {"kubernetes.io/service-name": "postgres"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.244.0.9"], "conditions": {"ready": true}}],
        "ports": [{"port": 5432, "protocol": "TCP"}]})).expect("slice");
    slices
        .patch("postgres-1", &pp, &Patch::Apply(&slice))
        .await
        .expect("slice applied");

    let api: Api<McpServer> = Api::namespaced(client.clone(), ns);
    let obj: McpServer = serde_json::from_value(server("notes", json!({
        "image": "mcp-workload:dev",
        "replicas": {"min": 2, "max": 4},
        "database": {"urlSecretRef": {"name": "notes-db", "key": "url"}, "service": {"name": "postgres", "port": 5432},
                     "maxConnections": 40, "pool": {"min": 1, "max": 10}}
    }))).expect("mcp");
    let _ = api.delete("notes", &DeleteParams::default()).await;
    for _ in 0..50 {
        if api.get_opt("notes").await.expect("get").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    api.create(&PostParams::default(), &obj)
        .await
        .expect("McpServer created");

    let ctx = Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "mcp-operator".into(),
                instance: None,
            },
        ),
        client: client.clone(),
        metrics: Arc::new(Metrics::default()),
        failures: Default::default(),
    });
    let fresh = Arc::new(api.get("notes").await.expect("get"));
    reconcile(fresh.clone(), ctx.clone())
        .await
        .expect("first reconcile");

    let uid = fresh.metadata.uid.clone().expect("uid");
    let deploy = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("notes")
        .await
        .expect("deployment created");
    let owner = &deploy
        .metadata
        .owner_references
        .as_ref()
        .expect("owner refs")[0];
    assert_eq!(owner.uid, uid);
    assert_eq!(owner.controller, Some(true));
    let env = deploy
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers[0].env.clone().unwrap_or_default())
        .unwrap_or_default();
    let url = env
        .iter()
        .find(|e| e.name == "DATABASE_URL")
        .expect("DATABASE_URL injected");
    assert!(
        url.value.is_none(),
        "the URL must come from the Secret, never inlined"
    );
    assert_eq!(
        env.iter()
            .find(|e| e.name == "POOL_MAX_SIZE")
            .and_then(|e| e.value.clone())
            .as_deref(),
        Some("10")
    );
    let svc = Api::<Service>::namespaced(client.clone(), ns)
        .get("notes")
        .await
        .expect("service created");
    assert_eq!(
        svc.metadata.owner_references.expect("svc owner")[0].uid,
        uid
    );
    let pdb = Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
        .get("notes")
        .await
        .expect("pdb created");
    assert_eq!(
        pdb.spec
            .and_then(|s| s.unhealthy_pod_eviction_policy)
            .as_deref(),
        Some("AlwaysAllow")
    );
    let hpa = Api::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>::namespaced(
        client.clone(),
        ns,
    )
    .get("notes")
    .await
    .expect("hpa created for min < max");
    assert_eq!(
        hpa.spec.map(|s| (s.min_replicas, s.max_replicas)),
        Some((Some(2), 4))
    );

    let after = api.get("notes").await.expect("get");
    let status = after.status.clone().expect("status written");
    assert_eq!(status.observed_generation, after.metadata.generation);
    let conds: Vec<&str> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
    for t in [
        "ConfigValid",
        "DependencyAvailable",
        "Ready",
        "Progressing",
        "Degraded",
        "PoolBudgetExceeded",
    ] {
        assert!(conds.contains(&t), "missing condition {t}: {conds:?}");
    }
    let dep = status
        .conditions
        .iter()
        .find(|c| c.type_ == "DependencyAvailable")
        .expect("dep");
    assert_eq!(dep.status, "True");
    let printed = serde_json::to_string(&status).expect("status json");
    assert!(
        !printed.contains("hunter2"),
        "secret value leaked into status"
    );

    // Second reconcile of the object as it now is: reads only.
    if let Ok(mut l) = log.lock() {
        l.clear();
    }
    reconcile(Arc::new(after), ctx.clone())
        .await
        .expect("second reconcile");
    let writes: Vec<(Method, String)> = log
        .lock()
        .map(|l| {
            l.iter()
                .filter(|(m, p)| *m != Method::GET && !p.contains("/events"))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let reads = log.lock().map(|l| l.len()).unwrap_or(0);
    assert!(reads > 0, "the request counter saw nothing");
    assert!(writes.is_empty(), "second reconcile wrote: {writes:?}");

    // Dependency loss shows up as a condition and phase.
    slices
        .delete("postgres-1", &DeleteParams::default())
        .await
        .expect("slice deleted");
    let now = api.get("notes").await.expect("get");
    reconcile(Arc::new(now), ctx.clone())
        .await
        .expect("reconcile with dependency down");
    let st = api.get("notes").await.expect("get").status.expect("status");
    let dep = st
        .conditions
        .iter()
        .find(|c| c.type_ == "DependencyAvailable")
        .expect("dep");
    assert_eq!(
        (dep.status.as_str(), dep.reason.as_str()),
        ("False", "NoReadyEndpoints")
    );
    assert_eq!(st.phase.map(|p| p.as_str()), Some("DependencyUnavailable"));

    // A missing Secret becomes ConfigValid=False with the Secret's name, and no panic.
    secrets
        .delete("notes-db", &DeleteParams::default())
        .await
        .expect("secret deleted");
    let now = api.get("notes").await.expect("get");
    reconcile(Arc::new(now), ctx)
        .await
        .expect("reconcile with missing secret");
    let st = api.get("notes").await.expect("get").status.expect("status");
    let cv = st
        .conditions
        .iter()
        .find(|c| c.type_ == "ConfigValid")
        .expect("ConfigValid");
    assert_eq!(
        (cv.status.as_str(), cv.reason.as_str()),
        ("False", "SecretNotFound")
    );
    assert!(cv.message.contains("notes-db"));
}

#[tokio::test]
async fn examples_are_accepted_by_the_api_server() {
    let Some((client, _)) = client().await else {
        return;
    };
    install_crd(&client).await;
    let dir = format!("{}/examples", env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("examples dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("example readable");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = serde_json::to_value(serde_yaml::Value::deserialize(doc).expect("yaml"))
                .expect("json");
            if v["kind"] != "McpServer" {
                continue;
            }
            let ns = v["metadata"]["namespace"]
                .as_str()
                .expect("example namespace")
                .to_string();
            namespace(&client, &ns).await;
            let m: McpServer = serde_json::from_value(v).expect("example deserialises");
            let api: Api<McpServer> = Api::namespaced(client.clone(), &ns);
            let pp = PatchParams::apply("mcp-operator-test").force().dry_run();
            let name = m.metadata.name.clone().expect("name");
            if let Err(e) = api.patch(&name, &pp, &Patch::Apply(&m)).await {
                panic!("{} rejected: {e}", path.display());
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "expected at least two example McpServers, checked {checked}"
    );
}
