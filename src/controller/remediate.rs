//! The remediation engine seen from the controller: its Observation built from what
//! the reconcile observed, and its Decision translated into evictions, a rollback
//! hold, conditions and Events. Pure; `act` carries the evictions out.
use super::observe::{self, Observed};
use super::report::PendingEvent;
use crate::api::{McpServer, RollbackHold};
use crate::builders::pdb;
use crate::controller::cached::{CachedDeployment, CachedPod, CachedReplicaSet};
use crate::remediation::{
    self, Action, DependencyObs, EventType, LastIncident, Observation, OverrideRequest, PodObs,
    Policy, RemediationStatus, RolloutObs, OVERRIDE_ANNOTATION,
};
use crate::status::conditions::Desired;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use std::time::Duration;

/// An eviction the engine asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eviction {
    pub pod: String,
    pub reason: String,
    pub message: String,
}

/// What remediation wants: the engine's verdict, translated for the shell.
#[derive(Default)]
pub struct Remediation {
    pub status: Option<RemediationStatus>,
    pub incident: Option<LastIncident>,
    pub conditions: Vec<Desired>,
    pub events: Vec<PendingEvent>,
    pub evictions: Vec<Eviction>,
    /// Set when this decision rolls back: the Deployment keeps the good template.
    pub new_rollback_hold: Option<RollbackHold>,
    pub requeue_after: Option<Duration>,
    /// (kind, reason) of each action, for the actions counter.
    pub action_labels: Vec<(String, String)>,
    pub blocked: bool,
    pub incident_resolved_seconds: Option<u64>,
    /// Pods that never started, with the cause (pod, cause).
    pub not_started: Vec<(String, String)>,
}

pub fn policy(mcp: &McpServer) -> Policy {
    let r = &mcp.spec.remediation;
    let to_u64 = |v: i32| u64::try_from(v).unwrap_or(0);
    Policy {
        unhealthy_after_seconds: to_u64(r.unhealthy_after_seconds),
        max_actions: u32::try_from(r.max_actions).unwrap_or(0),
        window_seconds: to_u64(r.window_seconds),
        cooldown_seconds: to_u64(r.cooldown_seconds),
        grace_after_dependency_recovery_seconds: to_u64(r.grace_seconds),
        pause_while_dependency_down: r.pause_while_dependency_down,
        rollback_failed_rollouts: r.rollback_failed_rollouts,
        enabled: r.enabled,
        mcp_unhealthy_after_seconds: to_u64(mcp.spec.health.mcp.unhealthy_after_seconds),
        mcp_period_seconds: to_u64(mcp.spec.health.mcp.period_seconds),
        ..Policy::default()
    }
    .sanitized()
}

/// Per-pod facts the engine needs; the readiness condition's transition time (see
/// [`observe::readiness_condition`]) is when it became (un)ready.
pub fn pod_obs(p: &CachedPod) -> PodObs {
    let st = p.status.as_ref();
    let ready_cond = observe::readiness_condition(p);
    let containers = st.and_then(|s| s.container_statuses.as_ref());
    let restart_count = containers
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0);
    let waiting_reason = containers.and_then(|cs| {
        cs.iter()
            .filter_map(|c| {
                c.state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.clone())
            })
            .max_by_key(|r| {
                matches!(
                    r.as_str(),
                    "CrashLoopBackOff"
                        | "ImagePullBackOff"
                        | "ErrImagePull"
                        | "CreateContainerConfigError"
                )
            })
    });
    let (started, start_failure) = start_state(p);
    PodObs {
        started,
        start_failure,
        name: p.name_any(),
        ready: observe::pod_ready(p),
        ready_transition: ready_cond.and_then(|c| c.last_transition_time.clone()),
        created_at: p.metadata.creation_timestamp.clone(),
        restart_count: u32::try_from(restart_count).unwrap_or(0),
        waiting_reason,
        revision: observe::template_hash(p),
        deleting: observe::is_terminating(p),
        mcp_unresponsive_since: None,
        mcp_checked_at: None,
    }
}

