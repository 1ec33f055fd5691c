//! Operator HA on the local cluster: the pieces S10/S11/S18 add to the S4
//! outage (a frozen leader, a restarted API server or etcd), their checks, and
//! S12 (a standby whose clock runs 60 s ahead must not steal a live lease).
//!
//! Writes are counted from the API server's audit log (every write carries the
//! replica in its user agent) and judged against the Lease holder at the
//! instant the API server received them.

use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::watcher;
use kube::Api;
use serde_json::json;

use crate::cluster::{eventually, log, Ctx, OP_NS};
use crate::host::{self, Frozen};
use crate::measure::{self as m, History, McpsSummary};
use crate::model::{Mark, Run, Scenario, Threshold};
use crate::run::Disruption;
use crate::scenarios::outage::Fault;
use crate::watch::Recorder;
use mcp_workload::client::now_ms;

pub const LEASE: &str = "mcp-operator-leader";
/// The chart's lease timings (values.yaml leaderElection).
const LEASE_S: f64 = 15.0;
const RETRY_S: f64 = 2.0;
/// Longer than a takeover can take (`TAKEOVER_LIMIT_S`), and shorter than two
/// liveness periods (the chart's 20 s), so the kubelet sees at most two failed
/// probes of the three that would restart the frozen replica.
pub const FREEZE_S: f64 = 25.0;
/// The standby sees the leader's last renew up to one retry period late and
/// acts up to one retry period after the lease expired by its clock (+20 % jitter).
const TAKEOVER_LIMIT_S: f64 = LEASE_S + 2.0 * RETRY_S * 1.2;
/// How long the API server or etcd stays down.
pub const DOWN_S: f64 = 10.0;
const CONVERGE_LIMIT_S: f64 = 30.0;
/// How long a restart run observes after Postgres is ready: the convergence
/// limit plus margin, so a late Postgres still leaves room to see it.
pub const AFTER_BOTH_BACK_MS: u64 = (CONVERGE_LIMIT_S as u64 + 10) * 1000;

/// The Lease holder over time.
pub struct LeaseWatch(Recorder<String>);

fn holder(l: &Lease) -> String {
    l.spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default()
}

impl LeaseWatch {
    pub fn start(ctx: &Ctx) -> Self {
        let api: Api<Lease> = Api::namespaced(ctx.client.clone(), OP_NS);
        Self(Recorder::start(
            api,
            watcher::Config::default().fields(&format!("metadata.name={LEASE}")),
            holder,
        ))
    }

    pub fn stop(self) -> History<String> {
        self.0.stop()
    }
}

async fn current_holder(ctx: &Ctx) -> Result<String> {
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), OP_NS);
    let h = api.get(LEASE).await.map(|l| holder(&l))?;
    if h.is_empty() {
        bail!("the Lease {OP_NS}/{LEASE} has no holder");
    }
    Ok(h)
}

/// Retry an API call for up to 60 s (the API server may have just come back).
pub async fn retrying<F, Fut>(what: &str, f: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    eventually(
        what,
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async { Ok(f().await.ok()) },
    )
    .await
}

/// A thaw that is still to come: the frozen leader resumes `FREEZE_S` after it stopped.
pub struct Resume(tokio::task::JoinHandle<Result<u64>>);

/// SIGSTOP the leader's operator process (found on the host by its pod uid).
pub async fn freeze_leader(ctx: &Ctx, d: &mut Disruption) -> Result<Resume> {
    // let the leader see the outage first, as in S6
    tokio::time::sleep(Duration::from_secs(3)).await;
    let leader = current_holder(ctx).await?;
    let pod = ctx
        .pods_api(OP_NS)
        .get(&leader)
        .await
        .with_context(|| format!("the lease holder {leader} is not an operator pod"))?;
    let uid = pod.metadata.uid.unwrap_or_default();
    let pids = host::pids_of_pod(&uid, "mcp-operator");
    let mut frozen = Frozen::freeze(pids.clone())?;
    let t_stop = now_ms();
    log(format!("frozen the leader {leader} (pids {pids:?})"));
    d.marks.push(Mark::other("leader frozen", t_stop));
    d.info.insert("frozen_pod".into(), json!(leader));
    d.info.insert("t_stop_ms".into(), json!(t_stop));
    let task = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs_f64(FREEZE_S)).await;
        frozen.thaw()?;
        Ok(now_ms())
    });
    Ok(Resume(task))
}

