//! Integration tests against a real kube-apiserver (etcd + apiserver from
//! `e2e/cluster/local/control-plane.sh up`, or any cluster): the CRD's validation,
//! and one McpServer reconciled into real children, with the second reconcile
//! counted to make no write.
//!
//! Set MCP_TEST_KUBECONFIG to the kubeconfig. Without it the tests skip, unless
//! MCP_REQUIRE_APISERVER=1 (CI), where a missing API server is a failure.
mod common;

use common::real_api::{
    assert_calls_granted, create, gone, install_crd, namespace, pp, recording_client, server,
    standalone_ctx, with_crd_in, Log,
};
use http::Method;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use mcp_operator::api::McpServer;
use mcp_operator::controller::context::Context;
use mcp_operator::controller::events;
use mcp_operator::controller::reconcile::reconcile;
use mcp_operator::controller::stores::Stores;
use mcp_operator::telemetry::metrics::Metrics;
use serde::Deserialize;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Wait until the caches hold what the API server holds for `name`'s children
/// and the database's EndpointSlices (compared by resourceVersion).
async fn settle(client: &Client, ctx: &Context, ns: &str) {
    async fn same<K>(
        client: &Client,
        store: &kube::runtime::reflector::Store<K>,
        ns: &str,
        labels: &str,
    ) -> bool
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let live: Vec<(String, Option<String>)> = Api::<K>::namespaced(client.clone(), ns)
            .list(&kube::api::ListParams::default().labels(labels))
            .await
            .map(|l| {
                l.items
                    .iter()
                    .map(|o| {
                        (
                            o.meta().name.clone().unwrap_or_default(),
                            o.meta().resource_version.clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let cached: Vec<(String, Option<String>)> = store
            .state()
            .iter()
            .filter(|o| o.meta().namespace.as_deref() == Some(ns))
            .map(|o| {
                (
                    o.meta().name.clone().unwrap_or_default(),
                    o.meta().resource_version.clone(),
                )
            })
            .collect();
        live.iter().all(|l| cached.contains(l)) && cached.iter().all(|c| live.contains(c))
    }
    let s: &Stores = &ctx.stores;
    for _ in 0..100 {
        let m = "app.kubernetes.io/managed-by=mcp-operator";
        if same(client, &s.deployments, ns, m).await
            && same(client, &s.services, ns, m).await
            && same(client, &s.pdbs, ns, m).await
            && same(client, &s.hpas, ns, m).await
            && same(client, &s.endpoint_slices, ns, "").await
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("caches never caught up with the API server in {ns}");
}

/// Field managers that own a Deployment's spec.replicas.
fn replica_managers(d: &Deployment) -> Vec<String> {
    d.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.fields_v1.as_ref().is_some_and(|f| {
                f.0.get("f:spec")
                    .and_then(|s| s.get("f:replicas"))
                    .is_some()
            })
        })
        .filter_map(|m| m.manager.clone())
        .collect()
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
    let Some((client, _)) = with_crd_in("validation").await else {
        return;
    };
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

    // A wedge is judged on re-checks at most two periods old.
    for (name, mcp) in [
        (
            "bad-mcp-after",
            json!({"periodSeconds": 60, "unhealthyAfterSeconds": 30}),
        ),
        ("bad-mcp-period", json!({"periodSeconds": 60})),
    ] {
        let e = create_err(
            &api,
            server(name, json!({"image": "x", "health": {"mcp": mcp}})),
        )
        .await;
        assert!(
            e.contains("unhealthyAfterSeconds must be at least twice"),
            "{name}: {e}"
        );
    }

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

    // Names the API server takes for an McpServer but not for its children.
    let long = format!("n{}", "x".repeat(63));
    for name in ["notes.v2", "9notes", long.as_str()] {
        let e = create_err(&api, server(name, json!({"image": "x"}))).await;
        assert!(
            e.contains("metadata.name must be a DNS-1035 label"),
            "{name}: {e}"
        );
    }
    // A Secret name that would walk the request path, an empty or spaced env name.
    let e = create_err(
        &api,
        server(
            "bad-secret",
            json!({"image": "x", "database": {"urlSecretRef": {"name": "../etc", "key": "url"}}}),
        ),
    )
    .await;
    assert!(e.contains("spec.database.urlSecretRef.name"), "{e}");
    for bad in ["", "MY URL"] {
        let mut d = db.clone();
        d["envNames"] = json!({ "url": bad });
        let e = create_err(
            &api,
            server("bad-env", json!({"image": "x", "database": d})),
        )
        .await;
        assert!(e.contains("spec.database.envNames.url"), "{bad:?}: {e}");
    }
    let spread = |c: serde_json::Value| json!({"image": "x", "podTemplate": {"topologySpreadConstraints": [c]}});
    for (c, want) in [
        (
            json!({"maxSkew": 0, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"}),
            "maxSkew must be at least 1",
        ),
        (
            json!({"maxSkew": 1, "topologyKey": "", "whenUnsatisfiable": "ScheduleAnyway"}),
            "topologyKey must be set",
        ),
        (
            json!({"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "Maybe"}),
            "whenUnsatisfiable must be DoNotSchedule or ScheduleAnyway",
        ),
    ] {
        let e = create_err(&api, server("bad-spread", spread(c))).await;
        assert!(e.contains(want), "{want}: {e}");
    }
    let e = create_err(
        &api,
        server(
            "bad-node-loss",
            json!({"image": "x", "podTemplate": {"nodeLossTolerationSeconds": 3601}}),
        ),
    )
    .await;
    assert!(
        e.contains("spec.podTemplate.nodeLossTolerationSeconds"),
        "{e}"
    );
}

#[tokio::test]
async fn reconcile_creates_children_and_then_writes_nothing() {
    let ns = "reconcile-real";
    let Some((client, log)) = with_crd_in(ns).await else {
        return;
    };
    // A pod left by an earlier run would carry its kubelet report into this one.
    let _ = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), ns)
        .delete_collection(
            &DeleteParams::default().grace_period(0),
            &Default::default(),
        )
        .await;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "notes-db"}, "stringData": {"url": "postgres://app:hunter2@postgres:5432/notes"}})).expect("secret");
    secrets
        .patch("notes-db", &pp(), &Patch::Apply(&secret))
        .await
        .expect("secret applied");
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let svc: Service = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "postgres"},
        "spec": {"ports": [{"port": 5432}]}}),
    )
    .expect("svc");
    services
        .patch("postgres", &pp(), &Patch::Apply(&svc))
        .await
        .expect("service applied");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let slice: EndpointSlice = serde_json::from_value(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "postgres-1", "labels": {"kubernetes.io/service-name": "postgres"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.244.0.9"], "conditions": {"ready": true}}],
        "ports": [{"port": 5432, "protocol": "TCP"}]})).expect("slice");
    slices
        .patch("postgres-1", &pp(), &Patch::Apply(&slice))
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
    collect_children(&client, ns, "notes").await;
    for _ in 0..50 {
        if api.get_opt("notes").await.expect("get").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    api.create(&PostParams::default(), &obj)
        .await
        .expect("McpServer created");

    let ctx = standalone_ctx(&client, ns).await;
    let fresh = Arc::new(api.get("notes").await.expect("get"));
    reconcile(fresh.clone(), ctx.clone())
        .await
        .expect("first reconcile");
    // An autoscaled pool was created at replicas.min (2), not the API default of 1;
    // the next reconcile hands spec.replicas over to the HPA's side.
    settle(&client, &ctx, ns).await;
    reconcile(Arc::new(api.get("notes").await.expect("get")), ctx.clone())
        .await
        .expect("handover reconcile");
    settle(&client, &ctx, ns).await;

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

    assert_eq!(deploy.spec.as_ref().and_then(|s| s.replicas), Some(2));
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("notes")
        .await
        .expect("deployment");
    assert_eq!(
        d.spec.as_ref().and_then(|s| s.replicas),
        Some(2),
        "replicas kept through the handover"
    );
    let managers = replica_managers(&d);
    assert!(
        !managers.contains(&"mcp-operator".to_string())
            && managers.contains(&"mcp-operator-handover".to_string()),
        "spec.replicas owned by {managers:?}"
    );

    // A reconcile of the object as it now is: everything from the caches, so no
    // request at all (the caches' own watches aside).
    let seen = log.lock().map(|l| l.len()).unwrap_or(0);
    assert!(seen > 0, "the request counter saw nothing");
    if let Ok(mut l) = log.lock() {
        l.clear();
    }
    reconcile(Arc::new(after), ctx.clone())
        .await
        .expect("second reconcile");
    let sent: Vec<(Method, String)> = log
        .lock()
        .map(|l| {
            l.iter()
                .filter(|(_, p)| !p.contains("watch=true"))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    assert!(sent.is_empty(), "a no-op reconcile sent: {sent:?}");

    // Dependency loss shows up as a condition and phase: no ready endpoint, then no
    // EndpointSlice at all (the Service is gone).
    let mut down = slice.clone();
    down.endpoints[0].conditions = Some(k8s_openapi::api::discovery::v1::EndpointConditions {
        ready: Some(false),
        ..Default::default()
    });
    slices
        .patch("postgres-1", &pp(), &Patch::Apply(&down))
        .await
        .expect("slice not ready");
    for (change, reason) in [
        ("not ready", "NoReadyEndpoints"),
        ("deleted", "NoEndpointSlice"),
    ] {
        if change == "deleted" {
            slices
                .delete("postgres-1", &DeleteParams::default())
                .await
                .expect("slice deleted");
        }
        settle(&client, &ctx, ns).await;
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
            ("False", reason),
            "slice {change}"
        );
        assert_eq!(st.phase.map(|p| p.as_str()), Some("DependencyUnavailable"));
    }

    // A missing Secret becomes ConfigValid=False with the Secret's name. The
    // operator reads no Secret: it learns it from the kubelet's report on a pod,
    // scripted here (this control plane has no kubelet; e2e S7 has a real one).
    secrets
        .delete("notes-db", &DeleteParams::default())
        .await
        .expect("secret deleted");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), ns);
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "notes-abc", "labels": {"app.kubernetes.io/name": "mcp-server", "app.kubernetes.io/instance": "notes",
            "mcp.operator.dev/server": "notes", "app.kubernetes.io/managed-by": "mcp-operator"}},
        "spec": {"containers": [{"name": "mcp", "image": "mcp-workload:dev"}]}
    }))
    .expect("pod");
    // No controller-manager here to make the namespace's default ServiceAccount.
    let sa: k8s_openapi::api::core::v1::ServiceAccount = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
    )
    .expect("sa");
    Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client.clone(), ns)
        .patch("default", &pp(), &Patch::Apply(&sa))
        .await
        .expect("service account");
    let _ = pods
        .delete("notes-abc", &DeleteParams::default().grace_period(0))
        .await;
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod created");
    pods.patch_status(
        "notes-abc",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"containerStatuses": [{"name": "mcp", "ready": false, "restartCount": 0,
            "image": "mcp-workload:dev", "imageID": "",
            "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "secret \"notes-db\" not found"}}}]}})),
    )
    .await
    .expect("kubelet's report");
    eventually("the pod in the cache", || async {
        ctx.stores.pods.state().iter().any(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|c| !c.is_empty())
        })
    })
    .await;
    if let Ok(mut l) = log.lock() {
        l.clear();
    }
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
    let secret_reads: Vec<(Method, String)> = log
        .lock()
        .map(|l| {
            l.iter()
                .filter(|(_, p)| p.contains("/secrets"))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    assert!(
        secret_reads.is_empty(),
        "a Secret was read: {secret_reads:?}"
    );
}

#[tokio::test]
async fn examples_are_accepted_by_the_api_server() {
    let Some((client, _)) = recording_client().await else {
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

/// A database Secret, Service and ready EndpointSlice in `ns`.
async fn database(client: &Client, ns: &str) {
    namespace(client, ns).await;
    let secret: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "notes-db"}, "stringData": {"url": "postgres://app:hunter2@postgres:5432/notes"}}))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch("notes-db", &pp(), &Patch::Apply(&secret))
        .await
        .expect("secret applied");
    // No selector: its EndpointSlices are the test's alone, with or without a
    // controller-manager running.
    let svc: Service = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "postgres"}, "spec": {"ports": [{"port": 5432}]}}))
    .expect("svc");
    Api::<Service>::namespaced(client.clone(), ns)
        .patch("postgres", &pp(), &Patch::Apply(&svc))
        .await
        .expect("service applied");
    let slice: EndpointSlice = serde_json::from_value(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "postgres-1", "labels": {"kubernetes.io/service-name": "postgres"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.244.0.9"], "conditions": {"ready": true}}],
        "ports": [{"port": 5432, "protocol": "TCP"}]}))
    .expect("slice");
    Api::<EndpointSlice>::namespaced(client.clone(), ns)
        .patch("postgres-1", &pp(), &Patch::Apply(&slice))
        .await
        .expect("slice applied");
}

