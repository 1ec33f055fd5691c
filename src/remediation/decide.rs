//! The decision function: observation + policy + clock -> actions, status,
//! conditions, events and the next wake-up.
//!
//! Order of precedence, and why:
//! 1. Dependency down (with `pause_while_dependency_down`): hold everything,
//!    manual overrides included. Restarting pods cannot bring a database back
//!    and a restart storm on top of an outage is the failure this product
//!    exists to prevent. An override token stays pending, not consumed.
//! 2. A new override token: exactly one action, ignoring budget, cooldown and
//!    the unhealthy/grace timers (a human asked), but never the disruption
//!    allowance (the Eviction API would refuse anyway).
//! 3. A failed rollout: roll back (or hold when rollbacks are disabled).
//! 4. Pods unready past their deadline: evict a few, bounded by the
//!    disruption allowance, the remaining budget and the per-action cap.

use std::time::Duration;

use super::analysis::{self, FailedRollout, PodView, Unready};
use super::decision::{
    Action, ConditionHint, ConditionStatus, Decision, EventHint, EventType,
    CONDITION_DEPENDENCY_AVAILABLE, CONDITION_REMEDIATION_BLOCKED,
};
use super::incident;
use super::observation::Observation;
use super::policy::Policy;
use super::status::{
    ActionRecord, DependencyRecord, DependencyState, OverrideRecord, RemediationState,
    RemediationStatus, RollbackRecord, OVERRIDE_TOKEN_HISTORY,
};
use super::time::{dur, secs, time, until, Secs};

/// Retry delay when the only obstacle is the disruption allowance, which
/// changes with pod readiness the controller may not be watching.
pub const ALLOWANCE_RETRY_SECONDS: u64 = 15;

/// Defensive cap on persisted action records (overrides are not budgeted).
const RECENT_ACTIONS_CAP: usize = 2 * super::policy::MAX_ACTIONS_CAP as usize;

/// Reason codes (status.reason, condition reasons, metric labels).
pub mod reason {
    /// Dependency down, holding.
    pub const DEPENDENCY_UNAVAILABLE: &str = "DependencyUnavailable";
    /// Dependency state unknown, holding.
    pub const DEPENDENCY_UNKNOWN: &str = "DependencyUnknown";
    /// Dependency up.
    pub const DEPENDENCY_READY: &str = "DependencyReady";
    /// Waiting for pools to reconnect after the dependency came back.
    pub const GRACE_PERIOD: &str = "GracePeriod";
    /// Pods unready but not for long enough yet.
    pub const UNREADY: &str = "PodsUnready";
    /// Pod unready past the deadline (eviction reason).
    pub const UNREADY_TOO_LONG: &str = "UnreadyTooLong";
    /// Churn budget spent.
    pub const BUDGET_EXHAUSTED: &str = "BudgetExhausted";
    /// Failed rollout, rollbacks disabled.
    pub const ROLLBACK_DISABLED: &str = "RollbackDisabled";
    /// Failed rollout (rollback reason).
    pub const FAILED_ROLLOUT: &str = "FailedRollout";
    /// Rollback issued, waiting for it to take effect.
    pub const ROLLBACK_IN_PROGRESS: &str = "RollbackInProgress";
    /// Cooling down after an action.
    pub const COOLDOWN: &str = "Cooldown";
    /// No disruption allowance right now.
    pub const DISRUPTION_BUDGET: &str = "DisruptionBudget";
    /// Unready pods whose image cannot be pulled.
    pub const IMAGE_FAILURE: &str = "ImagePullFailing";
    /// Action granted by a manual override token.
    pub const MANUAL_OVERRIDE: &str = "ManualOverride";
    /// Actions issued.
    pub const ACTING: &str = "Acting";
    /// Not blocked.
    pub const NOT_BLOCKED: &str = "NotBlocked";
}

