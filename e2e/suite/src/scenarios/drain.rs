//! S5: a node drain against the PodDisruptionBudget while the client writes.
//! With two or more schedulable nodes it is a real `kubectl drain` of the node
//! holding most MCP pods: the evictions it sends at once meet the PDB (one is
//! refused and retried), replacements start on the other nodes, and the node
//! is uncordoned after. On a one-node cluster every MCP pod is evicted in turn
//! through the Eviction API, with a concurrent second eviction each time that
//! the PDB must refuse. Either way the Service keeps serving.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::EvictParams;
use kube::Api;
use serde_json::json;

use crate::cluster::{eventually, log, server_sel, Ctx, DESIRED, NOTES, NS};
use crate::measure::{self as m, pods_ready};
use crate::model::{Mark, Run, Scenario};
use crate::run::{measured_run, Disruption};
use mcp_workload::client::now_ms;

#[derive(serde::Serialize, Clone, Debug)]
struct Eviction {
    pod: String,
    evicted: bool,
    msg: String,
    second: Option<String>,
    /// The concurrent second eviction: Some(false) refused.
    second_evicted: Option<bool>,
    second_msg: String,
}

async fn evict(ctx: &Ctx, pod: &str) -> (bool, String) {
    let t = std::time::Instant::now();
    let res = ctx.pods_api(NS).evict(pod, &EvictParams::default()).await;
    let ms = t.elapsed().as_millis();
    match res {
        Ok(_) => (true, format!("accepted in {ms} ms")),
        Err(e) => (false, format!("{e} (in {ms} ms)")),
    }
}

fn refused_by_pdb(msg: &str) -> bool {
    msg.contains("429") || msg.contains("disruption budget")
}

pub async fn s5(ctx: &Ctx) -> Result<Scenario> {
    ctx.wait_mcps_ready(NOTES, Duration::from_secs(120)).await?;
    if ctx.schedulable_nodes().await?.len() >= 2 {
        return s5_drain(ctx).await;
    }
    s5_evict_in_turn(ctx).await
}

/// Seconds `kubectl drain` may take (it retries a refused eviction every 5 s).
const DRAIN_TIMEOUT_S: u64 = 150;

/// The drain of the node holding most of the McpServer's pods.
async fn s5_drain(ctx: &Ctx) -> Result<Scenario> {
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), NS);
    let pdb_exists = pdbs.get_opt(NOTES).await?.is_some();
    let sel = server_sel(NOTES);
    let before = ctx.pod_nodes(NS, &sel).await?;
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for node in before.values() {
        *per_node.entry(node.as_str()).or_default() += 1;
    }
    let Some((node, on_node)) = per_node
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(node, n)| (node.to_string(), *n))
    else {
        anyhow::bail!("S5: the pods of {NOTES} are on no node");
    };
    log(format!(
        "S5: {NOTES} pods per node {per_node:?}; draining {node} ({on_node} of them)"
    ));
    let spread = per_node.len();
    let measured = measured_run(ctx, "S5", NOTES, ctx.opts.drain_window_s, false, |t0| {
        let (node, sel) = (node.clone(), sel.clone());
        async move {
            let mut d = Disruption::default();
            // Only the McpServer's pods: node 1 also holds Postgres, whose
            // hostPath volume ties it there. Cordoning and evicting the MCP
            // pods is what is under test.
            let pod_selector = format!("--pod-selector={sel}");
            let timeout = format!("--timeout={DRAIN_TIMEOUT_S}s");
            let (ok, out) = ctx
                .kubectl_try_t(
                    &[
                        "drain",
                        &node,
                        &pod_selector,
                        "--ignore-daemonsets",
                        "--delete-emptydir-data",
                        &timeout,
                    ],
                    Duration::from_secs(DRAIN_TIMEOUT_S + 30),
                )
                .await;
            let t_drained = now_ms();
            d.marks.push(Mark::other("drained", t_drained));
            log(format!(
                "S5: kubectl drain {node} {} in {:.1} s",
                if ok { "completed" } else { "FAILED" },
                (t_drained - t0) as f64 / 1000.0
            ));
            let waited = ctx.wait_pods_ready(NOTES, Duration::from_secs(90)).await;
            d.end_ms = Some(t_drained);
            d.info.insert("drained_node".into(), json!(node));
            d.info.insert("drain_ok".into(), json!(ok));
            d.info
                .insert("drain_s".into(), json!((t_drained - t0) as f64 / 1000.0));
            d.info.insert(
                "drain_refusals".into(),
                json!(out.lines().filter(|l| refused_by_pdb(l)).count()),
            );
            d.info.insert(
                "drain_output".into(),
                json!(out.lines().take(40).collect::<Vec<_>>()),
            );
            waited?;
            Ok(d)
        }
    })
    .await;
    // Whatever happened, the node takes pods again.
    let (uncordoned, msg) = ctx.kubectl_try(&["uncordon", &node]).await;
    if !uncordoned {
        log(format!("S5: uncordon {node} failed: {msg}"));
    }
    let measured = measured?;
    let after = ctx.pod_nodes(NS, &sel).await?;
    let mut run = measured.run;
    let refusals = run.info_u64("drain_refusals").unwrap_or(0);
    let drain_ok = run.info.get("drain_ok") == Some(&json!(true));
    let left_on_node: Vec<&String> = after
        .iter()
        .filter(|(_, n)| **n == node)
        .map(|(p, _)| p)
        .collect();
    run.info
        .insert("pods_per_node_before".into(), json!(per_node));
    run.check("PodDisruptionBudget exists", pdb_exists, "");
    run.check(
        "the pods were spread over >= 2 nodes before the drain (topology spread)",
        spread >= 2,
        format!("{per_node:?}"),
    );
    run.check(
        format!("kubectl drain {node} completed"),
        drain_ok,
        if drain_ok {
            format!(
                "in {:.1} s",
                run.info
                    .get("drain_s")
                    .and_then(|v| v.as_f64())
                    .unwrap_or(0.0)
            )
        } else {
            run.info
                .get("drain_output")
                .map(|v| v.to_string())
                .unwrap_or_default()
        },
    );
    run.check(
        "the PDB refused an eviction the drain sent at the same time (429, retried)",
        on_node < 2 || refusals >= 1,
        format!("{refusals} refusals; {on_node} pods on the node"),
    );
    run.check(
        format!("replacements run on other nodes, none on {node}"),
        left_on_node.is_empty() && after.len() >= DESIRED,
        format!("after: {after:?}"),
    );
    availability_checks(&mut run);
    run.check(format!("{node} uncordoned after"), uncordoned, msg);
    run.require_no_failed_calls();
    run.finish();
    let mut sc = Scenario::with_runs(vec![run]);
    sc.notes.push(format!(
        "a real drain of {node} limited to {NOTES}'s pods (`--pod-selector`): Postgres's hostPath volume ties it to its node"
    ));
    sc.notes.push(SESSIONS_NOTE.into());
    Ok(sc)
}

