//! Reads of the pool's current state: pods, ReplicaSets, the Deployment.
use super::error::Result;
use crate::api::McpServer;
use crate::builders::labels;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

pub struct PoolObservation {
    pub pods: Vec<Pod>,
    pub replica_sets: Vec<ReplicaSet>,
}

pub async fn observe(client: &Client, ns: &str, mcp: &McpServer) -> Result<PoolObservation> {
    let lp = ListParams::default().labels(&labels::selector_string(mcp));
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
        .items;
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
        .items;
    Ok(PoolObservation { pods, replica_sets })
}

pub fn template_hash<K: ResourceExt>(obj: &K) -> Option<String> {
    obj.labels().get(TEMPLATE_HASH_LABEL).cloned()
}

pub fn revision_number(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The ReplicaSet with the highest revision: the one the Deployment is rolling to.
pub fn current_replica_set(rss: &[ReplicaSet]) -> Option<&ReplicaSet> {
    rss.iter().max_by_key(|rs| revision_number(rs))
}

/// The pod template of the ReplicaSet with `hash`, minus the controller-added hash label,
/// so applying it to the Deployment makes the Deployment controller adopt that ReplicaSet again.
pub fn template_of(rss: &[ReplicaSet], hash: &str) -> Option<PodTemplateSpec> {
    let rs = rss
        .iter()
        .find(|rs| template_hash(*rs).as_deref() == Some(hash))?;
    let mut tpl = rs.spec.as_ref()?.template.clone()?;
    if let Some(meta) = tpl.metadata.as_mut() {
        if let Some(l) = meta.labels.as_mut() {
            l.remove(TEMPLATE_HASH_LABEL);
        }
    }
    Some(tpl)
}

pub fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn is_terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}
