//! S4/S6: a fragile workload (never reconnects by itself) through a Postgres
//! outage: the operator must hold while Postgres is down, then heal the pool
//! by evicting its pods, within its budget; S6 kills the operator mid-outage
//! and again right after its first eviction. The HA scenarios run the same
//! outage with a fault of the operator's own world on top: S18 freezes the
//! leader (SIGSTOP), S10 restarts the API server, S11 etcd.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use kube::api::DeleteParams;
use mcp_operator::remediation::ActionKind;
use serde_json::json;

use crate::cluster::{log, manifest, Ctx, DESIRED, FRAGILE, OP_NS};
use crate::host;
use crate::measure::{self as m, heal_threshold};
use crate::model::{Mark, Run, Scenario};
use crate::run::{measured_run, Disruption};
use crate::scenarios::ha::{self, LeaseWatch};
use crate::scenarios::kill::touched_during;
use mcp_workload::client::now_ms;

/// What else goes wrong during the Postgres outage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    None,
    /// Every operator pod force-deleted mid-outage, and again after the first eviction.
    KillOperator,
    /// The leader's process stopped (SIGSTOP) for `ha::FREEZE_S`, then resumed.
    FreezeLeader,
    /// A control-plane daemon of the local cluster stopped for `ha::DOWN_S`, then started.
    Restart(&'static str),
}

pub async fn s4(ctx: &Ctx) -> Result<Scenario> {
    Ok(Scenario::with_runs(vec![
        outage_run(ctx, "S4", Fault::None).await?,
    ]))
}

pub async fn s6(ctx: &Ctx) -> Result<Scenario> {
    Ok(Scenario::with_runs(vec![
        outage_run(ctx, "S6", Fault::KillOperator).await?,
    ]))
}

pub async fn s10(ctx: &Ctx) -> Result<Scenario> {
    Ok(Scenario::with_runs(vec![
        outage_run(ctx, "S10", Fault::Restart("kube-apiserver")).await?,
    ]))
}

pub async fn s11(ctx: &Ctx) -> Result<Scenario> {
    Ok(Scenario::with_runs(vec![
        outage_run(ctx, "S11", Fault::Restart("etcd")).await?,
    ]))
}

pub async fn s18(ctx: &Ctx) -> Result<Scenario> {
    Ok(Scenario::with_runs(vec![
        outage_run(ctx, "S18", Fault::FreezeLeader).await?,
    ]))
}

async fn kill_operator(ctx: &Ctx) -> Result<Vec<String>> {
    let pods: Vec<String> = ctx.operator_pods().await?.into_keys().collect();
    for p in &pods {
        ctx.pods_api(OP_NS)
            .delete(p, &DeleteParams::default().grace_period(0))
            .await?;
    }
    Ok(pods)
}

async fn outage_run(ctx: &Ctx, tag: &str, fault: Fault) -> Result<Run> {
    if fault != Fault::None && fault != Fault::KillOperator {
        host::cluster_dir()?;
    }
    ctx.fresh_mcps(FRAGILE, &manifest("mcpserver-fragile.yaml"))
        .await?;
    let result = outage_measured(ctx, tag, fault).await;
    if let Err(e) = ctx.delete_mcps(FRAGILE, Duration::from_secs(90)).await {
        log(format!("warning: could not delete {FRAGILE}: {e:#}"));
    }
    result
}

/// When the operator was killed the second time, and which pods.
type SecondKill = Arc<Mutex<Option<(u64, Vec<String>)>>>;

