//! Transition tests with a fake clock: unhealthy deadline, dependency
//! hold/grace/flapping, disruption allowance, budget, cooldown, overrides,
//! incidents.

use super::*;

#[test]
fn healthy_pool_is_idle_and_sleeps() {
    let mut sim = Sim::new();
    let d = sim.step(0);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.state, RemediationState::Idle);
    assert_eq!(requeue(&d), None, "no busy polling when all is well");
    assert_eq!(
        condition(&d, CONDITION_DEPENDENCY_AVAILABLE).status,
        ConditionStatus::True
    );
    assert_eq!(
        condition(&d, CONDITION_REMEDIATION_BLOCKED).status,
        ConditionStatus::False
    );
    assert!(d.incident.is_none());
    assert!(d.events.is_empty());
}

/// (unready for, expected evictions, expected state, expected requeue)
#[test]
fn unhealthy_deadline_table() {
    let cases: &[(i64, usize, RemediationState, Option<u64>)] = &[
        (0, 0, RemediationState::Waiting, Some(20)),
        (5, 0, RemediationState::Waiting, Some(15)),
        (19, 0, RemediationState::Waiting, Some(1)),
        (20, 1, RemediationState::Acting, Some(30)),
        (500, 1, RemediationState::Acting, Some(30)),
    ];
    for &(age, n, state, rq) in cases {
        let mut sim = Sim::new();
        sim.pods[1] = unready("p1", 100 - age);
        let d = sim.step(100);
        assert_eq!(d.actions.len(), n, "age {age}");
        assert_eq!(d.status.state, state, "age {age}");
        assert_eq!(requeue(&d), rq, "age {age}");
        if n == 1 {
            assert_eq!(evicted(&d), vec!["p1"]);
            assert_eq!(d.actions[0].reason(), reason::UNREADY_TOO_LONG);
            assert_eq!(d.status.actions_in_window, 1);
            assert_eq!(d.status.cooldown_until.as_ref().map(rel), Some(130));
            let last = d.status.last_action.as_ref().expect("last action");
            assert_eq!(last.kind, ActionKind::Evict);
            assert_eq!(last.pod.as_deref(), Some("p1"));
            assert_eq!(rel(&last.time), 100);
            assert!(event_reasons(&d).contains(&"PodEvicted"));
        }
    }
}

#[test]
fn dependency_down_holds_everything() {
    let mut sim = Sim::new();
    sim.pods = vec![unready("p0", -1000), unready("p1", -1000)];
    sim.dep = DependencyObs::down("Service db/postgres has 0 ready endpoints");
    let d = sim.step(0);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.state, RemediationState::Waiting);
    assert_eq!(
        d.status.reason.as_deref(),
        Some(reason::DEPENDENCY_UNAVAILABLE)
    );
    let c = condition(&d, CONDITION_DEPENDENCY_AVAILABLE);
    assert_eq!(c.status, ConditionStatus::False);
    assert_eq!(c.message, "Service db/postgres has 0 ready endpoints");
    assert!(event_reasons(&d).contains(&"DependencyLost"));
    assert_eq!(requeue(&d), None, "the EndpointSlice watch wakes us");
    // Staying down: no repeated events, still no action.
    let d = sim.step(300);
    assert!(d.actions.is_empty());
    assert!(!event_reasons(&d).contains(&"DependencyLost"));
    assert_eq!(rel(&d.status.dependency.as_ref().expect("dep").since), 0);
}

#[test]
fn unknown_dependency_holds_too() {
    let mut sim = Sim::new();
    sim.pods[0] = unready("p0", -1000);
    sim.dep = DependencyObs {
        reason: None,
        state: DependencyState::Unknown,
        since: None,
        message: None,
    };
    let d = sim.step(0);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.reason.as_deref(), Some(reason::DEPENDENCY_UNKNOWN));
    assert_eq!(
        condition(&d, CONDITION_DEPENDENCY_AVAILABLE).status,
        ConditionStatus::Unknown
    );
    assert!(event_reasons(&d).contains(&"DependencyUnknown"));
}

