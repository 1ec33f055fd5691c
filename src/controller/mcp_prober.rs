//! MCP checks of every ready pod of every McpServer with `health.mcp.enabled`,
//! run apart from the reconcile (as the database prober is): a reconcile reads
//! the last verdict per pod, and a changed verdict wakes the pod's McpServer.
//!
//! Each pod is checked every `periodSeconds` ±20 %, its first check at a random
//! point of the first period, so many servers spread out instead of bursting;
//! at most `CONCURRENCY` checks are in flight across all McpServers, so 1,000
//! servers cannot flood the operator (checks wait their turn instead).
//!
//! The slots are shared fairly ([`Schedule`]): each McpServer with pods to
//! check may hold at most its share of them (`CONCURRENCY / servers`, at
//! least one), and free slots go round-robin across the servers with due
//! checks. One tenant whose pods hold every check open for the full timeout
//! slows only its own checks, not everyone else's.
use crate::api::McpServer;
use crate::builders::labels;
use crate::controller::cached::CachedPod;
use crate::mcpcheck::{Checker, FailureKind, Outcome, Target};
use crate::telemetry::metrics::{McpFailureLabels, Metrics};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Checks in flight at once, across all McpServers.
pub const CONCURRENCY: usize = 32;
/// How often the schedule is looked at.
const TICK: Duration = Duration::from_millis(500);

/// One pod, by identity: a replacement pod with the same name starts afresh.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// The last check of a pod.
#[derive(Clone, Debug, PartialEq)]
pub struct PodCheck {
    pub checked_at: Timestamp,
    pub outcome: Outcome,
    /// The first failure of the current run of failures: consecutive failed
    /// checks at most two periods apart (a longer gap says nothing about
    /// what happened in between, so the run starts again).
    pub failing_since: Option<Timestamp>,
}

impl PodCheck {
    /// Pure: the record after `outcome`, and whether it changed in a way the
    /// McpServer's status or remediation cares about (pass/fail, the failure
    /// kind, what the server reports, the first re-check of a failure run, a
    /// result that had gone stale). `period`: the server's check period.
    pub fn next(
        prev: Option<&PodCheck>,
        outcome: Outcome,
        now: Timestamp,
        period: Duration,
    ) -> (PodCheck, bool) {
        let stale_after =
            SignedDuration::try_from(period.saturating_mul(2)).unwrap_or(SignedDuration::MAX);
        let prev_fresh = prev.filter(|p| now.duration_since(p.checked_at) <= stale_after);
        let failing_since = match (&outcome, prev_fresh) {
            (Ok(_), _) => None,
            (Err(_), Some(p)) => p.failing_since.or(Some(now)),
            (Err(_), None) => Some(now),
        };
        let next = PodCheck {
            checked_at: now,
            outcome,
            failing_since,
        };
        let changed = match prev_fresh.map(|p| (&p.outcome, p.rechecked())) {
            None => true,
            Some((Ok(a), _)) => next.outcome.as_ref().ok() != Some(a),
            Some((Err(a), was)) => {
                next.outcome.as_ref().err().map(|f| f.kind) != Some(a.kind)
                    || was != next.rechecked()
            }
        };
        (next, changed)
    }

    /// Failing, and checked again since the first failure.
    fn rechecked(&self) -> bool {
        self.failing_since.is_some_and(|s| self.checked_at > s)
    }

    /// Failing in a way that says the server misbehaves (not that the
    /// operator could not reach it, nor that it asked for credentials, asked
    /// to be called later or was asked something it never offered), since when.
    pub fn unresponsive_since(&self) -> Option<Timestamp> {
        match &self.outcome {
            Err(f) if f.kind.counts_against_pod() => self.failing_since,
            _ => None,
        }
    }

    /// Failing to connect, since when.
    pub fn unreachable_since(&self) -> Option<Timestamp> {
        match &self.outcome {
            Err(f) if f.kind == FailureKind::Connect => self.failing_since,
            _ => None,
        }
    }

    /// The pod speaks MCP: a passing check, or an answer that is the
    /// server's own business (authentication required, try later, a reply
    /// too large for the prober to read).
    pub fn answers(&self) -> bool {
        match &self.outcome {
            Ok(_) => true,
            Err(f) => f.kind != FailureKind::Connect && !f.kind.counts_against_pod(),
        }
    }
}

