//! Pure analysis of watch histories and call logs, and the thresholds.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;
use mcp_workload::report::{CallEvent, Outage};
use serde::Serialize;

use crate::host::AuditWrite;

use crate::model::Threshold;

/// What the suite needs of a pod, taken from each watch event.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PodSummary {
    pub uid: String,
    pub ready: bool,
    pub restarts: u64,
    pub deleting: bool,
    pub waiting: Vec<String>,
    /// The pod's env has WORKLOAD_MODE=crash-on-start (S8's bad revision).
    pub crash_on_start: bool,
}

impl PodSummary {
    pub fn of(pod: &Pod) -> Self {
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let containers = status
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        let crash_on_start = pod.spec.as_ref().is_some_and(|s| {
            s.containers.iter().any(|c| {
                c.env.iter().flatten().any(|e| {
                    e.name == "WORKLOAD_MODE" && e.value.as_deref() == Some("crash-on-start")
                })
            })
        });
        Self {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            ready,
            restarts: containers
                .iter()
                .map(|c| u64::try_from(c.restart_count).unwrap_or(0))
                .sum(),
            deleting: pod.metadata.deletion_timestamp.is_some(),
            waiting: containers
                .iter()
                .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
                .collect(),
            crash_on_start,
        }
    }
}

pub type Pods = BTreeMap<String, PodSummary>;

/// What the suite needs of an McpServer's status over time.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct McpsSummary {
    pub phase: Option<String>,
    /// type -> (status, reason)
    pub conditions: BTreeMap<String, (String, String)>,
}

impl McpsSummary {
    pub fn of(o: &mcp_operator::api::McpServer) -> Self {
        let st = o.status.clone().unwrap_or_default();
        Self {
            phase: st.phase.map(|p| p.as_str().to_string()),
            conditions: st
                .conditions
                .iter()
                .map(|c| (c.type_.clone(), (c.status.clone(), c.reason.clone())))
                .collect(),
        }
    }

    pub fn condition_is(&self, type_: &str, status: &str) -> bool {
        self.conditions.get(type_).is_some_and(|(s, _)| s == status)
    }
}
/// Snapshots `(unix ms received, name -> summary)`, one per watch event.
pub type History<S> = Vec<(u64, BTreeMap<String, S>)>;

/// The state as of `t` (the last snapshot at or before it; empty before the first).
pub fn state_at<S: Clone>(history: &History<S>, t: u64) -> BTreeMap<String, S> {
    history
        .iter()
        .take_while(|(ts, _)| *ts <= t)
        .last()
        .map(|(_, s)| s.clone())
        .unwrap_or_default()
}

/// `want` pods live (not deleting) and all of them ready.
pub fn pods_ready(state: &Pods, want: usize) -> bool {
    let live: Vec<_> = state.values().filter(|p| !p.deleting).collect();
    live.len() == want && live.iter().all(|p| p.ready)
}

pub fn ready_count(state: &Pods) -> usize {
    state.values().filter(|p| p.ready && !p.deleting).count()
}

/// First instant after `t0` at which `want` pods are ready, having been seen
/// not ready (or absent, or replaced by a new uid) at some point after `t0`.
pub fn first_ready_after_down(history: &History<PodSummary>, t0: u64, want: usize) -> Option<u64> {
    let uids_before: BTreeSet<String> = state_at(history, t0)
        .values()
        .map(|p| p.uid.clone())
        .collect();
    let mut went_down = false;
    for (t, s) in history.iter().filter(|(t, _)| *t >= t0) {
        if !pods_ready(s, want) {
            went_down = true;
            continue;
        }
        let uids: BTreeSet<String> = s.values().map(|p| p.uid.clone()).collect();
        if went_down || uids != uids_before {
            return Some(*t);
        }
    }
    None
}

/// First instant at or after `from` from which `want` pods are ready and stay
/// ready through every later snapshot up to `end` (the end of observation).
pub fn ready_through_end(
    history: &History<PodSummary>,
    from: u64,
    want: usize,
    end: u64,
) -> Option<u64> {
    holds_through_end(history, from, end, |s| pods_ready(s, want))
}

/// First instant at or after `from` from which `holds` is true of every
/// snapshot up to `end`.
pub fn holds_through_end<S: Clone>(
    history: &History<S>,
    from: u64,
    end: u64,
    holds: impl Fn(&BTreeMap<String, S>) -> bool,
) -> Option<u64> {
    let mut candidate = holds(&state_at(history, from)).then_some(from);
    for (t, s) in history.iter().filter(|(t, _)| *t > from && *t <= end) {
        match (holds(s), candidate) {
            (true, None) => candidate = Some(*t),
            (false, _) => candidate = None,
            _ => {}
        }
    }
    candidate
}