#[test]
fn no_pause_acts_while_dependency_down() {
    let mut sim = Sim::with_policy(Policy {
        pause_while_dependency_down: false,
        ..Policy::default()
    });
    sim.pods[0] = unready("p0", -1000);
    sim.dep = DependencyObs::down("x");
    let d = sim.step(0);
    assert_eq!(evicted(&d), vec!["p0"]);
}

/// Grace window after recovery: pods unready since before the outage are
/// judged at recovery + grace (20) + unhealthy_after (20).
#[test]
fn grace_window_after_recovery() {
    let mut sim = Sim::new();
    sim.pods = vec![unready("p0", 95), unready("p1", 95)];
    sim.dep = DependencyObs::down("x");
    sim.step(100);
    sim.dep = DependencyObs::up();
    let d = sim.step(200);
    assert!(event_reasons(&d).contains(&"DependencyRecovered"));
    assert!(d.actions.is_empty());
    assert_eq!(d.status.reason.as_deref(), Some(reason::GRACE_PERIOD));
    assert_eq!(requeue(&d), Some(20), "the reason changes when grace ends");
    let d = sim.step(220);
    assert_eq!(d.status.reason.as_deref(), Some(reason::UNREADY));
    assert_eq!(requeue(&d), Some(20));
    let d = sim.step(225);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.reason.as_deref(), Some(reason::UNREADY));
    assert_eq!(requeue(&d), Some(15));
    let d = sim.step(239);
    assert!(d.actions.is_empty());
    let d = sim.step(240);
    assert_eq!(evicted(&d), vec!["p0"], "one at a time (allowance 1)");
    let inc = d.incident.as_ref().expect("incident");
    assert_eq!(rel(inc.started_at.as_ref().expect("start")), 95);
    assert_eq!(rel(inc.dependency_recovered_at.as_ref().expect("dep")), 200);
    assert_eq!(inc.actions, 1);
}

#[test]
fn pod_that_fails_after_recovery_waits_its_own_deadline() {
    let mut sim = Sim::new();
    sim.status.dependency = Some(DependencyRecord {
        state: DependencyState::Up,
        since: at(0),
    });
    // Grace ends at 20; pod unready since 50 -> eligible at 70.
    sim.pods[0] = unready("p0", 50);
    let d = sim.step(60);
    assert_eq!(requeue(&d), Some(10));
    assert_eq!(evicted(&sim.step(70)), vec!["p0"]);
}

#[test]
fn dependency_flapping_restarts_grace_and_never_acts_while_down() {
    let mut sim = Sim::new();
    sim.pods = vec![unready("p0", -500), unready("p1", -500)];
    let flaps: &[(i64, bool)] = &[(0, false), (10, true), (15, false), (20, true)];
    let mut reasons = Vec::new();
    for &(t, up) in flaps {
        sim.dep = if up {
            DependencyObs::up()
        } else {
            DependencyObs::down("x")
        };
        let d = sim.step(t);
        assert!(d.actions.is_empty(), "t={t}");
        reasons.extend(d.events.iter().map(|e| e.reason.clone()));
    }
    let dep_events: Vec<_> = reasons
        .iter()
        .filter(|r| r.starts_with("Dependency"))
        .collect();
    assert_eq!(
        dep_events,
        vec![
            "DependencyLost",
            "DependencyRecovered",
            "DependencyLost",
            "DependencyRecovered"
        ]
    );
    // Grace restarted at the last recovery (20): eligible at 60.
    assert!(sim.step(59).actions.is_empty());
    assert_eq!(sim.step(60).actions.len(), 1);
    let inc = sim.incident.as_ref().expect("incident");
    assert_eq!(rel(inc.dependency_recovered_at.as_ref().expect("rec")), 20);
}

