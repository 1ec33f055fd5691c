//! Remediation decision engine: pure, deterministic, no I/O.
//!
//! The reconciler (the I/O shell) builds an [`Observation`] from the cluster,
//! calls [`decide`], performs the returned [`Action`]s (evictions, rollback
//! patch), writes [`Decision::status`] and [`Decision::incident`] to the
//! McpServer status, sets the condition hints, publishes the events, updates
//! metrics and requeues after [`Decision::requeue_after`].
//!
//! Keeping the policy pure means every transition (dependency flapping,
//! budget edges, cooldown, override tokens, operator restarts mid-incident)
//! is tested with a fake clock, and the only memory is the persisted status,
//! so a restarted operator continues exactly where the old one stopped.

mod analysis;
mod branches;
mod decide;
mod decision;
mod incident;
mod mcp_evidence;
mod observation;
mod policy;
pub mod reason;
mod report;
mod status;
mod time;

#[cfg(test)]
mod tests;

pub use decide::decide;
pub use decision::{
    Action, ConditionHint, ConditionStatus, Decision, EventHint, EventType, NotStarted,
    CONDITION_DEPENDENCY_AVAILABLE, CONDITION_REMEDIATION_BLOCKED, NOT_STARTED_LIMIT,
};
pub use mcp_evidence::{judge as judge_mcp, McpEvidence};
pub use observation::{DependencyObs, Observation, OverrideRequest, PodObs, RolloutObs};
pub use policy::{
    Policy, ALLOWANCE_RETRY_SECONDS, DEFAULT_COOLDOWN_SECONDS, DEFAULT_CRASH_RESTART_THRESHOLD,
    DEFAULT_MAX_ACTIONS, DEFAULT_MAX_EVICTIONS_PER_ACTION, DEFAULT_MCP_PERIOD_SECONDS,
    DEFAULT_UNHEALTHY_AFTER_SECONDS, DEFAULT_WINDOW_SECONDS, MAX_ACTIONS_CAP,
};
pub use status::{
    ActionKind, ActionRecord, DependencyRecord, DependencyState, LastIncident, OverrideRecord,
    RemediationState, RemediationStatus, RollbackRecord, OVERRIDE_TOKEN_HISTORY,
};

/// Annotation on the McpServer that grants exactly one remediation action per
/// new value ("token"), even when the churn budget is spent.
pub const OVERRIDE_ANNOTATION: &str = "mcp.operator.dev/remediate";
