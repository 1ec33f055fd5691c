//! The McpServer's status from what a reconcile observed, decided and did. Pure.
use super::conditions::{self, Desired};
use super::phase::{self, PhaseInputs};
use crate::api::{condition, McpServerStatus, McpStatus, PoolStatus, RollbackHold};
use crate::controller::cached::CachedDeployment;
use crate::remediation::{reason, LastIncident, RemediationState, RemediationStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A child that was not written: the API server refused it, or its name is
/// held by an object the operator did not create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRejected {
    pub kind: &'static str,
    pub message: String,
    pub cause: Refusal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The API server refused the write (`message` is its answer).
    Invalid,
    /// The name is taken (`message` names the object and what to do).
    NameConflict,
}

/// Ready's, Degraded's and Stalled's reason for a child whose name is taken.
pub const NAME_CONFLICT: &str = "NameConflict";

impl ChildRejected {
    pub fn invalid(kind: &'static str, message: String) -> Self {
        Self {
            kind,
            message,
            cause: Refusal::Invalid,
        }
    }

    pub fn name_conflict(kind: &'static str, message: String) -> Self {
        Self {
            kind,
            message,
            cause: Refusal::NameConflict,
        }
    }

    /// The condition reason: `NameConflict`, or `<Kind>Rejected`.
    pub fn reason(&self) -> String {
        match self.cause {
            Refusal::NameConflict => NAME_CONFLICT.into(),
            Refusal::Invalid => format!("{}Rejected", self.kind),
        }
    }

    fn describe(&self) -> String {
        match self.cause {
            Refusal::NameConflict => self.message.clone(),
            Refusal::Invalid => format!(
                "the API server rejected the {}: {}",
                self.kind, self.message
            ),
        }
    }
}

pub struct Inputs<'a> {
    pub previous: &'a McpServerStatus,
    pub generation: Option<i64>,
    pub now: &'a Time,
    pub config_valid: bool,
    pub dependency_up: Option<bool>,
    pub dependency_message: &'a str,
    /// Replicas the Deployment is asked for.
    pub desired_replicas: i32,
    /// The Deployment as it stands after this reconcile's writes.
    pub deployment: Option<&'a CachedDeployment>,
    pub rejected: &'a [ChildRejected],
    /// Pods that never started, with the cause (pod, cause): a restart cannot help them.
    pub not_started: &'a [(String, String)],
    /// Conditions decided before acting.
    pub conditions: &'a [Desired],
    pub endpoint: Option<String>,
    pub pool: Option<PoolStatus>,
    pub remediation: Option<RemediationStatus>,
    pub incident: Option<LastIncident>,
    pub rollback_hold: Option<RollbackHold>,
    /// The hold's target revision has no ReplicaSet any more.
    pub rollback_target_missing: bool,
    pub mcp: Option<McpStatus>,
}

