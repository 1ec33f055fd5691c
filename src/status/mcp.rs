//! `status.mcp` and the `McpResponsive` condition from the MCP checks of the
//! ready pods. Pure.
use super::conditions::Desired;
use crate::api::{condition, McpCheckSpec, McpPodFailure, McpProtocolVersion, McpStatus};
use crate::controller::mcp_prober::PodCheck;
use crate::mcpcheck::{sanitize, Facts, FailureKind};
use crate::remediation::{judge_mcp, McpEvidence};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;

/// Failing pods listed in status at most.
pub const MAX_LISTED: usize = 10;
/// `lastCheckTime`, and a new value of what the server says about itself,
/// alone are refreshed no more often than this.
const CHECK_TIME_REFRESH: SignedDuration = SignedDuration::from_secs(300);
/// Characters kept of a name or version the pod reports.
pub const MAX_NAME: usize = crate::mcpcheck::MAX_NAME_CHARS;
/// Characters kept of a failure's detail.
pub const MAX_DETAIL: usize = crate::mcpcheck::MAX_DETAIL_CHARS;

/// Protocol versions listed by name in status at most; the rest are folded
/// into one `other` entry per era, so the list has at most this plus two.
pub const MAX_VERSIONS: usize = 4;
/// The `version` of the folded entry.
pub const OTHER_VERSIONS: &str = "other";

/// What the pods say about themselves can change on every check (a version
/// string with a build stamp, a pod that lies): such a change alone is not
/// worth a status write, only a fact appearing or going is. Of
/// `protocolVersions` the pods per era stay: a pod that changes era (a
/// rollout to a 2026-07-28 build) is written at once, as a pod that starts
/// or stops answering is; which version strings the pods report is not.
fn without_volatile(s: &McpStatus) -> McpStatus {
    let seen = |v: &Option<String>| v.as_ref().map(|_| String::new());
    let mut per_era: BTreeMap<&str, i32> = BTreeMap::new();
    for v in &s.protocol_versions {
        *per_era.entry(v.era.as_str()).or_default() += v.pods;
    }
    McpStatus {
        server_name: seen(&s.server_name),
        server_version: seen(&s.server_version),
        protocol_version: seen(&s.protocol_version),
        protocol_versions: per_era
            .into_iter()
            .map(|(era, pods)| McpProtocolVersion {
                version: String::new(),
                era: era.to_string(),
                pods,
            })
            .collect(),
        tools: s.tools.map(|_| 0),
        last_check_time: None,
        ..s.clone()
    }
}

/// The responsive pods grouped by (protocol version, era): the most pods
/// first (then the newest version) decide which [`MAX_VERSIONS`] are named;
/// the list shows them newest version first, then the folded ones.
pub fn protocol_versions<'a>(
    facts: impl IntoIterator<Item = &'a Facts>,
) -> Vec<McpProtocolVersion> {
    let mut groups: BTreeMap<(String, &str), i32> = BTreeMap::new();
    for f in facts {
        let version = f
            .protocol_version
            .as_deref()
            .map_or_else(|| "unknown".to_string(), |v| sanitize(v, MAX_NAME));
        *groups.entry((version, f.era.label())).or_default() += 1;
    }
    let mut groups: Vec<((String, &str), i32)> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    let mut folded: BTreeMap<&str, i32> = BTreeMap::new();
    for ((_, era), pods) in groups.drain(MAX_VERSIONS.min(groups.len())..) {
        *folded.entry(era).or_default() += pods;
    }
    groups.sort_by(|a, b| b.0.cmp(&a.0));
    let entry = |version: String, era: &str, pods: i32| McpProtocolVersion {
        version,
        era: era.to_string(),
        pods,
    };
    groups
        .into_iter()
        .map(|((v, era), pods)| entry(v, era, pods))
        .chain(
            folded
                .into_iter()
                .map(|(era, pods)| entry(OTHER_VERSIONS.to_string(), era, pods)),
        )
        .collect()
}

