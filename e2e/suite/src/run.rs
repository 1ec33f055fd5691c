//! The measured run every disruption scenario shares: open-loop MCP load
//! through the Service while the disruption happens, watches of Postgres, the
//! MCP pods and the McpServer, then the figures, checks and thresholds.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use anyhow::Result;
use kube::runtime::watcher;
use mcp_operator::api::McpServer;
use mcp_operator::remediation::ActionRecord;
use mcp_workload::client::{now_ms, LoadOptions};
use mcp_workload::eras::ClientEra;
use mcp_workload::report::CallEvent;
use serde_json::{json, Value};

use crate::cluster::{log, server_sel, Ctx, ACTION_EVENT_REASONS, DB_NS, DESIRED, NS, PG_SEL};
use crate::load::Load;
use crate::measure::{self as m, History, McpsSummary, PodSummary, Pods};
use crate::model::{ActionEvent, Mark, Run, Threshold};
use crate::route::RouteProbe;
use crate::watch::Recorder;

/// When Postgres itself is slow to come back, the window is stretched so the
/// recovery after it can still be seen: it closes no earlier than this long
/// after Postgres is ready (the slack threshold plus margin; a disruption may
/// ask for longer) ...
const AFTER_PG_READY_MS: u64 = 5_000;
/// ... and at most this much later than asked. After an API server restart the
/// kubelet saw the new Postgres pod up to 89 s after it was scheduled (its pod
/// watch backs off to 30 s, jittered to 60).
const MAX_STRETCH_S: f64 = 120.0;

/// What a disruption did, for the run's record.
#[derive(Default)]
pub struct Disruption {
    pub marks: Vec<Mark>,
    /// When the disruption ended (S5: the last eviction; S8: the rollback).
    pub end_ms: Option<u64>,
    pub info: BTreeMap<String, Value>,
    /// A disruption of unknown length asks for a long window and ends the
    /// load here instead (not for runs with Postgres down, which end on it).
    pub stop_load_at: Option<u64>,
    /// With Postgres down: observe at least this long after it is ready
    /// (default `AFTER_PG_READY_MS`), for checks that need the healing after it.
    pub after_pg_ready_ms: Option<u64>,
}

/// Everything observed in a run, for scenario-specific checks.
pub struct Measured {
    pub run: Run,
    pub events: Vec<CallEvent>,
    pub pg_hist: History<PodSummary>,
    pub mcp_hist: History<PodSummary>,
    pub obj_hist: History<McpsSummary>,
    pub before_mcp: Pods,
    pub after_op: Pods,
    pub obj_after: Option<McpServer>,
    pub actions: Vec<ActionRecord>,
    pub pg_ready_t: Option<u64>,
}

/// The recovery-shaping settings of an McpServer, for the report.
pub fn recovery_settings(o: &McpServer) -> Value {
    let s = &o.spec;
    json!({
        "readiness": s.health.readiness,
        "liveness": s.health.liveness,
        "pool": s.database.as_ref().map(|d| &d.pool),
        "remediation": {
            "unhealthyAfterSeconds": s.remediation.unhealthy_after_seconds,
            "cooldownSeconds": s.remediation.cooldown_seconds,
            "maxActions": s.remediation.max_actions,
        },
        "env": s.env.iter().map(|e| format!("{}={}", e.name, e.value.clone().unwrap_or_default())).collect::<Vec<_>>(),
    })
}

/// How a measured load talks to the server, where it differs from the default.
#[derive(Debug, Default)]
pub struct LoadVia {
    /// Read the acknowledged writes back through this URL (a host load only)
    /// instead of the load's.
    pub verify_url: Option<String>,
    pub era: ClientEra,
}

pub async fn measured_run<F, Fut>(
    ctx: &Ctx,
    tag: &str,
    target: &str,
    window_s: f64,
    pg_down: bool,
    disrupt: F,
) -> Result<Measured>
where
    F: FnOnce(u64) -> Fut,
    Fut: Future<Output = Result<Disruption>>,
{
    measured_run_with(
        ctx,
        tag,
        target,
        window_s,
        pg_down,
        LoadVia::default(),
        disrupt,
    )
    .await
}

