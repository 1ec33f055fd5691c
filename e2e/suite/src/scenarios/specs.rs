//! S7: bad McpServers. Invalid specs are refused at apply with a message that
//! names the field; a missing Secret and pods that cannot start are reported
//! in status and never remediated; owned children are garbage-collected.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::DeleteParams;
use kube::{Api, Resource};

use crate::cluster::{eventually, manifest, Ctx, NS};
use crate::measure::restart_delta;
use crate::model::{Check, Run, Scenario};
use crate::scenarios::condition;
use mcp_workload::client::now_ms;

/// Manifest -> words the API server's refusal must contain.
const REJECTED: [(&str, &[&str]); 5] = [
    (
        "replicas-min-gt-max.yaml",
        &["spec.replicas", "replicas.min must be <= replicas.max"],
    ),
    (
        "pool-min-gt-max.yaml",
        &[
            "spec.database.pool",
            "database.pool.min must be <= database.pool.max",
        ],
    ),
    (
        "port-zero.yaml",
        &["spec.port", "greater than or equal to 1"],
    ),
    (
        "unknown-transport.yaml",
        &["spec.transport", "Unsupported value", "carrier-pigeon"],
    ),
    (
        "pool-over-budget.yaml",
        &["database.pool.max * replicas.max must be <= database.maxConnections"],
    ),
];

/// McpServer -> (Ready reason, words of the cause its message must carry).
const CANNOT_START: [(&str, &str, &[&str]); 3] = [
    (
        "stuck-unschedulable",
        "PodsNotStarted",
        &["Unschedulable", "node affinity/selector"],
    ),
    ("stuck-image", "PodsNotStarted", &["no-such-tag"]),
    ("stuck-serviceaccount", "ReplicaFailure", &["no-such-sa"]),
];

async fn delete_quietly(ctx: &Ctx, name: &str) {
    let _ = ctx.mcps_api().delete(name, &DeleteParams::default()).await;
}

pub async fn s7(ctx: &Ctx) -> Result<Scenario> {
    let op_before = ctx.operator_pods().await?;
    let mut checks = Vec::new();
    for (file, needles) in REJECTED {
        let path = manifest(&format!("bad/{file}"));
        let (ok, msg) = ctx
            .kubectl_try(&["apply", "-f", &path.to_string_lossy()])
            .await;
        let missing: Vec<_> = needles.iter().filter(|n| !msg.contains(*n)).collect();
        checks.push(Check::new(
            format!("{file} rejected at apply, message names the field"),
            !ok && missing.is_empty(),
            msg.lines().next().unwrap_or_default(),
        ));
    }

    let name = "bad-missing-secret";
    let t0 = now_ms();
    delete_quietly(ctx, name).await;
    ctx.apply(&manifest("bad/missing-secret.yaml")).await?;
    let invalid = eventually(
        "ConfigValid=False",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || async {
            let o = ctx.mcps(name).await?;
            Ok(o.and_then(|o| {
                let c = condition(&o, "ConfigValid")?;
                let phase = o.status.as_ref()?.phase?.as_str();
                (c.status == "False" && phase == "Invalid").then_some(c)
            }))
        },
    )
    .await;
    match invalid {
        Ok(c) => {
            checks.push(Check::new(
                "missing Secret: ConfigValid=False reason SecretNotFound, phase Invalid",
                c.reason == "SecretNotFound",
                format!("{}: {}", c.reason, c.message),
            ));
            checks.push(Check::new(
                "the condition message names the Secret",
                c.message.contains("no-such-secret"),
                &c.message,
            ));
        }
        Err(e) => checks.push(Check::new(
            "missing Secret: ConfigValid=False reason SecretNotFound, phase Invalid",
            false,
            format!("{e:#}"),
        )),
    }
    let evs = ctx.events_for(name, t0.saturating_sub(1000)).await?;
    checks.push(Check::new(
        "a Warning Event explains it",
        evs.iter().any(|e| e.type_ == "Warning"),
        format!(
            "{:?}",
            evs.iter()
                .take(3)
                .map(|e| (&e.reason, &e.note))
                .collect::<Vec<_>>()
        ),
    ));
    // let the operator chew on it a little longer before judging its health
    tokio::time::sleep(Duration::from_secs(3)).await;
    let op_after = ctx.operator_pods().await?;
    let (restarts, replaced) = restart_delta(&op_before, &op_after, |_| false);
    checks.push(Check::new(
        "operator kept running (same pod, no restarts, ready)",
        restarts == 0 && replaced == 0 && op_after.values().all(|p| p.ready),
        format!("restarts={restarts} replaced={replaced}"),
    ));
    delete_quietly(ctx, name).await;
    checks.extend(cannot_start_checks(ctx).await?);
    checks.extend(gc_checks(ctx).await);
    Ok(Scenario::with_runs(vec![Run::checks_only("S7", checks)]))
}