/// A pod is wedged: Ready, and its MCP checks have seen it fail (not to
/// connect) for `unhealthyAfterSeconds`, the last of them within two periods
/// (the engine's rule, [`judge_mcp`]).
pub fn wedged(spec: &McpCheckSpec, check: &PodCheck, now: Timestamp) -> bool {
    check.unresponsive_since().is_some_and(|since| {
        let secs = |v: i32| u64::try_from(v).unwrap_or(0);
        matches!(
            judge_mcp(
                since.as_second(),
                check.checked_at.as_second(),
                now.as_second(),
                secs(spec.period_seconds),
                secs(spec.unhealthy_after_seconds),
                None,
            ),
            McpEvidence::Wedged { .. }
        )
    })
}

/// `checks` holds the last check of each Ready pod (pod name, check).
pub fn compute(
    spec: &McpCheckSpec,
    checks: &[(String, PodCheck)],
    previous: Option<&McpStatus>,
    now: Timestamp,
) -> (Option<McpStatus>, Desired) {
    if !spec.enabled {
        return (
            None,
            Desired::with_status(
                condition::MCP_RESPONSIVE,
                "Unknown",
                "ChecksDisabled",
                "health.mcp.enabled is false: the operator does not check the MCP layer",
            ),
        );
    }
    if checks.is_empty() {
        return (
            previous.cloned(),
            Desired::with_status(
                condition::MCP_RESPONSIVE,
                "Unknown",
                "NotChecked",
                "no ready pod has been checked yet",
            ),
        );
    }
    let mut st = McpStatus::default();
    // Facts from a passing check: the ones status shows while some pod still
    // reports them (no flip-flop between pods mid-rollout), else the newest.
    let facts = |f: &Facts| McpStatus {
        server_name: f.server_name.as_deref().map(|v| sanitize(v, MAX_NAME)),
        server_version: f.server_version.as_deref().map(|v| sanitize(v, MAX_NAME)),
        protocol_version: f.protocol_version.as_deref().map(|v| sanitize(v, MAX_NAME)),
        tools: f.tools.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
        ..McpStatus::default()
    };
    let shown = |s: &McpStatus| {
        (
            s.server_name.clone(),
            s.server_version.clone(),
            s.protocol_version.clone(),
            s.tools,
        )
    };
    let mut passing: Vec<(Timestamp, McpStatus)> = checks
        .iter()
        .filter_map(|(_, c)| c.outcome.as_ref().ok().map(|f| (c.checked_at, facts(f))))
        .collect();
    passing.sort_by_key(|(t, _)| *t);
    let kept = previous.and_then(|p| passing.iter().find(|(_, f)| shown(f) == shown(p)));
    if let Some((_, f)) = kept.or(passing.last()) {
        st.server_name = f.server_name.clone();
        st.server_version = f.server_version.clone();
        st.protocol_version = f.protocol_version.clone();
        st.tools = f.tools;
    } else if let Some(p) = previous {
        // Nothing answers now: keep what the server last said about itself.
        st.server_name = p.server_name.clone();
        st.server_version = p.server_version.clone();
        st.protocol_version = p.protocol_version.clone();
        st.tools = p.tools;
    }
    st.protocol_versions =
        protocol_versions(checks.iter().filter_map(|(_, c)| c.outcome.as_ref().ok()));
    let mut failing: Vec<(McpPodFailure, FailureKind)> = Vec::new();
    for (pod, c) in checks {
        match &c.outcome {
            Ok(_) => st.responsive_pods += 1,
            Err(f) => {
                let mut failure = McpPodFailure {
                    pod: pod.clone(),
                    reason: f.kind.reason().to_string(),
                    message: sanitize(&f.detail, MAX_DETAIL),
                    since: Time(c.failing_since.unwrap_or(c.checked_at)),
                    wedged: wedged(spec, c, now),
                };
                // The detail of a run of one kind of failure is written once:
                // a server whose error text changes per check costs no write.
                if let Some(p) = previous
                    .into_iter()
                    .flat_map(|p| &p.failing_pods)
                    .find(|p| {
                        (&p.pod, &p.reason, &p.since)
                            == (&failure.pod, &failure.reason, &failure.since)
                    })
                {
                    failure.message = p.message.clone();
                }
                failing.push((failure, f.kind));
            }
        }
    }
    failing.sort_by(|a, b| a.0.since.0.cmp(&b.0.since.0).then(a.0.pod.cmp(&b.0.pod)));
    st.failing_pod_count = i32::try_from(failing.len()).unwrap_or(i32::MAX);
    st.failing_pods = failing
        .iter()
        .take(MAX_LISTED)
        .map(|(f, _)| f.clone())
        .collect();
    let newest = checks.iter().map(|(_, c)| c.checked_at).max();
    st.last_check_time = newest.map(Time);
    // Keep the previous status while only the check time and the volatile
    // facts moved, and it is recent.
    if let Some(p) = previous {
        let same = without_volatile(&st) == without_volatile(p);
        let recent = p
            .last_check_time
            .as_ref()
            .zip(newest)
            .is_some_and(|(t, n)| n.duration_since(t.0) < CHECK_TIME_REFRESH);
        if same && recent {
            st = p.clone();
        }
    }

    let total = checks.len();
    // What the check asked: a 2026-07-28 server is never sent `ping`.
    let stateless = |v: &crate::api::McpProtocolVersion| v.era == "stateless";
    let how = match (
        st.protocol_versions.iter().any(stateless),
        st.protocol_versions.iter().all(stateless),
        spec.list_tools,
    ) {
        (true, true, _) => "server/discover",
        (true, false, _) => "server/discover or initialize",
        (false, _, true) => "tools/list",
        (false, _, false) => "ping",
    };
    let cond = if failing.is_empty() {
        let who = match (&st.server_name, &st.server_version) {
            (Some(n), Some(v)) => format!("; {n} {v}"),
            (Some(n), None) => format!("; {n}"),
            _ => String::new(),
        };
        let proto = st
            .protocol_version
            .as_deref()
            .map(|v| format!(", protocol {v}"))
            .unwrap_or_default();
        Desired::new(
            condition::MCP_RESPONSIVE,
            true,
            "Responsive",
            format!("{total}/{total} ready pods answer MCP ({how}){who}{proto}"),
        )
    } else {
        let detail = failing
            .iter()
            .take(3)
            .map(|(f, _)| format!("{}: {} ({})", f.pod, f.message, f.reason))
            .collect::<Vec<_>>()
            .join("; ");
        let n = failing.len();
        if failing.iter().all(|(_, k)| *k == FailureKind::Connect) {
            Desired::with_status(
                condition::MCP_RESPONSIVE,
                "Unknown",
                "Unreachable",
                format!(
                    "the operator cannot connect to {n}/{total} ready pods, so it cannot tell whether they answer MCP: \
                     a NetworkPolicy must let the operator's pods reach the MCP port (see the chart's networkPolicy values); {detail}"
                ),
            )
        } else if failing.iter().any(|(f, _)| f.wedged) {
            let w = failing.iter().filter(|(f, _)| f.wedged).count();
            Desired::new(
                condition::MCP_RESPONSIVE,
                false,
                "Wedged",
                format!(
                    "{w}/{total} ready pods have not answered MCP for {} s while their readiness probe passes; remediation treats them as unhealthy; {detail}",
                    spec.unhealthy_after_seconds
                ),
            )
        } else {
            Desired::new(
                condition::MCP_RESPONSIVE,
                false,
                "NotResponding",
                format!("{n}/{total} ready pods fail the MCP check ({how}); {detail}"),
            )
        }
    };
    (Some(st), cond)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcpcheck::{Facts, Failure};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn ok(at: i64, tools: Option<u32>) -> PodCheck {
        PodCheck {
            checked_at: t(at),
            outcome: Ok(Facts {
                server_name: Some("notes".into()),
                server_version: Some("1.0".into()),
                protocol_version: Some("2025-11-25".into()),
                tools,
                ..Facts::default()
            }),
            failing_since: None,
        }
    }

    fn failing(kind: FailureKind, since: i64, at: i64) -> PodCheck {
        PodCheck {
            checked_at: t(at),
            outcome: Err(Failure {
                kind,
                detail: "no answer to initialize within 3000 ms".into(),
            }),
            failing_since: Some(t(since)),
        }
    }

    fn spec() -> McpCheckSpec {
        McpCheckSpec::default()
    }

    #[test]
    fn all_answering_is_responsive_with_the_servers_facts() {
        let checks = vec![("a".into(), ok(0, Some(4))), ("b".into(), ok(5, Some(4)))];
        let (st, c) = compute(&spec(), &checks, None, t(6));
        let st = st.expect("status");
        assert_eq!(c.status, "True");
        assert_eq!(st.tools, Some(4));
        assert_eq!(st.responsive_pods, 2);
        assert_eq!(st.last_check_time, Some(Time(t(5))));
        assert!(c.message.contains("2/2"), "{}", c.message);
    }

    #[test]
    fn failing_then_wedged_after_the_deadline() {
        let checks = vec![
            ("a".into(), ok(100, None)),
            ("b".into(), failing(FailureKind::Timeout, 80, 100)),
        ];
        let (st, c) = compute(&spec(), &checks, None, t(100));
        assert_eq!((c.status, c.reason.as_str()), ("False", "NotResponding"));
        let st = st.expect("status");
        assert_eq!(st.failing_pod_count, 1);
        assert!(!st.failing_pods[0].wedged, "20 s < 30 s");
        let (st, c) = compute(&spec(), &checks, None, t(110));
        assert_eq!((c.status, c.reason.as_str()), ("False", "Wedged"));
        assert!(st.expect("status").failing_pods[0].wedged);
    }

    #[test]
    fn connect_failures_only_are_unknown_not_wedged() {
        let checks = vec![("a".into(), failing(FailureKind::Connect, 0, 100))];
        let (st, c) = compute(&spec(), &checks, None, t(100));
        assert_eq!((c.status, c.reason.as_str()), ("Unknown", "Unreachable"));
        assert!(c.message.contains("networkPolicy"), "{}", c.message);
        assert!(!st.expect("status").failing_pods[0].wedged);
    }

    #[test]
    fn the_failing_list_is_bounded() {
        let checks: Vec<(String, PodCheck)> = (0..25)
            .map(|i| (format!("p{i:02}"), failing(FailureKind::Timeout, i, 100)))
            .collect();
        let (st, _) = compute(&spec(), &checks, None, t(100));
        let st = st.expect("status");
        assert_eq!(st.failing_pods.len(), MAX_LISTED);
        assert_eq!(st.failing_pod_count, 25);
        assert_eq!(st.failing_pods[0].pod, "p00", "longest failing first");
    }

    #[test]
    fn check_time_alone_does_not_rewrite_status_for_five_minutes() {
        let (first, _) = compute(&spec(), &[("a".into(), ok(0, None))], None, t(0));
        let (st, _) = compute(
            &spec(),
            &[("a".into(), ok(60, None))],
            first.as_ref(),
            t(60),
        );
        assert_eq!(st, first, "only the check time moved: unchanged status");
        let (st, _) = compute(
            &spec(),
            &[("a".into(), ok(301, None))],
            first.as_ref(),
            t(301),
        );
        assert_eq!(st.and_then(|s| s.last_check_time), Some(Time(t(301))));
    }

    #[test]
    fn disabled_checks_say_so() {
        let spec = McpCheckSpec {
            enabled: false,
            ..McpCheckSpec::default()
        };
        let (st, c) = compute(&spec, &[], None, t(0));
        assert!(st.is_none());
        assert_eq!((c.status, c.reason.as_str()), ("Unknown", "ChecksDisabled"));
    }

    #[test]
    fn pod_controlled_strings_are_bounded_and_clean() {
        let huge = format!("evil\n{}\r\u{1b}[31m", "x".repeat(10_000));
        let checks = vec![
            (
                "a".to_string(),
                PodCheck {
                    checked_at: t(0),
                    outcome: Ok(Facts {
                        server_name: Some(huge.clone()),
                        server_version: Some(huge.clone()),
                        protocol_version: Some(huge.clone()),
                        tools: None,
                        ..Facts::default()
                    }),
                    failing_since: None,
                },
            ),
            (
                "b".to_string(),
                PodCheck {
                    checked_at: t(0),
                    outcome: Err(Failure {
                        kind: FailureKind::Protocol,
                        detail: huge.clone(),
                    }),
                    failing_since: Some(t(0)),
                },
            ),
        ];
        let (st, c) = compute(&spec(), &checks, None, t(0));
        let st = st.expect("status");
        for v in [&st.server_name, &st.server_version, &st.protocol_version] {
            let v = v.as_deref().unwrap_or_default();
            assert!(v.chars().count() <= MAX_NAME, "{} chars", v.len());
            assert!(!v.chars().any(char::is_control), "{v:?}");
        }
        let m = &st.failing_pods[0].message;
        assert!(m.chars().count() <= MAX_DETAIL && !m.chars().any(char::is_control));
        assert!(c.message.len() < 2_000, "{} bytes", c.message.len());
        assert!(!c.message.chars().any(char::is_control), "{:?}", c.message);
        assert_eq!(sanitize("ok\tfine", 5), "ok f…");
        assert_eq!(sanitize("short", 5), "short");
    }

    #[test]
    fn facts_that_change_on_every_check_do_not_rewrite_status() {
        let check = |at: i64, version: &str, detail: &str| {
            vec![
                (
                    "a".to_string(),
                    PodCheck {
                        checked_at: t(at),
                        outcome: Ok(Facts {
                            server_name: Some("notes".into()),
                            server_version: Some(version.into()),
                            protocol_version: Some("2025-11-25".into()),
                            tools: Some(4),
                            ..Facts::default()
                        }),
                        failing_since: None,
                    },
                ),
                (
                    "b".to_string(),
                    PodCheck {
                        checked_at: t(at),
                        outcome: Err(Failure {
                            kind: FailureKind::Protocol,
                            detail: detail.into(),
                        }),
                        failing_since: Some(t(0)),
                    },
                ),
            ]
        };
        let (first, c1) = compute(&spec(), &check(0, "1.0+build.1", "error 1"), None, t(0));
        let (second, c2) = compute(
            &spec(),
            &check(10, "1.0+build.2", "error 2"),
            first.as_ref(),
            t(10),
        );
        assert_eq!(second, first, "no status write");
        assert_eq!(c2, c1, "no condition write");
        // After five minutes the new facts are shown.
        let (later, _) = compute(
            &spec(),
            &check(301, "1.0+build.3", "error 3"),
            first.as_ref(),
            t(301),
        );
        let later = later.expect("status");
        assert_eq!(later.server_version.as_deref(), Some("1.0+build.3"));
        assert_eq!(
            later.failing_pods[0].message, "error 1",
            "one message per failure run"
        );
    }
}

