//! S16: one pod of a 3-replica pool turns wedged mid-run — its MCP layer stops
//! answering while `/healthz` and `/readyz` keep passing, so the kubelet sees
//! nothing. The operator's MCP checks must find it within
//! `unhealthyAfterSeconds` + one period (+ the check's deadline), evict that
//! pod only, and calls through the Service recover. The control case, the same
//! server with `health.mcp.enabled: false`, keeps its wedged pod Ready.
//!
//! Which pod wedges is decided by the workload itself: every pod tries to claim
//! the run's key in Postgres `WEDGE_AFTER_S` after it starts, and only the first
//! wedges. Postgres records who and when (`mcp_workload_wedge`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Result};
use serde_json::json;

use crate::cluster::{eventually, log, manifest, server_sel, Ctx, DB_NS, NS, PG_POD};
use crate::measure as m;
use crate::model::{Mark, Scenario, Threshold};
use crate::run::{measured_run, Disruption};
use mcp_workload::client::now_ms;

const SERVER: &str = "notes-wedged";
const CONTROL: &str = "notes-wedged-control";
/// Seconds after start at which a pod claims the wedge: both servers are
/// Ready and the load's baseline is running by then.
const WEDGE_AFTER_S: u64 = 45;
/// The manifest's `health.mcp`.
const PERIOD_S: f64 = 5.0;
const TIMEOUT_S: f64 = 2.0;
const UNHEALTHY_AFTER_S: f64 = 15.0;
/// The first failing check starts within one jittered period of the wedge and
/// fails at its deadline; the pod is wedged `unhealthyAfterSeconds` later;
/// status times have one-second precision and the reconcile takes a moment.
const DETECT_LIMIT_S: f64 = UNHEALTHY_AFTER_S + PERIOD_S * 1.2 + TIMEOUT_S + 2.0;
/// Measured window: the wedge, the detection and the replacement, with room.
const WINDOW_S: f64 = 110.0;

fn render(name: &str, claim: &str, checks: bool) -> Result<PathBuf> {
    let text = std::fs::read_to_string(manifest("mcpserver-wedged.yaml"))?
        .replace("__NAME__", name)
        .replace("__CLAIM__", claim)
        .replace("__MCP_CHECKS__", if checks { "true" } else { "false" })
        .replace("__WEDGE_AFTER__", &WEDGE_AFTER_S.to_string());
    let dir = std::env::temp_dir().join("mcp-e2e-s16");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The pod that won the claim, and when (unix ms, Postgres' clock: this host's).
async fn claim_holder(ctx: &Ctx, claim: &str) -> Result<Option<(String, u64)>> {
    let sql = format!(
        "SELECT holder || ' ' || (extract(epoch from at) * 1000)::bigint FROM mcp_workload_wedge WHERE claim = '{claim}'"
    );
    let (ok, out) = ctx
        .kubectl_try(&[
            "exec", "-n", DB_NS, PG_POD, "-c", "postgres", "--", "psql", "-U", "postgres", "-tAc",
            &sql,
        ])
        .await;
    if !ok {
        // the table does not exist before the first claim
        return Ok(None);
    }
    let line = out.trim();
    let mut parts = line.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|t| t.parse::<u64>().ok()),
    ) {
        (Some(pod), Some(t)) => Ok(Some((pod.to_string(), t))),
        _ => Ok(None),
    }
}

async fn wait_claim(ctx: &Ctx, claim: &str) -> Result<(String, u64)> {
    eventually(
        &format!("a pod claims the wedge {claim}"),
        Duration::from_secs(WEDGE_AFTER_S + 60),
        Duration::from_millis(500),
        || claim_holder(ctx, claim),
    )
    .await
}

async fn pod_ip(ctx: &Ctx, pod: &str) -> Option<String> {
    ctx.pods_api(NS)
        .get_opt(pod)
        .await
        .ok()
        .flatten()
        .and_then(|p| p.status)
        .and_then(|s| s.pod_ip)
}

