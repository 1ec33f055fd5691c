//! A Ready pod whose MCP layer does not answer: judged like an unready pod on
//! its own deadline, held while the dependency is down, named in the audit.
use super::*;

fn wedged(name: &str, since: i64) -> PodObs {
    PodObs {
        mcp_unresponsive_since: Some(at(since)),
        ..ready(name, since - 100)
    }
}

/// (unresponsive for, evictions, requeue): the default deadline is 30 s.
#[test]
fn wedged_pod_deadline_table() {
    for &(age, n, rq) in &[(0, 0, Some(30)), (29, 0, Some(1)), (30, 1, Some(30))] {
        let mut sim = Sim::new();
        sim.pods[1] = wedged("p1", 100 - age);
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