pub async fn await_resume(resume: Resume, d: &mut Disruption) {
    match resume.0.await {
        Ok(Ok(t)) => {
            log("resumed the frozen leader");
            d.marks.push(Mark::other("leader resumed", t));
            d.info.insert("t_cont_ms".into(), json!(t));
        }
        Ok(Err(e)) => log(format!("warning: resuming the leader failed: {e:#}")),
        Err(e) => log(format!("warning: the resume task failed: {e}")),
    }
}

/// Stop a local control-plane daemon for `DOWN_S`, then start it again (up.sh
/// waits until it serves).
pub async fn restart_daemon(daemon: &str, d: &mut Disruption) -> Result<()> {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t_down = now_ms();
    host::daemon(&["stop", daemon], Duration::from_secs(30)).await?;
    d.marks
        .push(Mark::other(format!("{daemon} stopped"), t_down));
    let stopped_for = Duration::from_secs_f64(DOWN_S)
        .saturating_sub(Duration::from_millis(now_ms().saturating_sub(t_down)));
    tokio::time::sleep(stopped_for).await;
    let t_start = now_ms();
    host::daemon(&["start"], Duration::from_secs(180)).await?;
    let t_back = now_ms();
    log(format!(
        "{daemon} back: stopped {:.1} s, started in {:.1} s",
        (t_start - t_down) as f64 / 1000.0,
        (t_back - t_start) as f64 / 1000.0
    ));
    d.marks.push(Mark::other(format!("{daemon} back"), t_back));
    d.info.insert("restarted".into(), json!(daemon));
    d.info.insert("t_down_ms".into(), json!(t_down));
    d.info.insert("t_back_ms".into(), json!(t_back));
    Ok(())
}