pub fn compute(i: Inputs<'_>) -> McpServerStatus {
    let desired = i.desired_replicas;
    let d = i.deployment;
    let dstat = d.and_then(|d| d.status.clone()).unwrap_or_default();
    let ready = dstat.ready_replicas.unwrap_or(0);
    let replicas = dstat.replicas.unwrap_or(0);
    let updated = dstat.updated_replicas.unwrap_or(0);
    // The Deployment controller has not seen its latest spec, or pods of the new
    // template are still missing, or old ones are still around.
    let rollout_in_progress = d.is_some_and(|d| {
        let obs = d.status.as_ref().and_then(|s| s.observed_generation);
        obs != d.metadata.generation || updated < desired || replicas > desired
    });
    let rejected = !i.rejected.is_empty();
    let phase = phase::compute(PhaseInputs {
        config_valid: i.config_valid && !rejected,
        dependency_up: i.dependency_up,
        desired,
        ready,
        updated,
        rollout_in_progress,
    });
    let all_ready = desired > 0 && ready >= desired && !rejected;
    // The ReplicaSet cannot create pods at all (a missing ServiceAccount, a quota).
    let replica_failure = d
        .and_then(|d| d.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
        })
        .map(|c| c.message.clone().unwrap_or_default());
    let cannot_start = match (&replica_failure, i.not_started.first()) {
        (Some(m), _) => Some((
            "ReplicaFailure",
            format!("the ReplicaSet cannot create pods: {m}"),
        )),
        (None, Some((pod, cause))) => Some((
            "PodsNotStarted",
            format!(
                "{} pod(s) cannot start, a restart would not help; {pod}: {cause}",
                i.not_started.len()
            ),
        )),
        (None, None) => None,
    };

    // Causes shared by Ready/Degraded and kstatus's Stalled: (reason, message).
    // A name conflict first: it is why nothing else was written.
    let rejection = i
        .rejected
        .iter()
        .find(|r| r.cause == Refusal::NameConflict)
        .or(i.rejected.first())
        .map(|r| {
            (
                r.reason(),
                i.rejected
                    .iter()
                    .map(ChildRejected::describe)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        });
    let rolled_back = i.rollback_hold.as_ref().map(|h| {
        if i.rollback_target_missing {
            (
                "RollbackTargetMissing",
                format!(
                    "generation {} failed and should run revision {}, but that revision's ReplicaSet is gone; the Deployment is left as it is: change the spec to roll out a fixed version",
                    h.generation, h.revision
                ),
            )
        } else {
            (
                "RolledBack",
                format!(
                    "generation {} crashed and was rolled back to revision {}; change the spec to try a new rollout",
                    h.generation, h.revision
                ),
            )
        }
    });

    let mut conds: Vec<Desired> = i.conditions.to_vec();
    conds.push(if let Some((reason, why)) = &rejection {
        Desired::new(condition::READY, false, reason.clone(), why.clone())
    } else if all_ready {
        Desired::new(
            condition::READY,
            true,
            "AllReplicasReady",
            format!("{ready}/{desired} replicas ready"),
        )
    } else if !i.config_valid {
        Desired::new(condition::READY, false, "InvalidSpec", INVALID_SPEC)
    } else if let Some((reason, why)) = &cannot_start {
        Desired::new(
            condition::READY,
            false,
            *reason,
            format!("{ready}/{desired} replicas ready; {why}"),
        )
    } else {
        Desired::new(
            condition::READY,
            false,
            "ReplicasNotReady",
            format!("{ready}/{desired} replicas ready"),
        )
    });
    conds.push(if rollout_in_progress && i.config_valid {
        Desired::new(
            condition::PROGRESSING,
            true,
            "RollingOut",
            format!("{updated}/{desired} replicas updated"),
        )
    } else {
        Desired::new(
            condition::PROGRESSING,
            false,
            "Stable",
            "no rollout in progress",
        )
    });
    conds.push(match (&rolled_back, all_ready) {
        (Some((reason, why)), _) => Desired::new(condition::DEGRADED, true, *reason, why.clone()),
        // What stopped the pool, not a replica count that may read "2/2 ready".
        (None, false) if rejection.is_some() => {
            let (reason, why) = rejection.clone().unwrap_or_default();
            Desired::new(condition::DEGRADED, true, reason, why)
        }
        (None, true) => Desired::new(
            condition::DEGRADED,
            false,
            "AllReplicasReady",
            "all replicas ready",
        ),
        (None, false) if i.dependency_up == Some(false) => Desired::new(
            condition::DEGRADED,
            true,
            "DependencyUnavailable",
            i.dependency_message,
        ),
        (None, false) if cannot_start.is_some() => {
            let (reason, why) = cannot_start.clone().unwrap_or_default();
            Desired::new(condition::DEGRADED, true, reason, why)
        }
        (None, false) => Desired::new(
            condition::DEGRADED,
            true,
            "ReplicasNotReady",
            format!("{ready}/{desired} replicas ready"),
        ),
    });
    let stalled = stalled(&i, rejection, cannot_start.as_ref(), rolled_back.as_ref());
    conds.push(match &stalled {
        Some((reason, why)) => Desired::new(condition::STALLED, true, reason.clone(), why.clone()),
        None => Desired::new(
            condition::STALLED,
            false,
            "NotStalled",
            "nothing blocks progress",
        ),
    });
    let reconciling = if stalled.is_some() {
        None
    } else if rollout_in_progress {
        Some((
            "RollingOut",
            format!("{updated}/{desired} replicas updated"),
        ))
    } else if i.dependency_up == Some(false) {
        Some(("DependencyUnavailable", i.dependency_message.to_string()))
    } else if let Some(r) = i.remediation.as_ref().filter(|r| match r.state {
        RemediationState::Acting | RemediationState::CoolingDown => true,
        // Pods not started yet: nothing to remediate (a known cause is Stalled above).
        RemediationState::Waiting => r.reason.as_deref() != Some(reason::PODS_NOT_STARTED),
        RemediationState::Idle | RemediationState::Blocked => false,
    }) {
        Some((
            "Remediating",
            r.next_action
                .clone()
                .unwrap_or_else(|| format!("remediation {:?}", r.state)),
        ))
    } else if !all_ready {
        Some((
            "ReplicasNotReady",
            format!("{ready}/{desired} replicas ready"),
        ))
    } else {
        None
    };
    conds.push(match reconciling {
        Some((reason, why)) => Desired::new(condition::RECONCILING, true, reason, why),
        None => Desired::new(
            condition::RECONCILING,
            false,
            "Reconciled",
            "the pool matches the spec",
        ),
    });
    McpServerStatus {
        observed_generation: i.generation,
        replicas,
        ready_replicas: ready,
        ready_display: Some(format!("{ready}/{desired}")),
        phase: Some(phase),
        endpoint: i.endpoint,
        conditions: conditions::merge(&i.previous.conditions, &conds, i.generation, i.now),
        pool: i.pool,
        remediation: i.remediation,
        last_incident: i.incident,
        rollback_hold: i.rollback_hold,
        mcp: i.mcp,
    }
}

