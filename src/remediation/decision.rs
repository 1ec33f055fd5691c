//! What the engine wants done: the output of [`decide`](super::decide).

use std::time::Duration;

use super::status::{ActionKind, LastIncident, RemediationStatus};

/// An action for the shell to perform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Evict the pod through the Eviction API (honours the PDB; a 429 means
    /// try later, the budget slot stays spent).
    Evict {
        /// Pod name.
        pod: String,
        /// Machine-readable reason (metric label).
        reason: String,
        /// Human explanation (Event note).
        message: String,
    },
    /// Roll the Deployment back to `to_revision`'s pod template and keep it
    /// pinned while the spec still renders `from_revision`.
    Rollback {
        /// The failing revision.
        from_revision: String,
        /// The last known good revision.
        to_revision: String,
        /// Machine-readable reason (metric label).
        reason: String,
        /// Human explanation (Event note).
        message: String,
    },
}

impl Action {
    /// The action's kind.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Evict { .. } => ActionKind::Evict,
            Action::Rollback { .. } => ActionKind::Rollback,
        }
    }

    /// Machine-readable reason.
    pub fn reason(&self) -> &str {
        match self {
            Action::Evict { reason, .. } | Action::Rollback { reason, .. } => reason,
        }
    }
}

/// Condition status, as in `metav1.Condition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    /// `"True"`.
    True,
    /// `"False"`.
    False,
    /// `"Unknown"`.
    Unknown,
}

impl ConditionStatus {
    /// The string Kubernetes uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// Condition type owned by the engine: the dependency's availability.
pub const CONDITION_DEPENDENCY_AVAILABLE: &str = crate::api::condition::DEPENDENCY_AVAILABLE;
/// Condition type owned by the engine: remediation wants to act and may not.
pub const CONDITION_REMEDIATION_BLOCKED: &str = crate::api::condition::REMEDIATION_BLOCKED;

/// A condition the shell should set (it owns `lastTransitionTime` and
/// `observedGeneration`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionHint {
    /// [`CONDITION_DEPENDENCY_AVAILABLE`] or [`CONDITION_REMEDIATION_BLOCKED`].
    pub type_: &'static str,
    /// Status.
    pub status: ConditionStatus,
    /// CamelCase reason.
    pub reason: String,
    /// Human message.
    pub message: String,
}

/// Event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Normal.
    Normal,
    /// Warning.
    Warning,
}

/// An Event to publish on the McpServer. Only emitted on transitions that
/// matter, so a steady state never spams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventHint {
    /// Normal or Warning.
    pub type_: EventType,
    /// CamelCase reason, e.g. `DependencyLost`, `PodEvicted`.
    pub reason: String,
    /// Human note.
    pub note: String,
    /// events.k8s.io `action` field, e.g. `Remediate`, `Evict`, `Rollback`.
    pub action: String,
}

/// At most this many pods are listed in [`Decision::not_started`].
pub const NOT_STARTED_LIMIT: usize = 5;

/// An unready pod that never started: the engine never evicts it (a new pod
/// would hit the same wall) and reports why it is stuck instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotStarted {
    /// Pod name.
    pub pod: String,
    /// [`PodObs::start_failure`](super::PodObs::start_failure), else its
    /// waiting reason, else `"not started yet"`.
    pub cause: String,
}

/// The engine's verdict for one observation.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Actions to perform now, in order.
    pub actions: Vec<Action>,
    /// New `status.remediation` (write it even when `actions` is empty: it
    /// carries the budget memory and the dependency transition).
    pub status: RemediationStatus,
    /// New `status.lastIncident` (None only if there never was one).
    pub incident: Option<LastIncident>,
    /// Conditions to set.
    pub conditions: Vec<ConditionHint>,
    /// Events to publish.
    pub events: Vec<EventHint>,
    /// When the next decision is due even if no watch fires: the next
    /// instant at which time alone changes the outcome (grace end, unhealthy
    /// deadline, cooldown end, an action leaving the budget window, an
    /// incident opening). Until then the same observation yields the same
    /// status, so writing it does not re-trigger anything. None: only
    /// watches need to wake the controller (a shell that probes the
    /// dependency directly should also requeue at its probe interval).
    pub requeue_after: Option<Duration>,
    /// For the `mcp_operator_remediation_blocked` gauge.
    pub blocked: bool,
    /// Set when this decision closed an incident: its duration, for the
    /// `mcp_operator_incident_duration_seconds` histogram.
    pub incident_resolved_seconds: Option<u64>,
    /// Unready, non-terminating pods that never started, sorted by name, at
    /// most [`NOT_STARTED_LIMIT`].
    pub not_started: Vec<NotStarted>,
}
