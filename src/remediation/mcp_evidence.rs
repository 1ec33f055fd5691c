//! When the MCP checks of a Ready pod make it wedged: one rule for the
//! engine, the readiness gate and status. Pure, in whole seconds.
//!
//! Only what checks saw counts: the pod has failed continuously for
//! `unhealthyAfterSeconds` (failed checks at most two periods apart, see the
//! prober's `PodCheck::next`), it was re-checked after its first failure (no
//! eviction on the strength of one failure and the clock), and its last failed
//! check is at most two periods old. An older result is stale (the prober
//! fell behind, or the pod is no longer checked): it says nothing about now
//! and never counts.

use super::time::Secs;

/// What the failing checks of a pod say at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum McpEvidence {
    /// The last check is older than two periods.
    Stale,
    /// Failing, not (yet) wedged: before `deadline`, or past it without a
    /// re-check since the first failure. The result holds until `stale_at`.
    Failing { deadline: Secs, stale_at: Secs },
    /// Failing since before `deadline`, re-checked, and the last check fresh.
    Wedged { deadline: Secs },
}

/// `since`: the first failure of the run; `checked`: the last failed check;
/// `not_before`: no deadline starts before it (the post-recovery grace end).
pub fn judge(
    since: Secs,
    checked: Secs,
    now: Secs,
    period_seconds: u64,
    unhealthy_after_seconds: u64,
    not_before: Option<Secs>,
) -> McpEvidence {
    let dur = |s: u64| Secs::try_from(s).unwrap_or(Secs::MAX);
    let stale_at = checked.saturating_add(dur(period_seconds).saturating_mul(2));
    if now > stale_at {
        return McpEvidence::Stale;
    }
    let deadline = not_before
        .map_or(since, |g| since.max(g))
        .saturating_add(dur(unhealthy_after_seconds));
    if checked > since && now >= deadline {
        McpEvidence::Wedged { deadline }
    } else {
        McpEvidence::Failing { deadline, stale_at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_recheck_and_the_deadline_make_a_wedge() {
        // period 60, unhealthy after 30: one failure at 0 is not a wedge at 30.
        assert_eq!(
            judge(0, 0, 30, 60, 30, None),
            McpEvidence::Failing {
                deadline: 30,
                stale_at: 120
            }
        );
        // The re-check at 60 still fails: wedged.
        assert_eq!(
            judge(0, 60, 60, 60, 30, None),
            McpEvidence::Wedged { deadline: 30 }
        );
        // period 10: failing since 0, re-checked at 25; wedged from 30 ...
        assert!(matches!(
            judge(0, 25, 29, 10, 30, None),
            McpEvidence::Failing { .. }
        ));
        assert_eq!(
            judge(0, 25, 30, 10, 30, None),
            McpEvidence::Wedged { deadline: 30 }
        );
        // ... until that check is more than two periods old.
        assert_eq!(
            judge(0, 25, 45, 10, 30, None),
            McpEvidence::Wedged { deadline: 30 }
        );
        assert_eq!(judge(0, 25, 46, 10, 30, None), McpEvidence::Stale);
        // The grace window moves the deadline.
        assert_eq!(
            judge(0, 40, 41, 10, 30, Some(20)),
            McpEvidence::Failing {
                deadline: 50,
                stale_at: 60
            }
        );
    }
}
