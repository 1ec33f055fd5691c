//! PodDisruptionBudget from `spec.disruption`.
use super::{child_meta, labels};
use crate::api::McpServer;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Why no PDB is created, when none is.
pub const SINGLE_REPLICA_REASON: &str = "SingleReplica";

/// `None` when the pool can only ever have one replica: a PDB would then block every drain.
pub fn build(mcp: &McpServer) -> Option<PodDisruptionBudget> {
    if mcp.spec.replicas.max <= 1 {
        return None;
    }
    let d = &mcp.spec.disruption;
    let (max_unavailable, min_available) = match (d.max_unavailable, d.min_available) {
        (_, Some(min)) => (None, Some(IntOrString::Int(min))),
        (Some(max), None) => (Some(IntOrString::Int(max)), None),
        (None, None) => (Some(IntOrString::Int(1)), None),
    };
    Some(PodDisruptionBudget {
        metadata: child_meta(mcp),
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(LabelSelector {
                match_labels: Some(labels::selector(mcp)),
                ..Default::default()
            }),
            max_unavailable,
            min_available,
            // Broken pods must never block a node drain.
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
        }),
        ..Default::default()
    })
}

/// How many pods may be taken down at once by remediation, from the spec alone.
pub fn max_disruptions(mcp: &McpServer, desired: i32) -> i32 {
    let d = &mcp.spec.disruption;
    match (d.max_unavailable, d.min_available) {
        (_, Some(min)) => (desired - min).max(0),
        (Some(max), None) => max,
        (None, None) => 1,
    }
}