/// What both paths promise: the pool stays served and the operator stays out.
fn availability_checks(run: &mut Run) {
    run.check(
        ">= 2 replicas ready throughout",
        run.min_ready_replicas >= 2,
        run.min_ready_replicas,
    );
    run.check(
        format!("all {DESIRED} replicas ready after the drain"),
        run.mcp_ready_s.is_some(),
        m::fmt(run.mcp_ready_s),
    );
    run.check(
        "operator took no remediation action",
        run.remediation_actions == 0,
        run.remediation_actions,
    );
}

const SESSIONS_NOTE: &str = "session losses are reported, not failed on: an MCP session lives in one pod, and the client re-initializes once when its pod goes";

/// One node: each pod evicted in turn, with a concurrent second eviction.
async fn s5_evict_in_turn(ctx: &Ctx) -> Result<Scenario> {
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), NS);
    let pdb_exists = pdbs.get_opt(NOTES).await?.is_some();
    let sel = server_sel(NOTES);
    let measured = measured_run(ctx, "S5", NOTES, ctx.opts.drain_window_s, false, |t0| {
        let (pdbs, sel) = (pdbs.clone(), sel.clone());
        async move {
            let mut d = Disruption::default();
            let mut results = Vec::new();
            let originals: Vec<String> = ctx.pods(NS, &sel).await?.into_keys().collect();
            for (i, pod) in originals.iter().enumerate() {
                eventually(
                    "PDB allows a disruption and all replicas ready",
                    Duration::from_secs(90),
                    Duration::from_millis(500),
                    || async {
                        let allowed = pdbs
                            .get(NOTES)
                            .await?
                            .status
                            .is_some_and(|s| s.disruptions_allowed >= 1);
                        Ok((allowed && pods_ready(&ctx.pods(NS, &sel).await?, DESIRED))
                            .then_some(()))
                    },
                )
                .await?;
                let t = now_ms();
                let (ok1, msg1) = evict(ctx, pod).await;
                let other = ctx
                    .pods(NS, &sel)
                    .await?
                    .into_iter()
                    .find(|(n, p)| n != pod && p.ready && !p.deleting)
                    .map(|(n, _)| n);
                let (ok2, msg2) = match &other {
                    Some(o) => {
                        let (ok, msg) = evict(ctx, o).await;
                        (Some(ok), msg)
                    }
                    None => (None, "no other ready pod".to_string()),
                };
                log(format!(
                    "S5: evict {pod}: {}; concurrent second: {}",
                    if ok1 { "ok" } else { &msg1 },
                    match ok2 {
                        Some(true) => "ACCEPTED",
                        Some(false) if refused_by_pdb(&msg2) => "429",
                        _ => &msg2,
                    }
                ));
                results.push(Eviction {
                    pod: pod.clone(),
                    evicted: ok1,
                    msg: msg1,
                    second: other,
                    second_evicted: ok2,
                    second_msg: msg2,
                });
                d.marks.push(Mark::other(format!("evict {}", i + 1), t));
            }
            ctx.wait_pods_ready(NOTES, Duration::from_secs(90)).await?;
            d.end_ms = Some(d.marks.last().map_or(t0, |mk| mk.t_ms));
            d.info.insert("evictions".into(), json!(results));
            Ok(d)
        }
    })
    .await?;
    let mut run = measured.run;
    let results: Vec<serde_json::Value> = run
        .info
        .get("evictions")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    let field = |r: &serde_json::Value, k: &str| r.get(k).cloned().unwrap_or_default();
    let all_evicted =
        results.len() == DESIRED && results.iter().all(|r| field(r, "evicted") == json!(true));
    let refused = results
        .iter()
        .filter(|r| {
            field(r, "second_evicted") == json!(false)
                && refused_by_pdb(field(r, "second_msg").as_str().unwrap_or(""))
        })
        .count();
    run.check("PodDisruptionBudget exists", pdb_exists, "");
    run.check(
        format!("each of the {DESIRED} pods evicted in turn"),
        all_evicted,
        format!("{results:?}"),
    );
    run.check(
        "a concurrent second eviction is refused (429, the PDB holds)",
        refused == results.len() && !results.is_empty(),
        format!("{refused}/{} refused", results.len()),
    );
    availability_checks(&mut run);
    run.require_no_failed_calls();
    run.finish();
    let mut sc = Scenario::with_runs(vec![run]);
    sc.notes.push(SESSIONS_NOTE.into());
    Ok(sc)
}
