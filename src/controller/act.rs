//! Act: persist intent, then apply children and evict, recording every outcome.
//!
//! Nothing is written or evicted before the remediation memory that justifies it
//! (`status.remediation`, the rollback hold) is stored with a write guarded by the
//! McpServer's `resourceVersion`: a reconcile running on a stale copy gets a 409
//! and requeues, instead of re-applying a rolled-back template or losing an action.
//! The one exception is a new server's first reconcile (`needs_intent`).
use super::apply::{self, HANDOVER_MANAGER};
use super::context::Context;
use super::decide::{Change, Plan};
use super::error::{Error, Result};
use super::remediate::Eviction;
use super::report::{self, PendingEvent};
use crate::api::{McpServer, McpServerStatus};
use crate::controller::cached::CachedDeployment;
use crate::status::compute::ChildRejected;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, EvictParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

#[derive(Default)]
pub struct Acted {
    /// The Deployment as the API server returned it, when written.
    pub deployment: Option<CachedDeployment>,
    /// Children the API server refused (4xx other than conflict/throttling),
    /// or whose names are held by objects that are not ours: a problem to
    /// report, not an error to retry hot.
    pub rejections: Vec<ChildRejected>,
    pub events: Vec<PendingEvent>,
    /// The status as the intent write stored it, and the McpServer's
    /// `resourceVersion` after that write.
    pub intent: Option<(McpServerStatus, Option<String>)>,
    /// Evictions that did not happen now (PDB said not yet, or pod gone).
    pub deferred: usize,
}

/// The status to persist before acting: the previous one with the new remediation
/// memory. Full, because a server-side apply drops the fields it leaves out.
pub fn intent(prev: &McpServerStatus, plan: &Plan) -> McpServerStatus {
    McpServerStatus {
        remediation: plan.remediation.status.clone(),
        last_incident: plan.remediation.incident.clone(),
        rollback_hold: plan.rollback_hold.clone(),
        ..prev.clone()
    }
}

/// A new server's first reconcile needs no intent first: it evicts and rolls
/// back nothing, so no remediation memory must be stored before acting, and a
/// copy of an object never reconciled can be stale only by a spec edit made
/// since it was created, which the next reconcile applies. The report after
/// acting stores the status (guarded by the same `resourceVersion`). One write
/// and one round trip fewer per new server, which bounds how fast thousands
/// come up. A Deployment deleted later is re-created behind an intent as usual.
pub fn needs_intent(mcp: &McpServer, plan: &Plan) -> bool {
    let first = mcp.status.is_none()
        && matches!(
            plan.deployment.change,
            Change::Apply(_, apply::WriteReason::Missing)
        );
    !(first
        && plan.remediation.evictions.is_empty()
        && plan.rollback_hold.is_none()
        && plan.deployment.hand_over_replicas.is_none())
}

fn rejected(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if (400..500).contains(&s.code) && s.code != 409 && s.code != 429)
}

/// What one child's write came to.
enum Written<K> {
    /// Kept, deleted, or refused by the API server (a spec problem to report).
    Nothing(Option<ChildRejected>),
    Applied(K),
}

async fn write<K>(
    ctx: &Context,
    ns: &str,
    name: &str,
    kind: &'static str,
    change: &Change<K>,
) -> Result<Written<K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    match change {
        Change::Keep => {
            ctx.metrics.writes_skipped.inc();
            Ok(Written::Nothing(None))
        }
        Change::Delete => apply::delete(&api, name)
            .await
            .map(|_| Written::Nothing(None))
            .map_err(|e| Error::apply(kind, e)),
        Change::Apply(obj, why) => {
            ctx.metrics.child_writes(kind, why.as_label());
            match apply::apply(&api, name, obj).await {
                Ok(o) => Ok(Written::Applied(o)),
                Err(e) if rejected(&e) => Ok(Written::Nothing(Some(ChildRejected::invalid(
                    kind,
                    crate::redact::redact(&api_message(&e)),
                )))),
                Err(e) => Err(Error::apply(kind, e)),
            }
        }
    }
}

impl Acted {
    /// Record one child's write; the applied object, if any.
    fn take<K>(&mut self, w: Result<Written<K>>) -> Result<Option<K>> {
        match w? {
            Written::Applied(o) => Ok(Some(o)),
            Written::Nothing(rejected) => {
                self.rejections.extend(rejected);
                Ok(None)
            }
        }
    }
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// Who holds the name of a child we are about to create: a GET of its
/// metadata, only when the child is missing from the cache, which sees only
/// objects with our label (`observe` already hides a labelled one that is not
/// ours). A steady state never comes here. None when the name is free or the
/// object is ours (created by us, not in the cache yet).
async fn claim<K>(
    ctx: &Context,
    mcp: &McpServer,
    ns: &str,
    kind: &'static str,
    change: &Change<K>,
) -> Result<Option<ChildRejected>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let Change::Apply(obj, apply::WriteReason::Missing) = change else {
        return Ok(None);
    };
    let name = obj.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let held = api.get_metadata_opt(&name).await.map_err(Error::Observe)?;
    Ok(held.and_then(|h| {
        apply::held_by_another(kind, ns, &name, &h.metadata, mcp.meta().uid.as_deref())
    }))
}

/// The children whose names are held by objects that are not ours.
async fn conflicts(
    ctx: &Context,
    mcp: &McpServer,
    ns: &str,
    plan: &Plan,
) -> Result<Vec<ChildRejected>> {
    let (deployment, service, pdb, hpa) = futures::join!(
        claim(ctx, mcp, ns, "Deployment", &plan.deployment.change),
        claim(ctx, mcp, ns, "Service", &plan.service),
        claim(ctx, mcp, ns, "PodDisruptionBudget", &plan.pdb),
        claim(ctx, mcp, ns, "HorizontalPodAutoscaler", &plan.hpa),
    );
    Ok([deployment?, service?, pdb?, hpa?]
        .into_iter()
        .flatten()
        .collect())
}

