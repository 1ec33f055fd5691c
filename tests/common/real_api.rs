//! The harness of the tests against a real kube-apiserver (etcd + apiserver from
//! `e2e/cluster/local/control-plane.sh up`, or any cluster): clients, the CRD,
//! namespaces, reconcile contexts over real caches and the RBAC check of what a
//! test's requests needed.
//!
//! Set MCP_TEST_KUBECONFIG to the kubeconfig. Without it the tests skip, unless
//! MCP_REQUIRE_APISERVER=1 (CI), where a missing API server is a failure.
#![allow(dead_code)]

use http::{Method, Request};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::client::{Body, ClientBuilder};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, CustomResourceExt, Resource};
use mcp_operator::api::McpServer;
use mcp_operator::controller::context::Context;
use mcp_operator::controller::events::{self, EventQueue};
use mcp_operator::controller::stores;
use mcp_operator::telemetry::metrics::Metrics;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The requests a recording client sent: method, path and query.
pub type Log = Arc<Mutex<Vec<(Method, String)>>>;

/// The test API server's config, or None (the test skips) when
/// MCP_TEST_KUBECONFIG is unset and MCP_REQUIRE_APISERVER is not 1.
async fn config() -> Option<Config> {
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
    Some(
        Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig valid"),
    )
}

/// A plain client of the test API server.
pub async fn client() -> Option<Client> {
    Some(Client::try_from(config().await?).expect("client"))
}

/// A client that records every request it sends (method, path and query).
pub async fn recording_client() -> Option<(Client, Log)> {
    let config = config().await?;
    let log: Log = Arc::default();
    let rec = log.clone();
    let layer = tower::util::MapRequestLayer::new(move |req: Request<Body>| {
        if let Ok(mut l) = rec.lock() {
            let uri = req.uri();
            let pq = uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| uri.path().to_string());
            l.push((req.method().clone(), pq));
        }
        req
    });
    let client = ClientBuilder::try_from(config)
        .expect("client builder")
        .with_layer(&layer)
        .build();
    Some((client, log))
}

/// A recording client with the CRD installed and the namespace `ns` applied.
pub async fn with_crd_in(ns: &str) -> Option<(Client, Log)> {
    let (client, log) = recording_client().await?;
    install_crd(&client).await;
    namespace(&client, ns).await;
    Some((client, log))
}

/// The tests' server-side apply field manager, forcing conflicts.
pub fn pp() -> PatchParams {
    PatchParams::apply("mcp-operator-test").force()
}

/// Server-side apply `obj` as `name`.
pub async fn apply<K>(api: &Api<K>, name: &str, obj: Value)
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.patch(name, &pp(), &Patch::Apply(&obj))
        .await
        .unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

/// Apply the McpServer CRD and wait until it is Established.
pub async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = McpServer::crd();
    let name = crd.metadata.name.clone().expect("crd name");
    crds.patch(&name, &pp(), &Patch::Apply(&crd))
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

/// Apply the namespace `name`.
pub async fn namespace(client: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
    .expect("ns");
    Api::<Namespace>::all(client.clone())
        .patch(name, &pp(), &Patch::Apply(&ns))
        .await
        .expect("namespace");
}

/// A reconcile context whose caches watch `ns` (synced), scoped to `scope`.
pub async fn context(client: &Client, ns: &str, scope: Option<String>) -> Context {
    let stores = stores::spawn_standalone(client, ns);
    assert!(
        stores
            .ready(
                Duration::from_secs(10),
                &std::sync::atomic::AtomicBool::new(false)
            )
            .await,
        "caches never synced"
    );
    let metrics = Arc::new(Metrics::default());
    Context::new(
        client.clone(),
        EventQueue::start(events::recorder(client.clone(), None), metrics.clone()).0,
        metrics,
        stores,
        scope,
    )
}

/// A reconcile context whose caches watch `ns` on the real API server.
pub async fn standalone_ctx(client: &Client, ns: &str) -> Arc<Context> {
    Arc::new(context(client, ns, Some(ns.to_string())).await)
}

/// An McpServer `name` with `spec`, as JSON.
pub fn server(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "mcp.operator.dev/v1alpha1", "kind": "McpServer", "metadata": {"name": name}, "spec": spec})
}

/// Wait (5 s at most) until `name` is gone, after a delete.
pub async fn gone<K>(api: &Api<K>, name: &str)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for _ in 0..50 {
        if api.get_opt(name).await.expect("get").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Delete `obj` if an earlier run left it, then create it anew.
pub async fn recreate<K>(api: &Api<K>, obj: Value)
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let name = obj["metadata"]["name"].as_str().expect("name").to_string();
    let _ = api.delete(&name, &DeleteParams::default()).await;
    gone(api, &name).await;
    create(api, obj).await;
}

/// Create `obj`, which must be accepted.
pub async fn create<K>(api: &Api<K>, obj: Value)
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let o: K = serde_json::from_value(obj).expect("object");
    api.create(&PostParams::default(), &o)
        .await
        .expect("created");
}

/// Every recorded request is one the chart's RBAC rules grant (and there was one).
pub fn assert_calls_granted(calls: &[(Method, String)]) {
    assert!(!calls.is_empty(), "no calls recorded");
    for (m, pq) in calls {
        let (path, query) = pq.split_once('?').unwrap_or((pq.as_str(), ""));
        let (g, r, v) = mcp_operator::rbac::request_rule(m.as_str(), path, query)
            .unwrap_or_else(|| panic!("unmapped request {m} {pq}"));
        assert!(
            mcp_operator::rbac::allows(mcp_operator::rbac::RULES, &g, &r, &v),
            "{m} {pq} needs {v} on {g}/{r}, which the chart does not grant"
        );
    }
}