/// The lease holder as of `t` (None before the first sight or when empty).
pub fn holder_at(leases: &History<String>, t: u64) -> Option<String> {
    state_at(leases, t)
        .into_values()
        .next()
        .filter(|h| !h.is_empty())
}

/// First instant at or after `t` at which the lease names a holder other than `from`.
pub fn takeover_after(leases: &History<String>, t: u64, from: &str) -> Option<u64> {
    leases
        .iter()
        .filter(|(ts, _)| *ts >= t)
        .find(|(_, s)| s.values().any(|h| !h.is_empty() && h != from))
        .map(|(ts, _)| *ts)
}

/// The lease holder over time as the API server saw it: the replica of each
/// successful write of the Lease, at the instant it was received (the audit
/// log's clock, the same as for the writes it judges).
pub fn holders_from_audit(writes: &[AuditWrite], lease: &str) -> History<String> {
    writes
        .iter()
        .filter(|w| w.resource == "leases" && w.name == lease && (200..300).contains(&w.code))
        .filter_map(|w| {
            let pod = w.pod.clone()?;
            Some((w.t_ms, BTreeMap::from([(lease.to_string(), pod)])))
        })
        .collect()
}

/// Writes (other than of the Lease itself) by a replica that did not hold the
/// lease when the API server received them.
pub fn writes_by_non_leader(writes: &[AuditWrite], leases: &History<String>) -> Vec<AuditWrite> {
    writes
        .iter()
        .filter(|w| w.resource != "leases")
        .filter(|w| w.pod.is_some() && w.pod != holder_at(leases, w.t_ms))
        .cloned()
        .collect()
}

/// Pods evicted successfully more than once.
pub fn duplicate_evictions(writes: &[AuditWrite]) -> Vec<String> {
    let mut n: BTreeMap<String, usize> = BTreeMap::new();
    for w in writes
        .iter()
        .filter(|w| w.subresource == "eviction" && (200..300).contains(&w.code))
    {
        *n.entry(format!("{}/{}", w.namespace, w.name)).or_default() += 1;
    }
    n.into_iter()
        .filter(|(_, c)| *c > 1)
        .map(|(p, _)| p)
        .collect()
}

/// The first snapshot between `from` and `to` with the fewest ready (not
/// deleting) pods:
/// (when, how many, the pods then), so a dip can be explained.
pub fn min_ready_state(history: &History<PodSummary>, from: u64, to: u64) -> (u64, usize, Pods) {
    std::iter::once((from, state_at(history, from)))
        .chain(
            history
                .iter()
                .filter(|(t, _)| *t >= from && *t <= to)
                .map(|(t, s)| (*t, s.clone())),
        )
        .map(|(t, s)| (t, ready_count(&s), s))
        .min_by_key(|(t, n, _)| (*n, *t))
        .unwrap_or((from, 0, Pods::new()))
}

/// (container restarts, pods replaced) between two observations. Pods for
/// which `ignore` holds (a revision expected to crash) are left out.
pub fn restart_delta(
    before: &Pods,
    after: &Pods,
    ignore: impl Fn(&PodSummary) -> bool,
) -> (u64, u64) {
    let by_uid: BTreeMap<&str, &PodSummary> =
        before.values().map(|p| (p.uid.as_str(), p)).collect();
    let restarts = after
        .values()
        .filter(|p| !ignore(p))
        .map(|p| match by_uid.get(p.uid.as_str()) {
            Some(old) => p.restarts.saturating_sub(old.restarts),
            None => p.restarts,
        })
        .sum();
    let after_uids: BTreeSet<&str> = after.values().map(|p| p.uid.as_str()).collect();
    let replaced = by_uid.keys().filter(|u| !after_uids.contains(*u)).count() as u64;
    (restarts, replaced)
}

/// Seconds from `t0` to `t`.
pub fn secs(t: Option<u64>, t0: u64) -> Option<f64> {
    t.map(|t| (t as f64 - t0 as f64) / 1000.0)
}