#[test]
fn shell_reported_dependency_since_is_used_and_clamped() {
    let mut sim = Sim::new();
    sim.dep = DependencyObs {
        reason: None,
        state: DependencyState::Down,
        since: Some(at(-30)),
        message: None,
    };
    let d = sim.step(0);
    assert_eq!(rel(&d.status.dependency.as_ref().expect("dep").since), -30);
    // A future `since` is clamped to now.
    sim.dep = DependencyObs {
        reason: None,
        state: DependencyState::Up,
        since: Some(at(1000)),
        message: None,
    };
    let d = sim.step(10);
    assert_eq!(rel(&d.status.dependency.as_ref().expect("dep").since), 10);
}

/// (allowance, deleting pods, eligible pods, max per action, budget used,
/// expected evictions)
#[test]
fn eviction_count_table() {
    let cases: &[(u32, usize, usize, u32, usize, usize)] = &[
        (0, 0, 3, 3, 0, 0),
        (1, 0, 3, 3, 0, 1),
        (2, 0, 3, 3, 0, 2),
        (5, 0, 3, 3, 0, 3),
        (5, 0, 5, 3, 0, 3),
        (5, 0, 5, 2, 0, 2),
        (1, 1, 3, 3, 0, 0),
        (3, 1, 3, 3, 0, 2),
        (5, 0, 3, 3, 4, 1),
        (5, 0, 3, 3, 3, 2),
    ];
    for &(allowance, deleting, eligible, per_action, used, want) in cases {
        let mut sim = Sim::with_policy(Policy {
            max_evictions_per_action: per_action,
            ..Policy::default()
        });
        sim.allowance = allowance;
        sim.desired = 6;
        sim.pods = (0..eligible)
            .map(|i| unready(&format!("u{i}"), -100 - i64::try_from(i).unwrap_or(0)))
            .collect();
        for i in 0..deleting {
            let mut p = ready(&format!("d{i}"), -100);
            p.deleting = true;
            sim.pods.push(p);
        }
        sim.status.recent_actions = (0..used)
            .map(|i| ActionRecord {
                pod: Some(format!("old{i}")),
                time: at(-500),
                reason: reason::UNREADY_TOO_LONG.to_owned(),
                ..ActionRecord::default()
            })
            .collect();
        let d = sim.step(0);
        let case = (allowance, deleting, eligible, per_action, used);
        assert_eq!(d.actions.len(), want, "{case:?}");
        if want > 0 {
            // Longest unready first.
            assert_eq!(evicted(&d)[0], format!("u{}", eligible - 1), "{case:?}");
        }
        if allowance.saturating_sub(u32::try_from(deleting).unwrap_or(0)) == 0 {
            assert_eq!(d.status.reason.as_deref(), Some(reason::DISRUPTION_BUDGET));
            assert_eq!(requeue(&d), Some(ALLOWANCE_RETRY_SECONDS));
        }
    }
}

#[test]
fn deleting_and_ready_pods_are_never_evicted() {
    let mut sim = Sim::new();
    sim.allowance = 5;
    let mut gone = unready("gone", -100);
    gone.deleting = true;
    sim.pods = vec![ready("a", -100), gone];
    sim.desired = 1;
    let d = sim.step(0);
    assert!(d.actions.is_empty());
}

#[test]
fn cooldown_spaces_actions() {
    let mut sim = Sim::new();
    sim.pods = vec![ready("p0", -100), unready("p1", -100)];
    assert_eq!(evicted(&sim.step(100)), vec!["p1"]);
    // The replacement is unready too, long enough by 110.
    sim.pods = vec![unready("p0", 80), unready("p2", 101)];
    let d = sim.step(110);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.state, RemediationState::CoolingDown);
    assert_eq!(d.status.cooldown_until.as_ref().map(rel), Some(130));
    assert_eq!(requeue(&d), Some(20));
    assert!(sim.step(129).actions.is_empty());
    assert_eq!(evicted(&sim.step(130)), vec!["p0"]);
}