/// Decide what to do. Pure and deterministic: same inputs, same output.
pub fn decide(policy: &Policy, obs: &Observation) -> Decision {
    let policy = policy.sanitized();
    let now = secs(&obs.now);
    let prev = &obs.previous;
    let mut events = Vec::new();

    let dependency = dependency_record(obs, now, &mut events);
    let dep_state = dependency.state;
    let dep_since = secs(&dependency.since).min(now);
    let grace_end = (dep_state == DependencyState::Up)
        .then(|| dep_since.saturating_add(dur(policy.grace_after_dependency_recovery_seconds)));

    let pods = analysis::view(&policy, obs, now, grace_end);
    let failed = analysis::failed_rollout(obs, prev, &pods, now, grace_end);

    // Budget memory: actions still inside the sliding window. Records dated
    // in the future (clock skew) count as "now": conservative and bounded.
    let window = dur(policy.window_seconds);
    let mut recent: Vec<ActionRecord> = prev
        .recent_actions
        .iter()
        .filter(|a| secs(&a.time).min(now) > now.saturating_sub(window))
        .cloned()
        .collect();
    recent.sort_by_key(|a| secs(&a.time));
    let used = u32::try_from(recent.len()).unwrap_or(u32::MAX);
    let last_action_at = prev.last_action.as_ref().map(|a| secs(&a.time).min(now));
    let cooldown_end = last_action_at.map(|t| t.saturating_add(dur(policy.cooldown_seconds)));
    let cooling = cooldown_end.is_some_and(|e| e > now);
    let budget_free_at = recent
        .first()
        .map(|a| secs(&a.time).min(now).saturating_add(window));
    let allowance = obs.disruption_allowance.saturating_sub(pods.deleting);

    let ctx = Ctx {
        policy: &policy,
        obs,
        now,
        pods: &pods,
        failed: failed.as_ref(),
        allowance,
        grace_end,
    };

    let hold = policy.pause_while_dependency_down && dep_state != DependencyState::Up;
    let new_token = obs
        .override_request
        .as_ref()
        .map(|r| r.token.trim())
        .filter(|t| !t.is_empty() && !prev.override_token_used(t));

    let mut out = Outcome::default();
    if hold {
        let (code, what) = if dep_state == DependencyState::Down {
            (reason::DEPENDENCY_UNAVAILABLE, "down")
        } else {
            (reason::DEPENDENCY_UNKNOWN, "in an unknown state")
        };
        out.wait(
            RemediationState::Waiting,
            code,
            format!(
                "holding: dependency {what} since {}; pods are judged {}s after it is back{}",
                rfc(dep_since),
                policy.grace_after_dependency_recovery_seconds + policy.unhealthy_after_seconds,
                if new_token.is_some() {
                    " (override token pending)"
                } else {
                    ""
                },
            ),
        );
    } else if let Some(token) = new_token {
        manual_override(&ctx, token, &mut out, &mut events);
    }
    if !hold && !out.decided {
        automatic(
            &ctx,
            used,
            cooling,
            cooldown_end,
            budget_free_at,
            &mut out,
            &mut events,
        );
    }

    // Records for the actions, fed back into the budget memory.
    let manual = out.manual;
    let new_records: Vec<ActionRecord> =
        out.actions.iter().map(|a| record(a, now, manual)).collect();
    recent.extend(new_records.iter().cloned());
    if recent.len() > RECENT_ACTIONS_CAP {
        recent.drain(..recent.len() - RECENT_ACTIONS_CAP);
    }
    for a in &out.actions {
        events.push(action_event(a, manual));
    }

    let last_action = new_records
        .last()
        .cloned()
        .or_else(|| prev.last_action.clone());
    let cooldown_end = last_action.as_ref().map(|a| {
        secs(&a.time)
            .min(now)
            .saturating_add(dur(policy.cooldown_seconds))
    });
    let cooldown_remaining = cooldown_end.map_or(0, |e| until(now, e));
    if !out.actions.is_empty() {
        if let Some(e) = cooldown_end {
            out.wake(e);
        }
    }
    // Nothing wanted but an action was just taken: show the cooldown so
    // humans see the effect is being watched, then go idle.
    if !out.decided && cooldown_remaining > 0 {
        out.wait(
            RemediationState::CoolingDown,
            reason::COOLDOWN,
            format!(
                "watching the effect of the last action; cooldown ends in {cooldown_remaining}s"
            ),
        );
        out.wake_opt(cooldown_end);
    }

    let mut rollback = prev.rollback.clone();
    for a in &out.actions {
        if let Action::Rollback {
            from_revision,
            to_revision,
            ..
        } = a
        {
            rollback = Some(RollbackRecord {
                from_revision: from_revision.clone(),
                to_revision: to_revision.clone(),
                time: time(now),
            });
        }
    }

    let state = if out.actions.is_empty() {
        out.state
    } else {
        RemediationState::Acting
    };
    let status_reason = if out.actions.is_empty() {
        out.reason.map(str::to_owned)
    } else if manual {
        Some(reason::MANUAL_OVERRIDE.to_owned())
    } else {
        Some(reason::ACTING.to_owned())
    };

    let status = RemediationStatus {
        state,
        reason: status_reason.clone(),
        actions_in_window: u32::try_from(recent.len()).unwrap_or(u32::MAX),
        last_action,
        cooldown_remaining_seconds: cooldown_remaining,
        next_action: out.next.clone(),
        consumed_override_tokens: consumed_tokens(prev, out.override_record.is_some()),
        override_record: out
            .override_record
            .clone()
            .or_else(|| prev.override_record.clone()),
        recent_actions: recent,
        dependency: Some(dependency),
        last_good_revision: last_good_revision(obs, prev, &pods, dep_state),
        rollback,
    };

    blocked_events(prev, &status, &mut events);

    let inc = incident::update(
        &policy,
        obs,
        now,
        dep_state,
        dep_since,
        &pods,
        failed.is_some(),
        out.actions.len(),
        &mut events,
    );

    let blocked = state == RemediationState::Blocked;
    let conditions = vec![
        dependency_condition(obs, dep_state),
        ConditionHint {
            type_: CONDITION_REMEDIATION_BLOCKED,
            status: if blocked {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason: if blocked {
                status_reason.unwrap_or_else(|| reason::BUDGET_EXHAUSTED.to_owned())
            } else {
                reason::NOT_BLOCKED.to_owned()
            },
            message: out
                .next
                .clone()
                .unwrap_or_else(|| "remediation may act when needed".to_owned()),
        },
    ];

    let requeue_after = out
        .wake_at
        .filter(|t| *t > now)
        .map(|t| Duration::from_secs(until(now, t)));

    Decision {
        actions: out.actions,
        status,
        incident: inc.incident,
        conditions,
        events,
        requeue_after,
        blocked,
        incident_resolved_seconds: inc.resolved_seconds,
    }
}

/// Shared inputs of the branch functions.
struct Ctx<'a> {
    policy: &'a Policy,
    obs: &'a Observation,
    now: Secs,
    pods: &'a PodView<'a>,
    failed: Option<&'a FailedRollout>,
    allowance: u32,
    grace_end: Option<Secs>,
}