pub async fn s16(ctx: &Ctx) -> Result<Scenario> {
    let stamp = now_ms();
    let claim = format!("s16-{stamp}");
    let claim_control = format!("s16-control-{stamp}");
    for name in [SERVER, CONTROL] {
        ctx.delete_mcps(name, Duration::from_secs(90)).await?;
    }
    ctx.apply(&render(SERVER, &claim, true)?).await?;
    ctx.apply(&render(CONTROL, &claim_control, false)?).await?;
    let created = now_ms();
    for name in [SERVER, CONTROL] {
        ctx.wait_mcps_ready(name, Duration::from_secs(120)).await?;
    }
    let originals: Vec<String> = ctx
        .pods(NS, &server_sel(SERVER))
        .await?
        .into_keys()
        .collect();
    log(format!(
        "S16: both servers Ready {:.1} s after creation; one pod of each wedges {WEDGE_AFTER_S} s after it started",
        (now_ms() - created) as f64 / 1000.0
    ));

    let measured = measured_run(ctx, "S16", SERVER, WINDOW_S, false, |t0| {
        let claim = claim.clone();
        async move {
            let mut d = Disruption::default();
            let (holder, t_wedged) = wait_claim(ctx, &claim).await?;
            log(format!("S16: {holder} wedged"));
            d.marks.push(Mark::other("wedged", t_wedged));
            d.info.insert("wedged_pod".into(), json!(holder));
            d.info.insert("t_wedged_ms".into(), json!(t_wedged));
            d.info.insert(
                "wedged_after_t0_s".into(),
                json!(m::secs(Some(t_wedged), t0)),
            );
            let evicted = eventually(
                &format!("{holder} evicted"),
                Duration::from_secs_f64(DETECT_LIMIT_S + 30.0),
                Duration::from_millis(250),
                || async {
                    let p = ctx.pods_api(NS).get_opt(&holder).await?;
                    Ok(p.is_none_or(|p| p.metadata.deletion_timestamp.is_some())
                        .then(now_ms))
                },
            )
            .await;
            if let Ok(t) = evicted {
                log(format!("S16: {holder} evicted"));
                d.marks.push(Mark::other("evicted", t));
                d.info.insert("t_evicted_ms".into(), json!(t));
            }
            ctx.wait_pods_ready(SERVER, Duration::from_secs(90)).await?;
            let t_ready = now_ms();
            d.marks.push(Mark::other("replaced", t_ready));
            d.info.insert("t_replaced_ms".into(), json!(t_ready));
            d.end_ms = Some(t_ready);
            Ok(d)
        }
    })
    .await?;
    let mut run = measured.run;
    let t0 = run.kill_unix_ms;
    let holder = run.info_str("wedged_pod");
    let t_wedged = run.info_u64("t_wedged_ms");
    let t_evicted = run.info_u64("t_evicted_ms");
    let t_replaced = run.info_u64("t_replaced_ms");
    run.check(
        "the wedged pod was one of the pool's Ready pods, wedged after the baseline",
        originals.contains(&holder) && t_wedged.is_some_and(|t| t > t0),
        format!("{holder} at {}", m::fmt(m::secs(t_wedged, t0))),
    );
    let detect_s = t_wedged
        .zip(t_evicted)
        .map(|(w, e)| (e.saturating_sub(w)) as f64 / 1000.0);
    run.info.insert("detection_s".into(), json!(detect_s));
    run.thresholds.push(Threshold::at_most(
        "wedged pod evicted after its MCP layer stopped answering",
        detect_s,
        DETECT_LIMIT_S,
        "s",
        "unhealthyAfterSeconds 15 + period 5 (×1.2 jitter) + check deadline 2 + 2",
    ));
    // Every pod of the pool that was deleted during the run, from the pod watch.
    let disrupted: Vec<String> = originals
        .iter()
        .filter(|p| {
            measured
                .mcp_hist
                .iter()
                .any(|(t, s)| *t >= t0 && s.get(*p).is_none_or(|p| p.deleting))
        })
        .cloned()
        .collect();
    let others: Vec<&String> = disrupted.iter().filter(|p| **p != holder).collect();
    run.info.insert("pods_deleted".into(), json!(disrupted));
    run.thresholds.push(Threshold::zero(
        "pods evicted other than the wedged one",
        others.len() as u64,
        "pods",
    ));
    let acts: Vec<String> = measured
        .actions
        .iter()
        .map(|a| {
            format!(
                "{:?} {} {}",
                a.kind,
                a.pod.as_deref().unwrap_or("-"),
                a.reason
            )
        })
        .collect();
    run.check(
        "the operator's action: one eviction of the wedged pod, reason McpUnresponsive",
        measured.actions.len() == 1
            && measured.actions[0].pod.as_deref() == Some(holder.as_str())
            && measured.actions[0].reason == "McpUnresponsive",
        format!("{acts:?}"),
    );
    let wedged_seen = measured.obj_hist.iter().any(|(_, s)| {
        s.values().any(|o| {
            o.conditions
                .get("McpResponsive")
                .is_some_and(|(st, r)| st == "False" && r == "Wedged")
        })
    });
    run.check(
        "status showed it: McpResponsive False, reason Wedged",
        wedged_seen,
        "",
    );
    let responsive_end = ctx
        .mcps(SERVER)
        .await?
        .and_then(|o| o.status)
        .is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "McpResponsive" && c.status == "True")
                && s.mcp.is_some_and(|mcp| mcp.tools.is_some_and(|n| n > 0))
        });
    run.check(
        "after the replacement: McpResponsive True and status.mcp lists the tools",
        responsive_end,
        "",
    );
    // Calls after the replacement pod is Ready (plus a second for endpoints).
    let settle = t_replaced.map(|t| t + 1_000);
    let (ok_after, err_after) = settle.map_or((0, 0), |t| {
        let after = measured.events.iter().filter(|e| e.start_ms >= t);
        after.fold(
            (0, 0),
            |(o, e), c| if c.ok { (o + 1, e) } else { (o, e + 1) },
        )
    });
    run.info.insert(
        "calls_after_replacement".into(),
        json!({"ok": ok_after, "failed": err_after}),
    );
    run.check(
        "calls succeeded after the replacement",
        ok_after > 0,
        format!("{ok_after} ok"),
    );
    run.thresholds.push(Threshold::zero(
        "failed calls after the replacement was Ready",
        err_after,
        "calls",
    ));

    // The control: its wedged pod is still there and Ready, and still wedged.
    let control = control_checks(ctx, &claim_control).await;
    match control {
        Ok(c) => {
            run.info.insert("control".into(), c.info);
            for (name, ok, detail) in c.checks {
                run.check(name, ok, detail);
            }
        }
        Err(e) => run.check("control case ran", false, format!("{e:#}")),
    }
    run.finish();
    for name in [SERVER, CONTROL] {
        if let Err(e) = ctx.delete_mcps(name, Duration::from_secs(90)).await {
            log(format!("warning: S16 cleanup of {name}: {e:#}"));
        }
    }
    let mut sc = Scenario::with_runs(vec![run]);
    sc.notes.push(format!(
        "errors are calls that landed on the wedged pod before its eviction (they hang until the client's call timeout); \
         health.mcp: period {PERIOD_S} s, timeout {TIMEOUT_S} s, unhealthyAfter {UNHEALTHY_AFTER_S} s"
    ));
    Ok(sc)
}