#[test]
fn cooling_down_without_work_then_idle() {
    let mut sim = Sim::new();
    sim.pods[1] = unready("p1", -100);
    sim.step(0);
    sim.pods[1] = ready("p1b", 5);
    let d = sim.step(10);
    assert_eq!(d.status.state, RemediationState::CoolingDown);
    assert_eq!(
        d.status.next_action.as_deref(),
        Some("watching the effect of the last action until 2023-11-14T22:13:50Z")
    );
    assert_eq!(requeue(&d), Some(20));
    // The next second says exactly the same: nothing to rewrite.
    assert_eq!(sim.step(11).status, d.status);
    let d = sim.step(30);
    assert_eq!(d.status.state, RemediationState::Idle);
    assert_eq!(d.status.cooldown_until, None);
    assert_eq!(
        requeue(&d),
        Some(570),
        "once more when the action leaves the budget window"
    );
    let d = sim.step(600);
    assert_eq!(d.status.actions_in_window, 0);
    assert_eq!(requeue(&d), None);
}

/// Budget: 5 per 600 s, cooldown 30. A pod is always unready long enough.
#[test]
fn budget_edges_block_and_unblock() {
    let mut sim = Sim::new();
    let mut times = Vec::new();
    let mut blocked_events = 0;
    for t in (100..=760).step_by(30) {
        sim.pods = vec![ready("a", 0), unready(&format!("u{t}"), t - 100)];
        let d = sim.step(t);
        blocked_events += d
            .events
            .iter()
            .filter(|e| e.reason == "RemediationBlocked")
            .count();
        if !d.actions.is_empty() {
            times.push(t);
        } else {
            assert_eq!(d.status.state, RemediationState::Blocked, "t={t}");
            assert!(d.blocked);
            let c = condition(&d, CONDITION_REMEDIATION_BLOCKED);
            assert_eq!(c.status, ConditionStatus::True);
            assert_eq!(c.reason, reason::BUDGET_EXHAUSTED);
            assert_eq!(d.status.actions_in_window, 5);
            // Wake exactly when the oldest action leaves the window.
            assert_eq!(requeue(&d), Some(u64::try_from(700 - t).unwrap_or(0)));
        }
    }
    assert_eq!(times, vec![100, 130, 160, 190, 220, 700, 730, 760]);
    assert_eq!(blocked_events, 1, "one Warning per blocked episode");
    // The edge: at 699 the action at 100 is still inside (100 > 699-600).
    let mut sim2 = Sim::new();
    for t in [100, 130, 160, 190, 220] {
        sim2.pods = vec![ready("a", 0), unready(&format!("u{t}"), t - 100)];
        sim2.step(t);
    }
    sim2.pods = vec![ready("a", 0), unready("late", 0)];
    assert!(sim2.step(699).actions.is_empty());
    let d = sim2.step(700);
    assert_eq!(d.actions.len(), 1);
    assert!(event_reasons(&d).contains(&"RemediationUnblocked"));
    assert_eq!(d.status.recent_actions.len(), 5, "pruned to the window");
}

#[test]
fn zero_max_actions_means_manual_only() {
    let mut sim = Sim::with_policy(Policy {
        max_actions: 0,
        ..Policy::default()
    });
    sim.pods[0] = unready("p0", -100);
    let d = sim.step(0);
    assert_eq!(d.status.state, RemediationState::Blocked);
    sim.set_token("go", "kubectl-annotate");
    assert_eq!(evicted(&sim.step(1)), vec!["p0"]);
}

fn exhausted_sim() -> Sim {
    let mut sim = Sim::new();
    for t in [0, 30, 60, 90, 120] {
        sim.pods = vec![ready("a", -1000), unready(&format!("u{t}"), t - 100)];
        assert_eq!(sim.step(t).actions.len(), 1);
    }
    sim.pods = vec![ready("a", -1000), unready("stuck", 100)];
    assert_eq!(sim.step(150).status.state, RemediationState::Blocked);
    sim
}

