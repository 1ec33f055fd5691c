//! Failed rollouts: rollback vs hold, timing, no repeats, what is learned.

use super::*;

/// Old revision "good" still has a ready pod; new revision "bad" crash-loops.
fn bad_rollout(policy: Policy) -> Sim {
    let mut sim = Sim::with_policy(policy);
    sim.desired = 2;
    sim.pods = vec![
        ready("old-0", -1000),
        with_rev(waiting(unready("new-0", 0), "CrashLoopBackOff"), "bad"),
        with_rev(waiting(unready("new-1", 0), "CrashLoopBackOff"), "bad"),
    ];
    sim.rollout.current_revision = Some("bad".to_owned());
    sim
}

fn rollback_of(d: &Decision) -> Option<(String, String)> {
    d.actions.iter().find_map(|a| match a {
        Action::Rollback {
            from_revision,
            to_revision,
            ..
        } => Some((from_revision.clone(), to_revision.clone())),
        Action::Evict { .. } => None,
    })
}

#[test]
fn crash_looping_new_revision_is_rolled_back_once() {
    let mut sim = bad_rollout(Policy::default());
    let d = sim.step(10);
    assert!(d.actions.is_empty());
    assert_eq!(requeue(&d), Some(10));
    let d = sim.step(20);
    assert_eq!(
        d.actions.len(),
        1,
        "a rollback, and no evictions of bad pods"
    );
    assert_eq!(rollback_of(&d), Some(("bad".to_owned(), "good".to_owned())));
    assert_eq!(d.actions[0].reason(), reason::FAILED_ROLLOUT);
    assert!(event_reasons(&d).contains(&"RolloutRolledBack"));
    let rb = d.status.rollback.as_ref().expect("rollback record");
    assert_eq!(
        (rb.from_revision.as_str(), rb.to_revision.as_str()),
        ("bad", "good")
    );
    assert_eq!(
        d.status.last_action.as_ref().expect("a").kind,
        ActionKind::Rollback
    );
    // The Deployment has not moved yet: wait, do not repeat, do not evict.
    for t in [21, 60, 600, 6000] {
        let d = sim.step(t);
        assert!(d.actions.is_empty(), "t={t}");
        assert_eq!(
            d.status.reason.as_deref(),
            Some(reason::ROLLBACK_IN_PROGRESS)
        );
    }
    // Rolled back: healthy on "good" again.
    sim.rollout.current_revision = Some("good".to_owned());
    sim.pods = vec![ready("old-0", -1000), ready("old-1", 6010)];
    let d = sim.step(6020);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.last_good_revision.as_deref(), Some("good"));
    assert!(!d.incident.as_ref().expect("i").is_open());
}

#[test]
fn image_pull_failure_rolls_back_too() {
    let mut sim = bad_rollout(Policy::default());
    sim.pods[1] = with_rev(waiting(unready("new-0", 0), "ImagePullBackOff"), "bad");
    sim.pods.truncate(2);
    assert!(rollback_of(&sim.step(20)).is_some());
}

#[test]
fn restarts_without_waiting_reason_count_as_failing() {
    let mut sim = bad_rollout(Policy::default());
    let mut p = with_rev(unready("new-0", 0), "bad");
    p.restart_count = 3;
    sim.pods = vec![ready("old-0", -1000), p];
    assert!(rollback_of(&sim.step(20)).is_some());
}

#[test]
fn progress_deadline_without_ready_new_pods_rolls_back() {
    let mut sim = bad_rollout(Policy::default());
    sim.pods = vec![ready("old-0", -1000), ready("old-1", -1000)];
    sim.rollout.progress_deadline_exceeded = true;
    assert!(rollback_of(&sim.step(0)).is_some());
}

#[test]
fn partially_ready_new_revision_is_not_a_failed_rollout() {
    let mut sim = bad_rollout(Policy::default());
    sim.pods[2] = with_rev(ready("new-1", 5), "bad");
    let d = sim.step(100);
    assert!(rollback_of(&d).is_none());
}

#[test]
fn rollback_disabled_holds_and_says_so() {
    let mut sim = bad_rollout(Policy {
        rollback_failed_rollouts: false,
        ..Policy::default()
    });
    let d = sim.step(20);
    assert!(d.actions.is_empty(), "hold: no rollback and no eviction");
    assert_eq!(d.status.state, RemediationState::Blocked);
    assert_eq!(d.status.reason.as_deref(), Some(reason::ROLLBACK_DISABLED));
    let c = condition(&d, CONDITION_REMEDIATION_BLOCKED);
    assert_eq!(c.status, ConditionStatus::True);
    assert_eq!(c.reason, reason::ROLLBACK_DISABLED);
    assert!(c.message.contains("rollbackFailedRollouts is false"));
    assert!(event_reasons(&d).contains(&"RolloutHeld"));
    let d = sim.step(60);
    assert!(!event_reasons(&d).contains(&"RolloutHeld"), "said once");
    // A human asks: one rollback.
    sim.set_token("undo", "kubectl");
    let d = sim.step(61);
    assert_eq!(rollback_of(&d), Some(("bad".to_owned(), "good".to_owned())));
    assert_eq!(d.actions[0].reason(), reason::MANUAL_OVERRIDE);
}