/// The HA checks on top of S4's: writes by a non-holder and duplicate
/// evictions from the audit log, operator restarts, and per fault the takeover
/// time, the frozen leader's writes after it resumed, or the convergence after
/// the daemon came back.
pub fn ha_checks(
    run: &mut Run,
    fault: Fault,
    leases: &History<String>,
    obj_hist: &History<McpsSummary>,
) -> Result<()> {
    let t0 = run.kill_unix_ms;
    // 30 s back, so the Lease's last renews before the disruption name its holder
    let audited = host::operator_writes(t0.saturating_sub(30_000))?;
    let writes: Vec<_> = audited
        .iter()
        .filter(|w| w.t_ms + 5_000 >= t0)
        .cloned()
        .collect();
    let holders: Vec<String> = {
        let mut h: Vec<String> = leases
            .iter()
            .flat_map(|(_, s)| s.values().cloned())
            .filter(|h| !h.is_empty())
            .collect();
        h.dedup();
        h
    };
    run.info.insert("lease_holders".into(), json!(holders));
    run.info
        .insert("operator_writes_audited".into(), json!(writes.len()));
    run.check(
        "the audit log holds the operator's writes (the count below can fail)",
        writes.iter().any(|w| w.resource != "leases"),
        format!("{} writes", writes.len()),
    );
    // judged on the audit log's own clock: who last wrote the Lease successfully
    let audited_holders = m::holders_from_audit(&audited, LEASE);
    let stray = m::writes_by_non_leader(&writes, &audited_holders);
    run.info.insert(
        "writes_by_non_leader".into(),
        json!(stray.iter().take(10).collect::<Vec<_>>()),
    );
    run.thresholds.push(Threshold::zero(
        "writes by a replica not holding the lease (audit log)",
        stray.len() as u64,
        "writes",
    ));
    let dups = m::duplicate_evictions(&writes);
    run.thresholds.push(Threshold::zero(
        "pods evicted twice (audit log)",
        dups.len() as u64,
        "pods",
    ));
    run.info.insert("duplicate_evictions".into(), json!(dups));
    run.thresholds.push(Threshold::zero(
        "operator container restarts",
        run.operator_restarts,
        "restarts",
    ));
    match fault {
        Fault::FreezeLeader => {
            let frozen = run.info_str("frozen_pod");
            let t_stop = run.info_u64("t_stop_ms").unwrap_or(t0);
            let takeover = m::takeover_after(leases, t_stop, &frozen);
            let takeover_s = m::secs(takeover, t_stop);
            run.info.insert("takeover_s".into(), json!(takeover_s));
            run.thresholds.push(Threshold::at_most(
                "standby took over after the leader froze",
                takeover_s,
                TAKEOVER_LIMIT_S,
                "s",
                "lease duration + 2 retry periods (+20 % jitter)",
            ));
            let t_cont = run.info_u64("t_cont_ms");
            run.check(
                "the frozen leader was resumed",
                t_cont.is_some(),
                m::fmt(m::secs(t_cont, t0)),
            );
            let after: Vec<_> = writes
                .iter()
                .filter(|w| w.pod.as_deref() == Some(frozen.as_str()))
                .filter(|w| t_cont.is_some_and(|t| w.t_ms >= t))
                .collect();
            run.thresholds.push(Threshold::zero(
                "writes of any kind (Lease included) by the old leader after it resumed",
                after.len() as u64,
                "writes",
            ));
        }
        Fault::Restart(daemon) => {
            let t_back = run.info_u64("t_back_ms").unwrap_or(u64::MAX);
            // Postgres is scaled up while the daemon is away; the scheduler, the
            // StatefulSet controller and the kubelet then start it on their own
            // retry timers (back 2.5 to 95 s after the scale-up in three runs
            // in a row), and no McpServer can be Ready without its database.
            // Counted from its Service routing again: after the API server's
            // return the EndpointSlice controller and kube-proxy resync on
            // their own backoff (Postgres ready to routed: 1.1 s in one run,
            // 12.5 s in the next, 2026-12-03), and until then neither the pods
            // nor the operator's probe reach the database.
            let both_back = |s: f64| t_back.max(t0 + (s * 1000.0) as u64);
            let pg_ready = run.pg_ready_s.map(both_back);
            let from = run.pg_routed_s.or(run.pg_ready_s).map(both_back);
            let ready = from.and_then(|from| {
                m::holds_through_end(obj_hist, from, u64::MAX, |s| {
                    s.values().any(|o| o.condition_is("Ready", "True"))
                })
            });
            run.info.insert(
                "converged_after_return_s".into(),
                json!(m::secs(ready, t_back)),
            );
            run.info.insert(
                "converged_after_both_back_s".into(),
                json!(pg_ready.and_then(|f| m::secs(ready, f))),
            );
            let converge_s = from.and_then(|f| m::secs(ready, f));
            run.info
                .insert("converged_after_routed_s".into(), json!(converge_s));
            run.thresholds.push(Threshold::at_most(
                format!("McpServer Ready for good after {daemon} was back and Postgres's Service routed again"),
                converge_s,
                CONVERGE_LIMIT_S,
                "s",
                "",
            ));
        }
        Fault::None | Fault::KillOperator => {}
    }
    Ok(())
}

