//! S23: a hostile tenant beside a healthy one. In its own namespace one team
//! creates an McpServer named like another team's Service, tries a PDB that
//! would block every drain and an env name that collides with the port's, and
//! runs pods whose MCP layer hangs (each check holds a prober slot until its
//! timeout). Meanwhile Postgres is killed under `notes`, as in S1: `notes`
//! must recover within S1's thresholds, the other team's Service must come
//! through untouched, and nothing of `notes` may change.
//!
//! Not here, and why: the database-probe port scan needs
//! `--dependency-scope=own-namespace`, which this cluster-wide install (whose
//! `notes` uses a database in another namespace) does not run; it is tested
//! on a real API server (tests/dependency_scope.rs). Oversized answers,
//! redirects and foreign SSE endpoints are tested against real HTTP servers
//! in src/mcpcheck.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;
use mcp_operator::api::McpServer;
use serde_json::{json, Value};

use crate::cluster::{eventually, log, Ctx, NOTES, NS};
use crate::measure as m;
use crate::model::{Check, Scenario};
use crate::scenarios::condition;
use crate::scenarios::kill::{pg_kill_run, Kill};

const HNS: &str = "mcp-e2e-hostile";
const FIELD_MANAGER: &str = "mcp-e2e";
const DB_URL: &str =
    "postgres://postgres:e2e-only-not-a-secret@postgres.mcp-e2e-db.svc.cluster.local:5432/postgres";

fn server(name: &str, extra: Value) -> Value {
    let mut spec = json!({
        "image": "mcp-workload:dev",
        "imagePullPolicy": "IfNotPresent",
        "port": 8080,
        "path": "/mcp",
        "replicas": {"min": 1, "max": 1},
        "database": {
            "urlSecretRef": {"name": "db", "key": "url"},
            "maxConnections": 10,
            "pool": {"min": 1, "max": 2, "acquireTimeoutSeconds": 2},
        },
        "podTemplate": {"terminationGracePeriodSeconds": 5, "preStopSleepSeconds": 1},
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    json!({
        "apiVersion": "mcp.operator.dev/v1alpha1",
        "kind": "McpServer",
        "metadata": {"name": name, "namespace": HNS},
        "spec": spec,
    })
}

/// What of `notes` a write would change: the children's generations and the
/// Service's resource version.
async fn notes_children(ctx: &Ctx) -> Result<Value> {
    let deps: Api<Deployment> = Api::namespaced(ctx.client.clone(), NS);
    let svcs: Api<Service> = Api::namespaced(ctx.client.clone(), NS);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), NS);
    let d = deps.get(NOTES).await?;
    let s = svcs.get(NOTES).await?;
    let p = pdbs.get_opt(NOTES).await?;
    Ok(json!({
        "deployment.generation": d.metadata.generation,
        "service.resourceVersion": s.metadata.resource_version,
        "pdb.generation": p.and_then(|p| p.metadata.generation),
    }))
}

async fn setup(ctx: &Ctx, checks: &mut Vec<Check>) -> Result<Service> {
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    let nss: Api<Namespace> = Api::all(ctx.client.clone());
    nss.patch(
        HNS,
        &apply,
        &Patch::Apply(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": HNS, "labels": {
                "app.kubernetes.io/part-of": "mcp-e2e",
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            }},
        })),
    )
    .await?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), HNS);
    secrets
        .patch(
            "db",
            &apply,
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "db", "namespace": HNS},
                "stringData": {"url": DB_URL},
            })),
        )
        .await?;
    // Another team's Service, then an McpServer of the same name.
    let svcs: Api<Service> = Api::namespaced(ctx.client.clone(), HNS);
    let theirs = svcs
        .patch(
            "web",
            &apply,
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": HNS},
                "spec": {
                    "selector": {"app": "someone-else"},
                    "ports": [{"name": "http", "port": 8080, "targetPort": 8080}],
                },
            })),
        )
        .await?;
    let mcps: Api<McpServer> = Api::namespaced(ctx.client.clone(), HNS);
    mcps.patch("web", &apply, &Patch::Apply(server("web", json!({}))))
        .await?;
    // Settings the API server must refuse.
    for (name, extra, field) in [
        (
            "drain-block",
            json!({"replicas": {"min": 2, "max": 2}, "disruption": {"maxUnavailable": 0}}),
            "maxUnavailable",
        ),
        (
            "env-clash",
            json!({"database": {
                "urlSecretRef": {"name": "db", "key": "url"},
                "maxConnections": 10,
                "envNames": {"url": "PORT"},
            }}),
            "envNames",
        ),
    ] {
        let obj: McpServer = serde_json::from_value(server(name, extra))?;
        let res = mcps.create(&PostParams::default(), &obj).await;
        let refused = match &res {
            Err(kube::Error::Api(e)) => e.code == 422 && e.message.contains(field),
            _ => false,
        };
        checks.push(Check::new(
            format!("McpServer {name} refused at admission (names {field})"),
            refused,
            match res {
                Ok(_) => "accepted".to_string(),
                Err(e) => e.to_string().chars().take(300).collect(),
            },
        ));
    }
    // Pods whose MCP layer hangs 5 s after start; remediation off, so they
    // stay and every check of them holds a prober slot for its full timeout.
    let slow = server(
        "slow",
        json!({
            "replicas": {"min": 2, "max": 2},
            "health": {"mcp": {"periodSeconds": 10, "timeoutSeconds": 8, "unhealthyAfterSeconds": 20}},
            "remediation": {"enabled": false},
            "env": [{"name": "WORKLOAD_MODE", "value": "wedged-after=5"}],
        }),
    );
    mcps.patch("slow", &apply, &Patch::Apply(slow)).await?;
    Ok(theirs)
}