#[test]
fn rollback_respects_dependency_grace_and_budget() {
    // Dependency down: the rollout is not judged.
    let mut sim = bad_rollout(Policy::default());
    sim.dep = DependencyObs::down("x");
    assert!(sim.step(100).actions.is_empty());
    sim.dep = DependencyObs::up();
    assert!(sim.step(110).actions.is_empty());
    // Judged at recovery (110) + grace (20) + unhealthy (20).
    assert!(sim.step(149).actions.is_empty());
    assert!(rollback_of(&sim.step(150)).is_some());

    let mut sim = bad_rollout(Policy {
        max_actions: 0,
        ..Policy::default()
    });
    let d = sim.step(50);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.reason.as_deref(), Some(reason::BUDGET_EXHAUSTED));
}

#[test]
fn without_known_good_revision_crash_loops_are_evicted_not_rolled_back() {
    let mut sim = bad_rollout(Policy::default());
    sim.status.last_good_revision = None;
    sim.pods = vec![with_rev(
        waiting(unready("new-0", 0), "CrashLoopBackOff"),
        "bad",
    )];
    sim.desired = 1;
    let d = sim.step(20);
    assert_eq!(evicted(&d), vec!["new-0"]);
}

#[test]
fn shell_hint_supplies_the_target_when_the_engine_has_none() {
    let mut sim = bad_rollout(Policy::default());
    sim.status.last_good_revision = None;
    sim.rollout.previous_good_revision = Some("hinted".to_owned());
    assert_eq!(
        rollback_of(&sim.step(20)),
        Some(("bad".to_owned(), "hinted".to_owned()))
    );
}

#[test]
fn image_pull_failures_are_not_evicted() {
    let mut sim = Sim::new();
    sim.status.last_good_revision = None;
    sim.pods[0] = waiting(unready("p0", -100), "ErrImagePull");
    let d = sim.step(0);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.reason.as_deref(), Some(reason::IMAGE_FAILURE));
}

#[test]
fn last_good_revision_is_learned_only_from_a_complete_healthy_state() {
    let mut sim = Sim::new();
    sim.status.last_good_revision = None;
    sim.rollout.current_revision = Some("v2".to_owned());
    // Mixed revisions mid-rollout: not learned.
    sim.pods = vec![ready("a", 0), with_rev(ready("b", 0), "v2")];
    assert_eq!(sim.step(10).status.last_good_revision, None);
    // All on v2 and ready, dependency up: learned.
    sim.pods = vec![with_rev(ready("b", 0), "v2"), with_rev(ready("c", 0), "v2")];
    assert_eq!(
        sim.step(20).status.last_good_revision.as_deref(),
        Some("v2")
    );
    // Dependency down: not relearned, kept.
    sim.rollout.current_revision = Some("v3".to_owned());
    sim.pods = vec![with_rev(ready("d", 0), "v3"), with_rev(ready("e", 0), "v3")];
    sim.dep = DependencyObs::down("x");
    assert_eq!(
        sim.step(30).status.last_good_revision.as_deref(),
        Some("v2")
    );
}

#[test]
fn the_same_bad_template_under_a_new_generation_is_rolled_back_again() {
    let mut sim = bad_rollout(Policy::default());
    sim.rollout.generation = Some(2);
    assert!(
        rollback_of(&sim.step(20)).is_some(),
        "generation 2 rolled back"
    );
    assert_eq!(
        sim.status.rollback.as_ref().and_then(|r| r.generation),
        Some(2)
    );
    // Same generation, still failing: waits, never repeats.
    assert!(rollback_of(&sim.step(40)).is_none());
    // An unrelated spec edit (replicas, a remediation setting) ends the hold, so the
    // spec's template (the same bad revision) is back: judged and rolled back again.
    sim.rollout.generation = Some(3);
    let d = sim.step(60);
    assert_eq!(rollback_of(&d), Some(("bad".to_owned(), "good".to_owned())));
    assert_eq!(
        d.status.rollback.as_ref().and_then(|r| r.generation),
        Some(3)
    );
}
