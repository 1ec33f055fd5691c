//! Incident bookkeeping for `status.lastIncident`: first sign of trouble,
//! dependency back, recovered, actions.

use super::analysis::PodView;
use super::decision::{EventHint, EventType};
use super::observation::Observation;
use super::policy::Policy;
use super::status::{DependencyState, LastIncident};
use super::time::{dur, secs, time, until, Secs};

/// Result of [`update`].
pub(crate) struct IncidentUpdate {
    pub incident: Option<LastIncident>,
    pub resolved_seconds: Option<u64>,
    /// When an incident would open by time alone (a pod reaching
    /// `unhealthy_after`), so the caller can wake then.
    pub opens_at: Option<Secs>,
}

/// Open, extend or close the incident.
///
/// An incident opens when the dependency is down, when a pod has stayed
/// unready past `unhealthy_after` (so ordinary pod starts during rollouts or
/// scale-ups are not incidents), on a failed rollout, or when an action is
/// taken. `startedAt` is back-dated to the earliest of those signals (a
/// reconcile may come late). It closes when the dependency is not down, no
/// rollout is failing and ready pods cover the desired replicas.
#[allow(clippy::too_many_arguments)]
pub(crate) fn update(
    policy: &Policy,
    obs: &Observation,
    now: Secs,
    dep: DependencyState,
    dep_since: Secs,
    pods: &PodView<'_>,
    rollout_failed: bool,
    actions: usize,
    events: &mut Vec<EventHint>,
) -> IncidentUpdate {
    let actions = u32::try_from(actions).unwrap_or(u32::MAX);
    let prev = obs.previous_incident.clone();
    let prev_dep = obs.previous.dependency.as_ref().map(|d| d.state);
    let healthy =
        dep != DependencyState::Down && !rollout_failed && pods.ready >= obs.desired_replicas;

    let unhealthy_after = dur(policy.unhealthy_after_seconds);
    let mut signals: Vec<Secs> = Vec::new();
    if dep == DependencyState::Down {
        signals.push(dep_since);
    }
    // Undated pods (no timestamp) never count: they have no deadline.
    // A wedged pod is overdue on its own (MCP) deadline.
    let mcp_after = dur(policy.mcp_unhealthy_after_seconds);
    // One waiting for a re-check is not overdue until a check says so.
    let overdue_at = |u: &super::analysis::Unready<'_>| {
        let after = if u.wedged { mcp_after } else { unhealthy_after };
        u.since
            .filter(|_| u.awaiting_recheck.is_none())
            .map(|s| (s, s.saturating_add(after)))
    };
    signals.extend(
        pods.unready
            .iter()
            .filter_map(overdue_at)
            .filter(|(_, due)| *due <= now)
            .map(|(since, _)| since),
    );
    let next_due = pods
        .unready
        .iter()
        .filter_map(overdue_at)
        .map(|(_, due)| due)
        .filter(|due| *due > now)
        .min();
    if rollout_failed || actions > 0 {
        signals.push(now);
    }
    // Once there is trouble, back-date the start to the first pod that went
    // unready (typically seconds before the dependency was seen down).
    if !signals.is_empty() {
        signals.extend(pods.unready.first().and_then(|u| u.since));
    }
    let trouble = signals.into_iter().min();

    match prev {
        Some(mut inc) if inc.is_open() => {
            inc.actions = inc.actions.saturating_add(actions);
            match dep {
                DependencyState::Down => inc.dependency_recovered_at = None,
                DependencyState::Up if prev_dep == Some(DependencyState::Down) => {
                    inc.dependency_recovered_at = Some(time(dep_since));
                }
                _ => {}
            }
            if healthy && actions == 0 {
                let started = inc.started_at.as_ref().map_or(now, secs);
                // Recovered when the last pod turned ready (or the dependency
                // came back), not when this reconcile happened to run.
                let mut at = pods.latest_ready_transition.unwrap_or(now);
                if let Some(d) = &inc.dependency_recovered_at {
                    at = at.max(secs(d));
                }
                let at = at.clamp(started.min(now), now);
                let duration = until(started, at);
                inc.recovered_at = Some(time(at));
                inc.duration_seconds = Some(duration);
                events.push(EventHint {
                    type_: EventType::Normal,
                    reason: "IncidentResolved".to_owned(),
                    note: format!(
                        "all {} desired pods ready; incident lasted {duration}s with {} remediation action(s)",
                        obs.desired_replicas, inc.actions
                    ),
                    action: "Observe".to_owned(),
                });
                return IncidentUpdate {
                    incident: Some(inc),
                    resolved_seconds: Some(duration),
                    opens_at: None,
                };
            }
            IncidentUpdate {
                incident: Some(inc),
                resolved_seconds: None,
                opens_at: None,
            }
        }
        prev => match trouble {
            Some(start) if !healthy || actions > 0 => {
                let cause = if dep == DependencyState::Down {
                    "dependency unavailable"
                } else if rollout_failed {
                    "rollout failing"
                } else {
                    "pods unready"
                };
                events.push(EventHint {
                    type_: EventType::Warning,
                    reason: "IncidentStarted".to_owned(),
                    note: format!(
                        "{cause}: {} of {} desired pods ready",
                        pods.ready, obs.desired_replicas
                    ),
                    action: "Observe".to_owned(),
                });
                IncidentUpdate {
                    incident: Some(LastIncident {
                        started_at: Some(time(start)),
                        dependency_recovered_at: None,
                        recovered_at: None,
                        duration_seconds: None,
                        actions,
                    }),
                    resolved_seconds: None,
                    opens_at: None,
                }
            }
            _ => IncidentUpdate {
                incident: prev,
                resolved_seconds: None,
                opens_at: next_due.filter(|_| !healthy),
            },
        },
    }
}
