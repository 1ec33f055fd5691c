//! Multi-tenant hardening against a real kube-apiserver: an McpServer never
//! takes over an object of the same name it did not create, and the CRD
//! refuses settings that would block every drain or name one variable twice.
//!
//! Set MCP_TEST_KUBECONFIG to the kubeconfig (`e2e/cluster/local/control-plane.sh
//! up`). Without it the tests skip, unless MCP_REQUIRE_APISERVER=1 (CI).
mod common;

use common::real_api::{assert_calls_granted, recreate, server, standalone_ctx, with_crd_in};
use http::Method;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, PostParams};
use kube::Resource;
use mcp_operator::api::McpServer;
use mcp_operator::controller::reconcile::reconcile;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The error text of creating `obj`, which must be refused.
async fn refused(api: &Api<McpServer>, obj: Value) -> String {
    let m: McpServer = serde_json::from_value(obj.clone()).expect("typed McpServer");
    match api.create(&PostParams::default(), &m).await {
        Ok(_) => panic!("accepted: {obj}"),
        Err(e) => e.to_string(),
    }
}

fn condition(m: &McpServer, t: &str) -> (String, String, String) {
    m.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == t))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_else(|| panic!("no {t} condition: {:?}", m.status))
}

/// Another team's object `web` (of kind K, from `theirs`), then an McpServer
/// `web`: the object is left exactly as it was, no child is written, and the
/// status names the object. Then their object goes: the next reconcile
/// creates the children.
async fn name_taken<K>(ns: &str, theirs: Value, kind: &str)
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let Some((client, log)) = with_crd_in(ns).await else {
        return;
    };
    // What an earlier run's McpServer `web` left (no garbage collector here),
    // which the operator would rightly refuse to take over.
    let api: Api<McpServer> = Api::namespaced(client.clone(), ns);
    let _ = api.delete("web", &DeleteParams::default()).await;
    let dp = DeleteParams::default();
    let _ = Api::<Deployment>::namespaced(client.clone(), ns)
        .delete("web", &dp)
        .await;
    let _ = Api::<Service>::namespaced(client.clone(), ns)
        .delete("web", &dp)
        .await;
    let _ = Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
        .delete("web", &dp)
        .await;
    let objects: Api<K> = Api::namespaced(client.clone(), ns);
    recreate(&objects, theirs).await;
    let before = serde_json::to_value(objects.get("web").await.expect("theirs")).expect("json");

    recreate(
        &api,
        server(
            "web",
            json!({"image": "mcp-workload:dev", "replicas": {"min": 2, "max": 2}}),
        ),
    )
    .await;
    let ctx = standalone_ctx(&client, ns).await;
    // The reconciles' own requests (the test's reads aside).
    let mut calls: Vec<(Method, String)> = Vec::new();
    for _ in 0..2 {
        let m = Arc::new(api.get("web").await.expect("get"));
        if let Ok(mut l) = log.lock() {
            l.clear();
        }
        reconcile(m, ctx.clone()).await.expect("reconcile");
        if let Ok(l) = log.lock() {
            calls.extend(l.iter().filter(|(_, p)| !p.contains("watch=true")).cloned());
        }
    }
    assert_calls_granted(&calls);
    let child_writes: Vec<&(Method, String)> = calls
        .iter()
        .filter(|(m, p)| *m != Method::GET && !p.contains("/mcpservers/") && !p.contains("/events"))
        .collect();
    assert!(
        child_writes.is_empty(),
        "children written: {child_writes:?}"
    );

    let after = serde_json::to_value(objects.get("web").await.expect("theirs")).expect("json");
    assert_eq!(after, before, "their {kind} was changed");
    assert!(after["metadata"].get("ownerReferences").is_none());
    // Nothing else of this server either (an HPA or a PDB would act on their pods).
    let deployment = Api::<Deployment>::namespaced(client.clone(), ns)
        .get_opt("web")
        .await
        .expect("get");
    let service = Api::<Service>::namespaced(client.clone(), ns)
        .get_opt("web")
        .await
        .expect("get");
    let pdb = Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
        .get_opt("web")
        .await
        .expect("get");
    assert_eq!(
        (deployment.is_some(), service.is_some(), pdb.is_some()),
        (kind == "Deployment", kind == "Service", false),
        "a child was created beside their {kind}"
    );

    let m = api.get("web").await.expect("get");
    let named = format!("{kind} {ns}/web");
    let (status, reason, message) = condition(&m, "Ready");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "NameConflict")
    );
    assert!(
        message.contains(&named) && message.contains("no controller owner reference"),
        "{message}"
    );
    let (status, reason, message) = condition(&m, "Stalled");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "NameConflict"));
    assert!(message.contains(&named), "{message}");
    let (_, reason, message) = condition(&m, "Degraded");
    assert_eq!(reason, "NameConflict", "{message}");

    // Their object goes: the name is free, the children are created.
    objects
        .delete("web", &DeleteParams::default())
        .await
        .expect("theirs deleted");
    for _ in 0..50 {
        if objects.get_opt("web").await.expect("get").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    reconcile(Arc::new(api.get("web").await.expect("get")), ctx.clone())
        .await
        .expect("reconcile");
    let ours = objects.get("web").await.expect("ours created");
    let uid = m.metadata.uid.clone();
    assert!(
        ours.meta()
            .owner_references
            .iter()
            .flatten()
            .any(|r| Some(&r.uid) == uid.as_ref() && r.controller == Some(true)),
        "{:?}",
        ours.meta().owner_references
    );
    let m = api.get("web").await.expect("get");
    assert_ne!(condition(&m, "Ready").1, "NameConflict");
    assert_ne!(condition(&m, "Stalled").1, "NameConflict");
}