async fn outage_measured(ctx: &Ctx, tag: &str, fault: Fault) -> Result<Run> {
    let kill_op = fault == Fault::KillOperator;
    let obj = ctx.mcps(FRAGILE).await?;
    let rem = obj
        .as_ref()
        .map(|o| o.spec.remediation.clone())
        .unwrap_or_default();
    let max_actions = u64::try_from(rem.max_actions).unwrap_or(0);
    let hold_s = ctx.opts.outage_s;
    ctx.wait_pg_ready(Duration::from_secs(180)).await?;
    let second_kill: SecondKill = Arc::new(Mutex::new(None));
    let second = second_kill.clone();
    let window = hold_s + ctx.opts.heal_window_s;

    let leases = LeaseWatch::start(ctx);
    let measured = measured_run(ctx, tag, FRAGILE, window, true, |t0| async move {
        let mut d = Disruption::default();
        ctx.scale_pg(0).await?;
        ctx.force_delete_pg().await?;
        let mut killed = Vec::new();
        if kill_op {
            // once the operator has recorded the outage (bounded wait), kill it
            let seen = crate::cluster::eventually(
                "DependencyAvailable=False",
                Duration::from_secs_f64(hold_s.min(15.0)),
                Duration::from_millis(500),
                || async {
                    let o = ctx.mcps(FRAGILE).await?;
                    Ok(o.and_then(|o| o.status)
                        .is_some_and(|s| {
                            s.conditions
                                .iter()
                                .any(|c| c.type_ == "DependencyAvailable" && c.status == "False")
                        })
                        .then_some(()))
                },
            )
            .await;
            if let Err(e) = seen {
                d.info
                    .insert("dependency_wait".into(), json!(format!("{e:#}")));
            }
            let t_k = now_ms();
            killed = kill_operator(ctx).await?;
            d.marks.push(Mark::other("operator killed", t_k));
        }
        let mut resume = None;
        match fault {
            Fault::FreezeLeader => resume = Some(ha::freeze_leader(ctx, &mut d).await?),
            Fault::Restart(daemon) => {
                ha::restart_daemon(daemon, &mut d).await?;
                // the control plane may start Postgres late; see it heal after
                d.after_pg_ready_ms = Some(ha::AFTER_BOTH_BACK_MS);
            }
            Fault::None | Fault::KillOperator => {}
        }
        let left = hold_s - (now_ms() - t0) as f64 / 1000.0;
        if left > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(left)).await;
        }
        let t_up = now_ms();
        ha::retrying("scale Postgres up", || ctx.scale_pg(1)).await?;
        if let Some(resume) = resume {
            ha::await_resume(resume, &mut d).await;
        }
        d.marks.push(Mark::other("pg scaled up", t_up));
        d.end_ms = Some(t_up);
        d.info.insert("operator_pods_killed".into(), json!(killed));
        if kill_op && ctx.opts.s6_second_kill {
            // kill it again right after its first eviction: the budget and
            // the "already evicted" memory must survive in status
            let deadline =
                tokio::time::Instant::now() + Duration::from_secs_f64(ctx.opts.heal_window_s);
            while tokio::time::Instant::now() < deadline {
                let o = ctx.mcps(FRAGILE).await.ok().flatten();
                let evicted = Ctx::actions_since(o.as_ref(), t_up)
                    .iter()
                    .any(|a| a.kind == ActionKind::Evict);
                if evicted {
                    let t_k = now_ms();
                    let pods = kill_operator(ctx).await.unwrap_or_default();
                    d.marks.push(Mark::other("operator killed again", t_k));
                    if let Ok(mut g) = second.lock() {
                        *g = Some((t_k, pods));
                    }
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        Ok(d)
    })
    .await?;

    let lease_hist = leases.stop();
    let mut run = measured.run;
    let t0 = run.kill_unix_ms;
    let t_up = t0
        + (run
            .info
            .get("disruption_end_s")
            .and_then(|v| v.as_f64())
            .unwrap_or(hold_s)
            * 1000.0) as u64;
    let touched = touched_during(&measured.before_mcp, &measured.mcp_hist, t0, t_up);
    let events = ctx.events_for(FRAGILE, t0.saturating_sub(1000)).await?;
    let evictions: Vec<_> = events.iter().filter(|e| e.reason == "PodEvicted").collect();
    let early: Vec<_> = evictions.iter().filter(|e| e.t_first_ms < t_up).collect();
    let n_evict_events: u64 = evictions.iter().map(|e| e.count).sum();
    let evict_actions: Vec<_> = measured
        .actions
        .iter()
        .filter(|a| a.kind == ActionKind::Evict)
        .collect();
    let saw = |f: &dyn Fn(&m::McpsSummary) -> bool| {
        measured
            .obj_hist
            .iter()
            .any(|(t, s)| *t >= t0 && s.values().any(f))
    };
    let saw_dep_down = saw(&|o| o.condition_is("DependencyAvailable", "False"));
    let saw_phase = saw(&|o| o.phase.as_deref() == Some("DependencyUnavailable"));
    let st = measured
        .obj_after
        .as_ref()
        .and_then(|o| o.status.clone())
        .unwrap_or_default();
    let last_kind = st
        .remediation
        .as_ref()
        .and_then(|r| r.last_action.as_ref())
        .map(|a| a.kind);
    let inc = st.last_incident.clone().unwrap_or_default();
    let names: Vec<String> = evict_actions.iter().filter_map(|a| a.pod.clone()).collect();
    let unique: BTreeSet<&String> = names.iter().collect();
    let n_actions = (measured.actions.len() as u64).max(n_evict_events);
    run.remediation_actions = n_actions;

    run.check(
        "operator reported DependencyAvailable=False during the outage",
        saw_dep_down,
        "",
    );
    run.check(
        "phase DependencyUnavailable during the outage",
        saw_phase,
        "",
    );
    run.check(
        "no MCP pod touched while Postgres was down (uids, restarts)",
        touched.is_empty(),
        touched.join("; "),
    );
    run.check(
        "no eviction Event timestamped during the outage",
        early.is_empty(),
        format!("{:?}", early.iter().map(|e| &e.note).collect::<Vec<_>>()),
    );
    run.check(
        "Postgres ready again",
        run.pg_ready_s.is_some(),
        m::fmt(run.pg_ready_s),
    );
    run.check(
        "operator evicted the stuck pods (Evict actions, PodEvicted Events)",
        !evict_actions.is_empty() && !evictions.is_empty() && last_kind == Some(ActionKind::Evict),
        format!(
            "actions={} PodEvicted events={n_evict_events} lastAction={last_kind:?}",
            evict_actions.len()
        ),
    );
    run.check(
        format!("all {DESIRED} replicas ready again (healed)"),
        run.mcp_ready_s.is_some(),
        m::fmt(run.mcp_ready_s),
    );
    run.check(
        format!("actions within the budget (<= maxActions={max_actions})"),
        n_actions <= max_actions,
        format!("{n_actions} actions"),
    );
    run.check(
        "no pod evicted twice",
        names.len() == unique.len(),
        format!("{names:?}"),
    );
    run.check(
        "lastIncident recorded (startedAt, recoveredAt, actions)",
        inc.started_at.is_some() && inc.recovered_at.is_some() && inc.actions >= 1,
        serde_json::to_string(&inc).unwrap_or_default(),
    );
    // served again: the first call sent after Postgres was ready that succeeded
    let served = measured
        .pg_ready_t
        .and_then(|p| m::first_success_sent_after(&measured.events, p).map(|t| (t, p)));
    let served_s = served.map(|(t, p)| (t as f64 - p as f64) / 1000.0);
    run.info
        .insert("served_after_pg_ready_s".into(), json!(served_s));
    let unhealthy = u64::try_from(rem.unhealthy_after_seconds).unwrap_or(0);
    let cooldown = u64::try_from(rem.cooldown_seconds).unwrap_or(0);
    run.thresholds
        .push(heal_threshold(served_s, unhealthy, cooldown));
    if kill_op {
        let killed: BTreeSet<String> = run
            .info
            .get("operator_pods_killed")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let now_ops: BTreeSet<&String> = measured.after_op.keys().collect();
        let second = second_kill.lock().ok().and_then(|g| g.clone());
        run.check(
            "operator pod was killed and replaced",
            !killed.is_empty()
                && killed.iter().all(|k| !now_ops.contains(k))
                && measured.after_op.values().any(|p| p.ready),
            format!("killed={killed:?} now={now_ops:?}"),
        );
        run.check(
            "operator killed again right after its first eviction",
            second.is_some() || !ctx.opts.s6_second_kill,
            format!("{:?}", second.as_ref().map(|s| m::secs(Some(s.0), t0))),
        );
        let in_window = st
            .remediation
            .as_ref()
            .map_or(0, |r| u64::from(r.actions_in_window));
        run.check(
            "actionsInWindow within the budget after the restarts",
            in_window <= max_actions,
            in_window,
        );
    }
    if fault != Fault::None && fault != Fault::KillOperator {
        ha::ha_checks(&mut run, fault, &lease_hist, &measured.obj_hist)?;
    }
    run.info.insert("evicted_pods".into(), json!(names));
    run.info.insert(
        "incident".into(),
        serde_json::to_value(&inc).unwrap_or_default(),
    );
    run.finish();
    Ok(run)
}