/// Accumulates the branch result.
#[derive(Default)]
struct Outcome {
    /// A branch settled the state (later branches must not overwrite it).
    decided: bool,
    state: RemediationState,
    reason: Option<&'static str>,
    next: Option<String>,
    actions: Vec<Action>,
    override_record: Option<OverrideRecord>,
    /// The actions were granted by the override.
    manual: bool,
    wake_at: Option<Secs>,
}

impl Outcome {
    fn wait(&mut self, state: RemediationState, reason: &'static str, next: String) {
        self.decided = true;
        self.state = state;
        self.reason = Some(reason);
        self.next = Some(next);
    }

    fn wake(&mut self, at: Secs) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    fn wake_opt(&mut self, at: Option<Secs>) {
        if let Some(at) = at {
            self.wake(at);
        }
    }
}

/// One action for a new override token, or a pending/no-op verdict.
fn manual_override(ctx: &Ctx<'_>, token: &str, out: &mut Outcome, events: &mut Vec<EventHint>) {
    let manager = ctx
        .obs
        .override_request
        .as_ref()
        .and_then(|r| r.manager.clone());
    let by = manager.as_deref().unwrap_or("an unknown manager");
    let action = if let Some(f) = ctx.failed {
        Some(Action::Rollback {
            from_revision: f.from.clone(),
            to_revision: f.to.clone(),
            reason: reason::MANUAL_OVERRIDE.to_owned(),
            message: format!(
                "manual override {token:?} by {by}: rolling back from {} to {}: {}",
                f.from, f.to, f.detail
            ),
        })
    } else if let Some(u) = ctx.pods.unready.iter().find(|u| !u.image_failure) {
        if ctx.allowance == 0 {
            out.wait(
                RemediationState::Waiting,
                reason::DISRUPTION_BUDGET,
                format!(
                    "override token {token:?} pending: the disruption budget allows no eviction now"
                ),
            );
            out.wake(ctx.now.saturating_add(dur(ALLOWANCE_RETRY_SECONDS)));
            return;
        }
        Some(Action::Evict {
            pod: u.pod.name.clone(),
            reason: reason::MANUAL_OVERRIDE.to_owned(),
            message: format!(
                "manual override {token:?} by {by}: evicting pod {} (unready for {}s)",
                u.pod.name,
                until(u.since, ctx.now)
            ),
        })
    } else {
        None
    };
    let outcome = match &action {
        Some(Action::Evict { pod, .. }) => format!("evicted pod {pod}"),
        Some(Action::Rollback { to_revision, .. }) => format!("rolled back to {to_revision}"),
        None => "nothing to remediate; token consumed without action".to_owned(),
    };
    events.push(EventHint {
        type_: EventType::Normal,
        reason: if action.is_some() {
            "OverrideUsed".to_owned()
        } else {
            "OverrideNoop".to_owned()
        },
        note: format!("override token {token:?} set by {by}: {outcome}"),
        action: "Remediate".to_owned(),
    });
    out.override_record = Some(OverrideRecord {
        token: token.to_owned(),
        time: time(ctx.now),
        manager,
        outcome: outcome.clone(),
    });
    if let Some(a) = action {
        out.actions.push(a);
        out.manual = true;
        out.decided = true;
        out.next = Some(format!("override {token:?}: {outcome}"));
    }
}

