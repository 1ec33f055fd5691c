//! Property tests: arbitrary observation sequences, each decision's status
//! fed back (through JSON) as the next observation's memory, time moving
//! forward.
//!
//! Properties:
//! - automatic actions in any window `(t - window, t]` never exceed
//!   `max_actions`; manual ones add at most one per distinct token, and a
//!   token never grants twice;
//! - nothing happens while the dependency is not up (with the pause set);
//! - evictions never exceed the disruption allowance left after terminating
//!   pods, and only target live, unready pods that started at some point;
//! - automatic action batches are at least `cooldown` apart, and there are
//!   none when remediation is disabled;
//! - the requeue is never zero (no hot loop);
//! - pods that never started are never evicted;
//! - status is a fixed point between scheduled wakes.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

#[derive(Clone, Debug)]
struct PodIn {
    ready: bool,
    age: i64,
    reason: u8,
    deleting: bool,
    new_rev: bool,
    started: bool,
    /// 0: no timestamps at all, 1: dated in the future (clock skew),
    /// otherwise dated `age` seconds ago.
    stamp: u8,
}

#[derive(Clone, Debug)]
struct StepIn {
    dt: i64,
    dep: u8,
    pods: Vec<PodIn>,
    allowance: u32,
    token: Option<u8>,
    desired: u32,
    new_rollout: bool,
    deadline: bool,
}

fn pod_in() -> impl Strategy<Value = PodIn> {
    (
        any::<bool>(),
        0i64..400,
        0u8..6,
        prop::bool::weighted(0.1),
        any::<bool>(),
        prop::bool::weighted(0.7),
        0u8..20,
    )
        .prop_map(
            |(ready, age, reason, deleting, new_rev, started, stamp)| PodIn {
                ready,
                age,
                reason,
                deleting,
                new_rev,
                started,
                stamp,
            },
        )
}

fn step_in() -> impl Strategy<Value = StepIn> {
    (
        1i64..120,
        0u8..10,
        prop::collection::vec(pod_in(), 0..5),
        0u32..4,
        prop::option::weighted(0.15, 0u8..4),
        0u32..5,
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(dt, dep, pods, allowance, token, desired, new_rollout, deadline)| StepIn {
                dt,
                dep,
                pods,
                allowance,
                token,
                desired,
                new_rollout,
                deadline,
            },
        )
}

fn policy_in() -> impl Strategy<Value = Policy> {
    (
        (0u32..7, 1u64..900, 0u64..90),
        (0u64..60, 0u64..60, any::<bool>(), 1u32..5),
        prop::bool::weighted(0.9),
    )
        .prop_map(
            |((max_actions, window, cooldown), (unhealthy, grace, rollback, per), enabled)| {
                Policy {
                    enabled,
                    max_actions,
                    window_seconds: window,
                    cooldown_seconds: cooldown,
                    unhealthy_after_seconds: unhealthy,
                    grace_after_dependency_recovery_seconds: grace,
                    pause_while_dependency_down: true,
                    rollback_failed_rollouts: rollback,
                    max_evictions_per_action: per,
                    ..Policy::default()
                }
            },
        )
}

const REASONS: [Option<&str>; 6] = [
    None,
    None,
    Some("CrashLoopBackOff"),
    Some("ImagePullBackOff"),
    Some("ContainerCreating"),
    Some("ErrImagePull"),
];