/// When the MCP checks of a Ready pod started failing, and when the last of
/// them ran (the engine judges only fresh results). None with checks off.
/// A failure to connect counts only while another pod of the server answers:
/// a NetworkPolicy that keeps the operator out keeps it from every pod, but
/// one pod unreachable while a sibling answers is that pod's node or network.
/// A lost node's pods stay Ready, and in the Service, until the node
/// controller's grace period ends (50 s by default): evicting them marks them
/// terminating, which takes them out of the endpoints and starts their
/// replacements at once.
fn mcp_unresponsive_since(mcp: &McpServer, obs: &Observed, pod: &str) -> Option<(Time, Time)> {
    if !mcp.spec.health.mcp.enabled {
        return None;
    }
    let (_, check) = obs.mcp_checks.iter().find(|(name, _)| name == pod)?;
    let sibling_answers = obs
        .mcp_checks
        .iter()
        .any(|(name, c)| name != pod && c.answers());
    check
        .unresponsive_since()
        .or_else(|| check.unreachable_since().filter(|_| sibling_answers))
        .map(|since| (Time(since), Time(check.checked_at)))
}

/// Waiting reasons of a container on its normal way up.
const STARTING: &[&str] = &["ContainerCreating", "PodInitializing"];

/// Has any container of the pod ever run? If not, why not, as the kubelet or the
/// scheduler said it ("Unschedulable: 0/1 nodes are available: ...",
/// "ImagePullBackOff: ...", "CreateContainerConfigError: secret \"x\" not found").
pub fn start_state(p: &CachedPod) -> (bool, Option<String>) {
    let st = p.status.as_ref();
    let containers = st
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let started = containers.iter().any(|c| {
        c.restart_count > 0
            || c.state
                .as_ref()
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
            || c.last_state
                .as_ref()
                .is_some_and(|s| s.terminated.is_some())
    });
    if started {
        return (true, None);
    }
    let inits = st
        .and_then(|s| s.init_container_statuses.as_deref())
        .unwrap_or_default();
    let waiting = inits.iter().chain(containers).find_map(|c| {
        let w = c.state.as_ref()?.waiting.as_ref()?;
        let reason = w.reason.as_deref()?;
        (!STARTING.contains(&reason)).then(|| match &w.message {
            Some(m) if !m.is_empty() => format!("{reason}: {m}"),
            _ => reason.to_string(),
        })
    });
    let unscheduled = || {
        st.and_then(|s| s.conditions.as_ref())?
            .iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            .map(|c| {
                format!(
                    "{}: {}",
                    c.reason.as_deref().unwrap_or("Unschedulable"),
                    c.message.as_deref().unwrap_or("")
                )
            })
    };
    (false, waiting.or_else(unscheduled))
}

pub fn rollout_obs(
    replica_sets: &[CachedReplicaSet],
    deploy: Option<&CachedDeployment>,
    generation: Option<i64>,
) -> RolloutObs {
    let current = observe::current_replica_set(replica_sets);
    let current_rev = current.map(observe::revision_number);
    // The newest older ReplicaSet that still has available pods: what we would roll back to.
    let previous_good = replica_sets
        .iter()
        .filter(|rs| Some(observe::revision_number(rs)) < current_rev)
        .filter(|rs| {
            rs.status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0)
                > 0
        })
        .max_by_key(|rs| observe::revision_number(rs))
        .and_then(observe::template_hash);
    let deadline = deploy
        .and_then(|d| d.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            })
        });
    RolloutObs {
        current_revision: current.and_then(observe::template_hash),
        previous_good_revision: previous_good,
        progress_deadline_exceeded: deadline,
        generation,
    }
}

/// The manual override token and the field manager that last set it.
pub fn override_request(mcp: &McpServer) -> Option<OverrideRequest> {
    let token = mcp
        .annotations()
        .get(OVERRIDE_ANNOTATION)?
        .trim()
        .to_string();
    if token.is_empty() {
        return None;
    }
    let manager = mcp
        .metadata
        .managed_fields
        .as_ref()
        .and_then(|mfs| {
            mfs.iter()
                .filter(|m| sets_override(m))
                .max_by_key(|m| m.time.as_ref().map(|t| t.0))
        })
        .and_then(|m| m.manager.clone());
    Some(OverrideRequest { token, manager })
}

/// Does this managed-fields entry set the override annotation?
pub fn sets_override(e: &ManagedFieldsEntry) -> bool {
    e.fields_v1.as_ref().is_some_and(|f| {
        f.0.get("f:metadata")
            .and_then(|m| m.get("f:annotations"))
            .is_some_and(|a| a.get(format!("f:{OVERRIDE_ANNOTATION}")).is_some())
    })
}

