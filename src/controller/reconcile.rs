//! One reconcile: resolve references, apply children, observe, remediate, report.
use super::apply::{apply_if_changed, delete_if_present, Applied};
use super::context::Context;
use super::error::{Error, Result};
use super::{dependency, observe, references, remediate};
use crate::api::{condition, McpServer, McpServerStatus, RollbackHold};
use crate::builders::{budget, deployment, hpa, pdb, service};
use crate::status::conditions::{self, Desired};
use crate::status::phase::{self, PhaseInputs};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

/// Longest sleep between reconciles of a quiet object (a safety net, not the trigger).
const RESYNC: Duration = Duration::from_secs(300);
/// Secrets are not watched (least privilege: get only), so re-check invalid specs on a timer.
const INVALID_RECHECK: Duration = Duration::from_secs(20);
/// How often a database outside the cluster is probed.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// An Event to publish after the status write.
pub struct PendingEvent {
    /// A pod this Event is about (set as the Event's `related` object).
    pub related_pod: Option<String>,
    pub warning: bool,
    pub reason: String,
    pub action: String,
    pub note: String,
}

impl PendingEvent {
    pub fn normal(reason: &str, action: &str, note: impl Into<String>) -> Self {
        Self {
            related_pod: None,
            warning: false,
            reason: reason.into(),
            action: action.into(),
            note: note.into(),
        }
    }
    pub fn warning(reason: &str, action: &str, note: impl Into<String>) -> Self {
        Self {
            related_pod: None,
            warning: true,
            reason: reason.into(),
            action: action.into(),
            note: note.into(),
        }
    }
}

pub async fn reconcile(mcp: Arc<McpServer>, ctx: Arc<Context>) -> Result<Action> {
    let started = std::time::Instant::now();
    let res = reconcile_inner(&mcp, &ctx).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    let result = if res.is_ok() { "ok" } else { "error" };
    ctx.metrics
        .reconciles
        .get_or_create(&crate::telemetry::metrics::ResultLabels {
            result: result.into(),
        })
        .inc();
    if res.is_ok() {
        if let Ok(mut f) = ctx.failures.lock() {
            f.remove(&object_key(&mcp));
        }
    }
    res
}

pub fn object_key(mcp: &McpServer) -> String {
    format!("{}/{}", mcp.namespace().unwrap_or_default(), mcp.name_any())
}

