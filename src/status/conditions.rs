//! metav1.Condition bookkeeping: a transition time changes only when the status does.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition as the reconciler wants it, before transition-time bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    /// "True", "False" or "Unknown".
    pub status: &'static str,
    pub reason: String,
    pub message: String,
}

impl Desired {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status: status_str(status),
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn with_status(
        type_: &'static str,
        status: &'static str,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

fn status_str(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// Merge desired conditions into the previous list. Conditions whose status is unchanged
/// keep their lastTransitionTime, so an idle reconcile produces an identical status.
/// When `desired` names a type twice, the later entry wins.
pub fn merge(
    previous: &[Condition],
    desired: &[Desired],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut unique: Vec<&Desired> = Vec::new();
    for d in desired {
        match unique.iter_mut().find(|u| u.type_ == d.type_) {
            Some(slot) => *slot = d,
            None => unique.push(d),
        }
    }
    unique
        .into_iter()
        .map(|d| {
            let status = d.status;
            let prev = previous.iter().find(|c| c.type_ == d.type_);
            let last_transition_time = match prev {
                Some(p) if p.status == status => p.last_transition_time.clone(),
                _ => now.clone(),
            };
            Condition {
                type_: d.type_.to_string(),
                status: status.to_string(),
                reason: d.reason.clone(),
                message: d.message.clone(),
                last_transition_time,
                observed_generation: generation,
            }
        })
        .collect()
}

/// The conditions whose status flipped between two lists (for Events).
pub fn transitions<'a>(previous: &[Condition], next: &'a [Condition]) -> Vec<&'a Condition> {
    next.iter()
        .filter(|n| {
            previous
                .iter()
                .find(|p| p.type_ == n.type_)
                .is_none_or(|p| p.status != n.status || p.reason != n.reason)
        })
        .collect()
}

pub fn is_true(conds: &[Condition], type_: &str) -> bool {
    conds.iter().any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid timestamp"))
    }

    #[test]
    fn unchanged_status_keeps_transition_time() {
        let first = merge(
            &[],
            &[Desired::new("Ready", true, "AllReady", "3/3")],
            Some(1),
            &t(100),
        );
        let second = merge(
            &first,
            &[Desired::new("Ready", true, "AllReady", "3/3 again")],
            Some(2),
            &t(200),
        );
        assert_eq!(second[0].last_transition_time, t(100));
        assert_eq!(second[0].message, "3/3 again");
        assert_eq!(second[0].observed_generation, Some(2));
    }

    #[test]
    fn flipped_status_moves_transition_time_and_is_reported() {
        let first = merge(
            &[],
            &[Desired::new("Ready", true, "AllReady", "")],
            Some(1),
            &t(100),
        );
        let second = merge(
            &first,
            &[Desired::new("Ready", false, "PodsUnready", "1/3")],
            Some(1),
            &t(200),
        );
        assert_eq!(second[0].last_transition_time, t(200));
        assert_eq!(second[0].status, "False");
        let flips = transitions(&first, &second);
        assert_eq!(flips.len(), 1);
        assert!(transitions(&second, &second).is_empty());
    }

    #[test]
    fn later_duplicate_wins() {
        let merged = merge(
            &[],
            &[
                Desired::new("Dep", true, "A", "first"),
                Desired::with_status("Dep", "Unknown", "B", "second"),
            ],
            None,
            &t(1),
        );
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].status, "Unknown");
        assert_eq!(merged[0].reason, "B");
    }

    #[test]
    fn new_condition_counts_as_transition() {
        let next = merge(
            &[],
            &[Desired::new(
                "DependencyAvailable",
                false,
                "NoReadyEndpoints",
                "",
            )],
            None,
            &t(5),
        );
        assert_eq!(transitions(&[], &next).len(), 1);
        assert!(!is_true(&next, "DependencyAvailable"));
    }
}
