//! The pod readiness gate `mcp.operator.dev/healthy` (pure): which pods the
//! operator takes out of the Service, from what it alone sees across pods.
//!
//! False for a pod about to be evicted (taken out before the eviction, so no new
//! call lands on it) and for a wedged pod (Ready, MCP checks failing for
//! `health.mcp.unhealthyAfterSeconds`) while a sibling still answers: when every
//! pod is wedged the cause is shared, and removing every endpoint would turn hung
//! calls into refused ones without helping any client. True otherwise, including
//! through a database outage (the container probe decides that part).
use super::observe::{is_terminating, Observed};
use super::remediate::Eviction;
use crate::api::{McpServer, READINESS_GATE};
use crate::controller::cached::CachedPod;
use crate::status::mcp::wedged;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

pub const HEALTHY: &str = "Healthy";
pub const EVICTING: &str = "Evicting";
pub const MCP_UNRESPONSIVE: &str = "McpUnresponsive";

/// The gate condition one pod should carry, when it differs from what it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateChange {
    pub pod: String,
    pub healthy: bool,
    pub reason: &'static str,
    pub message: String,
}

impl GateChange {
    /// The `pods/status` strategic-merge patch that sets it (conditions merge
    /// on `type`, so the kubelet's conditions are left alone).
    pub fn patch(&self, now: Timestamp) -> serde_json::Value {
        serde_json::json!({"status": {"conditions": [{
            "type": READINESS_GATE,
            "status": if self.healthy { "True" } else { "False" },
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": now.to_string(),
        }]}})
    }
}

fn gated(p: &CachedPod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .is_some_and(|g| g.iter().any(|g| g.condition_type == READINESS_GATE))
}

fn current(p: &CachedPod) -> Option<(bool, &str)> {
    let c = p
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == READINESS_GATE)?;
    Some((c.status == "True", c.reason.as_deref().unwrap_or_default()))
}

