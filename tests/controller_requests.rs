//! Request-sequence tests of one reconcile against an in-memory API server:
//! create writes the children and status, an unchanged object writes nothing,
//! a spec change writes exactly the changed child.
mod common;

use common::fake_api::FakeApi;
use http::Method;
use mcp_operator::api::McpServer;
use mcp_operator::controller::context::Context;
use mcp_operator::controller::events::{self, EventQueue};
use mcp_operator::controller::reconcile::reconcile;
use mcp_operator::controller::stores;
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

#[tokio::test]
async fn a_stale_object_writes_nothing() {
    let api = FakeApi::default();
    seed(&api);
    let base = server_json("notes:1");
    reconcile(current(&api, &base), ctx(&api))
        .await
        .expect("first reconcile");
    // The children are then changed under us (so there is something to write), and
    // the reconcile runs on a copy older than the stored McpServer.
    let path = format!("/apis/apps/v1/namespaces/{NS}/deployments/notes");
    if let Ok(mut s) = api.0.lock() {
        s.objects.remove(&path);
    }
    let stale = current(&api, &base);
    if let Ok(mut s) = api.0.lock() {
        let p = format!("/apis/mcp.operator.dev/v1alpha1/namespaces/{NS}/mcpservers/notes");
        if let Some(o) = s.objects.get_mut(&p) {
            o["metadata"]["resourceVersion"] = json!("999");
        }
    }
    api.clear_requests();
    let err = reconcile(stale, ctx(&api))
        .await
        .expect_err("a stale object must not act");
    assert_eq!(err.metric_label(), "conflict");
    let w = paths(&api.writes());
    assert!(
        !w.iter().any(|p| p.contains("/deployments/")),
        "acted on a stale object: {w:?}"
    );
}

fn seed(api: &FakeApi) {
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

/// A context whose caches hold what the fake API server holds now.
fn ctx(api: &FakeApi) -> Arc<Context> {
    let client = api.client();
    let objects: Vec<Value> = api
        .0
        .lock()
        .map(|s| s.objects.values().cloned().collect())
        .unwrap_or_default();
    let metrics = Arc::new(Metrics::default());
    let recorder = events::recorder(client.clone(), None);
    Arc::new(Context::new(
        client,
        EventQueue::start(recorder, metrics.clone()).0,
        metrics,
        stores::from_objects(objects),
        None,
    ))
}

/// Wait until the Events a reconcile queued have gone out.
async fn events_sent(ctx: &Context) {
    for _ in 0..100 {
        if ctx.events.pending() == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "{} Events still queued 2 s after the reconcile",
        ctx.events.pending()
    );
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
    let base = server_json("notes:1");

    // 1. First reconcile: Deployment, Service and PDB, then the status (no
    // intent first: creating evicts and rolls back nothing).
    let first = ctx(&api);
    reconcile(current(&api, &base), first.clone())
        .await
        .expect("first reconcile");
    // Its Events go out after it returns, from the queue.
    events_sent(&first).await;
    let mut w = paths(&api.writes());
    let status =
        format!("PATCH /apis/mcp.operator.dev/v1alpha1/namespaces/{NS}/mcpservers/notes/status");
    assert_eq!(w.len(), 4, "create writes: {w:?}");
    assert_eq!(w.last(), Some(&status), "the status last: {w:?}");
    // The children first, written at once (in any order).
    let mut children = w.drain(..w.len() - 1).collect::<Vec<_>>();
    children.sort();
    let mut expected = [
        format!("PATCH /apis/apps/v1/namespaces/{NS}/deployments/notes"),
        format!("PATCH /api/v1/namespaces/{NS}/services/notes"),
        format!("PATCH /apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/notes"),
    ];
    expected.sort();
    assert_eq!(children, expected, "create writes");
    // Each child missing from the cache was looked up by name before it was
    // created (its name could be someone else's object), at once.
    let mut gets: Vec<String> = api
        .requests()
        .iter()
        .filter(|r| r.method == Method::GET && !r.path.contains("/events"))
        .map(|r| r.path.clone())
        .collect();
    gets.sort();
    let mut looked_up = [
        format!("/apis/apps/v1/namespaces/{NS}/deployments/notes"),
        format!("/api/v1/namespaces/{NS}/services/notes"),
        format!("/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/notes"),
    ];
    looked_up.sort();
    assert_eq!(gets, looked_up, "lookups before creating");
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

    // 2. Nothing changed: the reconcile reads from its caches and sends nothing.
    api.clear_requests();
    let obj = current(&api, &base);
    reconcile(obj, ctx(&api)).await.expect("second reconcile");
    assert!(
        api.requests().is_empty(),
        "no-op reconcile sent requests: {:?}",
        paths(&api.requests())
    );

    // 3. A new image: the intent, then only the Deployment (the status may follow).
    api.clear_requests();
    let mut next = server_json("notes:2");
    next["metadata"]["generation"] = json!(2);
    let obj = current(&api, &next);
    reconcile(obj, ctx(&api)).await.expect("update reconcile");
    let w = paths(&api.writes());
    assert_eq!(
        w.get(1).map(String::as_str),
        Some(format!("PATCH /apis/apps/v1/namespaces/{NS}/deployments/notes").as_str()),
        "{w:?}"
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
    // The kubelet's report on a pod whose Secret is missing; the operator itself
    // never reads Secrets.
    api.insert(
        &format!("/api/v1/namespaces/{NS}/pods/notes-abc"),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "notes-abc", "namespace": NS, "labels": {
                   "app.kubernetes.io/name": "mcp-server", "app.kubernetes.io/instance": "notes",
                   "mcp.operator.dev/server": "notes", "app.kubernetes.io/managed-by": "mcp-operator"}},
               "spec": {"containers": [{"name": "mcp", "image": "notes:1"}]},
               "status": {"containerStatuses": [{"name": "mcp", "ready": false, "restartCount": 0, "image": "notes:1", "imageID": "",
                   "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "secret \"notes-db\" not found"}}}]}}),
    );
    let c = ctx(&api);
    let action = reconcile(current(&api, &server_json("notes:1")), c.clone())
        .await
        .expect("reconcile succeeds");
    assert!(
        !api.requests().iter().any(|r| r.path.contains("/secrets/")),
        "a Secret was read"
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
    // Re-checked on a timer besides the pod events, never hot-looped.
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(20))
    );
    // An Event was sent, after the reconcile (from the event queue).
    events_sent(&c).await;
    assert!(api
        .requests()
        .iter()
        .any(|r| r.method == Method::POST && r.path.contains("/events")));
}

