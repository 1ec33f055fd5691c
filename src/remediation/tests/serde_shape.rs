//! The persisted shape: camelCase, optional fields omitted, tolerant reads,
//! a schema the CRD can embed.

use super::*;

#[test]
fn status_serializes_camel_case_and_skips_empty() {
    let mut sim = Sim::new();
    sim.pods[0] = unready("p0", -100);
    sim.set_token("t", "me");
    let d = sim.step(0);
    let v = serde_json::to_value(&d.status).expect("json");
    let o = v.as_object().expect("object");
    for key in [
        "state",
        "actionsInWindow",
        "lastAction",
        "cooldownUntil",
        "nextAction",
        "override",
        "recentActions",
        "dependency",
        "lastGoodRevision",
    ] {
        assert!(o.contains_key(key), "missing {key} in {v}");
    }
    assert!(!o.contains_key("rollback"), "None is omitted");
    assert_eq!(v["state"], "Acting");
    assert_eq!(v["lastAction"]["kind"], "Evict");
    assert_eq!(v["lastAction"]["time"], "2023-11-14T22:13:20Z");
    assert_eq!(v["lastAction"]["manual"], true);
    assert_eq!(v["cooldownUntil"], "2023-11-14T22:13:50Z", "absolute");
    assert!(!o.contains_key("cooldownRemainingSeconds"));
    assert_eq!(v["override"]["token"], "t");
    let inc = serde_json::to_value(d.incident.as_ref().expect("i")).expect("json");
    assert!(inc.get("startedAt").is_some());
    assert!(inc.get("recoveredAt").is_none());
}

#[test]
fn empty_or_partial_status_deserializes_to_defaults() {
    let s: RemediationStatus = serde_json::from_str("{}").expect("empty");
    assert_eq!(s, RemediationStatus::default());
    let s: RemediationStatus =
        serde_json::from_str(r#"{"state":"Blocked","recentActions":[{"pod":"x"}]}"#)
            .expect("partial");
    assert_eq!(s.state, RemediationState::Blocked);
    assert_eq!(s.recent_actions.len(), 1);
    // A status written before cooldownUntil existed still reads.
    let s: RemediationStatus =
        serde_json::from_str(r#"{"state":"CoolingDown","cooldownRemainingSeconds":12}"#)
            .expect("old shape");
    assert_eq!(s.cooldown_until, None);
    let i: LastIncident = serde_json::from_str(r#"{"actions":3}"#).expect("incident");
    assert_eq!(i.actions, 3);
    assert!(!i.is_open());
}

#[test]
fn schema_marks_times_as_date_time_and_nothing_required() {
    let schema = schemars::schema_for!(RemediationStatus);
    let text = serde_json::to_string(&schema).expect("schema");
    assert!(text.contains("date-time"), "{text}");
    assert!(text.contains("\"override\""));
    assert!(text.contains("cooldownUntil"), "{text}");
    assert!(!text.contains("\"required\""), "{text}");
    let schema = schemars::schema_for!(LastIncident);
    let text = serde_json::to_string(&schema).expect("schema");
    assert!(text.contains("dependencyRecoveredAt"));
    assert!(!text.contains("\"required\""), "{text}");
}
