//! The `McpServer` API (mcp.operator.dev/v1alpha1).
#[cfg(test)]
mod fixtures;
mod spec;
mod status;

pub use spec::*;
pub use status::*;

/// Condition types reported in `status.conditions`.
pub mod condition {
    pub const READY: &str = "Ready";
    pub const PROGRESSING: &str = "Progressing";
    pub const DEGRADED: &str = "Degraded";
    pub const DEPENDENCY_AVAILABLE: &str = "DependencyAvailable";
    pub const POOL_BUDGET_EXCEEDED: &str = "PoolBudgetExceeded";
    pub const REMEDIATION_BLOCKED: &str = "RemediationBlocked";
    pub const CONFIG_VALID: &str = "ConfigValid";
    pub const DISRUPTION_BUDGET: &str = "DisruptionBudget";
    pub const MCP_RESPONSIVE: &str = "McpResponsive";
    /// kstatus: work toward the spec is under way (abnormal-true).
    pub const RECONCILING: &str = "Reconciling";
    /// kstatus: the spec cannot be realised without a human (abnormal-true).
    pub const STALLED: &str = "Stalled";
}

/// The pod readiness gate (a pod condition type) the operator sets.
pub const READINESS_GATE: &str = "mcp.operator.dev/healthy";