#[cfg(test)]
mod version_tests {
    use super::*;
    use crate::mcpcheck::{Era, Facts};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn pod(at: i64, era: Era, version: &str) -> PodCheck {
        PodCheck {
            checked_at: t(at),
            outcome: Ok(Facts {
                era,
                server_name: Some("notes".into()),
                server_version: Some("1.0".into()),
                protocol_version: Some(version.into()),
                tools: None,
            }),
            failing_since: None,
        }
    }

    fn v(version: &str, era: &str, pods: i32) -> McpProtocolVersion {
        McpProtocolVersion {
            version: version.into(),
            era: era.into(),
            pods,
        }
    }

    #[test]
    fn pods_are_counted_per_version_and_era_newest_first() {
        let checks = vec![
            ("a".to_string(), pod(0, Era::Legacy, "2025-11-25")),
            ("b".to_string(), pod(0, Era::Stateless2026, "2026-07-28")),
            ("c".to_string(), pod(0, Era::Stateless2026, "2026-07-28")),
        ];
        let (st, _) = compute(&McpCheckSpec::default(), &checks, None, t(0));
        assert_eq!(
            st.expect("status").protocol_versions,
            vec![
                v("2026-07-28", "stateless", 2),
                v("2025-11-25", "legacy", 1)
            ]
        );
    }