#[test]
fn override_grants_exactly_one_action_per_new_token() {
    let mut sim = exhausted_sim();
    sim.set_token("t1", "kubectl-annotate");
    let d = sim.step(151);
    assert_eq!(evicted(&d), vec!["stuck"]);
    assert_eq!(d.actions[0].reason(), reason::MANUAL_OVERRIDE);
    let o = d.status.override_record.as_ref().expect("override");
    assert_eq!(o.token, "t1");
    assert_eq!(o.manager.as_deref(), Some("kubectl-annotate"));
    assert_eq!(rel(&o.time), 151);
    assert!(d.status.last_action.as_ref().expect("last").manual);
    assert!(event_reasons(&d).contains(&"OverrideUsed"));
    assert_eq!(d.status.actions_in_window, 6, "overrides are recorded too");
    // Same token again, even much later but still over budget: nothing.
    sim.pods = vec![ready("a", -1000), unready("stuck2", 100)];
    for t in [152, 200, 300] {
        let d = sim.step(t);
        assert!(d.actions.is_empty(), "t={t}");
        assert_eq!(d.status.state, RemediationState::Blocked);
    }
    // Same token after an operator restart (status only): still nothing.
    let mut restarted = Sim::new();
    restarted.status = persist(&sim.status);
    restarted.incident = sim.incident.clone();
    restarted.pods = sim.pods.clone();
    restarted.token = sim.token.clone();
    assert!(restarted.step(301).actions.is_empty());
    // A new token: one more, during the cooldown of the last one too.
    sim.set_token("t2", "argocd-controller");
    let d = sim.step(302);
    assert_eq!(evicted(&d), vec!["stuck2"]);
    assert_eq!(
        d.status
            .override_record
            .as_ref()
            .expect("o")
            .manager
            .as_deref(),
        Some("argocd-controller")
    );
    sim.pods = vec![ready("a", -1000), unready("stuck3", 100)];
    assert!(sim.step(303).actions.is_empty());
}

#[test]
fn override_waits_for_dependency_and_allowance_without_consuming() {
    let mut sim = Sim::new();
    sim.pods[0] = unready("p0", -100);
    sim.dep = DependencyObs::down("x");
    sim.set_token("t", "me");
    let d = sim.step(0);
    assert!(d.actions.is_empty());
    assert!(d.status.override_record.is_none(), "pending, not consumed");
    assert!(d
        .status
        .next_action
        .as_deref()
        .unwrap_or("")
        .contains("override token pending"));
    // Dependency back, but no disruption allowance: still pending.
    sim.dep = DependencyObs::up();
    sim.allowance = 0;
    let d = sim.step(10);
    assert!(d.actions.is_empty());
    assert!(d.status.override_record.is_none());
    assert_eq!(requeue(&d), Some(ALLOWANCE_RETRY_SECONDS));
    // Allowance back: the override acts at once, inside the grace window.
    sim.allowance = 1;
    let d = sim.step(11);
    assert_eq!(evicted(&d), vec!["p0"]);
    assert_eq!(d.status.state, RemediationState::Acting);
    assert_eq!(d.status.reason.as_deref(), Some(reason::MANUAL_OVERRIDE));
}

#[test]
fn override_with_nothing_to_do_is_consumed() {
    let mut sim = Sim::new();
    sim.set_token("t", "me");
    let d = sim.step(0);
    assert!(d.actions.is_empty());
    assert_eq!(
        d.status.override_record.as_ref().expect("o").token,
        "t",
        "consumed so a stale token never fires later"
    );
    assert!(event_reasons(&d).contains(&"OverrideNoop"));
    sim.pods[0] = unready("p0", 0);
    let d = sim.step(5);
    assert!(
        d.actions.is_empty(),
        "stale token does not skip the deadline"
    );
}

#[test]
fn empty_or_blank_token_is_no_request() {
    let mut sim = Sim::new();
    sim.pods[0] = unready("p0", 0);
    sim.set_token("  ", "me");
    let d = sim.step(1);
    assert!(d.actions.is_empty());
    assert!(d.status.override_record.is_none());
}

