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
//!    Only pods that ran at some point: one that never started
//!    (unschedulable, image or config error) would come back just as stuck,
//!    so it is reported in [`Decision::not_started`] instead.

use std::time::Duration;

use super::analysis;
use super::branches::{automatic, manual_override, Ctx, Outcome};
use super::decision::{
    Action, ConditionHint, ConditionStatus, Decision, CONDITION_REMEDIATION_BLOCKED,
};
use super::incident;
use super::observation::Observation;
use super::policy::Policy;
use super::reason;
use super::report::{
    action_event, blocked_events, consumed_tokens, dependency_condition, dependency_record,
    last_good_revision, not_started, record, rfc,
};
use super::status::{
    ActionRecord, DependencyState, RemediationState, RemediationStatus, RollbackRecord,
};
use super::time::{dur, secs, time, until};

/// Defensive cap on persisted action records (overrides are not budgeted).
const RECENT_ACTIONS_CAP: usize = 2 * super::policy::MAX_ACTIONS_CAP as usize;

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
    // Not clamped to `now`: a future-dated action (clock skew) then cools
    // until its own time plus the cooldown, and the end stays put instead of
    // moving with the clock.
    let cooldown_end = prev
        .last_action
        .as_ref()
        .map(|a| secs(&a.time).saturating_add(dur(policy.cooldown_seconds)));
    let cooling = cooldown_end.is_some_and(|e| e > now);
    // When spent, a slot frees once enough of the oldest records leave the
    // window to bring the count below `max_actions` (overrides can push the
    // count above it).
    let budget_free_at = used
        .checked_sub(policy.max_actions)
        .and_then(|excess| recent.get(usize::try_from(excess).unwrap_or(usize::MAX)))
        // Unclamped: a future-dated record leaves the window at its own time
        // plus the window (see the filter above), a fixed instant.
        .map(|a| secs(&a.time).saturating_add(window));
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
    let cooldown_until = last_action
        .as_ref()
        .map(|a| secs(&a.time).saturating_add(dur(policy.cooldown_seconds)))
        .filter(|e| *e > now);
    // Wake when it ends, whatever the state, so `cooldownUntil` is cleared
    // on time rather than whenever a watch happens to fire.
    out.wake_opt(cooldown_until);
    // Nothing wanted but an action was just taken: show the cooldown so
    // humans see the effect is being watched, then go idle.
    if let (false, Some(end)) = (out.decided, cooldown_until) {
        out.wait(
            RemediationState::CoolingDown,
            reason::COOLDOWN,
            format!("watching the effect of the last action until {}", rfc(end)),
        );
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
                generation: obs.rollout.generation,
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
        cooldown_until: cooldown_until.map(time),
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

    // Time alone changes the status then too: wake, so it is written on
    // time and not whenever a watch happens to fire.
    out.wake_opt(inc.opens_at);
    out.wake_opt(
        status
            .recent_actions
            .iter()
            .map(|a| secs(&a.time).saturating_add(window))
            .filter(|t| *t > now)
            .min(),
    );
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
        not_started: not_started(&pods),
    }
}
