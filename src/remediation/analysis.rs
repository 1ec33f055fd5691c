//! Reading the observation: which pods are unhealthy since when, whether the
//! current rollout is failing, and what the rollback target is.

use super::mcp_evidence::{judge, McpEvidence};
use super::observation::{Observation, PodObs};
use super::policy::Policy;
use super::status::RemediationStatus;
use super::time::{dur, secs, Secs};

/// Waiting reasons that eviction cannot fix: a fresh pod pulls the same
/// image and fails the same way.
pub(crate) const IMAGE_FAILURE_REASONS: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
];

/// Waiting reasons that mark a container as failing to run.
pub(crate) const CRASH_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// A pod that is not ready and not terminating.
#[derive(Clone, Debug)]
pub(crate) struct Unready<'a> {
    pub pod: &'a PodObs,
    /// When it became unready, as reported. Not clamped to `now`: a
    /// future-dated pod (clock skew) keeps a fixed deadline instead of one
    /// that moves with the clock. None without any timestamp.
    pub since: Option<Secs>,
    /// When it may be judged (evicted / counted as a failed rollout). None
    /// without a timestamp: never judged on a guess.
    pub eligible_at: Option<Secs>,
    /// Its image cannot be pulled: eviction is pointless.
    pub image_failure: bool,
    /// Crash-looping or failing to start.
    pub failing: bool,
    /// Ready, but its MCP layer does not answer the operator's checks.
    pub wedged: bool,
    /// Wedged past its deadline, but no check has failed since the deadline:
    /// not judged until one does; the result goes stale at this time.
    pub awaiting_recheck: Option<Secs>,
}

impl Unready<'_> {
    /// May be evicted at all: it ran before (a pod that never started comes
    /// back the same way) and its image can be pulled.
    pub fn evictable(&self) -> bool {
        self.pod.started && !self.image_failure
    }

    /// Past its deadline and confirmed: may be acted on now.
    pub fn due(&self, now: Secs) -> bool {
        self.awaiting_recheck.is_none() && self.eligible_at.is_some_and(|e| e <= now)
    }

    /// Why it has not started, for humans.
    pub fn start_cause(&self) -> &str {
        self.pod
            .start_failure
            .as_deref()
            .or(self.pod.waiting_reason.as_deref())
            .unwrap_or(NOT_STARTED_CAUSE)
    }
}

/// Cause reported for a pod that has not started when the shell gave none.
pub(crate) const NOT_STARTED_CAUSE: &str = "not started yet";

/// Everything derived from pods and rollout.
#[derive(Clone, Debug)]
pub(crate) struct PodView<'a> {
    /// Non-terminating ready pods.
    pub ready: u32,
    /// Terminating pods (in-flight disruptions).
    pub deleting: u32,
    /// Non-terminating unready pods, longest unready first (undated last).
    pub unready: Vec<Unready<'a>>,
    /// Latest ready transition among ready pods.
    pub latest_ready_transition: Option<Secs>,
}

