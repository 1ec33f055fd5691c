//! A Ready pod whose MCP layer does not answer: judged like an unready pod on
//! its own deadline, held while the dependency is down, named in the audit.
use super::*;

/// MCP checks have failed since `since`, the last of them at `checked`.
fn wedged_checked(name: &str, since: i64, checked: i64) -> PodObs {
    PodObs {
        mcp_unresponsive_since: Some(at(since)),
        mcp_checked_at: Some(at(checked)),
        ..ready(name, since - 100)
    }
}

/// Failing since `since`, and a check failed just now (at 0).
fn wedged(name: &str, since: i64) -> PodObs {
    wedged_checked(name, since, 0)
}

/// (unresponsive for, evictions, requeue): the default deadline is 30 s; the
/// last check failed just now.
#[test]
fn wedged_pod_deadline_table() {
    for &(age, n, rq) in &[(0, 0, Some(30)), (29, 0, Some(1)), (30, 1, Some(30))] {
        let mut sim = Sim::new();
        sim.pods[1] = wedged_checked("p1", 100 - age, 100);
        let d = sim.step(100);
        assert_eq!(evicted(&d).len(), n, "age {age}");
        assert_eq!(requeue(&d), rq, "age {age}");
        if n == 1 {
            assert_eq!(d.actions[0].reason(), reason::MCP_UNRESPONSIVE);
            let Action::Evict { message, .. } = &d.actions[0] else {
                panic!("an eviction: {:?}", d.actions[0]);
            };
            assert!(message.contains("MCP layer has not answered"), "{message}");
        } else {
            let next = d.status.next_action.as_deref().unwrap_or("");
            assert!(next.contains("not answering MCP"), "{next}");
        }
    }
}

#[test]
fn wedged_pods_are_held_while_the_dependency_is_down() {
    let mut sim = Sim::new();
    sim.pods[1] = wedged("p1", -1000);
    sim.dep = DependencyObs::down("Service db/postgres has 0 ready endpoints");
    let d = sim.step(0);
    assert!(d.actions.is_empty());
    assert_eq!(
        d.status.reason.as_deref(),
        Some(reason::DEPENDENCY_UNAVAILABLE)
    );
}

#[test]
fn wedged_pods_share_the_churn_budget() {
    let mut sim = Sim::new();
    sim.policy.max_actions = 1;
    sim.pods = vec![wedged("p0", -1000), wedged("p1", -1000), ready("p2", -1000)];
    sim.allowance = 3;
    let d = sim.step(0);
    assert_eq!(evicted(&d).len(), 1, "one action left in the budget");
}

#[test]
fn an_unready_pod_is_judged_on_readiness_not_on_its_mcp_clock() {
    let mut sim = Sim::new();
    sim.pods[1] = PodObs {
        ready: false,
        ..wedged("p1", 95)
    };
    // unready since 95 - 100 = -5: 105 s by now, well past the 20 s deadline
    let d = sim.step(100);
    assert_eq!(evicted(&d), vec!["p1"]);
    assert_eq!(d.actions[0].reason(), reason::UNREADY_TOO_LONG);
}

/// Period 60, unhealthy after 30: one failed check does not evict 30 s later;
/// the re-check at 60 that fails again does.
#[test]
fn one_failed_check_does_not_evict_without_a_recheck() {
    let mut sim = Sim::with_policy(Policy {
        mcp_period_seconds: 60,
        mcp_unhealthy_after_seconds: 30,
        ..Policy::default()
    });
    sim.pods[1] = wedged_checked("p1", 0, 0);
    let d = sim.step(10);
    assert!(d.actions.is_empty());
    assert_eq!(requeue(&d), Some(20), "wakes at the deadline");
    for now in [30, 45, 59] {
        let d = sim.step(now);
        assert!(d.actions.is_empty(), "no check since the deadline at {now}");
        let next = d.status.next_action.as_deref().unwrap_or("");
        assert!(next.contains("after a new MCP check fails"), "{next}");
        // Not a busy loop: the next wake is when the result goes stale.
        assert_eq!(requeue(&d), Some(u64::try_from(121 - now).unwrap_or(0)));
    }
    sim.pods[1] = wedged_checked("p1", 0, 60);
    let d = sim.step(60);
    assert_eq!(evicted(&d), vec!["p1"]);
    assert_eq!(d.actions[0].reason(), reason::MCP_UNRESPONSIVE);
}

/// A starved prober: the last failure is older than two periods, so the pod
/// is judged as the Ready pod it is, not as wedged.
#[test]
fn a_stale_failure_never_counts() {
    let mut sim = Sim::new();
    // Failing from -1000 to -100 as far as the checks saw; nothing since.
    sim.pods[1] = wedged_checked("p1", -1000, -100);
    let d = sim.step(0);
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.status.next_action, None);
    assert!(d.incident.is_none(), "{:?}", d.incident);
    // Within two periods (20 s) it still counts.
    sim.pods[1] = wedged_checked("p1", -1000, -20);
    assert_eq!(evicted(&sim.step(0)), vec!["p1"]);
}
