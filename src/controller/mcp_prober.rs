//! MCP checks of every ready pod of every McpServer with `health.mcp.enabled`,
//! run apart from the reconcile (as the database prober is): a reconcile reads
//! the last verdict per pod, and a changed verdict wakes the pod's McpServer.
//!
//! Each pod is checked every `periodSeconds` ±20 %, its first check at a random
//! point of the first period, so many servers spread out instead of bursting;
//! at most `CONCURRENCY` checks are in flight across all McpServers, so 1,000
//! servers cannot flood the operator (checks wait their turn instead).
use crate::api::McpServer;
use crate::builders::labels;
use crate::controller::cached::CachedPod;
use crate::mcpcheck::{Checker, FailureKind, Outcome, Target};
use crate::telemetry::metrics::{McpFailureLabels, Metrics};
use k8s_openapi::jiff::Timestamp;
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
    /// The first failure of the current run of failures.
    pub failing_since: Option<Timestamp>,
}

impl PodCheck {
    /// Pure: the record after `outcome`, and whether it changed in a way the
    /// McpServer's status or remediation cares about (pass/fail, the failure
    /// kind, what the server reports).
    pub fn next(prev: Option<&PodCheck>, outcome: Outcome, now: Timestamp) -> (PodCheck, bool) {
        let failing_since = match (&outcome, prev) {
            (Ok(_), _) => None,
            (Err(_), Some(p)) => p.failing_since.or(Some(now)),
            (Err(_), None) => Some(now),
        };
        let changed = match prev.map(|p| &p.outcome) {
            None => true,
            Some(Ok(a)) => outcome.as_ref().ok() != Some(a),
            Some(Err(a)) => outcome.as_ref().err().map(|f| f.kind) != Some(a.kind),
        };
        (
            PodCheck {
                checked_at: now,
                outcome,
                failing_since,
            },
            changed,
        )
    }

    /// Failing in a way that says the server misbehaves (not that the
    /// operator could not reach it), since when.
    pub fn unresponsive_since(&self) -> Option<Timestamp> {
        match &self.outcome {
            Err(f) if f.kind != FailureKind::Connect => self.failing_since,
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

    pub fn answers(&self) -> bool {
        self.outcome.is_ok()
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
    pub fn record(&self, k: &PodKey, outcome: Outcome, now: Timestamp) -> bool {
        let Ok(mut m) = self.0.lock() else {
            return false;
        };
        let (next, changed) = PodCheck::next(m.get(k), outcome, now);
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

fn jittered(period: Duration) -> Duration {
    period.mul_f64(rand::rng().random_range(0.8..1.2))
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
    let mut due: HashMap<PodKey, Instant> = HashMap::new();
    let mut in_flight: HashSet<PodKey> = HashSet::new();
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
        due.retain(|k, _| keep.contains(k));
        let now = Instant::now();
        for p in planned {
            if tasks.len() >= CONCURRENCY {
                break;
            }
            if in_flight.contains(&p.key) {
                continue;
            }
            // A new pod: first check somewhere in its first period.
            let at = *due
                .entry(p.key.clone())
                .or_insert_with(|| now + p.period.mul_f64(rand::rng().random_range(0.0..1.0)));
            if at > now {
                continue;
            }
            in_flight.insert(p.key.clone());
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
            in_flight.remove(&p.key);
            due.insert(p.key.clone(), Instant::now() + jittered(p.period));
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
            if verdicts.record(&p.key, outcome, Timestamp::now())
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
        let (a, changed) = PodCheck::next(None, Ok(Facts::default()), t(0));
        assert!(changed, "first check");
        assert_eq!(a.failing_since, None);
        let (b, changed) = PodCheck::next(Some(&a), fail(FailureKind::Timeout), t(10));
        assert!(changed);
        assert_eq!(b.unresponsive_since(), Some(t(10)));
        let (c, changed) = PodCheck::next(Some(&b), fail(FailureKind::Timeout), t(20));
        assert!(!changed, "same verdict: no wake");
        assert_eq!(c.failing_since, Some(t(10)), "kept from the first failure");
        let (d, changed) = PodCheck::next(Some(&c), fail(FailureKind::HttpStatus), t(30));
        assert!(changed, "another kind of failure");
        assert_eq!(d.failing_since, Some(t(10)));
        let (e, changed) = PodCheck::next(Some(&d), Ok(Facts::default()), t(40));
        assert!(changed);
        assert_eq!(e.failing_since, None);
    }

    #[test]
    fn a_connect_failure_is_not_unresponsiveness() {
        let (a, _) = PodCheck::next(None, fail(FailureKind::Connect), t(0));
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
        let (a, _) = PodCheck::next(None, Ok(Facts::default()), t(0));
        let more = Facts {
            tools: Some(4),
            ..Facts::default()
        };
        let (_, changed) = PodCheck::next(Some(&a), Ok(more), t(10));
        assert!(changed);
    }
}