/// The gate changes for the pods of `obs` that carry the gate.
pub fn decide(
    mcp: &McpServer,
    obs: &Observed,
    evictions: &[Eviction],
    now: Timestamp,
) -> Vec<GateChange> {
    let spec = &mcp.spec.health.mcp;
    let wedged_pods: Vec<&str> = if spec.enabled {
        obs.mcp_checks
            .iter()
            .filter(|(_, c)| wedged(spec, c, now))
            .map(|(name, _)| name.as_str())
            .collect()
    } else {
        Vec::new()
    };
    // Checked pods that answer: only then is a wedge this pod's own.
    let answering = obs
        .mcp_checks
        .iter()
        .filter(|(_, c)| c.failing_since.is_none())
        .count();
    let mut out = Vec::new();
    for p in obs.pods.iter().filter(|p| gated(p) && !is_terminating(p)) {
        let name = p.name_any();
        let want = if let Some(ev) = evictions.iter().find(|e| e.pod == name) {
            (
                false,
                EVICTING,
                format!("about to be evicted: {}", ev.message),
            )
        } else if answering > 0 && wedged_pods.contains(&name.as_str()) {
            (
                false,
                MCP_UNRESPONSIVE,
                format!(
                    "its MCP layer has not answered for {} s while {answering} sibling(s) answer",
                    spec.unhealthy_after_seconds
                ),
            )
        } else {
            (true, HEALTHY, "no problem seen by the operator".to_string())
        };
        if current(p) != Some((want.0, want.1)) {
            out.push(GateChange {
                pod: name,
                healthy: want.0,
                reason: want.1,
                message: want.2,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::mcp_prober::PodCheck;
    use crate::mcpcheck::{Facts, FailureKind};
    use serde_json::json;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn mcp() -> McpServer {
        serde_json::from_value(json!({
            "apiVersion": "mcp.operator.dev/v1alpha1", "kind": "McpServer",
            "metadata": {"name": "s", "namespace": "n"},
            "spec": {"image": "i", "health": {"mcp": {"unhealthyAfterSeconds": 30}}}
        }))
        .expect("fixture")
    }

    fn pod(name: &str, gate: Option<(&str, &str)>, with_gate: bool) -> CachedPod {
        let mut conds = vec![json!({"type": "ContainersReady", "status": "True"})];
        if let Some((status, reason)) = gate {
            conds.push(json!({"type": READINESS_GATE, "status": status, "reason": reason}));
        }
        let gates = if with_gate {
            json!([{"conditionType": READINESS_GATE}])
        } else {
            json!(null)
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "n"},
            "spec": {"containers": [{"name": "mcp"}], "readinessGates": gates},
            "status": {"conditions": conds}
        }))
        .expect("pod")
    }

    fn ok_check() -> PodCheck {
        PodCheck {
            checked_at: t(0),
            outcome: Ok(Facts::default()),
            failing_since: None,
        }
    }

    /// Failing since `since`, last checked (and failing) at `checked`.
    fn failing_check(since: i64, checked: i64) -> PodCheck {
        PodCheck {
            checked_at: t(checked),
            outcome: Err(crate::mcpcheck::Failure {
                kind: FailureKind::Timeout,
                detail: "x".into(),
            }),
            failing_since: Some(t(since)),
        }
    }

    fn obs(pods: Vec<CachedPod>, checks: Vec<(&str, PodCheck)>) -> Observed {
        Observed {
            pods,
            mcp_checks: checks
                .into_iter()
                .map(|(n, c)| (n.to_string(), c))
                .collect(),
            ..Observed::default()
        }
    }

    #[test]
    fn a_new_pod_gets_the_gate_set_true_and_then_nothing_changes() {
        let o = obs(vec![pod("a", None, true)], vec![]);
        let ch = decide(&mcp(), &o, &[], t(0));
        assert_eq!(ch.len(), 1);
        assert!(ch[0].healthy);
        let o = obs(vec![pod("a", Some(("True", HEALTHY)), true)], vec![]);
        assert!(decide(&mcp(), &o, &[], t(0)).is_empty());
    }

    #[test]
    fn pods_without_the_gate_are_left_alone() {
        let o = obs(vec![pod("a", None, false)], vec![]);
        assert!(decide(&mcp(), &o, &[], t(0)).is_empty());
    }

    #[test]
    fn a_wedged_pod_is_gated_out_while_a_sibling_answers() {
        let pods = vec![
            pod("a", Some(("True", HEALTHY)), true),
            pod("b", Some(("True", HEALTHY)), true),
        ];
        let o = obs(
            pods.clone(),
            vec![("a", failing_check(0, 20)), ("b", ok_check())],
        );
        assert!(decide(&mcp(), &o, &[], t(20)).is_empty(), "20 s < 30 s");
        let o = obs(pods, vec![("a", failing_check(0, 30)), ("b", ok_check())]);
        let ch = decide(&mcp(), &o, &[], t(31));
        assert_eq!(ch.len(), 1);
        assert_eq!((ch[0].pod.as_str(), ch[0].healthy), ("a", false));
        assert_eq!(ch[0].reason, MCP_UNRESPONSIVE);
    }

    #[test]
    fn only_a_fresh_check_past_the_deadline_gates_a_pod_out() {
        let pods = vec![
            pod("a", Some(("True", HEALTHY)), true),
            pod("b", Some(("True", HEALTHY)), true),
        ];
        // One failure at 0 and no check since: the clock alone proves nothing.
        let o = obs(
            pods.clone(),
            vec![("a", failing_check(0, 0)), ("b", ok_check())],
        );
        assert!(decide(&mcp(), &o, &[], t(31)).is_empty());
        // Seen failing at 30, but that was more than two periods (10 s) ago.
        let o = obs(pods, vec![("a", failing_check(0, 30)), ("b", ok_check())]);
        assert!(decide(&mcp(), &o, &[], t(51)).is_empty());
    }

    #[test]
    fn when_every_pod_is_wedged_none_is_gated_out() {
        let pods = vec![
            pod("a", Some(("True", HEALTHY)), true),
            pod("b", Some(("True", HEALTHY)), true),
        ];
        let o = obs(
            pods,
            vec![("a", failing_check(0, 60)), ("b", failing_check(0, 60))],
        );
        assert!(decide(&mcp(), &o, &[], t(60)).is_empty());
    }

    #[test]
    fn a_pod_about_to_be_evicted_is_gated_out_and_a_recovered_one_back_in() {
        let pods = vec![
            pod("a", Some(("True", HEALTHY)), true),
            pod("b", Some(("False", MCP_UNRESPONSIVE)), true),
        ];
        let ev = Eviction {
            pod: "a".into(),
            reason: "PodUnready".into(),
            message: "unready 12 s".into(),
        };
        let o = obs(pods, vec![("b", ok_check())]);
        let ch = decide(&mcp(), &o, &[ev], t(0));
        assert_eq!(ch.len(), 2);
        assert_eq!(
            (ch[0].pod.as_str(), ch[0].healthy, ch[0].reason),
            ("a", false, EVICTING)
        );
        assert_eq!(
            (ch[1].pod.as_str(), ch[1].healthy, ch[1].reason),
            ("b", true, HEALTHY)
        );
    }

    #[test]
    fn the_patch_sets_only_the_gate_condition() {
        let c = GateChange {
            pod: "a".into(),
            healthy: false,
            reason: EVICTING,
            message: "m".into(),
        };
        let p = c.patch(t(0));
        let conds = p["status"]["conditions"].as_array().expect("list");
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0]["type"], READINESS_GATE);
        assert_eq!(conds[0]["status"], "False");
    }
}
