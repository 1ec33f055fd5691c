//! Observe: the one read step of a reconcile, and helpers over what it read.
use super::apply;
use super::context::Context;
use super::dependency;
use super::error::{Error, Result};
use super::mcp_prober::{self, PodCheck as McpCheck};
use super::references::{self, Problem};
use super::stores::Stores;
use crate::api::McpServer;
use crate::builders::labels;
use crate::controller::cached::{CachedDeployment, CachedPod, CachedReplicaSet};
use crate::remediation::DependencyObs;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{PodCondition, PodTemplateSpec, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::{Api, ResourceExt};

pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// Everything one reconcile reads, all from the caches (and the prober's last
/// verdict for a database outside the cluster).
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub deployment: Option<CachedDeployment>,
    pub service: Option<Service>,
    pub pdb: Option<PodDisruptionBudget>,
    pub hpa: Option<HorizontalPodAutoscaler>,
    pub pods: Vec<CachedPod>,
    /// Without their pod templates (`CachedReplicaSet`).
    pub replica_sets: Vec<CachedReplicaSet>,
    /// The pod template of the revision a rollback hold needs, fetched by
    /// [`rollback_template`] only then: (template hash, template).
    pub rollback_template: Option<(String, PodTemplateSpec)>,
    /// None when no dependency is declared (or watched).
    pub dependency: Option<DependencyObs>,
    /// Spec references that cannot be resolved.
    pub problems: Vec<Problem>,
    /// The last MCP check of each Ready pod (pod name, check).
    pub mcp_checks: Vec<(String, McpCheck)>,
}

pub async fn observe(ctx: &Context, ns: &str, mcp: &McpServer) -> Result<Observed> {
    let s = &ctx.stores;
    let name = mcp.name_any();
    let selector = labels::selector(mcp);
    let pods = Stores::selected(&s.pods, &s.pods_by_server, ns, &selector);
    let mut problems = references::check_scope(ctx.scope.as_deref(), ns, mcp);
    if problems.is_empty() {
        // One problem per cause: check_scope already names a Service elsewhere.
        problems.extend(dependency::scope_problem(
            ctx.own_namespace_dependencies,
            ns,
            mcp,
        ));
    }
    problems.extend(references::from_pods(ns, mcp, &pods));
    let slices = s.endpoint_slices.state();
    let dependency = dependency::observe(
        ns,
        mcp,
        &slices,
        &ctx.verdicts,
        ctx.own_namespace_dependencies,
    );
    let mcp_checks = pods
        .iter()
        .filter(|p| pod_ready(p) && !is_terminating(p))
        .filter_map(|p| {
            ctx.mcp_verdicts
                .get(&mcp_prober::pod_key(p))
                .map(|c| (p.name_any(), c))
        })
        .collect();
    // A cached object with a child's name but not our controller reference
    // (our label is anyone's to set) is not our child: left out, the child
    // reads as missing, and `act` finds the name taken before creating it.
    let uid = mcp.metadata.uid.as_deref();
    let ours = |meta: &kube::api::ObjectMeta| apply::controlled_by(meta, uid);
    Ok(Observed {
        mcp_checks,
        deployment: Stores::child(&s.deployments, ns, &name).filter(|c| ours(&c.metadata)),
        service: Stores::child(&s.services, ns, &name).filter(|c| ours(&c.metadata)),
        pdb: Stores::child(&s.pdbs, ns, &name).filter(|c| ours(&c.metadata)),
        hpa: Stores::child(&s.hpas, ns, &name).filter(|c| ours(&c.metadata)),
        pods,
        replica_sets: Stores::selected(&s.replica_sets, &s.replica_sets_by_server, ns, &selector),
        rollback_template: None,
        dependency,
        problems,
    })
}

/// The pod template of the ReplicaSet with `hash` among `obs.replica_sets`, read
/// from the API server (one GET): the cache keeps ReplicaSets without templates,
/// which are most of a ReplicaSet and needed only for a rollback. None when that
/// ReplicaSet is gone.
pub async fn rollback_template(
    ctx: &Context,
    ns: &str,
    obs: &Observed,
    hash: &str,
) -> Result<Option<(String, PodTemplateSpec)>> {
    let Some(name) = of_revision(&obs.replica_sets, hash).map(ResourceExt::name_any) else {
        return Ok(None);
    };
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), ns);
    let rs = api.get_opt(&name).await.map_err(Error::Observe)?;
    Ok(rs
        .as_ref()
        .filter(|rs| is_revision(*rs, hash))
        .and_then(template_without_hash)
        .map(|tpl| (hash.to_string(), tpl)))
}

pub fn template_hash<K: ResourceExt>(obj: &K) -> Option<String> {
    obj.labels().get(TEMPLATE_HASH_LABEL).cloned()
}

pub fn revision_number(rs: &CachedReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The ReplicaSet with the highest revision: the one the Deployment is rolling to.
pub fn current_replica_set(rss: &[CachedReplicaSet]) -> Option<&CachedReplicaSet> {
    rss.iter().max_by_key(|rs| revision_number(rs))
}

/// The template fetched for revision `hash`, if any.
pub fn template_of(obs: &Observed, hash: &str) -> Option<PodTemplateSpec> {
    obs.rollback_template
        .as_ref()
        .filter(|(h, _)| h == hash)
        .map(|(_, tpl)| tpl.clone())
}

/// Is a ReplicaSet of revision `hash` in the cache?
pub fn has_revision(obs: &Observed, hash: &str) -> bool {
    of_revision(&obs.replica_sets, hash).is_some()
}

/// The ReplicaSet of revision (template hash) `hash`.
fn of_revision<'a>(rss: &'a [CachedReplicaSet], hash: &str) -> Option<&'a CachedReplicaSet> {
    rss.iter().find(|rs| is_revision(*rs, hash))
}

fn is_revision<K: ResourceExt>(rs: &K, hash: &str) -> bool {
    rs.labels().get(TEMPLATE_HASH_LABEL).map(String::as_str) == Some(hash)
}

/// A ReplicaSet's pod template minus the controller-added hash label, so applying
/// it to the Deployment makes the Deployment controller adopt that ReplicaSet again.
pub(crate) fn template_without_hash(rs: &ReplicaSet) -> Option<PodTemplateSpec> {
    let mut tpl = rs.spec.as_ref()?.template.clone()?;
    if let Some(meta) = tpl.metadata.as_mut() {
        if let Some(l) = meta.labels.as_mut() {
            l.remove(TEMPLATE_HASH_LABEL);
        }
    }
    Some(tpl)
}

/// Are the pod's containers ready (the kubelet's verdict)? Not the pod's Ready
/// condition: that one also includes our readiness gate, and what the gate is
/// decided from must not depend on the gate. Falls back to Ready for pods
/// without ContainersReady.
pub fn pod_ready(p: &CachedPod) -> bool {
    readiness_condition(p).is_some_and(|c| c.status == "True")
}

/// The condition [`pod_ready`] reads: ContainersReady, else Ready.
pub fn readiness_condition(p: &CachedPod) -> Option<&PodCondition> {
    let cs = p.status.as_ref()?.conditions.as_ref()?;
    cs.iter()
        .find(|c| c.type_ == "ContainersReady")
        .or_else(|| cs.iter().find(|c| c.type_ == "Ready"))
}

pub fn is_terminating(p: &CachedPod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}