/// `key` is the McpServer's `namespace/name` (`reconcile::object_key`).
pub async fn act(ctx: &Context, mcp: &McpServer, key: &str, plan: &Plan) -> Result<Acted> {
    let ns = mcp.namespace().ok_or(Error::NoNamespace)?;
    let name = mcp.name_any();
    let mut out = Acted::default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    if !plan.acts() {
        // Gate changes alone (a pod appeared, a wedge began or ended).
        set_gates(ctx, &pods, plan, &mut out).await;
        return Ok(out);
    }
    // A taken name stops every child write, not only that child's: an HPA
    // would scale someone else's Deployment, and a Deployment without its
    // Service would hold database connections for nothing.
    out.rejections = conflicts(ctx, mcp, &ns, plan).await?;
    let writes_children = out.rejections.is_empty();
    if !writes_children && plan.remediation.evictions.is_empty() {
        set_gates(ctx, &pods, plan, &mut out).await;
        return Ok(out);
    }
    if needs_intent(mcp, plan) {
        let prev = mcp.status.clone().unwrap_or_default();
        let status = intent(&prev, plan);
        let written = report::write_status(
            ctx,
            mcp,
            mcp.status.as_ref(),
            &status,
            mcp.resource_version(),
        )
        .await
        .map_err(Error::Status)?;
        ctx.metrics.status_written("intent");
        ctx.superseded
            .record(key, mcp.resource_version(), written.resource_version());
        out.intent = Some((status, written.resource_version()));
    }

    if writes_children {
        write_children(ctx, &ns, &name, plan, &mut out).await?;
    }
    // Out of the Service first, then evicted.
    set_gates(ctx, &pods, plan, &mut out).await;
    for ev in &plan.remediation.evictions {
        evict(&pods, ev, &mut out).await;
    }
    Ok(out)
}

/// The replica hand-over, then every child at once.
async fn write_children(
    ctx: &Context,
    ns: &str,
    name: &str,
    plan: &Plan,
    out: &mut Acted,
) -> Result<()> {
    if let Some(replicas) = plan.deployment.hand_over_replicas {
        let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
        let patch = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas},
        });
        api.patch(
            name,
            &PatchParams::apply(HANDOVER_MANAGER),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|e| Error::apply("Deployment", e))?;
    }
    // The children are independent of one another: written at once, one
    // round trip instead of four (the first reconcile of a new server, or a
    // spec change, waits on the slowest of them).
    let (deployment, service, pdb, hpa) = futures::join!(
        write(ctx, ns, name, "Deployment", &plan.deployment.change),
        write(ctx, ns, name, "Service", &plan.service),
        write(ctx, ns, name, "PodDisruptionBudget", &plan.pdb),
        write(ctx, ns, name, "HorizontalPodAutoscaler", &plan.hpa),
    );
    out.deployment = out.take(deployment)?.map(CachedDeployment::from);
    out.take(service)?;
    out.take(pdb)?;
    out.take(hpa)?;
    Ok(())
}

/// Set each pod's readiness gate. A failure (the pod went, a conflict) is logged
/// and retried by the next reconcile, which sees the pod's conditions again;
/// an eviction goes ahead regardless: the gate only shortens its disruption.
async fn set_gates(ctx: &Context, pods: &Api<Pod>, plan: &Plan, out: &mut Acted) {
    let now = k8s_openapi::jiff::Timestamp::now();
    for g in &plan.gates {
        let patch = g.patch(now);
        match pods
            .patch_status(&g.pod, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            Ok(_) => {
                ctx.metrics.child_writes("PodReadinessGate", g.reason);
                if !g.healthy {
                    tracing::info!(pod = %g.pod, reason = g.reason, "readiness gate False: out of the Service");
                    out.events.push(PendingEvent::normal(
                        "PodGatedOut",
                        "SetReadinessGate",
                        format!(
                            "{} taken out of the Service ({}): {}",
                            g.pod, g.reason, g.message
                        ),
                    ));
                }
            }
            Err(e) => tracing::warn!(
                pod = %g.pod,
                error = %crate::redact::redact(&e.to_string()),
                "cannot set the readiness gate"
            ),
        }
    }
}

/// One eviction; its outcome becomes an Event before the next one is tried. A
/// failure stops nothing else: the action is already recorded, the next reconcile
/// looks again.
async fn evict(pods: &Api<Pod>, ev: &Eviction, out: &mut Acted) {
    let Eviction {
        pod,
        reason,
        message,
    } = ev;
    match pods.evict(pod, &EvictParams::default()).await {
        Ok(_) => tracing::info!(pod = %pod, %reason, %message, "evicted unhealthy pod"),
        Err(kube::Error::Api(s)) if s.code == 429 || s.code == 404 => {
            // 429: the PDB says not now; 404: already gone.
            tracing::info!(pod = %pod, code = s.code, "eviction deferred");
            out.deferred += 1;
            out.events.push(PendingEvent::normal(
                "EvictionDeferred",
                "Evict",
                format!("eviction of {pod} deferred ({}): {}", s.code, s.message),
            ));
        }
        Err(e) => {
            tracing::warn!(pod = %pod, error = %crate::redact::redact(&e.to_string()), "eviction failed");
            out.deferred += 1;
            out.events.push(PendingEvent::warning(
                "EvictionFailed",
                "Evict",
                crate::redact::redact(&format!("eviction of {pod} failed: {}", api_message(&e))),
            ));
        }
    }
}