    #[test]
    fn the_message_names_what_the_check_asked() {
        let how = |pods: &[(Era, &str)]| {
            let checks: Vec<(String, PodCheck)> = pods
                .iter()
                .enumerate()
                .map(|(i, (e, ver))| (format!("p{i}"), pod(0, *e, ver)))
                .collect();
            compute(&McpCheckSpec::default(), &checks, None, t(0))
                .1
                .message
        };
        let stateless = how(&[(Era::Stateless2026, "2026-07-28")]);
        assert!(stateless.contains("(server/discover)"), "{stateless}");
        let legacy = how(&[(Era::Legacy, "2025-11-25")]);
        assert!(legacy.contains("(ping)"), "{legacy}");
        let mixed = how(&[
            (Era::Legacy, "2025-11-25"),
            (Era::Stateless2026, "2026-07-28"),
        ]);
        assert!(mixed.contains("(server/discover or initialize)"), "{mixed}");
    }

    #[test]
    fn failing_pods_are_not_counted() {
        let mut checks = vec![("a".to_string(), pod(0, Era::Legacy, "2025-11-25"))];
        checks.push((
            "b".to_string(),
            PodCheck {
                checked_at: t(0),
                outcome: Err(crate::mcpcheck::Failure {
                    kind: FailureKind::Timeout,
                    detail: "slow".into(),
                }),
                failing_since: Some(t(0)),
            },
        ));
        let (st, _) = compute(&McpCheckSpec::default(), &checks, None, t(0));
        assert_eq!(
            st.expect("status").protocol_versions,
            vec![v("2025-11-25", "legacy", 1)]
        );
    }