/// Policy-driven actions: rollback, then evictions.
fn automatic(
    ctx: &Ctx<'_>,
    used: u32,
    cooling: bool,
    cooldown_end: Option<Secs>,
    budget_free_at: Option<Secs>,
    out: &mut Outcome,
    events: &mut Vec<EventHint>,
) {
    let policy = ctx.policy;
    let now = ctx.now;
    let budget_left = policy.max_actions.saturating_sub(used);
    let blocked_by_budget = |out: &mut Outcome, what: &str| {
        out.wait(
            RemediationState::Blocked,
            reason::BUDGET_EXHAUSTED,
            format!(
                "{what} blocked: {used} actions in the last {}s (max {}); next slot at {} or set annotation {} to a new token",
                policy.window_seconds,
                policy.max_actions,
                budget_free_at.map_or_else(|| "-".to_owned(), rfc),
                super::OVERRIDE_ANNOTATION,
            ),
        );
        out.wake_opt(budget_free_at);
    };
    let cooling_down = |out: &mut Outcome, what: &str| {
        out.wait(
            RemediationState::CoolingDown,
            reason::COOLDOWN,
            format!(
                "{what} at {} after the cooldown",
                cooldown_end.map_or_else(|| "-".to_owned(), rfc)
            ),
        );
        out.wake_opt(cooldown_end);
    };

    if let Some(f) = ctx.failed {
        let already = ctx
            .obs
            .previous
            .rollback
            .as_ref()
            .is_some_and(|r| r.from_revision == f.from);
        if already {
            out.wait(
                RemediationState::Waiting,
                reason::ROLLBACK_IN_PROGRESS,
                format!(
                    "rollback from {} to {} issued; waiting for it to take effect",
                    f.from, f.to
                ),
            );
            return;
        }
        if f.eligible_at > now {
            out.wait(
                RemediationState::Waiting,
                reason::UNREADY,
                format!(
                    "revision {} looks failed ({}); judged at {}",
                    f.from,
                    f.detail,
                    rfc(f.eligible_at)
                ),
            );
            out.wake(f.eligible_at);
            return;
        }
        let what = format!("rollback from {} to {}", f.from, f.to);
        if !policy.rollback_failed_rollouts {
            out.wait(
                RemediationState::Blocked,
                reason::ROLLBACK_DISABLED,
                format!(
                    "rollout held: {}; rollbackFailedRollouts is false, fix the spec or set annotation {} to a new token to roll back to {}",
                    f.detail,
                    super::OVERRIDE_ANNOTATION,
                    f.to
                ),
            );
            events_rollout_held(ctx, f, events);
            return;
        }
        if budget_left == 0 {
            blocked_by_budget(out, &what);
            return;
        }
        if cooling {
            cooling_down(out, &what);
            return;
        }
        out.decided = true;
        out.next = Some(format!("{what} issued"));
        out.actions.push(Action::Rollback {
            from_revision: f.from.clone(),
            to_revision: f.to.clone(),
            reason: reason::FAILED_ROLLOUT.to_owned(),
            message: format!("rolling back from {} to {}: {}", f.from, f.to, f.detail),
        });
        return;
    }

    let (eligible, pending): (Vec<&Unready<'_>>, Vec<&Unready<'_>>) = ctx
        .pods
        .unready
        .iter()
        .filter(|u| !u.image_failure)
        .partition(|u| u.eligible_at <= now);
    if !eligible.is_empty() {
        let what = format!("evicting {} unready pod(s)", eligible.len());
        if budget_left == 0 {
            blocked_by_budget(out, &what);
            return;
        }
        if cooling {
            cooling_down(out, &what);
            return;
        }
        if ctx.allowance == 0 {
            out.wait(
                RemediationState::Waiting,
                reason::DISRUPTION_BUDGET,
                format!("{what} waits: the disruption budget allows no eviction now"),
            );
            out.wake(now.saturating_add(dur(ALLOWANCE_RETRY_SECONDS)));
            return;
        }
        let n = eligible
            .len()
            .min(usize::try_from(ctx.allowance).unwrap_or(usize::MAX))
            .min(usize::try_from(budget_left).unwrap_or(usize::MAX))
            .min(usize::try_from(policy.max_evictions_per_action).unwrap_or(usize::MAX));
        for u in eligible.iter().take(n) {
            let after_recovery = ctx.grace_end.is_some_and(|g| g > u.since);
            out.actions.push(Action::Evict {
                pod: u.pod.name.clone(),
                reason: reason::UNREADY_TOO_LONG.to_owned(),
                message: format!(
                    "evicting pod {}: unready for {}s{}",
                    u.pod.name,
                    until(u.since, now),
                    if after_recovery {
                        ", still unready after the dependency came back"
                    } else {
                        ""
                    },
                ),
            });
        }
        out.decided = true;
        out.next = Some(format!(
            "evicted {n} of {} unready pod(s); re-evaluating after the cooldown",
            eligible.len()
        ));
        return;
    }
    if let Some(first) = pending.iter().map(|u| u.eligible_at).min() {
        let in_grace = ctx.grace_end.is_some_and(|g| g > now);
        out.wait(
            RemediationState::Waiting,
            if in_grace {
                reason::GRACE_PERIOD
            } else {
                reason::UNREADY
            },
            format!(
                "{} pod(s) unready{}; the first may be evicted at {}",
                pending.len(),
                if in_grace {
                    " during the post-recovery grace window"
                } else {
                    ""
                },
                rfc(first)
            ),
        );
        out.wake(first);
        return;
    }
    if let Some(u) = ctx.pods.unready.iter().find(|u| u.image_failure) {
        out.wait(
            RemediationState::Waiting,
            reason::IMAGE_FAILURE,
            format!(
                "pod {} cannot pull its image ({}); eviction would not help",
                u.pod.name,
                u.pod.waiting_reason.as_deref().unwrap_or("image error")
            ),
        );
    }
}

