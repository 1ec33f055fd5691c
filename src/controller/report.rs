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

/// The status write: a JSON merge patch of what changed since `stored` (the
/// status the McpServer holds at `resource_version`), guarded by that version,
/// so a write computed from a stale McpServer is refused (409) rather than
/// applied. Not a server-side apply of the whole status, whose body the API
/// server parses as YAML: in an outage at N = 1,000 (a thousand status writes
/// at once) its CPU for them fell 5 % (bench/scale/HISTORY.md, 2026-12-04).
pub async fn write_status(
    ctx: &Context,
    mcp: &McpServer,
    stored: Option<&McpServerStatus>,
    status: &McpServerStatus,
    resource_version: Option<String>,
) -> Result<McpServer, kube::Error> {
    let ns = mcp.namespace().unwrap_or_default();
    let api: Api<McpServer> = Api::namespaced(ctx.client.clone(), &ns);
    let next = serde_json::to_value(status).map_err(kube::Error::SerdeError)?;
    // No status yet: all of it (a diff against the defaults would leave out
    // the zeros a reader's columns show).
    let body = match stored {
        Some(stored) => merge_diff(
            &serde_json::to_value(stored).map_err(kube::Error::SerdeError)?,
            &next,
        ),
        None => next,
    };
    let mut patch = serde_json::json!({ "status": body });
    if let Some(rv) = resource_version {
        patch["metadata"] = serde_json::json!({ "resourceVersion": rv });
    }
    let params = PatchParams {
        field_manager: Some(super::apply::FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch_status(&mcp.name_any(), &params, &Patch::Merge(&patch))
        .await
}

/// Pure: the JSON merge patch (RFC 7386) that turns `old` into `new`: changed
/// and new keys, `null` for removed ones, arrays and scalars whole.
pub fn merge_diff(old: &serde_json::Value, new: &serde_json::Value) -> serde_json::Value {
    use serde_json::{Map, Value};
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) if ov == nv => {}
                    Some(ov) => {
                        out.insert(k.clone(), merge_diff(ov, nv));
                    }
                    None => {
                        out.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                out.insert(k.clone(), Value::Null);
            }
            Value::Object(out)
        }
        _ => new.clone(),
    }
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
            (condition::READY, _)
                if c.reason.ends_with("Rejected") || c.reason == compute::NAME_CONFLICT =>
            {
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
    fn merge_diff_turns_the_old_status_into_the_new() {
        let old = serde_json::json!({
            "replicas": 2, "phase": "Ready",
            "conditions": [{"type": "Ready", "status": "True"}],
            "remediation": {"attempts": 1, "last": "x"},
            "pool": {"budget": 10, "used": 3},
        });
        let new = serde_json::json!({
            "replicas": 2, "phase": "Degraded",
            "conditions": [{"type": "Ready", "status": "False"}],
            "pool": {"budget": 10, "used": 4},
            "endpoint": "http://s",
        });
        let patch = merge_diff(&old, &new);
        assert_eq!(
            patch,
            serde_json::json!({
                "phase": "Degraded",
                "conditions": [{"type": "Ready", "status": "False"}],
                "remediation": null,
                "pool": {"used": 4},
                "endpoint": "http://s",
            })
        );
        // Applied as RFC 7386 says, it gives the new status exactly.
        let mut applied = old.clone();
        json_patch::merge(&mut applied, &patch);
        assert_eq!(applied, new);
        assert_eq!(merge_diff(&new, &new), serde_json::json!({}));
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
        assert_eq!(
            reasons(&new, &status("False", "NameConflict")),
            ["NameConflict"]
        );
    }
}