    #[test]
    fn many_versions_are_folded_per_era_and_strings_bounded() {
        // 30 pods, each claiming its own (hostile, long, dirty) version.
        let checks: Vec<(String, PodCheck)> = (0..30)
            .map(|i| {
                let era = if i % 2 == 0 {
                    Era::Legacy
                } else {
                    Era::Stateless2026
                };
                let version = format!("{i:02}\n{}", "x".repeat(5_000));
                (format!("p{i:02}"), pod(0, era, &version))
            })
            .collect();
        let (st, _) = compute(&McpCheckSpec::default(), &checks, None, t(0));
        let list = st.expect("status").protocol_versions;
        assert_eq!(list.len(), MAX_VERSIONS + 2, "{list:?}");
        assert_eq!(list.iter().map(|v| v.pods).sum::<i32>(), 30);
        for e in &list {
            assert!(e.version.chars().count() <= MAX_NAME, "{}", e.version.len());
            assert!(!e.version.chars().any(char::is_control), "{:?}", e.version);
        }
        let other: Vec<_> = list
            .iter()
            .filter(|e| e.version == OTHER_VERSIONS)
            .collect();
        assert_eq!(other.len(), 2, "one folded entry per era: {list:?}");
        // The most common version is always named.
        let mut checks = checks;
        for (_, c) in checks.iter_mut().take(5) {
            *c = pod(0, Era::Stateless2026, "2026-07-28");
        }
        let (st, _) = compute(&McpCheckSpec::default(), &checks, None, t(0));
        let list = st.expect("status").protocol_versions;
        assert!(list.contains(&v("2026-07-28", "stateless", 5)), "{list:?}");
    }