fn events_rollout_held(ctx: &Ctx<'_>, f: &FailedRollout, events: &mut Vec<EventHint>) {
    let prev = &ctx.obs.previous;
    if prev.reason.as_deref() != Some(reason::ROLLBACK_DISABLED) {
        events.push(EventHint {
            type_: EventType::Warning,
            reason: "RolloutHeld".to_owned(),
            note: format!(
                "{}; rollbackFailedRollouts is false so the rollout is held (last good revision {})",
                f.detail, f.to
            ),
            action: "Rollback".to_owned(),
        });
    }
}

/// Budget transitions into and out of `Blocked`.
fn blocked_events(
    prev: &RemediationStatus,
    status: &RemediationStatus,
    events: &mut Vec<EventHint>,
) {
    let was = prev.state == RemediationState::Blocked;
    let is = status.state == RemediationState::Blocked;
    if is
        && status.reason.as_deref() == Some(reason::BUDGET_EXHAUSTED)
        && (!was || prev.reason != status.reason)
    {
        events.push(EventHint {
            type_: EventType::Warning,
            reason: "RemediationBlocked".to_owned(),
            note: status.next_action.clone().unwrap_or_default(),
            action: "Remediate".to_owned(),
        });
    }
    if was && !is {
        events.push(EventHint {
            type_: EventType::Normal,
            reason: "RemediationUnblocked".to_owned(),
            note: "remediation may act again".to_owned(),
            action: "Remediate".to_owned(),
        });
    }
}