/// Apply one generated step to the simulator's observed world.
fn apply(sim: &mut Sim, now: i64, s: &StepIn) {
    sim.dep = match s.dep {
        0..=5 => DependencyObs::up(),
        6..=8 => DependencyObs::down("x"),
        _ => DependencyObs {
            reason: None,
            state: DependencyState::Unknown,
            since: None,
            message: None,
        },
    };
    sim.pods = s
        .pods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let since = if p.stamp == 1 {
                now + p.age
            } else {
                now - p.age
            };
            let mut base = if p.ready {
                ready(&format!("p{i}"), since)
            } else {
                unready(&format!("p{i}"), since)
            };
            if p.stamp == 0 {
                base.ready_transition = None;
                base.created_at = None;
            }
            let mut pod = with_rev(base, if p.new_rev { "bad" } else { "good" });
            pod.waiting_reason = REASONS[usize::from(p.reason)].map(str::to_owned);
            pod.deleting = p.deleting;
            // A ready pod has a running container.
            pod.started = p.ready || p.started;
            if !pod.started {
                pod.start_failure = pod.waiting_reason.as_ref().map(|r| format!("{r}: detail"));
            }
            pod
        })
        .collect();
    sim.allowance = s.allowance;
    sim.desired = s.desired;
    sim.rollout.current_revision = Some(if s.new_rollout { "bad" } else { "good" }.to_owned());
    sim.rollout.progress_deadline_exceeded = s.deadline;
    sim.token = s.token.map(|t| OverrideRequest {
        token: format!("tok-{t}"),
        manager: Some("prop".to_owned()),
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn budget_pause_allowance_and_tokens_hold(
        policy in policy_in(),
        steps in prop::collection::vec(step_in(), 1..60),
    ) {
        let mut sim = Sim::with_policy(policy.clone());
        let mut now = 0i64;
        // (time, manual) of every action taken.
        let mut taken: Vec<(i64, bool)> = Vec::new();
        let mut auto_batches: Vec<i64> = Vec::new();
        let mut grants: BTreeMap<String, u32> = BTreeMap::new();
        let mut presented: BTreeSet<String> = BTreeSet::new();

        for s in &steps {
            now += s.dt;
            apply(&mut sim, now, s);
            if let Some(t) = &sim.token {
                presented.insert(t.token.clone());
            }
            let obs = sim.obs(now);
            let d = sim.step(now);

            if obs.dependency.state != DependencyState::Up {
                prop_assert!(d.actions.is_empty(), "acted while dependency not up: {:?}", d.actions);
            }
            let terminating = u32::try_from(obs.pods.iter().filter(|p| p.deleting).count()).unwrap_or(0);
            let evictions = evicted(&d);
            prop_assert!(
                u32::try_from(evictions.len()).unwrap_or(u32::MAX)
                    <= obs.disruption_allowance.saturating_sub(terminating)
            );
            for name in &evictions {
                let pod = obs.pods.iter().find(|p| &p.name == name);
                prop_assert!(
                    pod.is_some_and(|p| !p.ready && !p.deleting && p.started),
                    "bad target {name}"
                );
            }
            if let Some(r) = d.requeue_after {
                prop_assert!(r.as_secs() > 0);
            }
            let manual = d.actions.iter().any(|a| a.reason() == reason::MANUAL_OVERRIDE);
            if manual {
                prop_assert_eq!(d.actions.len(), 1, "an override grants exactly one action");
                let token = obs.override_request.as_ref().map(|t| t.token.clone()).unwrap_or_default();
                *grants.entry(token).or_default() += 1;
            } else if !d.actions.is_empty() {
                auto_batches.push(now);
            }
            taken.extend(d.actions.iter().map(|_| (now, manual)));
            prop_assert_eq!(d.blocked, d.status.state == RemediationState::Blocked);
        }

        // Budget over every window ending at an action.
        let window = i64::try_from(policy.window_seconds).unwrap_or(i64::MAX);
        for &(t, _) in &taken {
            let in_window = taken.iter().filter(|(u, _)| *u > t - window && *u <= t);
            let auto = in_window.clone().filter(|(_, m)| !m).count();
            prop_assert!(
                auto <= usize::try_from(policy.max_actions).unwrap_or(usize::MAX),
                "{auto} automatic actions in the window ending at {t}"
            );
        }
        // Tokens: each grants at most once; never more grants than tokens.
        for (token, n) in &grants {
            prop_assert!(*n <= 1, "token {token} granted {n} times");
        }
        prop_assert!(grants.len() <= presented.len());
        if !policy.enabled {
            prop_assert!(auto_batches.is_empty(), "acted automatically while disabled");
        }
        // Cooldown between automatic batches.
        for pair in auto_batches.windows(2) {
            prop_assert!(
                pair[1] - pair[0] >= i64::try_from(policy.cooldown_seconds).unwrap_or(0),
                "batches at {} and {} closer than the cooldown", pair[0], pair[1]
            );
        }
    }

    /// With the pause set, a dependency that is never up means no action,
    /// whatever the pods, the tokens and the remembered budget.
    #[test]
    fn never_acts_while_dependency_down(
        policy in policy_in(),
        steps in prop::collection::vec(step_in(), 1..40),
    ) {
        let mut sim = Sim::with_policy(policy);
        let mut now = 0i64;
        for s in &steps {
            now += s.dt;
            let mut s = s.clone();
            s.dep = 6 + s.dep % 4;
            apply(&mut sim, now, &s);
            let d = sim.step(now);
            prop_assert!(d.actions.is_empty());
            prop_assert_ne!(
                condition(&d, CONDITION_DEPENDENCY_AVAILABLE).status,
                ConditionStatus::True
            );
        }
    }

    /// No eviction, automatic or manual, ever names a pod that never
    /// started, and every such live unready pod is reported (up to the cap).
    #[test]
    fn never_evicts_a_pod_that_never_started(
        policy in policy_in(),
        steps in prop::collection::vec(step_in(), 1..40),
    ) {
        let mut sim = Sim::with_policy(policy);
        let mut now = 0i64;
        for s in &steps {
            now += s.dt;
            apply(&mut sim, now, s);
            let obs = sim.obs(now);
            let d = sim.step(now);
            for name in evicted(&d) {
                let pod = obs.pods.iter().find(|p| p.name == name);
                prop_assert!(pod.is_some_and(|p| p.started), "evicted {name}, never started");
            }
            let stuck = obs.pods.iter().filter(|p| !p.ready && !p.deleting && !p.started).count();
            prop_assert_eq!(d.not_started.len(), stuck.min(NOT_STARTED_LIMIT));
        }
    }

    /// A decision is a function of its inputs: deciding twice on the same
    /// observation gives the same result.
    #[test]
    fn deterministic(policy in policy_in(), steps in prop::collection::vec(step_in(), 1..20)) {
        let mut sim = Sim::with_policy(policy.clone());
        let mut now = 0i64;
        for s in &steps {
            now += s.dt;
            apply(&mut sim, now, s);
            let obs = sim.obs(now);
            prop_assert_eq!(decide(&policy, &obs), decide(&policy, &obs));
            sim.step(now);
        }
    }
}

proptest! {
    // More cases: some breaks need a rare mix (disabled policy, two pods
    // reaching their deadline seconds apart).
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// Status is a fixed point: with the first decision persisted, deciding
    /// again on the same world `k` seconds later changes nothing (status,
    /// conditions, incident) and says nothing (no events), unless the first
    /// decision acted or asked to be woken within those `k` seconds. Every
    /// time-driven change must therefore be a scheduled wake, and a status
    /// write never re-triggers itself.
    #[test]
    fn status_is_a_fixed_point_between_wakes(
        policy in policy_in(),
        steps in prop::collection::vec(step_in(), 1..30),
        k in 1i64..=3,
    ) {
        let mut sim = Sim::with_policy(policy.clone());
        let mut now = 0i64;
        for s in &steps {
            now += s.dt;
            apply(&mut sim, now, s);
            let obs = sim.obs(now);
            let d1 = sim.step(now);
            let wake_soon = d1
                .requeue_after
                .is_some_and(|r| i64::try_from(r.as_secs()).unwrap_or(i64::MAX) <= k);
            if !d1.actions.is_empty() || wake_soon {
                continue;
            }
            let later = Observation {
                now: at(now + k),
                previous: persist(&d1.status),
                previous_incident: d1.incident.as_ref().map(persist),
                ..obs
            };
            let d2 = decide(&policy, &later);
            prop_assert_eq!(&d2.status, &d1.status, "status changed at +{}s", k);
            prop_assert_eq!(&d2.conditions, &d1.conditions);
            prop_assert_eq!(&d2.incident, &d1.incident);
            prop_assert!(d2.actions.is_empty(), "acted at +{}s: {:?}", k, d2.actions);
            prop_assert!(d2.events.is_empty(), "events at +{}s: {:?}", k, d2.events);
        }
    }
}