pub async fn s23(ctx: &Ctx) -> Result<Scenario> {
    ctx.wait_mcps_ready(NOTES, Duration::from_secs(120)).await?;
    let mut checks = Vec::new();
    let theirs = setup(ctx, &mut checks).await?;
    let mcps: Api<McpServer> = Api::namespaced(ctx.client.clone(), HNS);
    let conflict = eventually(
        "McpServer web reports NameConflict",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || async {
            let o = mcps.get("web").await?;
            Ok(condition(&o, "Stalled")
                .map(|c| (c.status, c.reason, c.message))
                .filter(|(s, r, _)| s == "True" && r == "NameConflict"))
        },
    )
    .await;
    // The hanging pods are up and being checked before Postgres is killed.
    let slow_checked = eventually(
        "McpServer slow's pods fail their MCP checks",
        Duration::from_secs(90),
        Duration::from_secs(1),
        || async {
            let o = mcps.get("slow").await?;
            let failing = o
                .status
                .and_then(|s| s.mcp)
                .map(|m| m.failing_pod_count)
                .unwrap_or(0);
            Ok((failing > 0).then_some(failing))
        },
    )
    .await;
    log(format!(
        "S23: hostile tenant set up (conflict: {}, slow pods failing: {:?})",
        conflict.is_ok(),
        slow_checked.as_ref().ok()
    ));
    let before = notes_children(ctx).await?;
    let mut run = pg_kill_run(
        ctx,
        "S23",
        NOTES,
        Kill::ForceDelete,
        Some(m::SINGLE_RUN_AFTER_PG_READY_S),
    )
    .await?;
    let after = notes_children(ctx).await?;
    run.checks.extend(checks);
    run.check(
        "McpServer web: Stalled=True, reason NameConflict, naming the Service",
        conflict
            .as_ref()
            .is_ok_and(|(_, _, msg)| msg.contains("Service") && msg.contains("web")),
        match &conflict {
            Ok(c) => format!("{c:?}"),
            Err(e) => format!("{e:#}"),
        },
    );
    let svcs: Api<Service> = Api::namespaced(ctx.client.clone(), HNS);
    let now = svcs.get("web").await?;
    run.check(
        "the other team's Service untouched (same resourceVersion, selector, no ownerReference)",
        now.metadata.resource_version == theirs.metadata.resource_version
            && now.metadata.owner_references.is_none()
            && now.spec.as_ref().and_then(|s| s.selector.clone())
                == theirs.spec.as_ref().and_then(|s| s.selector.clone()),
        format!(
            "resourceVersion {:?} -> {:?}, owners {:?}",
            theirs.metadata.resource_version,
            now.metadata.resource_version,
            now.metadata.owner_references
        ),
    );
    let deps: Api<Deployment> = Api::namespaced(ctx.client.clone(), HNS);
    let web_dep = deps.get_opt("web").await?;
    run.check(
        "no child created for the conflicting McpServer",
        web_dep.is_none(),
        format!("Deployment web exists: {}", web_dep.is_some()),
    );
    run.check(
        "the slow tenant's pods were checked (and failed) during the run",
        slow_checked.is_ok(),
        match &slow_checked {
            Ok(n) => format!("{n} failing"),
            Err(e) => format!("{e:#}"),
        },
    );
    run.check(
        "nothing of notes changed (Deployment and PDB generation, Service resourceVersion)",
        before == after,
        format!("before {before} after {after}"),
    );
    run.info.insert("notes_children".into(), before);
    run.finish();
    // The hostile namespace goes; later scenarios must not share the node with it.
    let nss: Api<Namespace> = Api::all(ctx.client.clone());
    if let Err(e) = nss.delete(HNS, &DeleteParams::default()).await {
        log(format!("S23: namespace {HNS} not deleted: {e}"));
    }
    let gone = eventually(
        "the hostile namespace gone",
        Duration::from_secs(90),
        Duration::from_secs(2),
        || async { Ok(nss.get_opt(HNS).await?.is_none().then_some(())) },
    )
    .await;
    if let Err(e) = gone {
        log(format!("warning: {e:#}"));
    }
    let mut sc = Scenario::with_runs(vec![run]);
    sc.notes.push(
        "The database-probe port scan is not tried here: it needs --dependency-scope=own-namespace, which this cluster-wide install does not run (tests/dependency_scope.rs proves it on a real API server); oversized answers, redirects and foreign SSE endpoints are proved against real HTTP servers in src/mcpcheck."
            .to_string(),
    );
    Ok(sc)
}