#[test]
fn incident_lifecycle_timestamps() {
    let mut sim = Sim::new();
    assert!(sim.step(0).incident.is_none());
    sim.dep = DependencyObs::down("x");
    sim.pods = vec![unready("p0", 102), unready("p1", 103)];
    let d = sim.step(105);
    assert!(event_reasons(&d).contains(&"IncidentStarted"));
    let inc = d.incident.as_ref().expect("incident");
    assert_eq!(
        rel(inc.started_at.as_ref().expect("s")),
        102,
        "first unready pod"
    );
    assert!(inc.is_open());
    sim.dep = DependencyObs::up();
    sim.step(200);
    // p1 reconnects by itself; p0 stays wedged and is evicted at 240.
    sim.pods = vec![unready("p0", 102), ready("p1", 210)];
    assert_eq!(evicted(&sim.step(240)), vec!["p0"]);
    sim.pods = vec![ready("p1", 210), ready("p2", 255)];
    let d = sim.step(262);
    let inc = d.incident.as_ref().expect("incident");
    assert_eq!(rel(inc.started_at.as_ref().expect("s")), 102);
    assert_eq!(rel(inc.dependency_recovered_at.as_ref().expect("d")), 200);
    assert_eq!(rel(inc.recovered_at.as_ref().expect("r")), 255);
    assert_eq!(inc.duration_seconds, Some(153));
    assert_eq!(inc.actions, 1);
    assert_eq!(d.incident_resolved_seconds, Some(153));
    assert!(event_reasons(&d).contains(&"IncidentResolved"));
    // Closed incident stays as lastIncident; no new events while healthy.
    let d = sim.step(400);
    assert_eq!(d.incident, sim.incident);
    assert!(!d.incident.as_ref().expect("i").is_open());
    assert!(d.events.is_empty());
}

#[test]
fn short_unready_blips_are_not_incidents() {
    let mut sim = Sim::new();
    sim.pods[1] = unready("p1", 0);
    let d = sim.step(10);
    assert!(d.incident.is_none());
    sim.pods[1] = ready("p1", 12);
    assert!(sim.step(15).incident.is_none());
}

#[test]
fn dependency_loss_during_incident_clears_recovered_at() {
    let mut sim = Sim::new();
    sim.pods = vec![unready("p0", 0), unready("p1", 0)];
    sim.dep = DependencyObs::down("x");
    sim.step(0);
    sim.dep = DependencyObs::up();
    sim.step(10);
    assert!(sim
        .incident
        .as_ref()
        .expect("i")
        .dependency_recovered_at
        .is_some());
    sim.dep = DependencyObs::down("x");
    sim.step(20);
    assert!(sim
        .incident
        .as_ref()
        .expect("i")
        .dependency_recovered_at
        .is_none());
}

#[test]
fn restart_mid_incident_keeps_budget_and_incident() {
    let sim = exhausted_sim();
    let json = serde_json::to_value(&sim.status).expect("json");
    let inc = serde_json::to_value(&sim.incident).expect("json");
    let mut fresh = Sim::new();
    fresh.status = serde_json::from_value(json).expect("status");
    fresh.incident = serde_json::from_value(inc).expect("incident");
    fresh.pods = sim.pods.clone();
    let d = fresh.step(160);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.state, RemediationState::Blocked);
    assert!(
        !event_reasons(&d).contains(&"RemediationBlocked"),
        "no duplicate event"
    );
    assert!(!event_reasons(&d).contains(&"IncidentStarted"));
    assert_eq!(d.incident, sim.incident);
}

