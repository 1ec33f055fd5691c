//! Request-sequence tests of one reconcile against an in-memory API server:
//! create writes the children and status, an unchanged object writes nothing,
//! a spec change writes exactly the changed child.
mod common;

use common::fake_api::FakeApi;
use http::Method;
use kube::runtime::events::{Recorder, Reporter};
use mcp_operator::api::McpServer;
use mcp_operator::controller::context::Context;
use mcp_operator::controller::reconcile::reconcile;
use mcp_operator::telemetry::metrics::Metrics;
use serde_json::{json, Value};
use std::sync::Arc;

const NS: &str = "team-a";

fn server_json(image: &str) -> Value {
    json!({
        "apiVersion": "mcp.operator.dev/v1alpha1",
        "kind": "McpServer",
        "metadata": {"name": "notes", "namespace": NS, "uid": "uid-1", "generation": 1, "resourceVersion": "1"},
        "spec": {
            "image": image,
            "replicas": {"min": 3, "max": 3},
            "database": {
                "urlSecretRef": {"name": "notes-db", "key": "url"},
                "service": {"name": "postgres", "port": 5432},
                "maxConnections": 30,
                "pool": {"min": 2, "max": 10}
            }
        }
    })
}

fn seed(api: &FakeApi) {
    api.insert(
        &format!("/api/v1/namespaces/{NS}/secrets/notes-db"),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "notes-db", "namespace": NS}, "data": {"url": "cG9zdGdyZXM6Ly94"}}),
    );
    api.insert(
        &format!("/api/v1/namespaces/{NS}/services/postgres"),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "postgres", "namespace": NS}, "spec": {}}),
    );
    api.insert(
        &format!("/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices/postgres-abc"),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
               "metadata": {"name": "postgres-abc", "namespace": NS, "labels": {"kubernetes.io/service-name": "postgres"}},
               "endpoints": [{"addresses": ["10.1.0.5"], "conditions": {"ready": true}}],
               "ports": [{"port": 5432}]}),
    );
}

fn ctx(api: &FakeApi) -> Arc<Context> {
    let client = api.client();
    Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "mcp-operator".into(),
                instance: None,
            },
        ),
        client,
        metrics: Arc::new(Metrics::default()),
        failures: Default::default(),
    })
}

/// The McpServer as the API server would now return it (with the status we wrote).
fn current(api: &FakeApi, base: &Value) -> Arc<McpServer> {
    let path = format!("/apis/mcp.operator.dev/v1alpha1/namespaces/{NS}/mcpservers/notes");
    let mut v = base.clone();
    if let Some(stored) = api.get(&path) {
        v["status"] = stored["status"].clone();
    }
    api.insert(&path, v.clone());
    Arc::new(serde_json::from_value(v).expect("valid McpServer"))
}

fn paths(writes: &[common::fake_api::Recorded]) -> Vec<String> {
    writes
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test]
async fn create_then_noop_then_update() {
    let api = FakeApi::default();
    seed(&api);
    let ctx = ctx(&api);
    let base = server_json("notes:1");

    // 1. First reconcile: Deployment, Service and PDB are applied, then the status.
    reconcile(current(&api, &base), ctx.clone())
        .await
        .expect("first reconcile");
    let w = paths(&api.writes());
    let expected = [
        format!("PATCH /apis/apps/v1/namespaces/{NS}/deployments/notes"),
        format!("PATCH /api/v1/namespaces/{NS}/services/notes"),
        format!("PATCH /apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/notes"),
        format!("PATCH /apis/mcp.operator.dev/v1alpha1/namespaces/{NS}/mcpservers/notes/status"),
    ];
    assert_eq!(w, expected, "create writes");
    let deploy = api
        .get(&format!("/apis/apps/v1/namespaces/{NS}/deployments/notes"))
        .expect("deployment stored");
    assert_eq!(deploy["metadata"]["ownerReferences"][0]["uid"], "uid-1");
    assert_eq!(deploy["spec"]["replicas"], 3);
    let status = api
        .get(&format!(
            "/apis/mcp.operator.dev/v1alpha1/namespaces/{NS}/mcpservers/notes"
        ))
        .expect("status")["status"]
        .clone();
    assert_eq!(status["pool"]["perReplicaMax"], 10);
    assert!(status["conditions"].as_array().is_some_and(|c| c
        .iter()
        .any(|c| c["type"] == "DependencyAvailable" && c["status"] == "True")));

    // 2. Nothing changed: the reconcile reads but writes nothing.
    api.clear_requests();
    reconcile(current(&api, &base), ctx.clone())
        .await
        .expect("second reconcile");
    assert!(
        api.writes().is_empty(),
        "no-op reconcile wrote: {:?}",
        paths(&api.writes())
    );
    assert!(
        api.requests().iter().any(|r| r.method == Method::GET),
        "the no-op reconcile still observes"
    );

    // 3. A new image: only the Deployment is written (the status may follow if it changed).
    api.clear_requests();
    let mut next = server_json("notes:2");
    next["metadata"]["generation"] = json!(2);
    reconcile(current(&api, &next), ctx.clone())
        .await
        .expect("update reconcile");
    let w = paths(&api.writes());
    assert_eq!(
        w.first().map(String::as_str),
        Some(format!("PATCH /apis/apps/v1/namespaces/{NS}/deployments/notes").as_str())
    );
    assert!(
        !w.iter()
            .any(|p| p.contains("/services/") || p.contains("poddisruptionbudgets")),
        "unchanged children rewritten: {w:?}"
    );
    let deploy = api
        .get(&format!("/apis/apps/v1/namespaces/{NS}/deployments/notes"))
        .expect("deployment");
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "notes:2"
    );
}

#[tokio::test]
async fn missing_secret_is_a_condition_not_an_error() {
    let api = FakeApi::default();
    seed(&api);
    if let Ok(mut s) = api.0.lock() {
        s.objects
            .remove(&format!("/api/v1/namespaces/{NS}/secrets/notes-db"));
    }
    let ctx = ctx(&api);
    let action = reconcile(current(&api, &server_json("notes:1")), ctx)
        .await
        .expect("reconcile succeeds");
    let w = paths(&api.writes());
    assert!(
        !w.iter().any(|p| p.contains("/deployments/")),
        "no Deployment for an unrealisable spec: {w:?}"
    );
    let status = api
        .get(&format!(
            "/apis/mcp.operator.dev/v1alpha1/namespaces/{NS}/mcpservers/notes"
        ))
        .expect("status")["status"]
        .clone();
    assert_eq!(status["phase"], "Invalid");
    let cond = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "ConfigValid").cloned())
        .expect("ConfigValid");
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], "SecretNotFound");
    assert!(cond["message"]
        .as_str()
        .is_some_and(|m| m.contains("notes-db")));
    // Re-checked on a timer (secrets are not watched), not hot-looped.
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(20))
    );
    // An Event was sent.
    assert!(api
        .requests()
        .iter()
        .any(|r| r.method == Method::POST && r.path.contains("/events")));
}