async fn reconcile_inner(mcp: &McpServer, ctx: &Context) -> Result<Action> {
    let ns = mcp.namespace().ok_or(Error::NoNamespace)?;
    let name = mcp.name_any();
    let client = &ctx.client;
    let now = Timestamp::now();
    let prev = mcp.status.clone().unwrap_or_default();
    let generation = mcp.metadata.generation;
    let mut desired_conds: Vec<Desired> = Vec::new();
    let mut events: Vec<PendingEvent> = Vec::new();

    // 1. References the spec makes. Problems become a condition; existing children are left alone.
    let problems = references::check(client, &ns, mcp).await?;
    let config_valid = problems.is_empty();
    desired_conds.push(match problems.first() {
        None => Desired::new(
            condition::CONFIG_VALID,
            true,
            "Valid",
            "all references resolved",
        ),
        Some(p) => Desired::new(
            condition::CONFIG_VALID,
            false,
            p.reason,
            problems
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
    });

    // 2. Connection budget.
    let pool_budget = budget::compute(&mcp.spec);
    if let Some(b) = &pool_budget {
        desired_conds.push(match &b.clamped {
            Some(c) => Desired::new(
                condition::POOL_BUDGET_EXCEEDED,
                true,
                "PoolClamped",
                c.message(b.status.per_replica_max, mcp.spec.replicas.max),
            ),
            None => Desired::new(
                condition::POOL_BUDGET_EXCEEDED,
                false,
                "WithinBudget",
                format!(
                    "{} connections at most across {} replicas",
                    b.status.total_max, mcp.spec.replicas.max
                ),
            ),
        });
    }

    // 3. Children.
    let deploy_api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let existing_deploy = deploy_api.get_opt(&name).await?;
    let pool = observe::observe(client, &ns, mcp).await?;
    let mut rollback_hold = prev
        .rollback_hold
        .clone()
        .filter(|h| Some(h.generation) == generation);
    let mut deploy = existing_deploy.clone();
    if config_valid {
        deploy = Some(
            apply_children(
                mcp,
                ctx,
                &ns,
                &name,
                existing_deploy.as_ref(),
                rollback_hold.as_ref(),
                &pool,
            )
            .await?,
        );
    }
    desired_conds.push(match pdb::build(mcp) {
        Some(_) => Desired::new(condition::DISRUPTION_BUDGET, true, "Created", "PodDisruptionBudget protects the pool"),
        None => Desired::new(
            condition::DISRUPTION_BUDGET,
            false,
            pdb::SINGLE_REPLICA_REASON,
            "no PodDisruptionBudget: replicas.max is 1, and a PDB would block every node drain; set replicas.max >= 2",
        ),
    });

    // 4. Dependency.
    let dep = dependency::observe(client, &ns, mcp).await?;
    if let Some(up) = dep.up {
        let labels = crate::telemetry::metrics::ObjectLabels {
            namespace: ns.clone(),
            name: name.clone(),
        };
        ctx.metrics
            .dependency_up
            .get_or_create(&labels)
            .set(i64::from(up));
    }

    // 5. Remediation (pure decision, then the actions).
    let desired_replicas = deploy
        .as_ref()
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.replicas)
        .unwrap_or(mcp.spec.replicas.min);
    let outcome = remediate::run(
        mcp,
        ctx,
        remediate::Inputs {
            ns: &ns,
            now,
            desired_replicas,
            dependency: &dep,
            pool: &pool,
            deploy: deploy.as_ref(),
            config_valid,
        },
    )
    .await?;
    events.extend(outcome.events);
    desired_conds.extend(outcome.conditions);
    // Ours last: it names the concrete cause (no ready endpoints, probe failed).
    if let Some(up) = dep.up {
        desired_conds.push(Desired::new(
            condition::DEPENDENCY_AVAILABLE,
            up,
            dep.reason,
            dep.message.clone(),
        ));
    }
    if let Some(hold) = outcome.new_rollback_hold {
        // Re-apply at once with the good template; don't wait for the next reconcile.
        let d = apply_children(mcp, ctx, &ns, &name, deploy.as_ref(), Some(&hold), &pool).await?;
        deploy = Some(d);
        rollback_hold = Some(hold);
    }

    // 6. Status.
    let dstat = deploy
        .as_ref()
        .and_then(|d| d.status.clone())
        .unwrap_or_default();
    let ready = dstat.ready_replicas.unwrap_or(0);
    let replicas = dstat.replicas.unwrap_or(0);
    let updated = dstat.updated_replicas.unwrap_or(0);
    let rollout_in_progress = deploy.as_ref().is_some_and(|d| {
        let obs = d.status.as_ref().and_then(|s| s.observed_generation);
        obs != d.metadata.generation || updated < desired_replicas || replicas > desired_replicas
    });
    let phase = phase::compute(PhaseInputs {
        config_valid,
        dependency_up: dep.up,
        desired: desired_replicas,
        ready,
        updated,
        rollout_in_progress,
    });
    let all_ready = desired_replicas > 0 && ready >= desired_replicas;
    desired_conds.push(if all_ready {
        Desired::new(
            condition::READY,
            true,
            "AllReplicasReady",
            format!("{ready}/{desired_replicas} replicas ready"),
        )
    } else if !config_valid {
        Desired::new(
            condition::READY,
            false,
            "InvalidSpec",
            "the spec cannot be realised; see ConfigValid",
        )
    } else {
        Desired::new(
            condition::READY,
            false,
            "ReplicasNotReady",
            format!("{ready}/{desired_replicas} replicas ready"),
        )
    });
    desired_conds.push(if rollout_in_progress && config_valid {
        Desired::new(
            condition::PROGRESSING,
            true,
            "RollingOut",
            format!("{updated}/{desired_replicas} replicas updated"),
        )
    } else {
        Desired::new(
            condition::PROGRESSING,
            false,
            "Stable",
            "no rollout in progress",
        )
    });
    desired_conds.push(match (&rollback_hold, all_ready) {
        (Some(h), _) => Desired::new(
            condition::DEGRADED,
            true,
            "RolledBack",
            format!(
                "generation {} crashed and was rolled back to revision {}; change the spec to try a new rollout",
                h.generation, h.revision
            ),
        ),
        (None, true) => Desired::new(condition::DEGRADED, false, "AllReplicasReady", "all replicas ready"),
        (None, false) if dep.up == Some(false) => {
            Desired::new(condition::DEGRADED, true, "DependencyUnavailable", dep.message.clone())
        }
        (None, false) => Desired::new(
            condition::DEGRADED,
            true,
            "ReplicasNotReady",
            format!("{ready}/{desired_replicas} replicas ready"),
        ),
    });

    let now_time = Time(now);
    let conditions = conditions::merge(&prev.conditions, &desired_conds, generation, &now_time);
    for c in conditions::transitions(&prev.conditions, &conditions) {
        if c.type_ == condition::CONFIG_VALID && c.status == "False" {
            events.push(PendingEvent::warning(
                &c.reason,
                "Validate",
                c.message.clone(),
            ));
        }
        if c.type_ == condition::READY {
            let ev = if c.status == "True" {
                PendingEvent::normal("Ready", "Reconcile", c.message.clone())
            } else {
                PendingEvent::warning("NotReady", "Reconcile", c.message.clone())
            };
            events.push(ev);
        }
        if c.type_ == condition::POOL_BUDGET_EXCEEDED && c.status == "True" {
            events.push(PendingEvent::warning(
                "PoolBudgetExceeded",
                "Reconcile",
                c.message.clone(),
            ));
        }
    }
    let status = McpServerStatus {
        observed_generation: generation,
        replicas,
        ready_replicas: ready,
        ready_display: Some(format!("{ready}/{desired_replicas}")),
        phase: Some(phase),
        endpoint: service::endpoint_url(mcp),
        conditions,
        pool: pool_budget.map(|b| b.status),
        remediation: outcome.status,
        last_incident: outcome.incident,
        rollback_hold,
    };
    if status != prev {
        let api: Api<McpServer> = Api::namespaced(client.clone(), &ns);
        let patch = serde_json::json!({
            "apiVersion": "mcp.operator.dev/v1alpha1",
            "kind": "McpServer",
            "status": status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(super::apply::FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    }
    publish(ctx, mcp, events).await;

    // A direct TCP probe has no watch to wake us: poll it at a modest interval.
    let probe_poll = mcp
        .spec
        .database
        .as_ref()
        .and_then(|d| d.probe.as_ref())
        .map(|_| PROBE_INTERVAL);
    let requeue = if !config_valid {
        INVALID_RECHECK
    } else {
        outcome
            .requeue_after
            .unwrap_or(RESYNC)
            .min(RESYNC)
            .min(probe_poll.unwrap_or(RESYNC))
    };
    Ok(Action::requeue(requeue))
}

#[allow(clippy::too_many_arguments)]
async fn apply_children(
    mcp: &McpServer,
    ctx: &Context,
    ns: &str,
    name: &str,
    existing_deploy: Option<&Deployment>,
    hold: Option<&RollbackHold>,
    pool: &observe::PoolObservation,
) -> Result<Deployment> {
    let client = &ctx.client;
    let deploy_api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let mut desired = deployment::build(mcp);
    if let Some(h) = hold {
        if let (Some(tpl), Some(spec)) = (
            observe::template_of(&pool.replica_sets, &h.revision),
            desired.spec.as_mut(),
        ) {
            spec.template = tpl;
        }
    }
    let (a, deploy) = apply_if_changed(&deploy_api, name, existing_deploy, desired).await?;
    count(ctx, a);

    let svc_api: Api<Service> = Api::namespaced(client.clone(), ns);
    let svc = svc_api.get_opt(name).await?;
    let (a, _) = apply_if_changed(&svc_api, name, svc.as_ref(), service::build(mcp)).await?;
    count(ctx, a);

    let pdb_api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    let existing_pdb = pdb_api.get_opt(name).await?;
    match pdb::build(mcp) {
        Some(p) => count(
            ctx,
            apply_if_changed(&pdb_api, name, existing_pdb.as_ref(), p)
                .await?
                .0,
        ),
        None => {
            delete_if_present(&pdb_api, name, owned(mcp, existing_pdb.as_ref())).await?;
        }
    }

    let hpa_api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
    let existing_hpa = hpa_api.get_opt(name).await?;
    match hpa::build(mcp) {
        Some(h) => count(
            ctx,
            apply_if_changed(&hpa_api, name, existing_hpa.as_ref(), h)
                .await?
                .0,
        ),
        None => {
            delete_if_present(&hpa_api, name, owned(mcp, existing_hpa.as_ref())).await?;
        }
    }
    Ok(deploy)
}

/// Only delete objects we own: a same-named object someone else made is not ours to remove.
fn owned<'a, K: Resource>(mcp: &McpServer, obj: Option<&'a K>) -> Option<&'a K> {
    let uid = mcp.meta().uid.as_deref()?;
    obj.filter(|o| {
        o.meta()
            .owner_references
            .as_ref()
            .is_some_and(|rs| rs.iter().any(|r| r.uid == uid))
    })
}

fn count(ctx: &Context, a: Applied) {
    if a == Applied::Unchanged {
        ctx.metrics.writes_skipped.inc();
    }
}

async fn publish(ctx: &Context, mcp: &McpServer, events: Vec<PendingEvent>) {
    let reference = mcp.object_ref(&());
    for e in events {
        let ev = Event {
            type_: if e.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: e.reason,
            note: Some(crate::redact::redact(&e.note)),
            action: e.action,
            secondary: e.related_pod.map(|p| ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(p),
                namespace: mcp.namespace(),
                ..Default::default()
            }),
        };
        if let Err(err) = ctx.recorder.publish(&ev, &reference).await {
            tracing::warn!(error = %err, "failed to publish event");
        }
    }
}