/// The first acknowledged call once the disruption took effect: the end of
/// the first client outage (ordered by start) that began before
/// `t0 + slack_ms` and ended after `t0`. Calls that still succeeded in the
/// instant between the command and its effect do not count. Without such an
/// outage (the service never failed) it is the first success sent at or after
/// `t0`. An outage still open at the end gives None.
pub fn first_success(
    outages: &[Outage],
    events: &[CallEvent],
    t0: u64,
    slack_ms: u64,
) -> Option<u64> {
    let mut sorted: Vec<&Outage> = outages.iter().collect();
    sorted.sort_by_key(|o| o.start_unix_ms);
    for o in sorted {
        if o.start_unix_ms >= t0 + slack_ms {
            break;
        }
        match o.end_unix_ms {
            None => return None,
            Some(end) if end > t0 => return Some(end),
            Some(_) => {}
        }
    }
    events
        .iter()
        .filter(|e| e.ok && e.start_ms >= t0)
        .map(|e| e.end_ms)
        .min()
}

/// First success sent at or after `t`.
pub fn first_success_sent_after(events: &[CallEvent], t: u64) -> Option<u64> {
    events
        .iter()
        .filter(|e| e.ok && e.start_ms >= t)
        .map(|e| e.end_ms)
        .min()
}

/// When a kill's observation may close: at `asked`, or `after_pg_ms` after
/// Postgres is ready if that is later, never past `cap`; while Postgres is not
/// back, at `cap`.
pub fn observe_until(asked: u64, cap: u64, pg_ready: Option<u64>, after_pg_ms: u64) -> u64 {
    pg_ready
        .map_or(cap, |p| asked.max(p + after_pg_ms))
        .min(cap)
}

/// Nearest-rank percentile; `None` values (runs that never recovered) count
/// as +infinity, so they push the percentile up instead of being dropped.
pub fn percentile(values: &[Option<f64>], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = values.iter().map(|x| x.unwrap_or(f64::INFINITY)).collect();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    let x = v[rank.clamp(1, v.len()) - 1];
    x.is_finite().then_some(x)
}

/// Limits of the recovery thresholds (seconds): first success after Postgres
/// ready, per run (S1, S2, S14) and on S3's and S19's p95.
pub const SLACK_AFTER_PG_READY_S: f64 = 2.5;
/// A single run (S1, S2, S14) carries the pools' reconnect tail: S14's rollout
/// restart was served 2.51 s after Postgres ready in the CI run of 2026-11-30.
pub const SINGLE_RUN_AFTER_PG_READY_S: f64 = 3.0;
/// With process readiness and the operator's gate the pods stay in the Service
/// and the pool's reconnect (backoff ≤ 500 ms in `notes`) is what is left: S3's
/// median must be within this (its p95 within the slack above). The goal
/// is + 1.0 s; measured medians 0.82 s (local) and 0.99 s (CI), 2026-11-30, too
/// close to assert 1.0 without flakes.
pub const GATED_AFTER_PG_READY_S: f64 = 1.25;
pub const WITHIN_AFTER_KILL_S: f64 = 10.0;
/// S3's p95 from the Postgres Service routing to the new pod again (see
/// `route`) to the first successful call: the MCP pods' own part of a
/// recovery. Measured 0.42 s at most over 20 kills with the hedged reconnect
/// (2026-11-30, local).
pub const AFTER_ROUTE_S: f64 = 1.0;

/// S1/S2/S3/S14/S15: served again at most `slack` after Postgres is, and soon
/// after the kill.
pub fn kill_thresholds(
    first_success_s: Option<f64>,
    pg_ready_s: Option<f64>,
    slack: f64,
) -> Vec<Threshold> {
    vec![
        after_pg_threshold(first_success_s, pg_ready_s, slack, ""),
        Threshold::at_most(
            "first success after the kill",
            first_success_s,
            WITHIN_AFTER_KILL_S,
            "s",
            "the seeds' target",
        ),
    ]
}

/// Name of the threshold relative to Postgres ready.
pub const AFTER_PG_READY: &str = "first success after Postgres ready";

/// First success at most `slack` after Postgres was ready.
pub fn after_pg_threshold(
    first_success_s: Option<f64>,
    pg_ready_s: Option<f64>,
    slack: f64,
    why: &str,
) -> Threshold {
    let after_pg = match (first_success_s, pg_ready_s) {
        (Some(f), Some(p)) => Some(((f - p) * 1000.0).round() / 1000.0),
        _ => None,
    };
    Threshold::at_most(
        AFTER_PG_READY,
        after_pg,
        slack,
        "s",
        format!(
            "first success {} s - Postgres ready {} s{why}",
            fmt(first_success_s),
            fmt(pg_ready_s)
        ),
    )
}