/// The last check per pod.
#[derive(Clone, Default)]
pub struct McpVerdicts(Arc<Mutex<HashMap<PodKey, PodCheck>>>);

impl McpVerdicts {
    pub fn get(&self, k: &PodKey) -> Option<PodCheck> {
        self.0.lock().ok().and_then(|m| m.get(k).cloned())
    }

    /// Record an outcome; true when it changed what status shows.
    pub fn record(&self, k: &PodKey, outcome: Outcome, now: Timestamp, period: Duration) -> bool {
        let Ok(mut m) = self.0.lock() else {
            return false;
        };
        let (next, changed) = PodCheck::next(m.get(k), outcome, now, period);
        m.insert(k.clone(), next);
        changed
    }

    fn retain(&self, keep: &HashSet<PodKey>) {
        if let Ok(mut m) = self.0.lock() {
            m.retain(|k, _| keep.contains(k));
        }
    }
}

pub fn pod_key(p: &CachedPod) -> PodKey {
    PodKey {
        namespace: p.namespace().unwrap_or_default(),
        name: p.name_any(),
        uid: p.metadata.uid.clone().unwrap_or_default(),
    }
}

/// A pod to check, and how often.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    pub key: PodKey,
    pub server: ObjectRef<McpServer>,
    pub target: Target,
    pub period: Duration,
}

/// Pure: what to check — the Ready, non-terminating pods with an IP of every
/// McpServer whose MCP checks are on. (`run` does not call it at all while no
/// server has them on.)
pub fn plan(servers: &[Arc<McpServer>], pods: &[Arc<CachedPod>]) -> Vec<Planned> {
    // Pods by (namespace, server label): one pass over pods, not one per server,
    // borrowing their names (no allocation per pod).
    let mut by_server: HashMap<(&str, &str), Vec<&CachedPod>> = HashMap::new();
    for p in pods {
        if let Some(s) = p.labels().get(labels::SERVER_LABEL) {
            by_server
                .entry((
                    p.metadata.namespace.as_deref().unwrap_or_default(),
                    s.as_str(),
                ))
                .or_default()
                .push(p);
        }
    }
    let mut out = Vec::new();
    for m in servers {
        let h = &m.spec.health.mcp;
        if !h.enabled {
            continue;
        }
        let ns = m.metadata.namespace.as_deref().unwrap_or_default();
        let selector = labels::selector(m);
        let period = Duration::from_secs(u64::try_from(h.period_seconds.max(1)).unwrap_or(10));
        let timeout = Duration::from_secs(u64::try_from(h.timeout_seconds.max(1)).unwrap_or(3));
        let name = m.name_any();
        let mine = by_server.get(&(ns, name.as_str()));
        for p in mine.into_iter().flatten() {
            if !selector.iter().all(|(k, v)| p.labels().get(k) == Some(v))
                || !super::observe::pod_ready(p)
                || super::observe::is_terminating(p)
            {
                continue;
            }
            let Some(ip) = p.status.as_ref().and_then(|s| s.pod_ip.as_deref()) else {
                continue;
            };
            let host = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.to_string()
            };
            let addr = format!("{host}:{}", m.spec.port);
            out.push(Planned {
                key: pod_key(p),
                server: ObjectRef::from_obj(m.as_ref()),
                target: Target {
                    url: format!("http://{addr}{}", m.spec.path),
                    addr,
                    transport: m.spec.transport,
                    timeout,
                    list_tools: h.list_tools,
                },
                period,
            });
        }
    }
    out
}