/// The CRD installed, `ns` with a database in it, and the McpServer API there
/// (linkerd's `with_temp_ns`, kept: a failed test leaves its namespace to look at).
async fn db_namespace(ns: &str) -> Option<(Client, Log, Api<McpServer>)> {
    let (client, log) = recording_client().await?;
    install_crd(&client).await;
    database(&client, ns).await;
    let api = Api::namespaced(client.clone(), ns);
    Some((client, log, api))
}

fn db_spec() -> serde_json::Value {
    json!({"urlSecretRef": {"name": "notes-db", "key": "url"}, "service": {"name": "postgres", "port": 5432},
           "maxConnections": 80, "pool": {"min": 1, "max": 10}})
}

/// The real controller (watches, caches, reconciles) on `ns` until the guard drops.
struct Running(Option<tokio::sync::oneshot::Sender<()>>);
impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

fn run_controller(client: &Client, ns: &str) -> Running {
    run_controller_with(client, ns, Arc::new(Metrics::default()))
}

fn run_controller_with(client: &Client, ns: &str, metrics: Arc<Metrics>) -> Running {
    // The controller's warnings (failed reconciles) in the test output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("TEST_LOG").unwrap_or_else(|_| "mcp_operator=warn".into()),
        ))
        .with_test_writer()
        .try_init();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let recorder = events::recorder(client.clone(), None);
    tokio::spawn(mcp_operator::controller::run(
        client.clone(),
        recorder,
        metrics,
        Default::default(),
        mcp_operator::controller::Scope {
            namespace: Some(ns.to_string()),
            concurrency: 16,
            // Namespaced, yet probing a listener on loopback (the e2e confines it).
            dependency_scope: mcp_operator::controller::dependency::DependencyScope::Any,
        },
        async move {
            let _ = rx.await;
        },
    ));
    Running(Some(tx))
}

