//! The two acting branches of [`decide`](super::decide): a manual override
//! and the policy-driven (automatic) path.

use super::analysis::{FailedRollout, PodView, Unready};
use super::decision::{Action, EventHint, EventType};
use super::observation::Observation;
use super::policy::{Policy, ALLOWANCE_RETRY_SECONDS};
use super::reason;
use super::report::{bounded_cause, rfc};
use super::status::{OverrideRecord, RemediationState};
use super::time::{dur, time, Secs};

/// Shared inputs of the branch functions.
pub(crate) struct Ctx<'a> {
    pub(crate) policy: &'a Policy,
    pub(crate) obs: &'a Observation,
    pub(crate) now: Secs,
    pub(crate) pods: &'a PodView<'a>,
    pub(crate) failed: Option<&'a FailedRollout>,
    pub(crate) allowance: u32,
    pub(crate) grace_end: Option<Secs>,
}

/// Accumulates the branch result.
#[derive(Default)]
pub(crate) struct Outcome {
    /// A branch settled the state (later branches must not overwrite it).
    pub(crate) decided: bool,
    pub(crate) state: RemediationState,
    pub(crate) reason: Option<&'static str>,
    pub(crate) next: Option<String>,
    pub(crate) actions: Vec<Action>,
    pub(crate) override_record: Option<OverrideRecord>,
    /// The actions were granted by the override.
    pub(crate) manual: bool,
    pub(crate) wake_at: Option<Secs>,
}

impl Outcome {
    pub(crate) fn wait(&mut self, state: RemediationState, reason: &'static str, next: String) {
        self.decided = true;
        self.state = state;
        self.reason = Some(reason);
        self.next = Some(next);
    }

    pub(crate) fn wake(&mut self, at: Secs) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    pub(crate) fn wake_opt(&mut self, at: Option<Secs>) {
        if let Some(at) = at {
            self.wake(at);
        }
    }
}

/// One action for a new override token, or a pending/no-op verdict.
pub(crate) fn manual_override(
    ctx: &Ctx<'_>,
    token: &str,
    out: &mut Outcome,
    events: &mut Vec<EventHint>,
) {
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
    } else if let Some(u) = ctx.pods.unready.iter().find(|u| u.evictable()) {
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
                "manual override {token:?} by {by}: evicting pod {} (unready since {})",
                u.pod.name,
                u.since.map_or_else(|| "an unknown time".to_owned(), rfc)
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
pub(crate) fn automatic(
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
    let disabled = |out: &mut Outcome, what: &str| {
        out.wait(
            RemediationState::Blocked,
            reason::REMEDIATION_DISABLED,
            format!(
                "{what} skipped: spec.remediation.enabled is false; set annotation {} to a new token to do it once",
                super::OVERRIDE_ANNOTATION,
            ),
        );
    };
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
    // The same policy gates, in the same order, for every automatic action.
    let held_by_policy = |out: &mut Outcome, what: &str| {
        if !policy.enabled {
            disabled(out, what);
        } else if budget_left == 0 {
            blocked_by_budget(out, what);
        } else if cooling {
            cooling_down(out, what);
        } else {
            return false;
        }
        true
    };

    if let Some(f) = ctx.failed {
        let already = ctx.obs.previous.rollback.as_ref().is_some_and(|r| {
            r.from_revision == f.from && r.generation == ctx.obs.rollout.generation
        });
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
        if held_by_policy(out, &what) {
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
        .filter(|u| u.evictable() && u.eligible_at.is_some())
        .partition(|u| u.due(now));
    if !eligible.is_empty() {
        // No count here: it grows as more pods pass their deadline, which
        // would change a held status between wakes.
        let what = "evicting unready pods";
        if held_by_policy(out, what) {
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
            let after_recovery = ctx.grace_end.zip(u.since).is_some_and(|(g, s)| g > s);
            let (why, state) = if u.wedged {
                (
                    reason::MCP_UNRESPONSIVE,
                    "Ready, but its MCP layer has not answered since",
                )
            } else {
                (reason::UNREADY_TOO_LONG, "unready since")
            };
            out.actions.push(Action::Evict {
                pod: u.pod.name.clone(),
                reason: why.to_owned(),
                message: format!(
                    "evicting pod {}: {state} {}{}",
                    u.pod.name,
                    u.since.map_or_else(|| "an unknown time".to_owned(), rfc),
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
    if !pending.is_empty() {
        // Pods past their MCP deadline wait for a check that confirms it: the
        // prober wakes the server then, and the result goes stale otherwise.
        let first = pending
            .iter()
            .filter(|u| u.awaiting_recheck.is_none())
            .filter_map(|u| u.eligible_at)
            .min();
        let stale_at = pending.iter().filter_map(|u| u.awaiting_recheck).min();
        let grace_end = ctx.grace_end.filter(|g| *g > now);
        let in_grace = grace_end.is_some();
        out.wait(
            RemediationState::Waiting,
            if in_grace {
                reason::GRACE_PERIOD
            } else {
                reason::UNREADY
            },
            format!(
                "{} pod(s) {}{}; {}",
                pending.len(),
                if pending.iter().any(|u| u.wedged) {
                    "unready or not answering MCP"
                } else {
                    "unready"
                },
                if in_grace {
                    " during the post-recovery grace window"
                } else {
                    ""
                },
                first.map_or_else(
                    || "each is evicted only after a new MCP check fails".to_owned(),
                    |f| format!("the first may be evicted at {}", rfc(f))
                )
            ),
        );
        out.wake_opt(first);
        out.wake_opt(stale_at.map(|s| s.saturating_add(1)));
        // The reason turns from GracePeriod to PodsUnready then.
        out.wake_opt(grace_end);
        return;
    }
    if let Some(u) = ctx
        .pods
        .unready
        .iter()
        .find(|u| u.image_failure && u.pod.started)
    {
        out.wait(
            RemediationState::Waiting,
            reason::IMAGE_FAILURE,
            format!(
                "pod {} cannot pull its image ({}); eviction would not help",
                u.pod.name,
                u.pod.waiting_reason.as_deref().unwrap_or("image error")
            ),
        );
        return;
    }
    if let Some(u) = ctx
        .pods
        .unready
        .iter()
        .find(|u| u.evictable() && u.eligible_at.is_none())
    {
        out.wait(
            RemediationState::Waiting,
            reason::UNREADY,
            format!(
                "pod {} is unready and carries no timestamp; it is not judged automatically",
                u.pod.name
            ),
        );
        return;
    }
    // Only pods that never ran are left: a replacement would be stuck the
    // same way, so say why instead of evicting.
    let not_started: Vec<&Unready<'_>> =
        ctx.pods.unready.iter().filter(|u| !u.pod.started).collect();
    if let Some(first) = not_started
        .iter()
        .min_by(|a, b| a.pod.name.cmp(&b.pod.name))
    {
        out.wait(
            RemediationState::Waiting,
            reason::PODS_NOT_STARTED,
            format!(
                "{} pod(s) never started; a restart cannot help, fix the cause: pod {}: {}",
                not_started.len(),
                first.pod.name,
                bounded_cause(first.start_cause()),
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
