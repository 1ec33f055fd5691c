//! The one-word phase shown by `kubectl get mcps`.
use crate::api::Phase;

#[derive(Debug, Clone, Copy, Default)]
pub struct PhaseInputs {
    pub config_valid: bool,
    pub dependency_up: Option<bool>,
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
    pub rollout_in_progress: bool,
}

pub fn compute(i: PhaseInputs) -> Phase {
    if !i.config_valid {
        return Phase::Invalid;
    }
    if i.dependency_up == Some(false) {
        return Phase::DependencyUnavailable;
    }
    if i.desired > 0 && i.ready >= i.desired && !i.rollout_in_progress {
        return Phase::Ready;
    }
    if i.rollout_in_progress || i.ready == 0 && i.updated < i.desired {
        return Phase::Progressing;
    }
    Phase::Degraded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> PhaseInputs {
        PhaseInputs {
            config_valid: true,
            dependency_up: Some(true),
            desired: 3,
            ready: 3,
            updated: 3,
            rollout_in_progress: false,
        }
    }

    #[test]
    fn phases() {
        assert_eq!(compute(base()), Phase::Ready);
        assert_eq!(
            compute(PhaseInputs {
                config_valid: false,
                ..base()
            }),
            Phase::Invalid
        );
        assert_eq!(
            compute(PhaseInputs {
                dependency_up: Some(false),
                ready: 0,
                ..base()
            }),
            Phase::DependencyUnavailable
        );
        assert_eq!(compute(PhaseInputs { ready: 1, ..base() }), Phase::Degraded);
        assert_eq!(
            compute(PhaseInputs {
                ready: 0,
                updated: 0,
                ..base()
            }),
            Phase::Progressing
        );
        assert_eq!(
            compute(PhaseInputs {
                rollout_in_progress: true,
                ..base()
            }),
            Phase::Progressing
        );
        // Unknown dependency (no service configured) does not block Ready.
        assert_eq!(
            compute(PhaseInputs {
                dependency_up: None,
                ..base()
            }),
            Phase::Ready
        );
    }
}