/// Poll `f` until it holds (10 s at most: drift must be undone on the watch
/// event, not by the 300 s resync).
async fn eventually<F, Fut>(what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if f().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within 10 s");
}

/// The garbage collector's part, which this control plane (no
/// controller-manager) does not play: delete `name`'s children left by an
/// earlier McpServer of that name, which the operator must not take over.
async fn collect_children(client: &Client, ns: &str, name: &str) {
    async fn one<K>(client: &Client, ns: &str, name: &str)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(client.clone(), ns);
        let Ok(Some(o)) = api.get_metadata_opt(name).await else {
            return;
        };
        let ours = o
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.kind == "McpServer" && r.controller == Some(true));
        if ours {
            let _ = api.delete(name, &DeleteParams::default()).await;
        }
    }
    one::<Deployment>(client, ns, name).await;
    one::<Service>(client, ns, name).await;
    one::<PodDisruptionBudget>(client, ns, name).await;
    one::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>(client, ns, name).await;
}

async fn recreate(api: &Api<McpServer>, obj: serde_json::Value) {
    let name = obj["metadata"]["name"].as_str().expect("name").to_string();
    let _ = api.delete(&name, &DeleteParams::default()).await;
    collect_children(
        &api.clone().into_client(),
        api.namespace().unwrap_or_default(),
        &name,
    )
    .await;
    gone(api, &name).await;
    create(api, obj).await;
}