/// Dependency memory: carry `since` while the state is unchanged, record the
/// transition otherwise, and emit loss/recovery events.
fn dependency_record(
    obs: &Observation,
    now: Secs,
    events: &mut Vec<EventHint>,
) -> DependencyRecord {
    let state = obs.dependency.state;
    let prev = obs.previous.dependency.as_ref();
    if let Some(p) = prev.filter(|p| p.state == state) {
        return DependencyRecord {
            state,
            since: time(secs(&p.since).min(now)),
        };
    }
    let floor = prev.map_or(Secs::MIN, |p| secs(&p.since));
    let since = obs
        .dependency
        .since
        .as_ref()
        .map_or(now, secs)
        .clamp(floor.min(now), now);
    let detail = obs.dependency.message.clone().unwrap_or_default();
    match (prev.map(|p| p.state), state) {
        (_, DependencyState::Down) => events.push(EventHint {
            type_: EventType::Warning,
            reason: "DependencyLost".to_owned(),
            note: format!("dependency unavailable; remediation holds. {detail}")
                .trim()
                .to_owned(),
            action: "Observe".to_owned(),
        }),
        (Some(DependencyState::Down), DependencyState::Up) => events.push(EventHint {
            type_: EventType::Normal,
            reason: "DependencyRecovered".to_owned(),
            note: format!(
                "dependency back after {}s; pools get a grace window to reconnect",
                until(floor, since)
            ),
            action: "Observe".to_owned(),
        }),
        (Some(DependencyState::Up), DependencyState::Unknown) => events.push(EventHint {
            type_: EventType::Warning,
            reason: "DependencyUnknown".to_owned(),
            note: format!("dependency state unknown; remediation holds. {detail}")
                .trim()
                .to_owned(),
            action: "Observe".to_owned(),
        }),
        _ => {}
    }
    DependencyRecord {
        state,
        since: time(since),
    }
}

