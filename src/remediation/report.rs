//! Reporting helpers: dependency memory and its events, conditions, event
//! texts, persisted records.

use super::analysis::PodView;
use super::decision::{
    Action, ConditionHint, ConditionStatus, EventHint, EventType, NotStarted,
    CONDITION_DEPENDENCY_AVAILABLE, NOT_STARTED_LIMIT,
};
use super::observation::Observation;
use super::reason;
use super::status::{
    ActionRecord, DependencyRecord, DependencyState, RemediationState, RemediationStatus,
    OVERRIDE_TOKEN_HISTORY,
};
use super::time::{secs, time, until, Secs};

/// Budget transitions into and out of `Blocked`.
pub(crate) fn blocked_events(
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
pub(crate) fn dependency_record(
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

pub(crate) fn dependency_condition(obs: &Observation, state: DependencyState) -> ConditionHint {
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
pub(crate) fn last_good_revision(
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
pub(crate) fn consumed_tokens(prev: &RemediationStatus, consumed_new: bool) -> Vec<String> {
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

pub(crate) fn record(a: &Action, now: Secs, manual: bool) -> ActionRecord {
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

pub(crate) fn action_event(a: &Action, manual: bool) -> EventHint {
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

/// Longest cause text reported per pod: scheduler messages grow with the
/// node count and end up in status and condition messages.
const CAUSE_MAX_CHARS: usize = 256;

/// A start cause cut to [`CAUSE_MAX_CHARS`].
pub(crate) fn bounded_cause(cause: &str) -> String {
    match cause.char_indices().nth(CAUSE_MAX_CHARS) {
        Some((i, _)) => format!("{}...", &cause[..i]),
        None => cause.to_owned(),
    }
}

/// Unready pods that never started, by name, at most [`NOT_STARTED_LIMIT`].
pub(crate) fn not_started(pods: &PodView<'_>) -> Vec<NotStarted> {
    let mut out: Vec<NotStarted> = pods
        .unready
        .iter()
        .filter(|u| !u.pod.started)
        .map(|u| NotStarted {
            pod: u.pod.name.clone(),
            cause: bounded_cause(u.start_cause()),
        })
        .collect();
    out.sort_by(|a, b| a.pod.cmp(&b.pod));
    out.truncate(NOT_STARTED_LIMIT);
    out
}

/// RFC 3339 for messages.
pub(crate) fn rfc(s: Secs) -> String {
    time(s).0.to_string()
}