    #[test]
    fn a_version_string_changing_alone_is_not_written_an_era_change_is() {
        let spec = McpCheckSpec::default();
        let at = |at: i64, a: (Era, &str), b: (Era, &str)| {
            vec![
                ("a".to_string(), pod(at, a.0, a.1)),
                ("b".to_string(), pod(at, b.0, b.1)),
            ]
        };
        let (first, _) = compute(
            &spec,
            &at(0, (Era::Legacy, "2025-11-25"), (Era::Legacy, "2025-11-25")),
            None,
            t(0),
        );
        // A pod reporting another version string on every check: no write.
        let (second, _) = compute(
            &spec,
            &at(10, (Era::Legacy, "2025-11-25"), (Era::Legacy, "2025-06-18")),
            first.as_ref(),
            t(10),
        );
        assert_eq!(second, first, "version strings alone: no status write");
        // A rollout: one pod now speaks 2026-07-28, written at once.
        let (third, _) = compute(
            &spec,
            &at(
                20,
                (Era::Legacy, "2025-11-25"),
                (Era::Stateless2026, "2026-07-28"),
            ),
            first.as_ref(),
            t(20),
        );
        assert_eq!(
            third.expect("status").protocol_versions,
            vec![
                v("2026-07-28", "stateless", 1),
                v("2025-11-25", "legacy", 1)
            ]
        );
    }
}
