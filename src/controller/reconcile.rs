//! One reconcile, one direction of travel:
//! observe (caches) -> decide (pure) -> act (intent, children, evictions) -> report (status, Events).
use super::context::Context;
use super::error::{Error, Result};
use super::{act, decide, observe, report};
use crate::api::{condition, McpServer, McpServerStatus};
use crate::telemetry::metrics::{ActionLabels, ObjectLabels, ResultLabels};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::ResourceExt;
use std::sync::Arc;
use std::time::Duration;

/// Longest sleep between reconciles of a quiet object (a safety net, not the trigger).
pub const RESYNC: Duration = Duration::from_secs(300);
/// Secrets are not watched (least privilege: get only), so re-check invalid specs on a timer.
const INVALID_RECHECK: Duration = Duration::from_secs(20);
/// A child the API server rejected stays rejected until the spec changes (a watch
/// event); look again now and then for rejections that were not the spec's fault
/// (quota, an admission webhook).
const REJECTED_RECHECK: Duration = Duration::from_secs(60);
/// How long a reconcile waits for the caches' first list before giving up this round.
const CACHE_WAIT: Duration = Duration::from_secs(10);

/// When the cache still shows a version our own status write replaced: look
/// again this late at the latest (the watch event of that write comes first).
const STALE_RECHECK: Duration = Duration::from_secs(5);

pub async fn reconcile(mcp: Arc<McpServer>, ctx: Arc<Context>) -> Result<Action> {
    let key = object_key(&mcp);
    if ctx
        .superseded
        .is_stale(&key, mcp.resource_version().as_deref())
    {
        // Not timed: it did no work, and would flatter the latency histogram.
        ctx.metrics
            .reconciles
            .get_or_create(&ResultLabels {
                result: "stale".into(),
            })
            .inc();
        return Ok(Action::requeue(STALE_RECHECK));
    }
    let started = std::time::Instant::now();
    let res = reconcile_steps(&mcp, &key, &ctx).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    let result = if res.is_ok() { "ok" } else { "error" };
    ctx.metrics
        .reconciles
        .get_or_create(&ResultLabels {
            result: result.into(),
        })
        .inc();
    if res.is_ok() {
        if let Ok(mut f) = ctx.failures.lock() {
            f.remove(&key);
        }
    }
    res
}

pub fn object_key(mcp: &McpServer) -> String {
    format!("{}/{}", mcp.namespace().unwrap_or_default(), mcp.name_any())
}

/// `key` is `object_key(mcp)`, computed once by `reconcile`.
async fn reconcile_steps(mcp: &McpServer, key: &str, ctx: &Context) -> Result<Action> {
    let ns = mcp.namespace().ok_or(Error::NoNamespace)?;
    if !ctx.stores.ready(CACHE_WAIT, &ctx.stopping).await {
        return Err(Error::CachesNotReady);
    }
    let now = Timestamp::now();
    let mut observed = observe::observe(ctx, &ns, mcp).await?;
    let mut plan = decide::decide(mcp, &observed, now)?;
    // A rollback hold needs its revision's pod template, which the cache does
    // not keep: read it (one GET) and decide again, on the same observations.
    if let Some(hash) = &plan.template_wanted {
        observed.rollback_template = observe::rollback_template(ctx, &ns, &observed, hash).await?;
        plan = decide::decide(mcp, &observed, now)?;
    }
    let acted = act::act(ctx, mcp, key, &plan).await?;

    let prev = mcp.status.clone().unwrap_or_default();
    let status = report::status(mcp, &observed, &plan, &acted, now);
    let mut events = plan.remediation.events.clone();
    events.extend(acted.events.iter().cloned());
    events.extend(report::transition_events(&prev, &status));
    // After an intent write the McpServer's status is the intent, not `prev`.
    let (stored, rv) = match &acted.intent {
        Some((written, rv)) => (Some(written), rv.clone()),
        None => (mcp.status.as_ref(), None),
    };
    if status != *stored.unwrap_or(&prev) {
        let rv = rv.or_else(|| mcp.resource_version());
        match report::write_status(ctx, mcp, stored, &status, rv.clone()).await {
            Ok(written) => {
                ctx.metrics.status_written("report");
                ctx.superseded.record(key, rv, written.resource_version());
            }
            // Deleted since this reconcile began (`kubectl delete`, a namespace
            // going): nothing is left to report on, and its deletion event
            // forgets it. Not a failure to retry or warn about.
            Err(kube::Error::Api(s)) if s.code == 404 => {
                tracing::debug!(object = %key, "deleted during the reconcile; status not written");
                return Ok(Action::await_change());
            }
            Err(e) => return Err(Error::Status(e)),
        }
    }
    record_metrics(ctx, &ns, mcp, &observed, &plan, &status, now);
    report::publish(ctx, mcp, events);

    let mut requeue = plan.remediation.requeue_after.unwrap_or(RESYNC).min(RESYNC);
    if !plan.config_valid {
        requeue = requeue.min(INVALID_RECHECK);
    }
    if !acted.rejections.is_empty() {
        requeue = requeue.min(REJECTED_RECHECK);
    }
    if acted.deferred > 0 {
        requeue = requeue.min(Duration::from_secs(5));
    }
    Ok(Action::requeue(requeue))
}

fn record_metrics(
    ctx: &Context,
    ns: &str,
    mcp: &McpServer,
    obs: &observe::Observed,
    plan: &decide::Plan,
    status: &McpServerStatus,
    now: Timestamp,
) {
    let labels = ObjectLabels {
        namespace: ns.to_string(),
        name: mcp.name_any(),
    };
    let is_true = |t: &str| crate::status::conditions::is_true(&status.conditions, t);
    let m = &ctx.metrics;
    m.mcpserver_ready
        .get_or_create(&labels)
        .set(i64::from(is_true(condition::READY)));
    m.pool_budget_clamped
        .get_or_create(&labels)
        .set(i64::from(is_true(condition::POOL_BUDGET_EXCEEDED)));
    let open = status
        .last_incident
        .as_ref()
        .is_some_and(|i| i.started_at.is_some() && i.recovered_at.is_none());
    m.incident_open.get_or_create(&labels).set(i64::from(open));
    if let Some(up) = obs.dependency.as_ref().and_then(|d| d.known_up()) {
        ctx.metrics
            .dependency_up
            .get_or_create(&labels)
            .set(i64::from(up));
    }
    ctx.metrics
        .remediation_blocked
        .get_or_create(&labels)
        .set(i64::from(plan.remediation.blocked));
    let wedged = obs
        .mcp_checks
        .iter()
        .filter(|(_, c)| crate::status::mcp::wedged(&mcp.spec.health.mcp, c, now))
        .count();
    ctx.metrics
        .mcp_wedged_pods
        .get_or_create(&labels)
        .set(i64::try_from(wedged).unwrap_or(i64::MAX));
    if let Some(secs) = plan.remediation.incident_resolved_seconds {
        ctx.metrics.incident_duration.observe(secs as f64);
    }
    for (kind, reason) in &plan.remediation.action_labels {
        ctx.metrics
            .remediation_actions
            .get_or_create(&ActionLabels {
                kind: kind.clone(),
                reason: reason.clone(),
            })
            .inc();
    }
}