fn container_env(d: &Deployment, name: &str) -> Option<String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.env.as_ref())
        .and_then(|e| e.iter().find(|e| e.name == name))
        .and_then(|e| e.value.clone())
}

#[tokio::test]
async fn drift_of_owned_fields_is_reverted_on_the_watch_event() {
    let ns = "drift";
    let Some((client, log, api)) = db_namespace(ns).await else {
        return;
    };
    recreate(
        &api,
        server("notes", json!({"image": "mcp-workload:dev", "replicas": {"min": 3, "max": 3}, "database": db_spec(),
            "health": {"readiness": {"path": "/readyz", "periodSeconds": 2}}})),
    )
    .await;
    let metrics = Arc::new(Metrics::default());
    // The controller's own client, so its requests alone are counted.
    let Some((ctl_client, ctl_log)) = recording_client().await else {
        return;
    };
    let _running = run_controller_with(&ctl_client, ns, metrics.clone());
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    eventually("children and status", || async {
        let st = api.get("notes").await.ok().and_then(|m| m.status);
        deploys.get_opt("notes").await.ok().flatten().is_some()
            && pdbs.get_opt("notes").await.ok().flatten().is_some()
            && st.is_some_and(|s| s.observed_generation.is_some())
    })
    .await;
    let edit = |m: &str| PatchParams {
        field_manager: Some(m.to_string()),
        ..Default::default()
    };

    // kubectl scale deploy/notes --replicas=1 (through /scale).
    deploys
        .patch_scale(
            "notes",
            &edit("kubectl"),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .expect("scale");
    let t = eventually("replicas restored", || async {
        deploys
            .get("notes")
            .await
            .ok()
            .and_then(|d| d.spec)
            .and_then(|s| s.replicas)
            == Some(3)
    })
    .await;
    eprintln!("scale reverted in {:.2}s", t.as_secs_f64());

    // kubectl set env deploy/notes POOL_MAX_SIZE=500
    let want_pool = container_env(&deploys.get("notes").await.expect("get"), "POOL_MAX_SIZE");
    deploys
        .patch(
            "notes",
            &edit("kubectl-set"),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "mcp", "env": [{"name": "POOL_MAX_SIZE", "value": "500"}]}]}}}})),
        )
        .await
        .expect("set env");
    eventually("pool size restored", || async {
        deploys
            .get("notes")
            .await
            .ok()
            .map(|d| container_env(&d, "POOL_MAX_SIZE"))
            == Some(want_pool.clone())
    })
    .await;

    // A patched readiness probe.
    deploys
        .patch(
            "notes",
            &edit("kubectl-patch"),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "mcp", "readinessProbe": {"periodSeconds": 60}}]}}}})),
        )
        .await
        .expect("probe patch");
    eventually("readiness period restored", || async {
        deploys.get("notes").await.ok().and_then(|d| {
            d.spec?
                .template
                .spec?
                .containers
                .first()?
                .readiness_probe
                .clone()?
                .period_seconds
        }) == Some(2)
    })
    .await;

    // A changed Service selector.
    services
        .patch(
            "notes",
            &edit("kubectl-edit"),
            &Patch::Merge(json!({"spec": {"selector": {"mcp.operator.dev/server": "other"}}})),
        )
        .await
        .expect("selector patch");
    eventually("selector restored", || async {
        services
            .get("notes")
            .await
            .ok()
            .and_then(|s| s.spec?.selector?.get("mcp.operator.dev/server").cloned())
            == Some("notes".to_string())
    })
    .await;

    // A loosened PDB.
    pdbs.patch(
        "notes",
        &edit("kubectl-edit"),
        &Patch::Merge(json!({"spec": {"maxUnavailable": 3}})),
    )
    .await
    .expect("pdb patch");
    eventually("PDB restored", || async {
        pdbs.get("notes")
            .await
            .ok()
            .and_then(|p| p.spec?.max_unavailable)
            == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    })
    .await;

    // Steady again: no mutating request at all for a while (Events aside).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before: Vec<(Method, String)> = ctl_log.lock().map(|l| l.clone()).unwrap_or_default();
    if let Ok(mut l) = ctl_log.lock() {
        l.clear();
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let writes: Vec<(Method, String)> = ctl_log
        .lock()
        .map(|l| {
            l.iter()
                .filter(|(m, p)| *m != Method::GET && !p.contains("/events"))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    assert!(writes.is_empty(), "steady state wrote: {writes:?}");
    let _ = &log;

    // Every call the controller made (create, drift reverts, steady state) is one
    // the chart grants: src/rbac.rs, which a unit test holds equal to the chart.
    assert_calls_granted(&before);

    // Deleted: its per-object series go with it.
    assert!(metrics.encode().contains("name=\"notes\""));
    api.delete("notes", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("per-object series removed", || async {
        !metrics.encode().contains("name=\"notes\"")
    })
    .await;
}

#[tokio::test]
async fn switching_to_an_hpa_never_lowers_replicas() {
    let ns = "hpa-switch";
    let Some((client, _, api)) = db_namespace(ns).await else {
        return;
    };
    recreate(
        &api,
        server("notes", json!({"image": "mcp-workload:dev", "replicas": {"min": 5, "max": 5},
            "database": {"urlSecretRef": {"name": "notes-db", "key": "url"}, "service": {"name": "postgres", "port": 5432}}})),
    )
    .await;
    let Some((ctl_client, ctl_log)) = recording_client().await else {
        return;
    };
    let _running = run_controller(&ctl_client, ns);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), ns);
    eventually("a 5-replica Deployment", || async {
        deploys
            .get("notes")
            .await
            .ok()
            .and_then(|d| d.spec)
            .and_then(|s| s.replicas)
            == Some(5)
    })
    .await;

    // Watch every version of the Deployment from here on.
    let seen: Arc<Mutex<Vec<Option<i32>>>> = Arc::default();
    let rec = seen.clone();
    let watch_api = deploys.clone();
    let watching = tokio::spawn(async move {
        use futures::StreamExt;
        let wc = kube::runtime::watcher::Config::default().fields("metadata.name=notes");
        let mut s = std::pin::pin!(kube::runtime::watcher(watch_api, wc));
        while let Some(Ok(ev)) = s.next().await {
            if let kube::runtime::watcher::Event::Apply(d)
            | kube::runtime::watcher::Event::InitApply(d) = ev
            {
                if let Ok(mut v) = rec.lock() {
                    v.push(d.spec.and_then(|s| s.replicas));
                }
            }
        }
    });
    api.patch(
        "notes",
        &PatchParams::apply("mcp-operator-test").force(),
        &Patch::Apply(json!({"apiVersion": "mcp.operator.dev/v1alpha1", "kind": "McpServer",
            "metadata": {"name": "notes"}, "spec": {"image": "mcp-workload:dev", "replicas": {"min": 5, "max": 8},
            "database": {"urlSecretRef": {"name": "notes-db", "key": "url"}, "service": {"name": "postgres", "port": 5432}}}})),
    )
    .await
    .expect("raise replicas.max");
    let hpas: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
        Api::namespaced(client.clone(), ns);
    eventually("HPA created and replicas handed over", || async {
        let d = deploys.get("notes").await.ok();
        hpas.get_opt("notes").await.ok().flatten().is_some()
            && d.as_ref()
                .is_some_and(|d| !replica_managers(d).contains(&"mcp-operator".to_string()))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    watching.abort();
    let seen = seen.lock().map(|v| v.clone()).unwrap_or_default();
    assert!(seen.len() >= 2, "watched too little: {seen:?}");
    assert!(
        seen.iter().all(|r| *r == Some(5)),
        "spec.replicas left 5 during the switch: {seen:?}"
    );
    let calls: Vec<(Method, String)> = ctl_log.lock().map(|l| l.clone()).unwrap_or_default();
    assert_calls_granted(&calls);
}

#[tokio::test]
async fn a_child_the_api_server_rejects_becomes_a_condition() {
    let ns = "rejected";
    let Some((client, _, api)) = db_namespace(ns).await else {
        return;
    };
    // Limits below requests: the schema allows it, the Deployment's validation does not.
    recreate(
        &api,
        server("bad", json!({"image": "mcp-workload:dev", "database": db_spec(), "replicas": {"min": 2, "max": 2},
            "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}})),
    )
    .await;
    recreate(
        &api,
        server("good", json!({"image": "mcp-workload:dev", "database": db_spec(), "replicas": {"min": 2, "max": 2}})),
    )
    .await;
    let _running = run_controller(&client, ns);
    eventually("Ready=False naming the Deployment", || async {
        api.get("bad")
            .await
            .ok()
            .and_then(|m| m.status)
            .is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.type_ == "Ready"
                        && c.status == "False"
                        && c.reason == "DeploymentRejected"
                        && c.message.contains("less than or equal to cpu limit")
                })
            })
    })
    .await;
    // The rest of that McpServer, and the other one, are reconciled.
    assert!(Api::<Service>::namespaced(client.clone(), ns)
        .get_opt("bad")
        .await
        .expect("get")
        .is_some());
    eventually("the other McpServer reconciles", || async {
        let deployed = Api::<Deployment>::namespaced(client.clone(), ns)
            .get_opt("good")
            .await
            .map_err(|e| eprintln!("get deployment: {e}"))
            .ok()
            .flatten()
            .is_some();
        let reported = api
            .get("good")
            .await
            .map_err(|e| eprintln!("get McpServer: {e}"))
            .ok()
            .and_then(|m| m.status)
            .is_some_and(|s| s.observed_generation.is_some());
        deployed && reported
    })
    .await;
    // Events go out after the reconcile, from the event queue.
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), ns);
    eventually("a Warning Event for the rejection", || async {
        events
            .list(&Default::default())
            .await
            .map_err(|e| eprintln!("list events: {e}"))
            .is_ok_and(|l| {
                l.items.iter().any(|e| {
                    e.reason.as_deref() == Some("DeploymentRejected")
                        && e.type_.as_deref() == Some("Warning")
                })
            })
    })
    .await;
}

