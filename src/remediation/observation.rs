//! What the shell observed, as plain data. Built fresh on every reconcile.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::status::{DependencyState, LastIncident, RemediationStatus};

/// Everything [`decide`](super::decide) looks at. No field is fetched by the
/// engine itself; the clock is `now`.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The decision's clock. Use one reading per reconcile.
    pub now: Time,
    /// The dependency behind the pool.
    pub dependency: DependencyObs,
    /// Pods of the McpServer's Deployment (all ReplicaSets), including ones
    /// being deleted.
    pub pods: Vec<PodObs>,
    /// Deployment rollout facts.
    pub rollout: RolloutObs,
    /// Desired replicas (Deployment `spec.replicas`, i.e. after HPA).
    pub desired_replicas: u32,
    /// How many unready pods may be evicted right now. With a PDB whose
    /// `unhealthyPodEvictionPolicy` is `AlwaysAllow` (unready pods are always
    /// evictable) pass the PDB's `maxUnavailable` resolved against desired
    /// replicas; otherwise pass the PDB's `status.disruptionsAllowed`. Pods
    /// already terminating are subtracted by the engine.
    pub disruption_allowance: u32,
    /// Current value of the `mcp.operator.dev/remediate` annotation.
    pub override_request: Option<OverrideRequest>,
    /// `status.remediation` as last persisted (default if absent).
    pub previous: RemediationStatus,
    /// `status.lastIncident` as last persisted.
    pub previous_incident: Option<LastIncident>,
}

/// Dependency availability.
#[derive(Clone, Debug, PartialEq)]
pub struct DependencyObs {
    /// `Up` when no dependency is configured.
    pub state: DependencyState,
    /// When it entered this state, if the shell knows better than the
    /// engine's own memory (e.g. a probe loop's last transition). Optional:
    /// the engine records transitions it observes.
    pub since: Option<Time>,
    /// Human detail for the condition message, e.g.
    /// "Service db/postgres has 0 ready endpoints".
    pub message: Option<String>,
    /// CamelCase cause for the `DependencyAvailable` condition, e.g.
    /// `NoReadyEndpoints`, `ProbeFailed`.
    pub reason: Option<String>,
}

impl DependencyObs {
    /// Dependency up (or none configured).
    pub fn up() -> Self {
        Self {
            state: DependencyState::Up,
            since: None,
            message: None,
            reason: None,
        }
    }

    /// Dependency down, with a detail message.
    pub fn down(message: impl Into<String>) -> Self {
        Self {
            state: DependencyState::Down,
            since: None,
            message: Some(message.into()),
            reason: None,
        }
    }

    /// Dependency up, with the shell's reason and detail.
    pub fn up_because(reason: &str, message: impl Into<String>) -> Self {
        Self {
            message: Some(message.into()),
            reason: Some(reason.into()),
            ..Self::up()
        }
    }

    /// With the shell's reason for the condition.
    pub fn because(mut self, reason: &str) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Up.
    pub fn is_up(&self) -> bool {
        self.state == DependencyState::Up
    }

    /// Up or down; None while it cannot be told.
    pub fn known_up(&self) -> Option<bool> {
        match self.state {
            DependencyState::Up => Some(true),
            DependencyState::Down => Some(false),
            DependencyState::Unknown => None,
        }
    }
}

/// One pod.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PodObs {
    /// Pod name (the eviction target).
    pub name: String,
    /// `Ready` condition is `True`.
    pub ready: bool,
    /// `lastTransitionTime` of the `Ready` condition: for an unready pod,
    /// when it became unready (or first reported not ready).
    pub ready_transition: Option<Time>,
    /// `metadata.creationTimestamp`; fallback when there is no Ready
    /// condition yet.
    pub created_at: Option<Time>,
    /// Highest `restartCount` over its containers.
    pub restart_count: u32,
    /// A container's `state.waiting.reason`, preferring failure reasons
    /// (`CrashLoopBackOff`, `ImagePullBackOff`, `ErrImagePull`, ...).
    pub waiting_reason: Option<String>,
    /// Revision the pod belongs to; must use the same identifier space as
    /// [`RolloutObs::current_revision`] (e.g. the `pod-template-hash` label).
    pub revision: Option<String>,
    /// `metadata.deletionTimestamp` is set (terminating, e.g. just evicted).
    pub deleting: bool,
    /// Some container of the pod has ever run: a container status has
    /// `state.running`, `state.terminated` or `lastState.terminated` set, or
    /// `restartCount > 0`. Only started pods are ever evicted: a pod that
    /// never ran (unschedulable, image not pullable, missing Secret) comes
    /// back the same way after a restart.
    pub started: bool,
    /// For a pod that has not started, why, for humans, e.g.
    /// `Unschedulable: 0/3 nodes are available: ...`,
    /// `ImagePullBackOff: Back-off pulling image "x"` or
    /// `CreateContainerConfigError: secret "db" not found`. None when the
    /// shell knows no cause (the pod may just be starting).
    pub start_failure: Option<String>,
    /// The operator's MCP check of this pod has failed continuously since
    /// then (a timeout, an HTTP error or a protocol error; not a failure to
    /// connect, which says nothing about the server). Set by the shell only
    /// for a Ready pod: a pod whose readiness passes while its MCP layer does
    /// not answer is wedged.
    pub mcp_unresponsive_since: Option<Time>,
    /// When the failing MCP check behind `mcp_unresponsive_since` last ran.
    /// Only a check at or after the deadline confirms a wedge (no eviction on
    /// the strength of one old failure), and a check older than two periods
    /// is stale and ignored. None: no evidence, the pod is not judged on MCP.
    pub mcp_checked_at: Option<Time>,
}

/// Deployment rollout facts.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RolloutObs {
    /// Revision of the newest ReplicaSet (the one the Deployment rolls to).
    pub current_revision: Option<String>,
    /// The shell's idea of the previous good revision (e.g. the newest older
    /// ReplicaSet that was fully available), used when the engine has not
    /// itself seen a good revision yet.
    pub previous_good_revision: Option<String>,
    /// The Deployment's `Progressing` condition has reason
    /// `ProgressDeadlineExceeded`.
    pub progress_deadline_exceeded: bool,
    /// The McpServer generation being rolled out: a rollback is remembered per
    /// (bad revision, generation), so a later spec edit that renders the same
    /// bad template is judged (and rolled back) again.
    pub generation: Option<i64>,
}

/// The manual override annotation.
#[derive(Clone, Debug, PartialEq)]
pub struct OverrideRequest {
    /// Annotation value. Empty means no request.
    pub token: String,
    /// managedFields manager that owns the annotation, if found.
    pub manager: Option<String>,
}
