//! Remediation policy: the knobs from `spec.remediation`, resolved to
//! concrete numbers.
//!
//! The engine never reads the CRD spec directly so that the API types (owned
//! by the reconciler side) can evolve without touching the decision logic;
//! the shell maps `spec.remediation` onto [`Policy`], leaving unset fields at
//! [`Policy::default`].

/// Upper bound on `max_actions`: the engine persists one record per action in
/// the window, and status must stay small.
pub const MAX_ACTIONS_CAP: u32 = 100;

/// Upper bound on every duration knob (one year): keeps time arithmetic far
/// from overflow whatever the spec says.
pub const MAX_DURATION_SECONDS: u64 = 366 * 24 * 3600;

/// Resolved remediation policy. All durations are whole seconds because every
/// timestamp the engine persists (Kubernetes `metav1.Time`) has one-second
/// precision; sub-second knobs could not survive an operator restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Automatic remediation on. When false the engine still observes,
    /// reports what it would do (state `Blocked`, reason
    /// `RemediationDisabled`) and honours manual override tokens, but never
    /// acts on its own. Default true.
    pub enabled: bool,
    /// A pod must be unready this long (counted from the later of its own
    /// unready transition and the end of the post-recovery grace window)
    /// before it is evicted. Default 20.
    pub unhealthy_after_seconds: u64,
    /// Churn budget: at most this many actions (each eviction and each
    /// rollback counts one) in any sliding window. Default 5.
    pub max_actions: u32,
    /// Length of the sliding budget window. Default 600.
    pub window_seconds: u64,
    /// Minimum spacing between two automatic action batches, so the effect of
    /// one action (a replacement pod starting) is observed before the next.
    /// Default 30.
    pub cooldown_seconds: u64,
    /// After the dependency comes back, pools get this long to reconnect by
    /// themselves before any pod is judged. Default: `unhealthy_after_seconds`.
    pub grace_after_dependency_recovery_seconds: u64,
    /// Hold all automatic and manual actions while the dependency is down (or
    /// its state is unknown): restarting pods cannot fix a missing database
    /// and only adds a restart storm on top of the outage. Default true.
    pub pause_while_dependency_down: bool,
    /// Roll back a new revision that crash-loops while the previous one was
    /// healthy. When false the engine holds and says so. Default true.
    pub rollback_failed_rollouts: bool,
    /// Cap on evictions in one decision, on top of the disruption allowance
    /// and the remaining budget ("a few at a time"). Default 3.
    pub max_evictions_per_action: u32,
    /// A container restart count at or above this marks a pod as failing even
    /// when it is not (yet) in `CrashLoopBackOff`. Default 3.
    pub crash_restart_threshold: u32,
    /// A Ready pod whose MCP check has failed this long is wedged and judged
    /// like an unready one. Default 30 (`health.mcp.unhealthyAfterSeconds`).
    pub mcp_unhealthy_after_seconds: u64,
    /// How often the MCP checks run (`health.mcp.periodSeconds`). A failing
    /// check older than two periods is stale: it says nothing about now and
    /// never counts toward `mcp_unhealthy_after_seconds`. Default 10.
    pub mcp_period_seconds: u64,
}

/// Default `unhealthyAfterSeconds`.
pub const DEFAULT_UNHEALTHY_AFTER_SECONDS: u64 = 20;
/// Default `health.mcp.unhealthyAfterSeconds`.
pub const DEFAULT_MCP_UNHEALTHY_AFTER_SECONDS: u64 = 30;
/// Default `health.mcp.periodSeconds`.
pub const DEFAULT_MCP_PERIOD_SECONDS: u64 = 10;
/// Default `maxActions`.
pub const DEFAULT_MAX_ACTIONS: u32 = 5;
/// Default `windowSeconds`.
pub const DEFAULT_WINDOW_SECONDS: u64 = 600;
/// Default cooldown between automatic actions.
pub const DEFAULT_COOLDOWN_SECONDS: u64 = 30;
/// Default cap on evictions per decision.
pub const DEFAULT_MAX_EVICTIONS_PER_ACTION: u32 = 3;
/// Default restart count that marks a container as crash-looping.
pub const DEFAULT_CRASH_RESTART_THRESHOLD: u32 = 3;

impl Default for Policy {
    fn default() -> Self {
        Self {
            enabled: true,
            unhealthy_after_seconds: DEFAULT_UNHEALTHY_AFTER_SECONDS,
            max_actions: DEFAULT_MAX_ACTIONS,
            window_seconds: DEFAULT_WINDOW_SECONDS,
            cooldown_seconds: DEFAULT_COOLDOWN_SECONDS,
            grace_after_dependency_recovery_seconds: DEFAULT_UNHEALTHY_AFTER_SECONDS,
            pause_while_dependency_down: true,
            rollback_failed_rollouts: true,
            max_evictions_per_action: DEFAULT_MAX_EVICTIONS_PER_ACTION,
            crash_restart_threshold: DEFAULT_CRASH_RESTART_THRESHOLD,
            mcp_unhealthy_after_seconds: DEFAULT_MCP_UNHEALTHY_AFTER_SECONDS,
            mcp_period_seconds: DEFAULT_MCP_PERIOD_SECONDS,
        }
    }
}

impl Policy {
    /// Clamp values that would make the engine meaningless or unbounded.
    ///
    /// The API server should already reject most of these with schema
    /// ranges; this is the last line so a bad value degrades to a safe one
    /// instead of looping the operator. `max_actions == 0` is kept: it means
    /// "never act automatically" (only manual overrides).
    pub fn sanitized(&self) -> Self {
        Self {
            enabled: self.enabled,
            unhealthy_after_seconds: self.unhealthy_after_seconds.min(MAX_DURATION_SECONDS),
            max_actions: self.max_actions.min(MAX_ACTIONS_CAP),
            window_seconds: self.window_seconds.clamp(1, MAX_DURATION_SECONDS),
            cooldown_seconds: self.cooldown_seconds.min(MAX_DURATION_SECONDS),
            grace_after_dependency_recovery_seconds: self
                .grace_after_dependency_recovery_seconds
                .min(MAX_DURATION_SECONDS),
            pause_while_dependency_down: self.pause_while_dependency_down,
            rollback_failed_rollouts: self.rollback_failed_rollouts,
            max_evictions_per_action: self.max_evictions_per_action.max(1),
            crash_restart_threshold: self.crash_restart_threshold.max(1),
            mcp_unhealthy_after_seconds: self.mcp_unhealthy_after_seconds.min(MAX_DURATION_SECONDS),
            mcp_period_seconds: self.mcp_period_seconds.clamp(1, MAX_DURATION_SECONDS),
        }
    }
}

/// Retry delay when the only obstacle is the disruption allowance, which
/// changes with pod readiness the controller may not be watching.
pub const ALLOWANCE_RETRY_SECONDS: u64 = 15;