/// S4/S6: a pool that cannot heal itself is healed by the operator within
/// `unhealthyAfterSeconds + 2 x cooldownSeconds + 10 s` of Postgres being ready.
pub fn heal_threshold(
    served_after_pg_s: Option<f64>,
    unhealthy_after_s: u64,
    cooldown_s: u64,
) -> Threshold {
    let limit = (unhealthy_after_s + 2 * cooldown_s + 10) as f64;
    Threshold::at_most(
        "served again after Postgres ready",
        served_after_pg_s,
        limit,
        "s",
        format!(
            "unhealthyAfterSeconds {unhealthy_after_s} + 2 x cooldownSeconds {cooldown_s} + 10"
        ),
    )
}

pub fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "never".to_string(), |v| format!("{v:.2}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, ready: bool) -> PodSummary {
        PodSummary {
            uid: uid.into(),
            ready,
            ..PodSummary::default()
        }
    }

    fn snap(pods: &[(&str, PodSummary)]) -> BTreeMap<String, PodSummary> {
        pods.iter()
            .map(|(n, p)| (n.to_string(), p.clone()))
            .collect()
    }

    #[test]
    fn ready_after_down_needs_a_dip_or_a_new_pod() {
        let h = vec![
            (100, snap(&[("pg", pod("a", true))])),
            (200, snap(&[("pg", pod("a", false))])),
            (300, snap(&[("pg", pod("a", true))])),
        ];
        assert_eq!(first_ready_after_down(&h, 150, 1), Some(300));
        // replaced without a visible dip
        let h2 = vec![
            (100, snap(&[("pg", pod("a", true))])),
            (300, snap(&[("pg", pod("b", true))])),
        ];
        assert_eq!(first_ready_after_down(&h2, 150, 1), Some(300));
        // never went down
        let h3 = vec![(100, snap(&[("pg", pod("a", true))]))];
        assert_eq!(first_ready_after_down(&h3, 150, 1), None);
    }

    #[test]
    fn ready_through_end_restarts_on_every_dip() {
        let three = |r: [bool; 3]| {
            snap(&[
                ("a", pod("a", r[0])),
                ("b", pod("b", r[1])),
                ("c", pod("c", r[2])),
            ])
        };
        let h = vec![
            (0, three([true, true, true])),
            (100, three([false, true, true])),
            (200, three([true, true, true])),
            (300, three([true, false, true])),
            (400, three([true, true, true])),
        ];
        assert_eq!(ready_through_end(&h, 50, 3, 1000), Some(400));
        // never dipped after `from`: ready from `from`
        assert_eq!(ready_through_end(&h, 450, 3, 1000), Some(450));
        assert_eq!(min_ready_state(&h, 50, 1000).1, 2);
    }

    fn lease_hist(h: &[(u64, &str)]) -> History<String> {
        h.iter()
            .map(|(t, holder)| {
                (
                    *t,
                    BTreeMap::from([("lease".to_string(), holder.to_string())]),
                )
            })
            .collect()
    }

    fn write(t: u64, pod: &str, resource: &str, sub: &str, name: &str, code: u16) -> AuditWrite {
        AuditWrite {
            t_ms: t,
            verb: "create".into(),
            pod: Some(pod.into()),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: "ns".into(),
            name: name.into(),
            code,
        }
    }

    #[test]
    fn writes_are_judged_against_the_holder_when_received() {
        let leases = lease_hist(&[(100, "a"), (500, "b")]);
        assert_eq!(takeover_after(&leases, 200, "a"), Some(500));
        assert_eq!(takeover_after(&leases, 600, "b"), None);
        let writes = vec![
            write(150, "a", "mcpservers", "status", "x", 200),
            write(400, "b", "pods", "eviction", "p", 201), // b before it held the lease
            write(450, "a", "leases", "", "lease", 409),   // lease writes are the election's own
            write(600, "b", "pods", "eviction", "q", 201),
            write(700, "a", "events", "", "e", 201), // a after the takeover
        ];
        let bad: Vec<u64> = writes_by_non_leader(&writes, &leases)
            .iter()
            .map(|w| w.t_ms)
            .collect();
        assert_eq!(bad, vec![400, 700]);
    }

    #[test]
    fn the_holder_is_whoever_last_wrote_the_lease_successfully() {
        let writes = vec![
            write(100, "a", "leases", "", "op", 200),
            write(300, "b", "leases", "", "op", 409), // b's attempt refused
            write(500, "b", "leases", "", "op", 200),
            write(550, "c", "leases", "", "other", 200), // another lease
        ];
        let h = holders_from_audit(&writes, "op");
        assert_eq!(holder_at(&h, 400).as_deref(), Some("a"));
        assert_eq!(holder_at(&h, 600).as_deref(), Some("b"));
        assert_eq!(holder_at(&h, 50), None);
    }

    #[test]
    fn only_successful_repeated_evictions_are_duplicates() {
        let writes = vec![
            write(1, "a", "pods", "eviction", "p", 201),
            write(2, "b", "pods", "eviction", "p", 429),
            write(3, "b", "pods", "eviction", "q", 201),
            write(4, "b", "pods", "eviction", "q", 201),
        ];
        assert_eq!(duplicate_evictions(&writes), vec!["ns/q".to_string()]);
    }

    #[test]
    fn observation_stretches_for_a_slow_postgres_within_the_cap() {
        // Postgres back early: the window as asked.
        assert_eq!(observe_until(15_000, 45_000, Some(1_500), 5_000), 15_000);
        // Postgres back after 16 s: observe 5 s past it.
        assert_eq!(observe_until(15_000, 45_000, Some(16_000), 5_000), 21_000);
        // Postgres back late, or not yet: never past the cap.
        assert_eq!(observe_until(15_000, 45_000, Some(44_000), 5_000), 45_000);
        assert_eq!(observe_until(15_000, 45_000, None, 5_000), 45_000);
    }

    #[test]
    fn restarts_count_new_pods_and_skip_ignored() {
        let before = snap(&[(
            "a",
            PodSummary {
                restarts: 1,
                ..pod("a", true)
            },
        )]);
        let after = snap(&[
            (
                "a",
                PodSummary {
                    restarts: 3,
                    ..pod("a", true)
                },
            ),
            (
                "b",
                PodSummary {
                    restarts: 2,
                    ..pod("b", true)
                },
            ),
            (
                "bad",
                PodSummary {
                    restarts: 9,
                    crash_on_start: true,
                    ..pod("x", false)
                },
            ),
        ]);
        assert_eq!(restart_delta(&before, &after, |p| p.crash_on_start), (4, 0));
        assert_eq!(restart_delta(&before, &Pods::new(), |_| false), (0, 1));
    }

    fn ev(start: u64, end: u64, ok: bool) -> CallEvent {
        CallEvent {
            slot: 0,
            scheduled_ms: start,
            start_ms: start,
            end_ms: end,
            ok,
            kind: (!ok).then(|| "x".into()),
            session_lost: false,
        }
    }

    fn outage(start: u64, end: Option<u64>) -> Outage {
        Outage {
            start_unix_ms: start,
            end_unix_ms: end,
            duration_s: 0.0,
            failures: 1,
        }
    }

    #[test]
    fn first_success_is_the_end_of_the_outage_the_kill_caused() {
        let events = vec![
            ev(990, 1010, true),
            ev(1100, 1200, false),
            ev(3000, 3100, true),
        ];
        // listed out of order: ordering is by start
        let outages = vec![outage(20_000, Some(21_000)), outage(1010, Some(3100))];
        assert_eq!(first_success(&outages, &events, 1000, 10_000), Some(3100));
        // still open at the end
        assert_eq!(
            first_success(&[outage(1010, None)], &events, 1000, 10_000),
            None
        );
        // no outage: first success sent after t0
        assert_eq!(first_success(&[], &events, 1000, 10_000), Some(3100));
    }

    #[test]
    fn failed_runs_push_the_percentile_up() {
        let mut v: Vec<Option<f64>> = (1..=19).map(|i| Some(f64::from(i))).collect();
        assert_eq!(percentile(&v, 95.0), Some(19.0));
        v.push(None);
        assert_eq!(percentile(&v, 95.0), Some(19.0));
        v.push(None);
        assert_eq!(percentile(&v, 95.0), None);
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn kill_thresholds_are_relative_and_absolute() {
        let t = kill_thresholds(Some(3.4), Some(1.2), SLACK_AFTER_PG_READY_S);
        assert!(t.iter().all(|t| t.ok));
        let t = kill_thresholds(Some(4.0), Some(1.2), SLACK_AFTER_PG_READY_S);
        assert!(!t[0].ok && t[1].ok, "{t:?}");
        let t = kill_thresholds(None, Some(1.2), SLACK_AFTER_PG_READY_S);
        assert!(t.iter().all(|t| !t.ok));
        let h = heal_threshold(Some(25.0), 10, 5);
        assert_eq!(h.limit, 30.0);
        assert!(h.ok);
        assert!(!heal_threshold(Some(31.0), 10, 5).ok);
    }
}