pub(crate) fn view<'a>(
    policy: &Policy,
    obs: &'a Observation,
    now: Secs,
    grace_end: Option<Secs>,
) -> PodView<'a> {
    let mut ready = 0;
    let mut deleting = 0;
    let mut unready = Vec::new();
    let mut latest_ready_transition: Option<Secs> = None;
    for pod in &obs.pods {
        if pod.deleting {
            deleting += 1;
            continue;
        }
        if let (true, Some(t), Some(checked)) =
            (pod.ready, &pod.mcp_unresponsive_since, &pod.mcp_checked_at)
        {
            let since = secs(t);
            let evidence = judge(
                since,
                secs(checked),
                now,
                policy.mcp_period_seconds,
                policy.mcp_unhealthy_after_seconds,
                grace_end,
            );
            // A stale result: the pod counts as the Ready pod it is.
            let judged = match evidence {
                McpEvidence::Stale => None,
                McpEvidence::Failing { deadline, stale_at } => {
                    Some((deadline, (deadline <= now).then_some(stale_at)))
                }
                McpEvidence::Wedged { deadline } => Some((deadline, None)),
            };
            if let Some((deadline, awaiting_recheck)) = judged {
                unready.push(Unready {
                    pod,
                    since: Some(since),
                    eligible_at: Some(deadline),
                    image_failure: false,
                    failing: false,
                    wedged: true,
                    awaiting_recheck,
                });
                continue;
            }
        }
        if pod.ready {
            ready += 1;
            if let Some(t) = &pod.ready_transition {
                let t = secs(t).min(now);
                latest_ready_transition = Some(latest_ready_transition.map_or(t, |l| l.max(t)));
            }
            continue;
        }
        // The shell always has creationTimestamp; without any timestamp
        // there is no deadline at all (one counted from `now` would move
        // with every reconcile and never arrive).
        let since = pod
            .ready_transition
            .as_ref()
            .or(pod.created_at.as_ref())
            .map(secs);
        let eligible_at = since.map(|since| {
            grace_end
                .map_or(since, |g| since.max(g))
                .saturating_add(dur(policy.unhealthy_after_seconds))
        });
        let reason = pod.waiting_reason.as_deref().unwrap_or("");
        unready.push(Unready {
            pod,
            since,
            eligible_at,
            image_failure: IMAGE_FAILURE_REASONS.contains(&reason),
            failing: IMAGE_FAILURE_REASONS.contains(&reason)
                || CRASH_REASONS.contains(&reason)
                || pod.restart_count >= policy.crash_restart_threshold,
            wedged: false,
            awaiting_recheck: None,
        });
    }
    unready.sort_by_key(|u| (u.since.unwrap_or(Secs::MAX), &u.pod.name));
    PodView {
        ready,
        deleting,
        unready,
        latest_ready_transition,
    }
}

/// A rollout whose new pods fail while an older revision was good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FailedRollout {
    pub from: String,
    pub to: String,
    /// When it may be acted on automatically.
    pub eligible_at: Secs,
    /// Human detail.
    pub detail: String,
}

/// The rollback target: the engine's own last good revision, else the
/// shell's hint, as long as it differs from the current one.
pub(crate) fn good_target(obs: &Observation, prev: &RemediationStatus) -> Option<String> {
    let current = obs.rollout.current_revision.as_deref();
    prev.last_good_revision
        .as_deref()
        .filter(|r| Some(*r) != current)
        .or_else(|| {
            obs.rollout
                .previous_good_revision
                .as_deref()
                .filter(|r| Some(*r) != current)
        })
        .map(str::to_owned)
}

/// Detect a failed rollout: no pod of the current revision is ready, and
/// either one of them is failing to run or the progress deadline passed, and
/// a different good revision is known. Eligibility honours the same
/// unhealthy/grace timing as evictions so a rollout is not judged while its
/// pods were only waiting for the database.
pub(crate) fn failed_rollout(
    obs: &Observation,
    prev: &RemediationStatus,
    pods: &PodView<'_>,
    now: Secs,
    grace_end: Option<Secs>,
) -> Option<FailedRollout> {
    let current = obs.rollout.current_revision.as_deref()?;
    let to = good_target(obs, prev)?;
    let of_current = |p: &PodObs| p.revision.as_deref() == Some(current);
    let any_current_ready = obs
        .pods
        .iter()
        .any(|p| !p.deleting && p.ready && of_current(p));
    if any_current_ready {
        return None;
    }
    let failing = pods
        .unready
        .iter()
        .filter(|u| u.failing && of_current(u.pod))
        .filter_map(|u| Some((u.eligible_at?, u)))
        .min_by_key(|(at, _)| *at);
    let (eligible_at, detail) = match failing {
        Some((at, u)) => (
            at,
            format!(
                "pod {} of revision {current} is failing ({})",
                u.pod.name,
                u.pod
                    .start_failure
                    .clone()
                    .filter(|_| !u.pod.started)
                    .or_else(|| u.pod.waiting_reason.clone())
                    .unwrap_or_else(|| format!("{} restarts", u.pod.restart_count)),
            ),
        ),
        None if obs.rollout.progress_deadline_exceeded => (
            grace_end.unwrap_or(now),
            format!("revision {current} exceeded its progress deadline with no ready pod"),
        ),
        None => return None,
    };
    Some(FailedRollout {
        from: current.to_owned(),
        to,
        eligible_at,
        detail,
    })
}