/// [`measured_run`] with a load that differs from the default ([`LoadVia`]).
pub async fn measured_run_with<F, Fut>(
    ctx: &Ctx,
    tag: &str,
    target: &str,
    window_s: f64,
    pg_down: bool,
    via: LoadVia,
    disrupt: F,
) -> Result<Measured>
where
    F: FnOnce(u64) -> Fut,
    Fut: Future<Output = Result<Disruption>>,
{
    let sel = server_sel(target);
    let before_mcp = ctx.pods(NS, &sel).await?;
    let before_op = ctx.operator_pods().await?;
    if let Some(o) = ctx.mcps(target).await? {
        ctx.note_settings(target, recovery_settings(&o));
    }
    let pgw = Recorder::start(
        ctx.pods_api(DB_NS),
        watcher::Config::default().labels(PG_SEL),
        PodSummary::of,
    );
    let mcpw = Recorder::start(
        ctx.pods_api(NS),
        watcher::Config::default().labels(&sel),
        PodSummary::of,
    );
    let objw = Recorder::start(
        ctx.mcps_api(),
        watcher::Config::default().fields(&format!("metadata.name={target}")),
        McpsSummary::of,
    );
    for (ok, what) in [
        (
            pgw.synced(1, Duration::from_secs(20)).await,
            "Postgres pods",
        ),
        (
            mcpw.synced(DESIRED, Duration::from_secs(20)).await,
            "MCP pods",
        ),
        (objw.synced(1, Duration::from_secs(20)).await, "McpServer"),
    ] {
        if !ok {
            log(format!("warning: the watch of {what} did not sync in 20 s"));
        }
    }
    let (url, url_mode) = if ctx.load_in_cluster() {
        (String::new(), "in-cluster")
    } else {
        ctx.endpoint(target).await?
    };
    let o = &ctx.opts;
    let opts = LoadOptions {
        url,
        rate: o.rate,
        concurrency: o.sessions,
        duration: Duration::from_secs_f64(
            o.warmup_s + window_s + if pg_down { MAX_STRETCH_S } else { 0.0 },
        ),
        key_prefix: format!("e2e-{tag}-{}", now_ms()),
        call_timeout: Duration::from_secs_f64(o.call_timeout_s),
        verify_timeout: Duration::from_secs(60),
        bucket_ms: 500,
        mark_file: None,
        since_ms: None,
        max_in_flight: None,
        verify_url: via.verify_url,
        era: via.era,
    };
    let load = Load::start(ctx, target, opts).await?;
    tokio::time::sleep(Duration::from_secs_f64(o.warmup_s)).await;
    let route = if pg_down {
        RouteProbe::start(ctx).await
    } else {
        None
    };
    let t0 = now_ms();
    log(format!("{tag}: disruption at t0"));
    let disruption = match disrupt(t0).await {
        Ok(d) => d,
        Err(e) => {
            load.abort(ctx).await;
            return Err(e.context(format!("{tag}: the disruption failed")));
        }
    };
    if pg_down {
        // A cluster slow to restart Postgres must not turn our recovery into
        // "never": observe until Postgres is ready plus the slack, within the cap.
        let asked = t0 + (window_s * 1000.0) as u64;
        let cap = asked + (MAX_STRETCH_S * 1000.0) as u64;
        loop {
            let pg_t = m::first_ready_after_down(&pgw.history(), t0, 1);
            if let (Some(p), Some(r)) = (pg_t, route.as_ref()) {
                if r.routed_after(p).is_some() {
                    r.stop();
                }
            }
            let after = disruption.after_pg_ready_ms.unwrap_or(AFTER_PG_READY_MS);
            let due = m::observe_until(asked, cap, pg_t, after);
            if now_ms() >= due {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        load.stop(ctx).await;
    } else if let Some(at) = disruption.stop_load_at {
        let wait = at.saturating_sub(now_ms());
        tokio::time::sleep(Duration::from_millis(wait)).await;
        load.stop(ctx).await;
    }
    let (report, events) = load.finish(ctx).await?;
    let t_end = now_ms();
    let pg_hist = pgw.stop();
    let mcp_hist = mcpw.stop();
    let obj_hist = objw.stop();
    let after_mcp = ctx.pods(NS, &sel).await?;
    let after_op = ctx.operator_pods().await?;
    let obj_after = ctx.mcps(target).await?;

    let pg_ready_t = if pg_down {
        m::first_ready_after_down(&pg_hist, t0, 1)
    } else {
        None
    };
    let pg_routed_t = route
        .as_ref()
        .zip(pg_ready_t)
        .and_then(|(r, p)| r.routed_after(p));
    drop(route);
    let mcp_ready_t = m::ready_through_end(&mcp_hist, t0, DESIRED, t_end);
    let first_ok_t = m::first_success(&report.outages, &events, t0, 10_000);
    let (mcp_restarts, mcp_replaced) =
        m::restart_delta(&before_mcp, &after_mcp, |p| p.crash_on_start);
    let (op_restarts, op_replaced) = m::restart_delta(&before_op, &after_op, |_| false);
    let actions = Ctx::actions_since(obj_after.as_ref(), t0);
    let action_events: Vec<ActionEvent> = ctx
        .events_for(target, t0.saturating_sub(1000))
        .await?
        .into_iter()
        .filter(|e| ACTION_EVENT_REASONS.contains(&e.reason.as_str()))
        .map(|e| ActionEvent {
            reason: e.reason,
            note: e.note,
            t_ms: e.t_first_ms,
            count: e.count,
        })
        .collect();
    let n_action_events: u64 = action_events.iter().map(|e| e.count).sum();
    let ok_before = events.iter().filter(|e| e.ok && e.end_ms < t0).count();
    let err_before = events.iter().filter(|e| !e.ok && e.end_ms < t0).count();

    let mut marks = vec![Mark {
        name: "kill".into(),
        t_ms: t0,
        class: "kill".into(),
    }];
    for (name, t, class) in [
        ("pg ready", pg_ready_t, "pg"),
        ("pg routed", pg_routed_t, "pg"),
        ("MCP ready", mcp_ready_t, "mcp"),
        ("1st ok", first_ok_t, "first"),
    ] {
        if let Some(t) = t {
            marks.push(Mark {
                name: name.into(),
                t_ms: t,
                class: class.into(),
            });
        }
    }
    marks.extend(disruption.marks);
    let (min_ready_t, min_ready, min_ready_pods) = m::min_ready_state(&mcp_hist, t0, t_end);
    let mut run = Run {
        tag: tag.to_string(),
        target: target.to_string(),
        kill_unix_ms: t0,
        pg_ready_s: m::secs(pg_ready_t, t0),
        pg_routed_s: m::secs(pg_routed_t, t0),
        mcp_ready_s: m::secs(mcp_ready_t, t0),
        first_success_s: m::secs(first_ok_t, t0),
        errors: Some(report.errors_total),
        // A stateless (2026-07-28) client has no session to lose.
        session_losses: (report.era == "legacy").then_some(report.session_losses),
        offered_calls: Some(report.offered),
        longest_outage_s: Some(report.longest_outage_s),
        acked_writes: Some(report.acknowledged),
        lost_acked_writes: Some(report.lost_acked_writes),
        unverified_acked_writes: Some(report.unverified_acked_writes),
        mcp_pod_restarts: mcp_restarts,
        mcp_pods_replaced: mcp_replaced,
        remediation_actions: (actions.len() as u64).max(n_action_events),
        operator_restarts: op_restarts,
        operator_pods_replaced: op_replaced,
        min_ready_replicas: min_ready as u64,
        error_kinds: report.errors.clone(),
        error_samples: report.error_samples.clone(),
        url_mode: Some(url_mode.to_string()),
        offered_rate: ctx.opts.rate,
        bucket_ms: report.timeline_bucket_ms,
        timeline: report.timeline.clone(),
        marks,
        action_events,
        info: disruption.info,
        ..Run::default()
    };
    run.info.insert("client_era".into(), json!(report.era));
    if let Some(settle) = ctx.take_settled(target) {
        run.info.insert("settle".into(), settle);
    }
    // Which pods were ready at the dip, so a low `min_ready_replicas` can be explained.
    run.info.insert(
        "min_ready_at".into(),
        json!({ "t_s": m::secs(Some(min_ready_t), t0), "pods": min_ready_pods }),
    );
    if let Some(end) = disruption.end_ms {
        run.info
            .insert("disruption_end_s".into(), json!(m::secs(Some(end), t0)));
    }
    run.check(
        "calls succeeded before the disruption (baseline)",
        ok_before > 0,
        format!("{ok_before} ok calls"),
    );
    run.check(
        "no call failed before the disruption (steady state through the Service)",
        err_before == 0,
        format!(
            "{err_before} failed vs {ok_before} ok before t0{}",
            failed_before(&events, report.started_unix_ms, t0, &report.error_samples)
        ),
    );
    run.check(
        "every acknowledged write read back",
        report.unverified_acked_writes == 0,
        format!(
            "unverified={}; read-back errors {:?} {:?}",
            report.unverified_acked_writes, report.verify_errors, report.verify_error_samples
        ),
    );
    run.check(
        "operator did not crash",
        op_restarts == 0,
        format!("restarts={op_restarts}"),
    );
    run.thresholds.push(Threshold::zero(
        "acknowledged writes lost",
        report.lost_acked_writes,
        "writes",
    ));
    run.thresholds.push(Threshold::zero(
        "MCP container restarts",
        mcp_restarts,
        "restarts",
    ));
    Ok(Measured {
        run,
        events,
        pg_hist,
        mcp_hist,
        obj_hist,
        before_mcp,
        after_op,
        obj_after,
        actions,
        pg_ready_t,
    })
}

/// Checks of a Postgres kill the pools ride out by themselves.
pub fn kill_checks(run: &mut Run, expect_no_actions: bool, slack_after_pg_s: f64) {
    run.check(
        "Postgres ready again",
        run.pg_ready_s.is_some(),
        m::fmt(run.pg_ready_s),
    );
    run.check(
        format!("all {DESIRED} MCP replicas ready again"),
        run.mcp_ready_s.is_some(),
        m::fmt(run.mcp_ready_s),
    );
    if expect_no_actions {
        let (a, r) = (run.remediation_actions, run.mcp_pods_replaced);
        run.check(
            "operator took no action (the pools reconnected by themselves)",
            a == 0 && r == 0,
            format!("actions={a} replaced={r}"),
        );
    }
    let t = m::kill_thresholds(run.first_success_s, run.pg_ready_s, slack_after_pg_s);
    run.thresholds.extend(t);
}

/// The failed calls before `t0`, each as "kind at +s from the load's start"
/// (at most 5) with an example message of the first one's kind, so a
/// baseline failure says what it was.
fn failed_before(
    events: &[CallEvent],
    start_ms: u64,
    t0: u64,
    samples: &BTreeMap<String, String>,
) -> String {
    let failed: Vec<&CallEvent> = events.iter().filter(|e| !e.ok && e.end_ms < t0).collect();
    let Some(first) = failed.first() else {
        return String::new();
    };
    let kind = |e: &CallEvent| e.kind.clone().unwrap_or_else(|| "unknown".into());
    let listed: Vec<String> = failed
        .iter()
        .take(5)
        .map(|e| {
            format!(
                "{} at +{:.2} s",
                kind(e),
                e.start_ms.saturating_sub(start_ms) as f64 / 1000.0
            )
        })
        .collect();
    let k = kind(first);
    format!(
        ": {} (e.g. {k}: {})",
        listed.join(", "),
        samples.get(&k).map_or("no sample", String::as_str)
    )
}