/// How many pods remediation may take down at once. Not the PDB's live
/// `disruptionsAllowed`: that is 0 as soon as one pod is unready, yet the PDB's
/// `unhealthyPodEvictionPolicy: AlwaysAllow` lets exactly those pods be evicted.
/// The engine subtracts pods already terminating.
fn disruption_allowance(mcp: &McpServer, desired: i32) -> u32 {
    if pdb::build(mcp).is_none() {
        // No PDB (single replica): remediation may take the one pod, the kubelet restarts it.
        return 1;
    }
    u32::try_from(pdb::max_disruptions(mcp, desired)).unwrap_or(0)
}

/// Pure: the remediation engine's decision on what was observed.
pub fn decide(
    mcp: &McpServer,
    obs: &Observed,
    now: Timestamp,
    desired_replicas: i32,
    config_valid: bool,
) -> Remediation {
    let prev = mcp.status.clone().unwrap_or_default();
    if !config_valid {
        return Remediation {
            status: prev.remediation,
            incident: prev.last_incident,
            ..Default::default()
        };
    }
    // No dependency declared: nothing to hold for.
    let dependency = obs.dependency.clone().unwrap_or_else(DependencyObs::up);
    let observation = Observation {
        now: Time(now),
        dependency,
        pods: obs
            .pods
            .iter()
            .map(|p| {
                let mut o = pod_obs(p);
                if let Some((since, checked)) = mcp_unresponsive_since(mcp, obs, &o.name) {
                    o.mcp_unresponsive_since = Some(since);
                    o.mcp_checked_at = Some(checked);
                }
                o
            })
            .collect(),
        rollout: rollout_obs(
            &obs.replica_sets,
            obs.deployment.as_ref(),
            mcp.metadata.generation,
        ),
        desired_replicas: u32::try_from(desired_replicas).unwrap_or(0),
        disruption_allowance: disruption_allowance(mcp, desired_replicas),
        override_request: override_request(mcp),
        previous: prev.remediation.clone().unwrap_or_default(),
        previous_incident: prev.last_incident.clone(),
    };
    let decision = remediation::decide(&policy(mcp), &observation);
    let mut out = Remediation {
        requeue_after: decision.requeue_after,
        blocked: decision.blocked,
        incident_resolved_seconds: decision.incident_resolved_seconds,
        ..Default::default()
    };
    for action in &decision.actions {
        out.action_labels.push((
            action.kind().as_label().to_string(),
            action.reason().to_string(),
        ));
        match action {
            Action::Evict {
                pod,
                reason,
                message,
            } => out.evictions.push(Eviction {
                pod: pod.clone(),
                reason: reason.clone(),
                message: message.clone(),
            }),
            Action::Rollback { to_revision, .. } => {
                if let Some(generation) = mcp.metadata.generation {
                    out.new_rollback_hold = Some(RollbackHold {
                        generation,
                        revision: to_revision.clone(),
                    });
                }
            }
        }
    }
    for e in &decision.events {
        let mut ev = match e.type_ {
            EventType::Normal => PendingEvent::normal(&e.reason, &e.action, e.note.clone()),
            EventType::Warning => PendingEvent::warning(&e.reason, &e.action, e.note.clone()),
        };
        // Name the evicted pod as the Event's related object: the recorder folds Events
        // with the same key into one series, which would hide all but the first pod.
        ev.related_pod = decision.actions.iter().find_map(|a| match a {
            Action::Evict { pod, message, .. }
                if e.action == "Evict" && e.note.starts_with(message.as_str()) =>
            {
                Some(pod.clone())
            }
            _ => None,
        });
        out.events.push(ev);
    }
    for c in &decision.conditions {
        out.conditions.push(Desired::with_status(
            c.type_,
            c.status.as_str(),
            c.reason.clone(),
            c.message.clone(),
        ));
    }
    // Only pods with a known cause: a pod still being created is not "stuck".
    let failing: Vec<String> = observation
        .pods
        .iter()
        .filter(|p| !p.started && p.start_failure.is_some())
        .map(|p| p.name.clone())
        .collect();
    out.not_started = decision
        .not_started
        .iter()
        .filter(|n| failing.contains(&n.pod))
        .map(|n| (n.pod.clone(), n.cause.clone()))
        .collect();
    out.status = Some(decision.status);
    out.incident = decision.incident;
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use serde_json::json;

    #[test]
    fn an_unreachable_pod_is_unresponsive_only_while_a_sibling_answers() {
        use crate::controller::mcp_prober::PodCheck;
        use crate::mcpcheck::{Facts, Failure, FailureKind};
        let period = std::time::Duration::from_secs(10);
        let at = |s: i64| {
            k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + s)
                .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
        };
        let failed = |kind| {
            PodCheck::next(
                None,
                Err(Failure {
                    kind,
                    detail: "x".into(),
                }),
                at(10),
                period,
            )
            .0
        };
        let answered = PodCheck::next(None, Ok(Facts::default()), at(10), period).0;
        let mcp = McpServer::test();
        let obs = |checks: Vec<(&str, PodCheck)>| Observed {
            mcp_checks: checks
                .into_iter()
                .map(|(n, c)| (n.to_string(), c))
                .collect(),
            ..Observed::default()
        };
        // Cut off (a lost node) while a sibling answers.
        let o = obs(vec![
            ("a", failed(FailureKind::Connect)),
            ("b", answered.clone()),
        ]);
        assert_eq!(
            mcp_unresponsive_since(&mcp, &o, "a"),
            Some((Time(at(10)), Time(at(10))))
        );
        assert_eq!(mcp_unresponsive_since(&mcp, &o, "b"), None);
        // Every pod unreachable (a NetworkPolicy keeps the operator out): no verdict.
        let o = obs(vec![
            ("a", failed(FailureKind::Connect)),
            ("b", failed(FailureKind::Connect)),
        ]);
        assert_eq!(mcp_unresponsive_since(&mcp, &o, "a"), None);
        // A hung MCP layer counts whatever the siblings do.
        let o = obs(vec![("a", failed(FailureKind::Timeout))]);
        assert_eq!(
            mcp_unresponsive_since(&mcp, &o, "a"),
            Some((Time(at(10)), Time(at(10))))
        );
        // Checks off: nothing.
        let mut off = McpServer::test();
        off.spec.health.mcp.enabled = false;
        let o = obs(vec![("a", failed(FailureKind::Connect)), ("b", answered)]);
        assert_eq!(mcp_unresponsive_since(&off, &o, "a"), None);
    }

    /// A ReplicaSet as the API server returns it (a GET: with its template).
    pub(crate) fn rs_full(hash: &str, revision: &str, available: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": format!("notes-{hash}"), "labels": {"pod-template-hash": hash},
                         "annotations": {"deployment.kubernetes.io/revision": revision}},
            "spec": {"selector": {}, "template": {"metadata": {"labels": {"pod-template-hash": hash, "a": "b"}},
                     "spec": {"containers": [{"name": "mcp", "image": format!("img:{hash}")}]}}},
            "status": {"replicas": available, "availableReplicas": available}
        }))
        .expect("replicaset")
    }

    /// The same, as the cache holds it.
    pub(crate) fn rs(hash: &str, revision: &str, available: i32) -> CachedReplicaSet {
        serde_json::from_value(
            serde_json::to_value(rs_full(hash, revision, available)).expect("json"),
        )
        .expect("cached replicaset")
    }

    #[test]
    fn rollout_picks_newest_and_previous_available() {
        let replica_sets = vec![rs("old", "1", 0), rs("good", "2", 3), rs("bad", "3", 0)];
        let r = rollout_obs(&replica_sets, None, Some(2));
        assert_eq!(r.current_revision.as_deref(), Some("bad"));
        assert_eq!(r.previous_good_revision.as_deref(), Some("good"));
        assert!(!r.progress_deadline_exceeded);
        // The rollback template drops the controller's hash label and keeps the rest.
        let tpl = observe::template_without_hash(&rs_full("good", "2", 3)).expect("template");
        let labels = tpl.metadata.and_then(|m| m.labels).expect("labels");
        assert!(!labels.contains_key("pod-template-hash"));
        assert_eq!(labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(
            tpl.spec.expect("spec").containers[0].image.as_deref(),
            Some("img:good")
        );
    }

    #[test]
    fn pod_obs_reads_ready_restarts_and_worst_waiting_reason() {
        let pod: CachedPod = serde_json::from_value(json!({
            "metadata": {"name": "notes-abc", "labels": {"pod-template-hash": "h1"}, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:01:00Z"}],
                "containerStatuses": [
                    {"name": "a", "ready": false, "restartCount": 4, "image": "x", "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                    {"name": "b", "ready": false, "restartCount": 1, "image": "x", "imageID": "", "state": {"waiting": {"reason": "ContainerCreating"}}}
                ]
            }
        }))
        .expect("pod");
        let o = pod_obs(&pod);
        assert!(!o.ready);
        assert_eq!(o.restart_count, 4);
        assert_eq!(o.waiting_reason.as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(o.revision.as_deref(), Some("h1"));
        assert_eq!(
            o.ready_transition.map(|t| t.0.as_second()),
            Some(1_767_225_660)
        );
    }

    #[test]
    fn start_state_from_the_pod() {
        let pod = |status: serde_json::Value| -> CachedPod {
            serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status}))
                .expect("pod")
        };
        let unschedulable = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."}]}),
        );
        let (started, cause) = start_state(&unschedulable);
        assert!(!started);
        assert_eq!(
            cause.as_deref(),
            Some("Unschedulable: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.")
        );
        let config = pod(
            json!({"containerStatuses": [{"name": "mcp", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
            "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "secret \"notes-db\" not found"}}}]}),
        );
        assert_eq!(
            start_state(&config),
            (
                false,
                Some("CreateContainerConfigError: secret \"notes-db\" not found".into())
            )
        );
        let creating = pod(
            json!({"containerStatuses": [{"name": "mcp", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
            "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
        );
        assert_eq!(start_state(&creating), (false, None));
        let running = pod(
            json!({"containerStatuses": [{"name": "mcp", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
            "state": {"running": {}}}]}),
        );
        assert_eq!(start_state(&running), (true, None));
        let crashed = pod(
            json!({"containerStatuses": [{"name": "mcp", "ready": false, "restartCount": 3, "image": "x", "imageID": "",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
        );
        assert_eq!(start_state(&crashed), (true, None));
    }

    #[test]
    fn override_token_and_its_manager() {
        let mut m: McpServer = serde_json::from_value(json!({
            "apiVersion": "mcp.operator.dev/v1alpha1", "kind": "McpServer",
            "metadata": {"name": "n", "annotations": {"mcp.operator.dev/remediate": " t1 "},
                "managedFields": [
                    {"manager": "kubectl-annotate", "operation": "Update", "time": "2026-01-01T00:00:00Z",
                     "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:annotations": {"f:mcp.operator.dev/remediate": {}}}}},
                    {"manager": "argocd", "operation": "Apply", "time": "2026-01-01T00:00:05Z",
                     "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:image": {}}}}
                ]},
            "spec": {"image": "x"}
        }))
        .expect("mcp");
        let o = override_request(&m).expect("override");
        assert_eq!(o.token, "t1");
        assert_eq!(o.manager.as_deref(), Some("kubectl-annotate"));
        // The cache keeps only the entry that set the annotation: same answer.
        let mut cached = m.clone();
        crate::controller::stores::trim::server(&mut cached);
        assert_eq!(
            cached.metadata.managed_fields.as_ref().map(Vec::len),
            Some(1)
        );
        assert_eq!(
            override_request(&cached).and_then(|o| o.manager).as_deref(),
            Some("kubectl-annotate")
        );
        m.metadata.annotations = Some([(OVERRIDE_ANNOTATION.to_string(), "  ".to_string())].into());
        assert!(
            override_request(&m).is_none(),
            "a blank token grants nothing"
        );
    }

    #[test]
    fn allowance_from_spec_not_live_pdb() {
        let m: McpServer = serde_json::from_value(json!({
            "apiVersion": "mcp.operator.dev/v1alpha1", "kind": "McpServer", "metadata": {"name": "n"},
            "spec": {"image": "x", "replicas": {"min": 3, "max": 3}, "disruption": {"maxUnavailable": 2}}
        }))
        .expect("mcp");
        assert_eq!(disruption_allowance(&m, 3), 2);
        let single: McpServer = serde_json::from_value(json!({
            "apiVersion": "mcp.operator.dev/v1alpha1", "kind": "McpServer", "metadata": {"name": "n"},
            "spec": {"image": "x", "replicas": {"min": 1, "max": 1}}
        }))
        .expect("mcp");
        assert_eq!(disruption_allowance(&single, 1), 1);
    }

    #[test]
    fn policy_maps_spec() {
        let m: McpServer = serde_json::from_value(json!({
            "apiVersion": "mcp.operator.dev/v1alpha1", "kind": "McpServer", "metadata": {"name": "n"},
            "spec": {"image": "x", "remediation": {"enabled": false, "unhealthyAfterSeconds": 7, "maxActions": 2, "windowSeconds": 60, "cooldownSeconds": 3}}
        }))
        .expect("mcp");
        let p = policy(&m);
        assert!(!p.enabled);
        assert_eq!(
            (
                p.unhealthy_after_seconds,
                p.max_actions,
                p.window_seconds,
                p.cooldown_seconds
            ),
            (7, 2, 60, 3)
        );
        assert!(p.pause_while_dependency_down && p.rollback_failed_rollouts);
    }
}