fn dependency_condition(obs: &Observation, state: DependencyState) -> ConditionHint {
    let detail = obs.dependency.message.clone();
    let (status, reason, message) = match state {
        DependencyState::Up => (
            ConditionStatus::True,
            reason::DEPENDENCY_READY,
            detail.unwrap_or_else(|| "dependency is available".to_owned()),
        ),
        DependencyState::Down => (
            ConditionStatus::False,
            reason::DEPENDENCY_UNAVAILABLE,
            detail.unwrap_or_else(|| "dependency is unavailable".to_owned()),
        ),
        DependencyState::Unknown => (
            ConditionStatus::Unknown,
            reason::DEPENDENCY_UNKNOWN,
            detail.unwrap_or_else(|| "dependency state could not be determined".to_owned()),
        ),
    };
    ConditionHint {
        type_: CONDITION_DEPENDENCY_AVAILABLE,
        status,
        reason: reason.to_owned(),
        message,
    }
}

/// The current revision becomes the rollback target once it has been seen
/// fully ready (all desired pods, none unready, all of that revision) with
/// the dependency up.
fn last_good_revision(
    obs: &Observation,
    prev: &RemediationStatus,
    pods: &PodView<'_>,
    dep: DependencyState,
) -> Option<String> {
    let current = obs.rollout.current_revision.as_deref();
    let all_current = obs
        .pods
        .iter()
        .filter(|p| !p.deleting)
        .all(|p| p.revision.as_deref() == current);
    let healthy = dep == DependencyState::Up
        && obs.desired_replicas > 0
        && pods.ready >= obs.desired_replicas
        && pods.unready.is_empty()
        && all_current;
    match current {
        Some(c) if healthy => Some(c.to_owned()),
        _ => prev.last_good_revision.clone(),
    }
}

/// When a new token is consumed, the previous one joins the history.
fn consumed_tokens(prev: &RemediationStatus, consumed_new: bool) -> Vec<String> {
    let mut tokens = prev.consumed_override_tokens.clone();
    if consumed_new {
        if let Some(t) = prev.last_override_token() {
            tokens.push(t.to_owned());
        }
    }
    if tokens.len() > OVERRIDE_TOKEN_HISTORY {
        tokens.drain(..tokens.len() - OVERRIDE_TOKEN_HISTORY);
    }
    tokens
}

fn record(a: &Action, now: Secs, manual: bool) -> ActionRecord {
    let (pod, revision) = match a {
        Action::Evict { pod, .. } => (Some(pod.clone()), None),
        Action::Rollback { to_revision, .. } => (None, Some(to_revision.clone())),
    };
    ActionRecord {
        kind: a.kind(),
        pod,
        revision,
        reason: a.reason().to_owned(),
        time: time(now),
        manual,
    }
}

fn action_event(a: &Action, manual: bool) -> EventHint {
    let suffix = if manual { " (manual override)" } else { "" };
    match a {
        Action::Evict { message, .. } => EventHint {
            type_: EventType::Normal,
            reason: "PodEvicted".to_owned(),
            note: format!("{message}{suffix}"),
            action: "Evict".to_owned(),
        },
        Action::Rollback { message, .. } => EventHint {
            type_: EventType::Warning,
            reason: "RolloutRolledBack".to_owned(),
            note: format!("{message}{suffix}"),
            action: "Rollback".to_owned(),
        },
    }
}

/// RFC 3339 for messages.
fn rfc(s: Secs) -> String {
    time(s).0.to_string()
}
