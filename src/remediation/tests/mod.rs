//! Tests: a fake-clock simulator feeding each decision's status back as the
//! next observation's memory (through JSON, as the API server would).

mod not_started;
mod props;
mod rollout;
mod serde_shape;
mod table;
mod wedged;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::time::time;
use super::*;

/// Fake epoch of every test clock.
pub(super) const T0: i64 = 1_700_000_000;

/// Test time: `T0 + s`.
pub(super) fn at(s: i64) -> Time {
    time(T0 + s)
}

/// Seconds since `T0` of a `Time`.
pub(super) fn rel(t: &Time) -> i64 {
    t.0.as_second() - T0
}

pub(super) fn ready(name: &str, since: i64) -> PodObs {
    PodObs {
        name: name.to_owned(),
        ready: true,
        ready_transition: Some(at(since)),
        created_at: Some(at(since - 5)),
        revision: Some("good".to_owned()),
        started: true,
        ..PodObs::default()
    }
}

/// Unready since `since`, no container ever ran.
pub(super) fn never_started(name: &str, since: i64, cause: Option<&str>) -> PodObs {
    PodObs {
        started: false,
        start_failure: cause.map(str::to_owned),
        ..unready(name, since)
    }
}

pub(super) fn unready(name: &str, since: i64) -> PodObs {
    PodObs {
        ready: false,
        ..ready(name, since)
    }
}

pub(super) fn with_rev(mut p: PodObs, rev: &str) -> PodObs {
    p.revision = Some(rev.to_owned());
    p
}

pub(super) fn waiting(mut p: PodObs, reason: &str) -> PodObs {
    p.waiting_reason = Some(reason.to_owned());
    p
}

/// Round-trip through JSON like a status write and read.
pub(super) fn persist<T: serde::Serialize + serde::de::DeserializeOwned>(v: &T) -> T {
    let json = serde_json::to_string(v).expect("serialize");
    serde_json::from_str(&json).expect("deserialize")
}

/// A McpServer as the engine sees it across reconciles.
pub(super) struct Sim {
    pub policy: Policy,
    pub status: RemediationStatus,
    pub incident: Option<LastIncident>,
    pub dep: DependencyObs,
    pub pods: Vec<PodObs>,
    pub desired: u32,
    pub allowance: u32,
    pub rollout: RolloutObs,
    pub token: Option<OverrideRequest>,
}

impl Sim {
    /// Two ready pods of revision "good", dependency up for a long time.
    pub fn new() -> Self {
        Self::with_policy(Policy::default())
    }

    pub fn with_policy(policy: Policy) -> Self {
        Self {
            policy,
            status: RemediationStatus {
                dependency: Some(DependencyRecord {
                    state: DependencyState::Up,
                    since: at(-10_000),
                }),
                last_good_revision: Some("good".to_owned()),
                ..RemediationStatus::default()
            },
            incident: None,
            dep: DependencyObs::up(),
            pods: vec![ready("p0", -1000), ready("p1", -1000)],
            desired: 2,
            allowance: 1,
            rollout: RolloutObs {
                current_revision: Some("good".to_owned()),
                ..RolloutObs::default()
            },
            token: None,
        }
    }

    pub fn obs(&self, now: i64) -> Observation {
        Observation {
            now: at(now),
            dependency: self.dep.clone(),
            pods: self.pods.clone(),
            rollout: self.rollout.clone(),
            desired_replicas: self.desired,
            disruption_allowance: self.allowance,
            override_request: self.token.clone(),
            previous: self.status.clone(),
            previous_incident: self.incident.clone(),
        }
    }

    /// Decide at `now` and persist the result.
    pub fn step(&mut self, now: i64) -> Decision {
        let d = decide(&self.policy, &self.obs(now));
        self.status = persist(&d.status);
        self.incident = d.incident.as_ref().map(persist);
        d
    }

    pub fn set_token(&mut self, token: &str, manager: &str) {
        self.token = Some(OverrideRequest {
            token: token.to_owned(),
            manager: Some(manager.to_owned()),
        });
    }
}

/// Names of evicted pods.
pub(super) fn evicted(d: &Decision) -> Vec<String> {
    d.actions
        .iter()
        .filter_map(|a| match a {
            Action::Evict { pod, .. } => Some(pod.clone()),
            Action::Rollback { .. } => None,
        })
        .collect()
}

pub(super) fn event_reasons(d: &Decision) -> Vec<&str> {
    d.events.iter().map(|e| e.reason.as_str()).collect()
}

pub(super) fn condition<'a>(d: &'a Decision, type_: &str) -> &'a ConditionHint {
    d.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .expect("condition present")
}

pub(super) fn requeue(d: &Decision) -> Option<u64> {
    d.requeue_after.map(|r| r.as_secs())
}