/// Ready's reason and message when the operator's own checks find the spec
/// invalid (the details are in ConfigValid).
const INVALID_SPEC: &str = "the spec cannot be realised; see ConfigValid";

/// kstatus `Stalled`: why the spec cannot be realised without a human, if it
/// cannot, from the causes Ready and Degraded report. Takes precedence over
/// `Reconciling` (never both True).
fn stalled(
    i: &Inputs<'_>,
    rejection: Option<(String, String)>,
    cannot_start: Option<&(&str, String)>,
    rolled_back: Option<&(&str, String)>,
) -> Option<(String, String)> {
    if rejection.is_some() {
        return rejection;
    }
    if !i.config_valid {
        return Some(("InvalidSpec".into(), INVALID_SPEC.into()));
    }
    if let Some((reason, why)) = cannot_start.or(rolled_back) {
        return Some(((*reason).into(), why.clone()));
    }
    i.remediation
        .as_ref()
        .filter(|r| r.state == RemediationState::Blocked)
        .map(|r| {
            (
                "RemediationBlocked".into(),
                format!(
                    "an action is needed and policy forbids it ({}); see RemediationBlocked",
                    r.reason.as_deref().unwrap_or("blocked")
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Phase;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    fn deployment(generation: i64, observed: i64, ready: i32, updated: i32) -> CachedDeployment {
        serde_json::from_value(json!({
            "metadata": {"name": "notes", "generation": generation},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": {"observedGeneration": observed, "replicas": 3, "readyReplicas": ready, "updatedReplicas": updated}
        }))
        .expect("deployment")
    }

    fn inputs<'a>(
        prev: &'a McpServerStatus,
        now: &'a Time,
        d: Option<&'a CachedDeployment>,
        rejected: &'a [ChildRejected],
    ) -> Inputs<'a> {
        Inputs {
            previous: prev,
            generation: Some(2),
            now,
            config_valid: true,
            dependency_up: Some(true),
            dependency_message: "",
            desired_replicas: 3,
            deployment: d,
            rejected,
            not_started: &[],
            conditions: &[],
            endpoint: None,
            pool: None,
            remediation: None,
            incident: None,
            rollback_hold: None,
            rollback_target_missing: false,
            mcp: None,
        }
    }

    fn cond<'a>(
        s: &'a McpServerStatus,
        t: &str,
    ) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        s.conditions
            .iter()
            .find(|c| c.type_ == t)
            .expect("condition present")
    }

    #[test]
    fn ready_pool_is_ready_and_a_fixed_point() {
        let prev = McpServerStatus::default();
        let t1 = Time(Timestamp::from_second(100).expect("ts"));
        let d = deployment(4, 4, 3, 3);
        let s1 = compute(inputs(&prev, &t1, Some(&d), &[]));
        assert_eq!(s1.phase, Some(Phase::Ready));
        assert_eq!(cond(&s1, "Ready").status, "True");
        assert_eq!(s1.observed_generation, Some(2));
        // Same observation later: the same status, so no write.
        let t2 = Time(Timestamp::from_second(160).expect("ts"));
        assert_eq!(compute(inputs(&s1, &t2, Some(&d), &[])), s1);
    }

    #[test]
    fn unseen_deployment_generation_is_progressing_not_ready() {
        let prev = McpServerStatus::default();
        let t = Time(Timestamp::from_second(1).expect("ts"));
        let d = deployment(5, 4, 3, 3);
        let s = compute(inputs(&prev, &t, Some(&d), &[]));
        assert_eq!(s.phase, Some(Phase::Progressing));
        assert_eq!(cond(&s, "Progressing").status, "True");
    }

    #[test]
    fn a_rejected_child_is_not_ready_and_names_the_child() {
        let prev = McpServerStatus::default();
        let t = Time(Timestamp::from_second(1).expect("ts"));
        let d = deployment(4, 4, 3, 3);
        let rej = [ChildRejected::invalid(
            "Service",
            "Service \"9notes\" is invalid: metadata.name: Invalid value".into(),
        )];
        let s = compute(inputs(&prev, &t, Some(&d), &rej));
        let r = cond(&s, "Ready");
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "ServiceRejected")
        );
        assert!(r.message.contains("metadata.name"), "{}", r.message);
        assert_eq!(s.phase, Some(Phase::Invalid));
        // Degraded names the refusal, not "ReplicasNotReady: 3/3 replicas ready".
        let g = cond(&s, "Degraded");
        assert_eq!(
            (g.status.as_str(), g.reason.as_str()),
            ("True", "ServiceRejected")
        );
    }

    /// A taken name is Ready=False and Stalled, and nothing says the pool is
    /// fine or merely short of replicas ("2/2 replicas ready" was said).
    #[test]
    fn a_name_conflict_stalls_and_says_nothing_false() {
        let prev = McpServerStatus::default();
        let t = Time(Timestamp::from_second(1).expect("ts"));
        let d = deployment(4, 4, 3, 3);
        let conflict = [ChildRejected::name_conflict(
            "Service",
            "Service team-a/web exists and was not created for this McpServer".into(),
        )];
        for d in [None, Some(&d)] {
            let s = compute(inputs(&prev, &t, d, &conflict));
            for t in ["Ready", "Degraded", "Stalled"] {
                let c = cond(&s, t);
                assert_eq!(c.reason, "NameConflict", "{t}: {c:?}");
                assert!(c.message.contains("Service team-a/web"), "{t}: {c:?}");
            }
            assert_eq!(cond(&s, "Ready").status, "False");
            assert_eq!(cond(&s, "Degraded").status, "True");
            assert_eq!(kstatus(&s), ("Stalled".into(), "NameConflict".into()));
            assert!(
                !s.conditions.iter().any(|c| c.reason == "ReplicasNotReady"),
                "{:?}",
                s.conditions
            );
        }
        // With a rejection beside it, the conflict is the reason (it is why
        // nothing else was written); both are told.
        let both = [
            ChildRejected::invalid("Deployment", "spec.template: invalid".into()),
            conflict[0].clone(),
        ];
        let s = compute(inputs(&prev, &t, None, &both));
        let r = cond(&s, "Ready");
        assert_eq!(r.reason, "NameConflict");
        assert!(r.message.contains("rejected the Deployment"), "{r:?}");
    }

    #[test]
    fn pods_that_cannot_start_say_why() {
        let prev = McpServerStatus::default();
        let t = Time(Timestamp::from_second(1).expect("ts"));
        let d = deployment(4, 4, 0, 3);
        let stuck = [(
            "notes-abc".to_string(),
            "Unschedulable: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector".to_string(),
        )];
        let mut i = inputs(&prev, &t, Some(&d), &[]);
        i.not_started = &stuck;
        let s = compute(i);
        let r = cond(&s, "Ready");
        assert_eq!(r.reason, "PodsNotStarted");
        assert!(
            r.message.contains("notes-abc: Unschedulable"),
            "{}",
            r.message
        );
        assert_eq!(cond(&s, "Degraded").reason, "PodsNotStarted");

        // No pod at all: the ReplicaSet's failure is the cause.
        let d: CachedDeployment = serde_json::from_value(json!({
            "metadata": {"name": "notes", "generation": 1},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": {"observedGeneration": 1, "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                "message": "pods \"notes-1\" is forbidden: error looking up service account a/missing: serviceaccount \"missing\" not found"}]}
        }))
        .expect("deployment");
        let s = compute(inputs(&prev, &t, Some(&d), &[]));
        let r = cond(&s, "Ready");
        assert_eq!(r.reason, "ReplicaFailure");
        assert!(
            r.message.contains("serviceaccount \"missing\" not found"),
            "{}",
            r.message
        );
    }

    #[test]
    fn dependency_down_is_degraded_with_its_cause() {
        let prev = McpServerStatus::default();
        let t = Time(Timestamp::from_second(1).expect("ts"));
        let d = deployment(4, 4, 0, 3);
        let mut i = inputs(&prev, &t, Some(&d), &[]);
        i.dependency_up = Some(false);
        i.dependency_message = "Service db/postgres has no ready endpoints";
        let s = compute(i);
        assert_eq!(s.phase, Some(Phase::DependencyUnavailable));
        let g = cond(&s, "Degraded");
        assert_eq!(g.reason, "DependencyUnavailable");
        assert!(g.message.contains("db/postgres"));
    }
    fn kstatus(s: &McpServerStatus) -> (String, String) {
        let r = cond(s, "Reconciling");
        let st = cond(s, "Stalled");
        assert!(
            !(r.status == "True" && st.status == "True"),
            "never both Reconciling and Stalled"
        );
        match (r.status.as_str(), st.status.as_str()) {
            ("True", _) => ("Reconciling".into(), r.reason.clone()),
            (_, "True") => ("Stalled".into(), st.reason.clone()),
            _ => ("Current".into(), r.reason.clone()),
        }
    }

    #[test]
    fn kstatus_conditions_follow_the_pool() {
        let prev = McpServerStatus::default();
        let t = Time(Timestamp::from_second(1).expect("ts"));
        let ready = deployment(4, 4, 3, 3);
        let s = compute(inputs(&prev, &t, Some(&ready), &[]));
        assert_eq!(kstatus(&s), ("Current".into(), "Reconciled".into()));
        assert_eq!(cond(&s, "Stalled").reason, "NotStalled");

        let rolling = deployment(5, 4, 3, 3);
        let s = compute(inputs(&prev, &t, Some(&rolling), &[]));
        assert_eq!(kstatus(&s), ("Reconciling".into(), "RollingOut".into()));

        let starting = deployment(4, 4, 1, 3);
        let s = compute(inputs(&prev, &t, Some(&starting), &[]));
        assert_eq!(
            kstatus(&s),
            ("Reconciling".into(), "ReplicasNotReady".into())
        );

        // With the readiness gate the pods stay Ready through an outage: still waiting.
        let mut i = inputs(&prev, &t, Some(&ready), &[]);
        i.dependency_up = Some(false);
        i.dependency_message = "Service db/postgres has no ready endpoints";
        let s = compute(i);
        assert_eq!(
            kstatus(&s),
            ("Reconciling".into(), "DependencyUnavailable".into())
        );
        assert!(cond(&s, "Reconciling").message.contains("db/postgres"));

        let rem = RemediationStatus {
            state: RemediationState::CoolingDown,
            next_action: Some("evict notes-abc after the cooldown".into()),
            ..RemediationStatus::default()
        };
        let mut i = inputs(&prev, &t, Some(&ready), &[]);
        i.remediation = Some(rem);
        let s = compute(i);
        assert_eq!(kstatus(&s), ("Reconciling".into(), "Remediating".into()));
        assert!(cond(&s, "Reconciling").message.contains("notes-abc"));

        // Pods still being created: starting, not remediation.
        let mut i = inputs(&prev, &t, Some(&starting), &[]);
        i.remediation = Some(RemediationStatus {
            state: RemediationState::Waiting,
            reason: Some(reason::PODS_NOT_STARTED.into()),
            ..RemediationStatus::default()
        });
        let s = compute(i);
        assert_eq!(
            kstatus(&s),
            ("Reconciling".into(), "ReplicasNotReady".into())
        );
    }

    #[test]
    fn specs_that_cannot_be_realised_are_stalled_not_reconciling() {
        let prev = McpServerStatus::default();
        let t = Time(Timestamp::from_second(1).expect("ts"));
        // a missing Secret while a rollout would otherwise be in progress
        let rolling = deployment(5, 4, 0, 0);
        let mut i = inputs(&prev, &t, Some(&rolling), &[]);
        i.config_valid = false;
        let s = compute(i);
        assert_eq!(kstatus(&s), ("Stalled".into(), "InvalidSpec".into()));

        let ready = deployment(4, 4, 3, 3);
        let mut i = inputs(&prev, &t, Some(&ready), &[]);
        i.rollback_hold = Some(RollbackHold {
            generation: 2,
            revision: "3".into(),
        });
        let s = compute(i);
        assert_eq!(kstatus(&s), ("Stalled".into(), "RolledBack".into()));
        assert_eq!(cond(&s, "Ready").status, "True");

        let mut i = inputs(&prev, &t, Some(&ready), &[]);
        i.remediation = Some(RemediationStatus {
            state: RemediationState::Blocked,
            reason: Some("BudgetExhausted".into()),
            ..RemediationStatus::default()
        });
        let s = compute(i);
        assert_eq!(kstatus(&s), ("Stalled".into(), "RemediationBlocked".into()));
        assert!(cond(&s, "Stalled").message.contains("BudgetExhausted"));

        let rej = [ChildRejected::invalid("Service", "invalid name".into())];
        let s = compute(inputs(&prev, &t, Some(&ready), &rej));
        assert_eq!(kstatus(&s), ("Stalled".into(), "ServiceRejected".into()));
    }
}
