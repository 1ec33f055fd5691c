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

/// Pure: Events for conditions that changed. Readiness is told when it is
/// reached and when it is lost, not at each step of a server coming up (a new
/// server is not ready, and its reason moves on as pods start: at a thousand
/// servers those were most of the operator's writes).
pub fn transition_events(prev: &McpServerStatus, next: &McpServerStatus) -> Vec<PendingEvent> {
    let mut events = Vec::new();
    let was_ready = conditions::is_true(&prev.conditions, condition::READY);
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
            (condition::READY, _) if was_ready => events.push(PendingEvent::warning(
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

/// Queue the Events (see [`super::events`]): never waits for the API server.
pub fn publish(ctx: &Context, mcp: &McpServer, events: Vec<PendingEvent>) {
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
        ctx.events.push(&reference, ev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    fn status(ready: &str, reason: &str) -> McpServerStatus {
        McpServerStatus {
            conditions: vec![Condition {
                type_: condition::READY.into(),
                status: ready.into(),
                reason: reason.into(),
                message: format!("{ready} {reason}"),
                last_transition_time: Time(Timestamp::from_second(100).expect("valid timestamp")),
                observed_generation: Some(1),
            }],
            ..Default::default()
        }
    }

    fn reasons(prev: &McpServerStatus, next: &McpServerStatus) -> Vec<String> {
        transition_events(prev, next)
            .into_iter()
            .map(|e| e.reason)
            .collect()
    }

    #[test]
    fn readiness_is_told_when_reached_and_when_lost() {
        let new = McpServerStatus::default();
        let starting = status("False", "ReplicasNotReady");
        let progressing = status("False", "Progressing");
        let ready = status("True", "AllReady");
        // Coming up: no warning per step, one Event when Ready.
        assert!(reasons(&new, &starting).is_empty());
        assert!(reasons(&starting, &progressing).is_empty());
        assert_eq!(reasons(&progressing, &ready), ["Ready"]);
        // Lost: one warning, not another as the reason moves on.
        assert_eq!(reasons(&ready, &starting), ["NotReady"]);
        assert!(reasons(&starting, &progressing).is_empty());
        // A rejected child is told at once, ready before or not.
        assert_eq!(
            reasons(&new, &status("False", "DeploymentRejected")),
            ["DeploymentRejected"]
        );
    }
}