/// S12: a host-run replica of the operator binary with its wall clock 60 s
/// ahead joins the election beside the chart's two replicas. While the leader
/// renews it must never take the lease or write; when the chart's replicas go
/// away (scaled to 0, releasing the lease), it must take over, proving it was a
/// live contender; then it is stopped and the chart's replicas return.
pub async fn s12(ctx: &Ctx) -> Result<Scenario> {
    host::cluster_dir()?;
    let bin = operator_binary()?;
    let t_start = now_ms();
    let leases = LeaseWatch::start(ctx);
    let leader = current_holder(ctx).await?;
    let log_path = ctx.out.join("s12-skewed-standby.log");
    let log_file = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut child = tokio::process::Command::new(&bin)
        .args([
            "--leader-election=true",
            "--lease-name",
            LEASE,
            "--lease-namespace",
            OP_NS,
            "--identity",
            SKEWED,
            "--http-addr",
            "127.0.0.1:0",
            "--log-format",
            "text",
            "--test-wall-clock-offset-seconds",
            "60",
        ])
        .stdout(Stdio::from(log_file.try_clone()?))
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    log(format!(
        "S12: {SKEWED} started (clock +60 s) beside the leader {leader}"
    ));
    let observe = Duration::from_secs_f64(LEASE_S * 3.0);
    tokio::time::sleep(observe).await;
    let alive = child.try_wait().ok().flatten().is_none();
    let during = now_ms();
    let writes_live = host::operator_writes(t_start)?
        .into_iter()
        .filter(|w| w.pod.as_deref() == Some(SKEWED))
        .count();

    // control: with the chart's replicas gone, the skewed replica must lead
    ctx.kubectl(&[
        "-n",
        OP_NS,
        "scale",
        "deployment/mcp-operator",
        "--replicas=0",
    ])
    .await?;
    let t_scaled = now_ms();
    let took = eventually(
        "the skewed standby takes the released lease",
        Duration::from_secs_f64(LEASE_S * 2.0),
        Duration::from_millis(250),
        || async { Ok((current_holder(ctx).await.ok().as_deref() == Some(SKEWED)).then_some(())) },
    )
    .await;
    let t_took = now_ms();
    // hand back: SIGTERM releases the lease; the chart's replicas return
    let pid = child.id().map(|p| p.to_string()).unwrap_or_default();
    let _ = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await;
    let exited = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .ok()
        .and_then(|r| r.ok());
    ctx.kubectl(&[
        "-n",
        OP_NS,
        "scale",
        "deployment/mcp-operator",
        "--replicas=2",
    ])
    .await?;
    ctx.kubectl_t(
        &[
            "-n",
            OP_NS,
            "rollout",
            "status",
            "deployment/mcp-operator",
            "--timeout=120s",
        ],
        Duration::from_secs(130),
    )
    .await?;
    let back = eventually(
        "a chart replica holds the lease again",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            Ok(current_holder(ctx)
                .await
                .ok()
                .filter(|h| h != SKEWED)
                .map(|_| ()))
        },
    )
    .await;
    let hist = leases.stop();
    let held_while_live = hist
        .iter()
        .filter(|(t, _)| *t >= t_start && *t <= during)
        .any(|(_, s)| s.values().any(|h| h == SKEWED));
    let leader_kept = hist
        .iter()
        .filter(|(t, _)| *t >= t_start && *t <= during)
        .all(|(_, s)| s.values().all(|h| h == &leader));
    let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();

    let mut run = Run::checks_only("S12", Vec::new());
    run.kill_unix_ms = t_start;
    run.check(
        format!(
            "{SKEWED} ran the election for {:.0} s (log: waiting for leadership)",
            observe.as_secs_f64()
        ),
        alive && log_text.contains("waiting for leadership"),
        format!("alive={alive}"),
    );
    run.check(
        format!("the lease stayed with {leader} while it renewed"),
        leader_kept && !held_while_live,
        "",
    );
    run.thresholds.push(Threshold::zero(
        "writes by the skewed standby while the leader renewed (audit log)",
        writes_live as u64,
        "writes",
    ));
    let took_s = (t_took - t_scaled) as f64 / 1000.0;
    run.check(
        "control: it takes the lease once the chart's replicas release it",
        took.is_ok(),
        format!("{took_s:.1} s after scale to 0"),
    );
    run.check(
        "it exits cleanly on SIGTERM and a chart replica leads again",
        exited.is_some_and(|s| s.success()) && back.is_ok(),
        format!("{exited:?}"),
    );
    run.info.insert("leader".into(), json!(leader));
    run.info.insert("skewed_log".into(), json!(log_path));
    run.finish();
    Ok(Scenario::with_runs(vec![run]))
}

const SKEWED: &str = "skewed-standby";

fn operator_binary() -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::cluster::repo_root().join("target"));
    let bin = target.join("release/mcp-operator");
    if !bin.is_file() {
        bail!(
            "{} not built (cargo build --release -p mcp-operator)",
            bin.display()
        );
    }
    Ok(bin)
}
