//! Pods that never started (unschedulable, image not pullable, missing
//! Secret) are never evicted; their cause is reported instead.

use super::*;

const UNSCHEDULABLE: &str =
    "Unschedulable: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector";

#[test]
fn unschedulable_pods_are_reported_not_evicted() {
    let mut sim = Sim::new();
    sim.allowance = 5;
    sim.pods = vec![
        never_started("p1", -500, Some(UNSCHEDULABLE)),
        never_started("p0", -500, Some(UNSCHEDULABLE)),
    ];
    let mut incidents_started = 0;
    for t in [0, 30, 100, 1000] {
        let d = sim.step(t);
        assert!(evicted(&d).is_empty(), "t={t}: {:?}", d.actions);
        assert!(d.actions.is_empty(), "t={t}");
        assert_eq!(d.status.state, RemediationState::Waiting, "t={t}");
        assert_eq!(
            d.status.reason.as_deref(),
            Some(reason::PODS_NOT_STARTED),
            "t={t}"
        );
        assert_eq!(
            d.not_started,
            vec![
                NotStarted {
                    pod: "p0".to_owned(),
                    cause: UNSCHEDULABLE.to_owned(),
                },
                NotStarted {
                    pod: "p1".to_owned(),
                    cause: UNSCHEDULABLE.to_owned(),
                },
            ]
        );
        let next = d.status.next_action.as_deref().unwrap_or("");
        assert!(next.contains("restart cannot help"), "{next}");
        assert!(next.contains(&format!("pod p0: {UNSCHEDULABLE}")), "{next}");
        assert_eq!(
            condition(&d, CONDITION_REMEDIATION_BLOCKED).status,
            ConditionStatus::False
        );
        assert_eq!(d.status.actions_in_window, 0);
        incidents_started += event_reasons(&d)
            .iter()
            .filter(|r| **r == "IncidentStarted")
            .count();
    }
    assert_eq!(incidents_started, 1, "the degraded pool is one incident");
    assert_eq!(sim.incident.as_ref().map(|i| i.actions), Some(0));
}

#[test]
fn only_the_started_pod_is_evicted() {
    let mut sim = Sim::new();
    sim.allowance = 5;
    sim.pods = vec![
        never_started("a-pending", -500, None),
        unready("b-wedged", -500),
        ready("c", -1000),
    ];
    sim.desired = 3;
    let d = sim.step(0);
    assert_eq!(evicted(&d), vec!["b-wedged"]);
    assert_eq!(
        d.not_started,
        vec![NotStarted {
            pod: "a-pending".to_owned(),
            cause: "not started yet".to_owned(),
        }]
    );
    // After the cooldown, with the wedged pod replaced by a ready one, the
    // pending pod is still not evicted.
    sim.pods = vec![
        never_started("a-pending", -500, None),
        ready("b2", 10),
        ready("c", -1000),
    ];
    let d = sim.step(100);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.reason.as_deref(), Some(reason::PODS_NOT_STARTED));
}

#[test]
fn manual_override_does_not_evict_a_pod_that_never_started() {
    let mut sim = Sim::new();
    sim.pods[1] = never_started(
        "p1",
        -500,
        Some("CreateContainerConfigError: secret \"notes-db\" not found"),
    );
    sim.set_token("t", "me");
    let d = sim.step(0);
    assert!(d.actions.is_empty());
    assert!(event_reasons(&d).contains(&"OverrideNoop"));
    assert!(d
        .status
        .next_action
        .as_deref()
        .unwrap_or("")
        .contains("secret \"notes-db\" not found"));
}

#[test]
fn image_pull_failure_of_a_new_revision_is_still_rolled_back() {
    let mut sim = Sim::new();
    sim.pods = vec![
        ready("old-0", -1000),
        ready("old-1", -1000),
        with_rev(
            waiting(
                never_started(
                    "new-0",
                    0,
                    Some("ImagePullBackOff: Back-off pulling image \"x\""),
                ),
                "ImagePullBackOff",
            ),
            "bad",
        ),
    ];
    sim.rollout.current_revision = Some("bad".to_owned());
    let d = sim.step(10);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.reason.as_deref(), Some(reason::UNREADY));
    let d = sim.step(20);
    assert_eq!(
        d.actions,
        vec![Action::Rollback {
            from_revision: "bad".to_owned(),
            to_revision: "good".to_owned(),
            reason: reason::FAILED_ROLLOUT.to_owned(),
            message: "rolling back from bad to good: pod new-0 of revision bad is failing \
                      (ImagePullBackOff: Back-off pulling image \"x\")"
                .to_owned(),
        }]
    );
}

#[test]
fn missing_secret_on_a_new_revision_is_rolled_back() {
    let mut sim = Sim::new();
    sim.pods = vec![
        ready("old-0", -1000),
        with_rev(
            waiting(
                never_started(
                    "new-0",
                    0,
                    Some("CreateContainerConfigError: secret \"notes-db\" not found"),
                ),
                "CreateContainerConfigError",
            ),
            "bad",
        ),
    ];
    sim.rollout.current_revision = Some("bad".to_owned());
    let d = sim.step(20);
    assert!(matches!(d.actions.as_slice(), [Action::Rollback { .. }]));
}

#[test]
fn not_started_report_is_bounded_and_sorted() {
    let mut sim = Sim::new();
    sim.pods = (0..8)
        .rev()
        .map(|i| never_started(&format!("p{i}"), -100, None))
        .collect();
    let long = "x".repeat(1000);
    sim.pods[7].start_failure = Some(long);
    let d = sim.step(0);
    let names: Vec<&str> = d.not_started.iter().map(|n| n.pod.as_str()).collect();
    assert_eq!(names, vec!["p0", "p1", "p2", "p3", "p4"]);
    assert!(d.not_started[0].cause.len() < 300, "causes are bounded");
    assert_eq!(d.not_started[1].cause, "not started yet");
}

#[test]
fn never_started_pods_schedule_no_wake() {
    // Nothing about them changes with time alone: only a pod event (scheduled,
    // image pulled) or the resync may wake the controller.
    let mut sim = Sim::new();
    sim.pods = vec![
        never_started("p1", -500, None),
        never_started("p0", -500, None),
    ];
    for t in [0, 30, 100, 1000] {
        assert_eq!(sim.step(t).requeue_after, None, "t={t}");
    }
}