#[tokio::test]
async fn a_stale_copy_neither_reapplies_an_old_spec_nor_writes_status() {
    let ns = "stale";
    let Some((client, _, api)) = db_namespace(ns).await else {
        return;
    };
    recreate(
        &api,
        server(
            "notes",
            json!({"image": "notes:1", "database": db_spec(), "replicas": {"min": 2, "max": 2}}),
        ),
    )
    .await;
    let ctx = standalone_ctx(&client, ns).await;
    let old = Arc::new(api.get("notes").await.expect("get"));
    reconcile(old.clone(), ctx.clone())
        .await
        .expect("first reconcile");
    settle(&client, &ctx, ns).await;
    api.patch(
        "notes",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"image": "notes:2"}})),
    )
    .await
    .expect("new image");
    reconcile(Arc::new(api.get("notes").await.expect("get")), ctx.clone())
        .await
        .expect("reconcile new image");
    settle(&client, &ctx, ns).await;
    let status_before = api.get("notes").await.expect("get").status;
    // Replay the first copy: its spec says notes:1.
    let err = reconcile(old, ctx.clone())
        .await
        .expect_err("a stale copy must be refused");
    assert_eq!(err.metric_label(), "conflict");
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("notes")
        .await
        .expect("deployment");
    let image = d
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers[0].image.clone());
    assert_eq!(
        image.as_deref(),
        Some("notes:2"),
        "the stale spec was applied"
    );
    assert_eq!(api.get("notes").await.expect("get").status, status_before);
}