/// A server, its checks in flight, its due checks.
type ServerQueue<'a> = (&'a ObjectRef<McpServer>, usize, Vec<(Instant, &'a Planned)>);

/// Which checks start when. Pure: the caller brings the clock and the dice
/// (a number in [0, 1) per call), so a test can run it on a fake clock.
#[derive(Default)]
pub struct Schedule {
    due: HashMap<PodKey, Instant>,
    in_flight: HashMap<PodKey, ObjectRef<McpServer>>,
    /// When each server was last given a slot (a sequence number): the least
    /// recently served goes first.
    served: HashMap<ObjectRef<McpServer>, u64>,
    seq: u64,
}

impl Schedule {
    /// Checks in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Forget pods no longer planned; the checks to start now, each server up
    /// to its share of `concurrency`, round-robin, longest-due pod first.
    pub fn start(
        &mut self,
        planned: &[Planned],
        now: Instant,
        concurrency: usize,
        dice: &mut impl FnMut() -> f64,
    ) -> Vec<Planned> {
        let keep: HashSet<&PodKey> = planned.iter().map(|p| &p.key).collect();
        self.due.retain(|k, _| keep.contains(k));
        // Per server, in the order servers first appear: checks in flight,
        // and the due checks (longest due last: popped first).
        let mut queues: Vec<ServerQueue<'_>> = Vec::new();
        let mut index: HashMap<&ObjectRef<McpServer>, usize> = HashMap::new();
        for p in planned {
            let i = *index.entry(&p.server).or_insert_with(|| {
                queues.push((&p.server, 0, Vec::new()));
                queues.len() - 1
            });
            if self.in_flight.contains_key(&p.key) {
                continue;
            }
            // A new pod: first check somewhere in its first period.
            let at = *self
                .due
                .entry(p.key.clone())
                .or_insert_with(|| now + p.period.mul_f64(dice().clamp(0.0, 1.0)));
            if at <= now {
                if let Some((_, _, q)) = queues.get_mut(i) {
                    q.push((at, p));
                }
            }
        }
        for s in self.in_flight.values() {
            if let Some((_, held, _)) = index.get(s).and_then(|&i| queues.get_mut(i)) {
                *held += 1;
            }
        }
        self.served.retain(|s, _| index.contains_key(s));
        let share = (concurrency / queues.len().max(1)).max(1);
        queues.retain(|(_, _, q)| !q.is_empty());
        for (_, _, q) in &mut queues {
            q.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.key.name.cmp(&a.1.key.name)));
        }
        queues.sort_by_key(|(s, _, _)| self.served.get(*s).copied().unwrap_or(0));
        let mut out = Vec::new();
        let mut free = concurrency.saturating_sub(self.in_flight.len());
        while free > 0 {
            let mut progress = false;
            for (server, held, q) in &mut queues {
                if free == 0 {
                    break;
                }
                if *held >= share {
                    continue;
                }
                let Some((_, p)) = q.pop() else {
                    continue;
                };
                *held += 1;
                free -= 1;
                progress = true;
                self.seq += 1;
                self.served.insert((*server).clone(), self.seq);
                self.in_flight.insert(p.key.clone(), p.server.clone());
                out.push(p.clone());
            }
            if !progress {
                break;
            }
        }
        out
    }

    /// A check of `p` ended at `now`; the next is due one period later,
    /// jittered ±20 % by `dice`.
    pub fn finished(&mut self, p: &Planned, now: Instant, dice: f64) {
        self.in_flight.remove(&p.key);
        let jitter = 0.8 + 0.4 * dice.clamp(0.0, 1.0);
        self.due
            .insert(p.key.clone(), now + p.period.mul_f64(jitter));
    }
}