/// Pods that never start are reported with their cause and never evicted.
async fn cannot_start_checks(ctx: &Ctx) -> Result<Vec<Check>> {
    for (n, _, _) in CANNOT_START {
        delete_quietly(ctx, n).await;
    }
    let t0 = now_ms();
    ctx.apply(&manifest("bad/cannot-start.yaml")).await?;
    let mut checks = Vec::new();
    let mut messages = BTreeMap::new();
    for (n, reason, words) in CANNOT_START {
        let name = format!("{n}: Ready=False reason {reason}, the cause in the message");
        let got = eventually(
            &format!("{n} Ready reason {reason}"),
            Duration::from_secs(90),
            Duration::from_secs(1),
            || async {
                let o = ctx.mcps(n).await?;
                Ok(o.and_then(|o| condition(&o, "Ready"))
                    .filter(|c| c.reason == reason && words.iter().all(|w| c.message.contains(w))))
            },
        )
        .await;
        match got {
            Ok(c) => {
                messages.insert(n, c.message.clone());
                checks.push(Check::new(
                    name,
                    true,
                    c.message.chars().take(200).collect::<String>(),
                ));
            }
            Err(_) => {
                let c = ctx
                    .mcps(n)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|o| condition(&o, "Ready"));
                checks.push(Check::new(name, false, format!("{c:?}")));
            }
        }
    }
    // Long past unhealthyAfterSeconds (3 s): a restart would have happened by now.
    tokio::time::sleep(Duration::from_secs(20)).await;
    for (n, _, _) in CANNOT_START {
        let rem = ctx
            .mcps(n)
            .await?
            .and_then(|o| o.status)
            .and_then(|s| s.remediation);
        let evicted = ctx
            .events_for(n, t0.saturating_sub(1000))
            .await?
            .into_iter()
            .filter(|e| e.reason == "PodEvicted")
            .count();
        let acted = rem
            .as_ref()
            .is_some_and(|r| !r.recent_actions.is_empty() || r.last_action.is_some());
        checks.push(Check::new(
            format!("{n}: never evicted (no action, no PodEvicted Event) 20 s past unhealthyAfterSeconds"),
            !acted && evicted == 0,
            format!("state={:?} events={evicted}", rem.map(|r| r.state)),
        ));
    }
    for (n, _, _) in CANNOT_START {
        delete_quietly(ctx, n).await;
    }
    Ok(checks)
}

/// A valid McpServer gets owned children; deleting it garbage-collects them.
async fn gc_checks(ctx: &Ctx) -> Vec<Check> {
    let name = "gc-probe";
    match gc(ctx, name).await {
        Ok(c) => c,
        Err(e) => {
            delete_quietly(ctx, name).await;
            vec![Check::new(
                "owned children created and garbage-collected",
                false,
                format!("{e:#}"),
            )]
        }
    }
}

async fn gc(ctx: &Ctx, name: &str) -> Result<Vec<Check>> {
    delete_quietly(ctx, name).await;
    ctx.apply(&manifest("gc-probe.yaml")).await?;
    let uid = eventually(
        "gc-probe created",
        Duration::from_secs(30),
        Duration::from_secs(1),
        || async { Ok(ctx.mcps(name).await?.and_then(|o| o.meta().uid.clone())) },
    )
    .await?;
    let deps: Api<Deployment> = Api::namespaced(ctx.client.clone(), NS);
    let svcs: Api<Service> = Api::namespaced(ctx.client.clone(), NS);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), NS);
    let owned =
        |refs: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>| {
            refs.unwrap_or_default()
                .iter()
                .any(|r| r.uid == uid && r.controller == Some(true))
        };
    eventually(
        "gc-probe children",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || async {
            let d = deps
                .get_opt(name)
                .await?
                .map(|o| owned(o.metadata.owner_references));
            let s = svcs
                .get_opt(name)
                .await?
                .map(|o| owned(o.metadata.owner_references));
            let p = pdbs
                .get_opt(name)
                .await?
                .map(|o| owned(o.metadata.owner_references));
            Ok((d == Some(true) && s == Some(true) && p == Some(true)).then_some(()))
        },
    )
    .await?;
    let mut checks = vec![Check::new(
        "Deployment, Service and PDB created with a controller owner reference",
        true,
        "",
    )];
    ctx.mcps_api()
        .delete(name, &DeleteParams::default())
        .await?;
    let gone = eventually(
        "gc-probe children gone",
        Duration::from_secs(90),
        Duration::from_secs(1),
        || async {
            let any = deps.get_opt(name).await?.is_some()
                || svcs.get_opt(name).await?.is_some()
                || pdbs.get_opt(name).await?.is_some();
            Ok((!any).then_some(()))
        },
    )
    .await;
    checks.push(Check::new(
        "deleting the McpServer removes its children (garbage collection)",
        gone.is_ok(),
        gone.err().map(|e| format!("{e:#}")).unwrap_or_default(),
    ));
    Ok(checks)
}
