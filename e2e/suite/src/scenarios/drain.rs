//! S5: every MCP pod evicted in turn through the Eviction API, with a
//! concurrent second eviction each time that the PodDisruptionBudget must
//! refuse; the Service keeps serving.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::EvictParams;
use kube::Api;
use serde_json::json;

use crate::cluster::{eventually, log, server_sel, Ctx, DESIRED, NOTES, NS};
use crate::measure::{self as m, pods_ready};
use crate::model::{Mark, Scenario};
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
    run.require_no_failed_calls();
    run.finish();
    let mut sc = Scenario::with_runs(vec![run]);
    sc.notes.push(
        "session losses are reported, not failed on: an MCP session lives in one pod, and the client re-initializes once when its pod goes"
            .into(),
    );
    Ok(sc)
}