/// Check every planned pod on its schedule, for ever; send the McpServer of a
/// pod whose verdict changed.
pub async fn run(
    servers: Store<McpServer>,
    pods: Store<CachedPod>,
    verdicts: McpVerdicts,
    metrics: Arc<Metrics>,
    wake: mpsc::Sender<ObjectRef<McpServer>>,
) {
    let checker = match Checker::new() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the MCP checker's HTTP client; MCP checks are off");
            return;
        }
    };
    let mut schedule = Schedule::default();
    let mut dice = || rand::rng().random_range(0.0..1.0);
    let mut tasks: JoinSet<(Planned, Outcome, Duration)> = JoinSet::new();
    loop {
        let checked = servers.state();
        // Not even a copy of the pod cache while no server is checked.
        let planned = if checked.iter().any(|m| m.spec.health.mcp.enabled) {
            plan(&checked, &pods.state())
        } else {
            Vec::new()
        };
        let keep: HashSet<PodKey> = planned.iter().map(|p| p.key.clone()).collect();
        verdicts.retain(&keep);
        for p in schedule.start(&planned, Instant::now(), CONCURRENCY, &mut dice) {
            let c = checker.clone();
            tasks.spawn(async move {
                let started = std::time::Instant::now();
                let out = c.check(&p.target).await;
                (p, out, started.elapsed())
            });
        }
        // Collect what finishes until the next look at the schedule.
        let next_look = Instant::now() + TICK;
        loop {
            let done = tokio::select! {
                Some(res) = tasks.join_next() => res.ok(),
                _ = tokio::time::sleep_until(next_look) => break,
            };
            let Some((p, outcome, took)) = done else {
                continue;
            };
            schedule.finished(&p, Instant::now(), dice());
            metrics.mcp_check_duration.observe(took.as_secs_f64());
            if let Err(f) = &outcome {
                metrics
                    .mcp_check_failures
                    .get_or_create(&McpFailureLabels {
                        reason: f.kind.label().into(),
                    })
                    .inc();
                tracing::debug!(pod = %p.key.name, namespace = %p.key.namespace, reason = f.kind.reason(), detail = %f.detail, "MCP check failed");
            }
            // The McpServer may have gone while the check ran.
            if servers.get(&p.server).is_none() {
                continue;
            }
            if verdicts.record(&p.key, outcome, Timestamp::now(), p.period)
                && wake.send(p.server).await.is_err()
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcpcheck::{Facts, Failure};

    const PERIOD: Duration = Duration::from_secs(10);

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn fail(kind: FailureKind) -> Outcome {
        Err(Failure {
            kind,
            detail: "x".into(),
        })
    }

    #[test]
    fn failing_since_is_the_first_failure_of_a_run() {
        let (a, changed) = PodCheck::next(None, Ok(Facts::default()), t(0), PERIOD);
        assert!(changed, "first check");
        assert_eq!(a.failing_since, None);
        let (b, changed) = PodCheck::next(Some(&a), fail(FailureKind::Timeout), t(10), PERIOD);
        assert!(changed);
        assert_eq!(b.unresponsive_since(), Some(t(10)));
        let (c, changed) = PodCheck::next(Some(&b), fail(FailureKind::Timeout), t(20), PERIOD);
        assert!(changed, "the first re-check of a failure: wake");
        assert_eq!(c.failing_since, Some(t(10)), "kept from the first failure");
        let (c, changed) = PodCheck::next(Some(&c), fail(FailureKind::Timeout), t(25), PERIOD);
        assert!(!changed, "same verdict: no wake");
        let (d, changed) = PodCheck::next(Some(&c), fail(FailureKind::HttpStatus), t(30), PERIOD);
        assert!(changed, "another kind of failure");
        assert_eq!(d.failing_since, Some(t(10)));
        let (e, changed) = PodCheck::next(Some(&d), Ok(Facts::default()), t(40), PERIOD);
        assert!(changed);
        assert_eq!(e.failing_since, None);
    }

    #[test]
    fn a_gap_of_more_than_two_periods_starts_the_failure_run_again() {
        let (a, _) = PodCheck::next(None, fail(FailureKind::Timeout), t(0), PERIOD);
        let (b, _) = PodCheck::next(Some(&a), fail(FailureKind::Timeout), t(20), PERIOD);
        assert_eq!(b.failing_since, Some(t(0)), "20 s apart: continuous");
        let (c, changed) = PodCheck::next(Some(&b), fail(FailureKind::Timeout), t(41), PERIOD);
        assert_eq!(c.failing_since, Some(t(41)), "nothing seen for 21 s");
        assert!(changed, "a result that had gone stale is news");
    }

    #[test]
    fn a_connect_failure_is_not_unresponsiveness() {
        let (a, _) = PodCheck::next(None, fail(FailureKind::Connect), t(0), PERIOD);
        assert_eq!(a.failing_since, Some(t(0)));
        assert_eq!(a.unresponsive_since(), None);
    }

    #[test]
    fn only_servers_with_mcp_checks_on_are_planned() {
        let pod: CachedPod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "notes-1", "namespace": "team-a", "uid": "p1",
                         "labels": labels::selector(&McpServer::test())},
            "status": {"podIP": "10.0.0.7", "conditions": [{"type": "ContainersReady", "status": "True"}]}
        }))
        .expect("pod");
        let pods = [Arc::new(pod)];
        let on = Arc::new(McpServer::test());
        let planned = plan(std::slice::from_ref(&on), &pods);
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].target.url, "http://10.0.0.7:8080/mcp");
        let mut off = McpServer::test();
        off.spec.health.mcp.enabled = false;
        assert!(plan(&[Arc::new(off)], &pods).is_empty());
    }

    #[test]
    fn new_facts_wake_the_server() {
        let (a, _) = PodCheck::next(None, Ok(Facts::default()), t(0), PERIOD);
        let more = Facts {
            tools: Some(4),
            ..Facts::default()
        };
        let (_, changed) = PodCheck::next(Some(&a), Ok(more), t(10), PERIOD);
        assert!(changed);
    }

    fn planned(server: &str, pod: usize) -> Planned {
        let name = format!("{server}-{pod}");
        Planned {
            key: PodKey {
                namespace: server.into(),
                name: name.clone(),
                uid: name.clone(),
            },
            server: ObjectRef::new(server).within(server),
            target: Target {
                url: format!("http://{name}:8080/mcp"),
                addr: format!("{name}:8080"),
                transport: crate::api::Transport::StreamableHttp,
                timeout: Duration::from_secs(30),
                list_tools: false,
            },
            period: PERIOD,
        }
    }

    /// Server A: 64 pods whose checks hang for the 30 s timeout; server B: 2
    /// pods that answer in 10 ms. On a fake clock, B's pods are each checked
    /// within one period (10 s) from the start, and again every period (±20 %).
    #[test]
    fn a_tenant_with_hung_pods_cannot_starve_another() {
        let mut pods: Vec<Planned> = (0..64).map(|i| planned("a", i)).collect();
        pods.extend((0..2).map(|i| planned("b", i)));
        let mut schedule = Schedule::default();
        // Deterministic dice: the golden-ratio sequence covers [0, 1) evenly.
        let mut n = 0u32;
        let mut dice = move || {
            n += 1;
            (f64::from(n) * 0.618_033_988_749_895).fract()
        };
        let t0 = Instant::now();
        let mut running: Vec<(Instant, Planned)> = Vec::new();
        let mut b_checks: HashMap<String, Vec<Duration>> = HashMap::new();
        let mut now = t0;
        while now < t0 + Duration::from_secs(120) {
            let (ended, still): (Vec<_>, Vec<_>) =
                running.into_iter().partition(|(end, _)| *end <= now);
            running = still;
            for (_, p) in ended {
                let d = dice();
                schedule.finished(&p, now, d);
            }
            for p in schedule.start(&pods, now, CONCURRENCY, &mut dice) {
                let took = if p.key.namespace == "a" {
                    Duration::from_secs(30)
                } else {
                    b_checks
                        .entry(p.key.name.clone())
                        .or_default()
                        .push(now - t0);
                    Duration::from_millis(10)
                };
                running.push((now + took, p));
            }
            assert!(schedule.in_flight() <= CONCURRENCY);
            now += TICK;
        }
        for pod in ["b-0", "b-1"] {
            let times = b_checks.get(pod).cloned().unwrap_or_default();
            assert!(
                times.first().is_some_and(|t| *t <= PERIOD),
                "{pod} first checked at {times:?}"
            );
            let gaps_ok = times
                .windows(2)
                .all(|w| w[1] - w[0] <= PERIOD.mul_f64(1.2) + TICK * 2);
            assert!(gaps_ok && times.len() >= 10, "{pod} checked at {times:?}");
        }
    }

    #[test]
    fn one_server_alone_may_use_every_slot_and_checks_go_round_robin() {
        let mut pods: Vec<Planned> = (0..40).map(|i| planned("a", i)).collect();
        let mut schedule = Schedule::default();
        let t0 = Instant::now();
        assert!(
            schedule
                .start(&pods, t0, CONCURRENCY, &mut || 0.5)
                .is_empty(),
            "first checks spread over the first period"
        );
        let started = schedule.start(&pods, t0 + PERIOD, CONCURRENCY, &mut || 0.5);
        assert_eq!(started.len(), CONCURRENCY, "alone: all 32 slots");
        // Three servers with due checks share the slots left, one each in turn.
        pods.extend((0..40).map(|i| planned("b", i)));
        pods.extend((0..40).map(|i| planned("c", i)));
        let mut schedule = Schedule::default();
        schedule.start(&pods, t0, 9, &mut || 0.5);
        let started = schedule.start(&pods, t0 + PERIOD, 9, &mut || 0.5);
        let per = |s: &str| started.iter().filter(|p| p.key.namespace == s).count();
        assert_eq!((per("a"), per("b"), per("c")), (3, 3, 3));
    }
}