/// A Service named like the server, made by someone else (it even carries our
/// label, so the cache holds it): nothing is written to any child, and the
/// status says which object holds the name.
#[tokio::test]
async fn a_name_held_by_another_object_is_a_conflict_not_a_takeover() {
    let api = FakeApi::default();
    seed(&api);
    let path = format!("/api/v1/namespaces/{NS}/services/notes");
    let theirs = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "notes", "namespace": NS, "resourceVersion": "7",
            "labels": {"app.kubernetes.io/managed-by": "mcp-operator"}},
        "spec": {"selector": {"app": "someone-else"}, "ports": [{"name": "http", "port": 8080}]}});
    api.insert(&path, theirs.clone());
    let base = server_json("notes:1");
    let action = reconcile(current(&api, &base), ctx(&api))
        .await
        .expect("reconcile");
    assert_eq!(api.get(&path), Some(theirs), "their Service was changed");
    let w = paths(&api.writes());
    assert_eq!(
        w,
        [format!(
            "PATCH /apis/mcp.operator.dev/v1alpha1/namespaces/{NS}/mcpservers/notes/status"
        )],
        "only the status is written"
    );
    let status = api
        .get(&format!(
            "/apis/mcp.operator.dev/v1alpha1/namespaces/{NS}/mcpservers/notes"
        ))
        .expect("status")["status"]
        .clone();
    for t in ["Ready", "Stalled"] {
        let c = status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == t).cloned())
            .unwrap_or_else(|| panic!("{t} missing: {status}"));
        assert_eq!(c["reason"], "NameConflict", "{c}");
        assert!(
            c["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("Service {NS}/notes"))),
            "{c}"
        );
    }
    // Looked at again on a timer: deleting their Service is no event of ours.
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(60))
    );
}
