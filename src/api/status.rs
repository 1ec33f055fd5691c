//! `McpServer` status: what the operator observed and decided.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::{Deserialize, Serialize};

use crate::remediation::{LastIncident, RemediationStatus};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpServerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    /// "ready/desired", for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_display: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// In-cluster URL of the MCP endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<RemediationStatus>,
    /// What the operator's MCP checks see (`health.mcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_incident: Option<LastIncident>,
    /// Set after a failed rollout was rolled back: while the spec stays at this
    /// generation the Deployment keeps the good revision's template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_hold: Option<RollbackHold>,
}

/// The MCP server as the operator's checks see it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpStatus {
    /// `serverInfo.name` from the last passing check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// The protocol revision negotiated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// The protocol revisions the responsive pods speak, grouped by
    /// (version, era): newest version first, at most 4 named, the rest folded
    /// into one `other` entry per era. A change in the pods per era (a pod
    /// answering, failing or changing era) is written at once; version
    /// strings alone changing are refreshed with `lastCheckTime`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocol_versions: Vec<McpProtocolVersion>,
    /// Tools listed (with `health.mcp.listTools`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<i32>,
    /// The newest check behind this status. Refreshed when the status changes
    /// for another reason, and at least every 5 minutes (not on every check:
    /// that would be a status write per period per server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_time: Option<Time>,
    /// Ready pods whose last check passed.
    #[serde(default)]
    pub responsive_pods: i32,
    /// Ready pods whose checks fail (at most 10 listed; `failingPodCount` has them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing_pods: Vec<McpPodFailure>,
    #[serde(default)]
    pub failing_pod_count: i32,
}

/// Responsive pods speaking one protocol revision in one era.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpProtocolVersion {
    /// The revision spoken (`unknown` when the server named none; `other`
    /// for the versions folded beyond the listed ones).
    pub version: String,
    /// `legacy` (`initialize`, sessions) or `stateless` (2026-07-28 on).
    pub era: String,
    pub pods: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpPodFailure {
    pub pod: String,
    /// `ConnectFailed` (the operator cannot reach the pod), `Timeout`,
    /// `HttpStatus` or `ProtocolError` (the server misbehaves).
    pub reason: String,
    pub message: String,
    /// Failing continuously since.
    pub since: Time,
    /// Failing long enough to count as wedged (remediation may evict it).
    #[serde(default)]
    pub wedged: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackHold {
    /// The spec generation whose rollout failed.
    pub generation: i64,
    /// pod-template-hash of the revision now serving.
    pub revision: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum Phase {
    /// The spec cannot be realised (missing Secret, key or Service).
    Invalid,
    /// Pods are being created or rolled out.
    Progressing,
    /// All desired replicas are ready.
    Ready,
    /// Some replicas are not ready.
    Degraded,
    /// The database is unavailable; remediation holds.
    DependencyUnavailable,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Invalid => "Invalid",
            Phase::Progressing => "Progressing",
            Phase::Ready => "Ready",
            Phase::Degraded => "Degraded",
            Phase::DependencyUnavailable => "DependencyUnavailable",
        }
    }
}

/// The database connection budget as realised.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    /// Pool max each replica gets.
    pub per_replica_max: i32,
    /// perReplicaMax * replicas.max: the most connections the pool can open.
    pub total_max: i32,
    /// database.maxConnections, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<i32>,
}