#[tokio::test]
async fn a_database_outside_the_cluster_is_probed_apart_from_the_reconcile() {
    let ns = "probed";
    let Some((client, _)) = with_crd_in(ns).await else {
        return;
    };
    // The "database": a real listener on loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let port = listener.local_addr().expect("addr").port();
    let api: Api<McpServer> = Api::namespaced(client.clone(), ns);
    recreate(
        &api,
        server(
            "ext",
            json!({"image": "mcp-workload:dev", "replicas": {"min": 2, "max": 2},
            "database": {"urlSecretRef": {"name": "ext-db", "key": "url"},
                         "probe": {"host": "127.0.0.1", "port": port, "timeoutMs": 300}}}),
        ),
    )
    .await;
    let _running = run_controller(&client, ns);
    let dep = |want: &'static str| {
        let api = api.clone();
        move || {
            let api = api.clone();
            async move {
                api.get("ext")
                    .await
                    .ok()
                    .and_then(|m| m.status)
                    .is_some_and(|s| {
                        s.conditions
                            .iter()
                            .any(|c| c.type_ == "DependencyAvailable" && c.reason == want)
                    })
            }
        }
    };
    eventually("ProbeSucceeded", dep("ProbeSucceeded")).await;
    drop(listener);
    // No watch event announces this: the prober's changed verdict wakes the reconcile.
    let t = eventually("ProbeFailed after the listener closed", dep("ProbeFailed")).await;
    eprintln!("probe failure reported in {:.1}s", t.as_secs_f64());
    let st = api.get("ext").await.expect("get").status.expect("status");
    assert_eq!(st.phase.map(|p| p.as_str()), Some("DependencyUnavailable"));
}

