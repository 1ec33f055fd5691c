//! Reason codes: `status.remediation.reason`, condition reasons and the
//! `reason` label of the actions metric. Stable strings: alerts match them.

/// Dependency down, holding.
pub const DEPENDENCY_UNAVAILABLE: &str = "DependencyUnavailable";
/// Dependency state unknown, holding.
pub const DEPENDENCY_UNKNOWN: &str = "DependencyUnknown";
/// Dependency up.
pub const DEPENDENCY_READY: &str = "DependencyReady";
/// Waiting for pools to reconnect after the dependency came back.
pub const GRACE_PERIOD: &str = "GracePeriod";
/// Pods unready but not for long enough yet.
pub const UNREADY: &str = "PodsUnready";
/// The only unready pods never started (unschedulable, image or config
/// errors): a restart cannot help, nothing is evicted.
pub const PODS_NOT_STARTED: &str = "PodsNotStarted";
/// Pod unready past the deadline (eviction reason).
pub const UNREADY_TOO_LONG: &str = "UnreadyTooLong";
/// Ready pod whose MCP layer does not answer (eviction reason).
pub const MCP_UNRESPONSIVE: &str = "McpUnresponsive";
/// Churn budget spent.
pub const BUDGET_EXHAUSTED: &str = "BudgetExhausted";
/// Failed rollout, rollbacks disabled.
pub const ROLLBACK_DISABLED: &str = "RollbackDisabled";
/// Failed rollout (rollback reason).
pub const FAILED_ROLLOUT: &str = "FailedRollout";
/// Rollback issued, waiting for it to take effect.
pub const ROLLBACK_IN_PROGRESS: &str = "RollbackInProgress";
/// Cooling down after an action.
pub const COOLDOWN: &str = "Cooldown";
/// No disruption allowance right now.
pub const DISRUPTION_BUDGET: &str = "DisruptionBudget";
/// Unready pods whose image cannot be pulled.
pub const IMAGE_FAILURE: &str = "ImagePullFailing";
/// Action granted by a manual override token.
pub const MANUAL_OVERRIDE: &str = "ManualOverride";
/// Actions issued.
pub const ACTING: &str = "Acting";
/// Not blocked.
pub const NOT_BLOCKED: &str = "NotBlocked";
/// Automatic remediation switched off in the spec.
pub const REMEDIATION_DISABLED: &str = "RemediationDisabled";

/// Every (action kind label, reason) pair an action can carry: the label sets
/// of the actions metric, created at 0 at startup.
pub const ACTION_LABELS: [(&str, &str); 5] = [
    ("evict", UNREADY_TOO_LONG),
    ("evict", MCP_UNRESPONSIVE),
    ("evict", MANUAL_OVERRIDE),
    ("rollback", FAILED_ROLLOUT),
    ("rollback", MANUAL_OVERRIDE),
];