#[tokio::test]
async fn another_teams_service_is_not_taken_over() {
    name_taken::<Service>(
        "tenant-service",
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "someone-else"},
                     "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}}),
        "Service",
    )
    .await;
}

#[tokio::test]
async fn another_teams_deployment_is_not_taken_over() {
    name_taken::<Deployment>(
        "tenant-deployment",
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "someone-else"}},
                "template": {"metadata": {"labels": {"app": "someone-else"}},
                    "spec": {"containers": [{"name": "app", "image": "someone-else:1"}]}}}}),
        "Deployment",
    )
    .await;
}

#[tokio::test]
async fn crd_refuses_drain_blocking_budgets_and_env_name_collisions() {
    let ns = "tenant-validation";
    let Some((client, _)) = with_crd_in(ns).await else {
        return;
    };
    let api: Api<McpServer> = Api::namespaced(client.clone(), ns);

    let disruption = |replicas: Value, d: Value| {
        server(
            "blocks-drain",
            json!({"image": "x", "replicas": replicas, "disruption": d}),
        )
    };
    let e = refused(
        &api,
        disruption(json!({"min": 2, "max": 4}), json!({"maxUnavailable": 0})),
    )
    .await;
    assert!(
        e.contains("disruption.maxUnavailable must be at least 1"),
        "{e}"
    );
    for (min, at) in [(2, 2), (2, 3), (3, 5)] {
        let e = refused(
            &api,
            disruption(json!({"min": min, "max": 5}), json!({"minAvailable": at})),
        )
        .await;
        assert!(
            e.contains("disruption.minAvailable must be below replicas.min"),
            "min {min}, minAvailable {at}: {e}"
        );
    }
    // Settings that leave room for an eviction are taken; so is minAvailable
    // on a single replica, which gets no PDB at all.
    for (name, replicas, d) in [
        (
            "max-one",
            json!({"min": 2, "max": 2}),
            json!({"maxUnavailable": 1}),
        ),
        (
            "min-below",
            json!({"min": 3, "max": 5}),
            json!({"minAvailable": 2}),
        ),
        (
            "single",
            json!({"min": 1, "max": 1}),
            json!({"minAvailable": 1}),
        ),
    ] {
        let mut obj = disruption(replicas, d);
        obj["metadata"]["name"] = json!(name);
        recreate(&api, obj).await;
    }

    let db = |names: Value| {
        server(
            "env-collision",
            json!({"image": "x", "database": {"urlSecretRef": {"name": "s", "key": "url"}, "envNames": names}}),
        )
    };
    let e = refused(&api, db(json!({"url": "PORT"}))).await;
    assert!(
        e.contains("PORT and MCP_PATH are the operator's own variables"),
        "{e}"
    );
    let e = refused(&api, db(json!({"poolMin": "MCP_PATH"}))).await;
    assert!(e.contains("PORT and MCP_PATH"), "{e}");
    let e = refused(&api, db(json!({"poolMin": "POOL", "poolMax": "POOL"}))).await;
    assert!(
        e.contains("database.envNames: POOL is given to two variables"),
        "{e}"
    );
    // Against a default name, too.
    let e = refused(&api, db(json!({"acquireTimeout": "DATABASE_URL"}))).await;
    assert!(e.contains("DATABASE_URL is given to two variables"), "{e}");
    let mut ok = db(json!({"url": "PG_URL", "poolMax": "PG_POOL_MAX"}));
    ok["metadata"]["name"] = json!("env-distinct");
    recreate(&api, ok).await;
}