/// The recorder against a real API server: a repeat becomes the first Event's
/// series (the merge patch of `series` alone is accepted), another object's
/// Event is its own, and a repeat of an Event deleted meanwhile is created anew.
#[tokio::test]
async fn events_repeat_as_a_series_on_the_api_server() {
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::events::v1::Event as K8sEvent;
    use kube::runtime::events::{Event, EventType};
    let Some((client, log)) = recording_client().await else {
        return;
    };
    let ns = "mcp-test-events";
    namespace(&client, ns).await;
    let api: Api<K8sEvent> = Api::namespaced(client.clone(), ns);
    let _ = api
        .delete_collection(&DeleteParams::default(), &Default::default())
        .await;
    let rec = events::recorder(client.clone(), Some("replica-0".into()));
    let mut series = events::Series::default();
    let about = |name: &str| ObjectReference {
        api_version: Some("mcp.operator.dev/v1alpha1".into()),
        kind: Some("McpServer".into()),
        name: Some(name.into()),
        namespace: Some(ns.into()),
        uid: Some(format!("uid-{name}")),
        ..Default::default()
    };
    let ev = |note: &str| Event {
        type_: EventType::Warning,
        reason: "DependencyLost".into(),
        note: Some(note.into()),
        action: "Observe".into(),
        secondary: None,
    };
    for note in ["first", "second", "third"] {
        rec.publish(&mut series, &ev(note), &about("a"))
            .await
            .expect("published");
    }
    rec.publish(&mut series, &ev("other"), &about("b"))
        .await
        .expect("published");
    // The Events about `name`, as the API server holds them now.
    let of = |name: &'static str| {
        let api = api.clone();
        async move {
            let list = api.list(&Default::default()).await.expect("events");
            list.items
                .into_iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
                .collect::<Vec<K8sEvent>>()
        }
    };
    let a = of("a").await;
    assert_eq!(a.len(), 1, "three showings, one Event: {a:?}");
    let s = a[0].series.as_ref().expect("a series");
    assert_eq!(s.count, 3);
    assert_eq!(
        a[0].note.as_deref(),
        Some("first"),
        "a series keeps the first note"
    );
    assert_eq!(a[0].reporting_instance.as_deref(), Some("replica-0"));
    assert!(s.last_observed_time.0 >= a[0].event_time.as_ref().expect("event time").0);
    let b = of("b").await;
    assert_eq!(b.len(), 1);
    assert!(b[0].series.is_none());
    // Gone meanwhile (the API server's Event TTL): the next repeat creates.
    api.delete(
        a[0].metadata.name.as_deref().expect("name"),
        &DeleteParams::default(),
    )
    .await
    .expect("deleted");
    rec.publish(&mut series, &ev("fourth"), &about("a"))
        .await
        .expect("a repeat of a deleted Event is created anew");
    let again = of("a").await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].note.as_deref(), Some("fourth"));
    assert!(again[0].series.is_none());
    let calls = log.lock().map(|l| l.clone()).unwrap_or_default();
    assert_calls_granted(
        &calls
            .into_iter()
            .filter(|(_, p)| p.contains("/events"))
            .filter(|(m, _)| m != Method::DELETE && m != Method::GET)
            .collect::<Vec<_>>(),
    );
}