#[test]
fn clock_skew_does_not_panic_or_unblock() {
    let mut sim = exhausted_sim();
    // The clock jumps back an hour.
    let d = sim.step(150 - 3600);
    assert!(d.actions.is_empty());
    assert_eq!(
        d.status.actions_in_window, 5,
        "future-dated records still count"
    );
    // Even with a pod unready "long enough" on the skewed clock.
    sim.pods = vec![ready("a", -10_000), unready("old", -10_000)];
    let d = sim.step(150 - 3600);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.state, RemediationState::Blocked);
}

#[test]
fn pods_without_timestamps_are_never_evicted_on_a_guess() {
    let mut sim = Sim::new();
    sim.pods[0] = PodObs {
        name: "mystery".to_owned(),
        started: true,
        ..PodObs::default()
    };
    let first = sim.step(0);
    assert_eq!(first.status.reason.as_deref(), Some(reason::UNREADY));
    assert_eq!(
        requeue(&first),
        None,
        "no deadline that moves with the clock"
    );
    for t in [100, 1000] {
        let d = sim.step(t);
        assert!(d.actions.is_empty());
        assert_eq!(d.status, first.status);
    }
}

#[test]
fn future_dated_pod_keeps_a_fixed_deadline() {
    let mut sim = Sim::new();
    // Clock skew: the pod turned unready "at 50" on a clock that reads 0.
    sim.pods[0] = unready("p0", 50);
    let d = sim.step(0);
    assert_eq!(requeue(&d), Some(70));
    assert_eq!(sim.step(1).status, d.status);
    assert!(sim.step(69).actions.is_empty());
    assert_eq!(evicted(&sim.step(70)), vec!["p0"]);
}

#[test]
fn an_older_token_reapplied_grants_nothing() {
    let mut sim = exhausted_sim();
    for (t, token, acts) in [(151, "a", 1), (200, "b", 1), (250, "a", 0), (300, "b", 0)] {
        sim.pods = vec![ready("a", -1000), unready(&format!("s{t}"), 0)];
        sim.set_token(token, "me");
        assert_eq!(sim.step(t).actions.len(), acts, "t={t} token={token}");
    }
    assert_eq!(sim.status.consumed_override_tokens, vec!["a"]);
}

#[test]
fn disabled_reports_but_only_overrides_act() {
    let mut sim = Sim::with_policy(Policy {
        enabled: false,
        ..Policy::default()
    });
    sim.pods[0] = unready("p0", -100);
    let d = sim.step(0);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.state, RemediationState::Blocked);
    assert_eq!(
        d.status.reason.as_deref(),
        Some(reason::REMEDIATION_DISABLED)
    );
    assert_eq!(
        d.status.actions_in_window, 0,
        "nothing recorded, no budget spent"
    );
    assert!(d
        .status
        .next_action
        .as_deref()
        .unwrap_or("")
        .contains("evicting unready pods skipped"));
    sim.set_token("once", "me");
    assert_eq!(evicted(&sim.step(1)), vec!["p0"]);
}

#[test]
fn budget_slot_accounts_for_override_records() {
    // 5 automatic (0..120) + 1 override at 151: two records must expire
    // before an automatic action fits again, i.e. at 30 + 600.
    let mut sim = exhausted_sim();
    sim.set_token("t", "me");
    assert_eq!(sim.step(151).actions.len(), 1);
    sim.pods = vec![ready("a", -1000), unready("next", 100)];
    let d = sim.step(200);
    assert_eq!(d.status.state, RemediationState::Blocked);
    assert!(d
        .status
        .next_action
        .as_deref()
        .unwrap_or("")
        .contains("next slot at 2023-11-14T22:23:50Z"));
    // The record at 0 leaves the window at 600 (one fewer in the status),
    // the one at 30 frees the slot at 630.
    assert_eq!(requeue(&d), Some(600 - 200));
    let d = sim.step(600);
    assert_eq!(d.status.state, RemediationState::Blocked);
    assert_eq!(d.status.actions_in_window, 5);
    assert_eq!(requeue(&d), Some(30));
    assert!(sim.step(629).actions.is_empty());
    assert_eq!(sim.step(630).actions.len(), 1);
}
