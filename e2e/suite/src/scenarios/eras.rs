//! S22: a pool moves from a build that answers both MCP eras to one that
//! speaks only 2026-07-28 (no `initialize`, no `ping`, no sessions), the
//! upgrade servers make as their SDKs move on. The rollout must complete with
//! no failed call, and no pod may be gated out or evicted for the revision it
//! speaks; the operator then reports the new revision.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use serde_json::json;

use crate::cluster::{eventually, manifest, server_sel, Ctx, DESIRED, NOTES, NS};
use crate::measure::PodSummary;
use crate::model::{Mark, Scenario, Threshold};
use crate::run::{measured_run, Disruption};
use crate::scenarios::{condition, patch_spec};
use mcp_workload::client::now_ms;

/// The workload's switch for the eras it answers.
const ERAS_ENV: &str = "MCP_ERAS";
/// Watched after the last new pod is Ready: longer than the manifest's
/// `health.mcp.unhealthyAfterSeconds` (15 s) plus a check period (5 s), so an
/// operator that took the stateless pods for wedged would have evicted one.
const HOLD_S: u64 = 30;

fn stateless_only(p: &Pod) -> bool {
    p.spec.as_ref().is_some_and(|s| {
        s.containers.iter().any(|c| {
            c.env
                .iter()
                .flatten()
                .any(|e| e.name == ERAS_ENV && e.value.as_deref() == Some("2026"))
        })
    })
}

pub async fn s22(ctx: &Ctx) -> Result<Scenario> {
    ctx.wait_mcps_ready(NOTES, Duration::from_secs(120)).await?;
    let obj = ctx
        .mcps(NOTES)
        .await?
        .ok_or_else(|| anyhow::anyhow!("McpServer {NOTES} missing"))?;
    let mut env = serde_json::to_value(&obj.spec.env)?;
    if let Some(a) = env.as_array_mut() {
        a.push(json!({"name": ERAS_ENV, "value": "2026"}));
    }
    let pods = ctx.pods_api(NS);
    let sel = server_sel(NOTES);
    let measured = measured_run(ctx, "S22", NOTES, ctx.opts.rollout_window_s, false, |_t0| {
        let (env, pods, sel) = (env.clone(), pods.clone(), sel.clone());
        async move {
            let mut d = Disruption::default();
            patch_spec(ctx, json!({ "env": env })).await?;
            let rolled = eventually(
                "every pod 2026-only and Ready",
                Duration::from_secs(120),
                Duration::from_secs(1),
                || async {
                    let list = pods.list(&ListParams::default().labels(&sel)).await?;
                    let live: Vec<&Pod> = list
                        .items
                        .iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none())
                        .collect();
                    let done = live.len() == DESIRED
                        && live
                            .iter()
                            .all(|p| stateless_only(p) && PodSummary::of(p).ready);
                    Ok(done.then_some(()))
                },
            )
            .await;
            let t = now_ms();
            match rolled {
                Ok(()) => d.marks.push(Mark::other("2026-only pods Ready", t)),
                Err(e) => {
                    d.info
                        .insert("rollout_error".into(), json!(format!("{e:#}")));
                }
            }
            tokio::time::sleep(Duration::from_secs(HOLD_S)).await;
            d.end_ms = Some(now_ms());
            Ok(d)
        }
    })
    .await?;
    let mut run = measured.run;
    run.check(
        "rollout to the 2026-only build completed",
        !run.info.contains_key("rollout_error"),
        format!("{:?}", run.info.get("rollout_error")),
    );
    run.check(
        format!("{DESIRED} ready replicas throughout"),
        run.min_ready_replicas >= DESIRED as u64,
        run.min_ready_replicas,
    );
    run.thresholds.push(Threshold::zero(
        "remediation actions (no pod evicted for its protocol revision)",
        measured.actions.len() as u64,
        "actions",
    ));
    run.thresholds.push(Threshold::zero(
        "MCP pod restarts",
        run.mcp_pod_restarts,
        "restarts",
    ));
    run.require_no_failed_calls();
    let after = ctx.mcps(NOTES).await?;
    let mcp = after.as_ref().and_then(|o| o.status.as_ref()?.mcp.clone());
    let responsive = after
        .as_ref()
        .and_then(|o| condition(o, mcp_operator::api::condition::MCP_RESPONSIVE));
    run.check(
        "status.mcp reports protocol 2026-07-28 for every pod",
        mcp.as_ref().is_some_and(|m| {
            m.protocol_version.as_deref() == Some("2026-07-28")
                && m.responsive_pods == DESIRED as i32
                && m.failing_pod_count == 0
        }),
        format!("{mcp:?}"),
    );
    run.check(
        "McpResponsive=True",
        responsive.as_ref().is_some_and(|c| c.status == "True"),
        format!("{responsive:?}"),
    );
    if let Some(m) = &mcp {
        run.info.insert(
            "mcp_status".into(),
            json!({"protocolVersion": m.protocol_version, "serverName": m.server_name,
                   "serverVersion": m.server_version, "responsivePods": m.responsive_pods}),
        );
    }
    // Back to the dual-era build: the move the other way completes too.
    ctx.apply(&manifest("mcpserver.yaml")).await?;
    let restored = ctx.wait_mcps_ready(NOTES, Duration::from_secs(120)).await;
    run.check(
        "dual-era spec re-applied: Ready",
        restored.is_ok(),
        restored.err().map(|e| format!("{e:#}")).unwrap_or_default(),
    );
    run.finish();
    Ok(Scenario::with_runs(vec![run]))
}