struct ControlOutcome {
    checks: Vec<(String, bool, String)>,
    info: serde_json::Value,
}

async fn control_checks(ctx: &Ctx, claim: &str) -> Result<ControlOutcome> {
    let (holder, t_wedged) = wait_claim(ctx, claim).await?;
    // As long as the checked server needed to evict, and one period more.
    let judged_at = t_wedged + ((DETECT_LIMIT_S + PERIOD_S) * 1000.0) as u64;
    if let Some(wait) = judged_at.checked_sub(now_ms()) {
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    let pod = ctx
        .pods_api(NS)
        .get_opt(&holder)
        .await?
        .ok_or_else(|| anyhow!("the control's wedged pod {holder} is gone"))?;
    let ready = m::PodSummary::of(&pod);
    let mut checks = vec![(
        format!("control (health.mcp.enabled false): the wedged pod stays, Ready, {:.0} s after it wedged",
            (now_ms() - t_wedged) as f64 / 1000.0),
        ready.ready && !ready.deleting,
        format!("{holder}: ready={} deleting={}", ready.ready, ready.deleting),
    )];
    let mut info = json!({"wedged_pod": holder});
    // From this host the pod IP is reachable on the local cluster: show it is wedged.
    if let Some(ip) = pod_ip(ctx, &holder).await {
        let url = format!("http://{ip}:8080/mcp");
        let readyz = reqwest_status(&format!("http://{ip}:8080/readyz")).await;
        if let Some(code) = readyz {
            let mcp = mcp_workload::client::connect(&url, Duration::from_secs(3)).await;
            info["readyz"] = json!(code);
            info["mcp"] = json!(mcp
                .as_ref()
                .map(|_| "answered")
                .unwrap_or_else(|e| e.as_str()));
            checks.push((
                "control: its /readyz answers 200 while MCP initialize gets no answer in 3 s"
                    .into(),
                code == 200 && mcp.is_err_and(|e| e.contains("timed out")),
                format!("readyz {code}"),
            ));
        } else {
            info["mcp"] = json!("pod IP not reachable from the host (kind): not probed directly");
        }
    }
    Ok(ControlOutcome { checks, info })
}

/// HTTP status of a GET, None when the address cannot be reached.
async fn reqwest_status(url: &str) -> Option<u16> {
    let c = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .ok()?;
    c.get(url).send().await.ok().map(|r| r.status().as_u16())
}
