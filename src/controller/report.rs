//! Report: the status write (only when a reader would see a change) and Events.
use super::act::Acted;
use super::context::Context;
use super::decide::Plan;
use super::observe::Observed;
use crate::api::{condition, McpServer, McpServerStatus};
use crate::builders::service;
use crate::status::compute;
use crate::status::conditions;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

/// An Event to publish after the status write.
#[derive(Debug, Clone, PartialEq, Eq)]
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
            warning: true,
            ..Self::normal(reason, action, note)
        }
    }
}

/// Server-side apply of the whole status, guarded by `resource_version` when given:
/// a write computed from a stale McpServer is refused (409) rather than applied.
pub async fn write_status(
    ctx: &Context,
    mcp: &McpServer,
    status: &McpServerStatus,
    resource_version: Option<String>,
) -> Result<McpServer, kube::Error> {
    let ns = mcp.namespace().unwrap_or_default();
    let api: Api<McpServer> = Api::namespaced(ctx.client.clone(), &ns);
    let mut metadata = serde_json::json!({"name": mcp.name_any(), "namespace": ns});
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = rv.into();
    }
    let patch = serde_json::json!({
        "apiVersion": "mcp.operator.dev/v1alpha1",
        "kind": "McpServer",
        "metadata": metadata,
        "status": status,
    });
    api.patch_status(
        &mcp.name_any(),
        &PatchParams::apply(super::apply::FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
}

/// Pure: the status after this reconcile.
pub fn status(
    mcp: &McpServer,
    obs: &Observed,
    plan: &Plan,
    acted: &Acted,
    now: Timestamp,
) -> McpServerStatus {
    let prev = mcp.status.clone().unwrap_or_default();
    compute::compute(compute::Inputs {
        previous: &prev,
        generation: mcp.metadata.generation,
        now: &Time(now),
        config_valid: plan.config_valid,
        dependency_up: obs.dependency.as_ref().and_then(|d| d.known_up()),
        dependency_message: obs
            .dependency
            .as_ref()
            .and_then(|d| d.message.as_deref())
            .unwrap_or_default(),
        desired_replicas: acted
            .deployment
            .as_ref()
            .and_then(|d| d.spec.as_ref())
            .and_then(|s| s.replicas)
            .unwrap_or(plan.desired_replicas),
        deployment: acted.deployment.as_ref().or(obs.deployment.as_ref()),
        rejected: &acted.rejections,
        not_started: &plan.remediation.not_started,
        conditions: &plan.conditions,
        endpoint: service::endpoint_url(mcp),
        pool: plan.pool.clone(),
        remediation: plan.remediation.status.clone(),
        incident: plan.remediation.incident.clone(),
        rollback_hold: plan.rollback_hold.clone(),
        rollback_target_missing: plan.rollback_target_missing,
        mcp: plan.mcp.clone(),
    })
}

/// Pure: Events for conditions that changed.
pub fn transition_events(prev: &McpServerStatus, next: &McpServerStatus) -> Vec<PendingEvent> {
    let mut events = Vec::new();
    for c in conditions::transitions(&prev.conditions, &next.conditions) {
        match (c.type_.as_str(), c.status.as_str()) {
            (condition::CONFIG_VALID, "False") => events.push(PendingEvent::warning(
                &c.reason,
                "Validate",
                c.message.clone(),
            )),
            (condition::READY, "True") => events.push(PendingEvent::normal(
                "Ready",
                "Reconcile",
                c.message.clone(),
            )),
            (condition::READY, _) if c.reason.ends_with("Rejected") => {
                events.push(PendingEvent::warning(&c.reason, "Apply", c.message.clone()))
            }
            (condition::READY, _) => events.push(PendingEvent::warning(
                "NotReady",
                "Reconcile",
                c.message.clone(),
            )),
            (condition::MCP_RESPONSIVE, "False") => events.push(PendingEvent::warning(
                &c.reason,
                "CheckMcp",
                c.message.clone(),
            )),
            (condition::POOL_BUDGET_EXCEEDED, "True") => events.push(PendingEvent::warning(
                "PoolBudgetExceeded",
                "Reconcile",
                c.message.clone(),
            )),
            _ => {}
        }
    }
    events
}

pub async fn publish(ctx: &Context, mcp: &McpServer, events: Vec<PendingEvent>) {
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
