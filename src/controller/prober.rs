//! TCP probes of databases outside the cluster (`database.probe`), run apart from
//! the reconcile: a reconcile only reads the last verdict, and a verdict that
//! changes (or goes stale) wakes the McpServers that use it at once.
//!
//! Each target (namespace, address, timeout) has its own schedule: it is probed
//! a jittered period after its last probe ended, with its own timeout. At most
//! [`CONCURRENCY`] probes are in flight, shared so that no target can hold up
//! another's verdict:
//! - the namespace with the fewest probes in flight starts first, so one
//!   namespace's many targets cannot crowd out another namespace's few;
//! - [`RESERVE`] slots are kept for targets whose last probe answered quickly
//!   (a few per namespace, with room always left for one more namespace) and
//!   for one first probe per namespace: a target that hung on its last probe
//!   (a black-holed host) never takes them, so it cannot delay the next probe
//!   of a healthy target, even in its own namespace. (A new target's first
//!   probe may wait for the first probes of its own namespace's other new
//!   targets: at most one of their timeouts.)
//!
//! A verdict older than [`Target::max_age`] is stale and reported unknown, so a
//! prober that fell behind never drives an eviction nor ends a pause.
use crate::api::McpServer;
use crate::remediation::{DependencyObs, DependencyState};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How long after a target's last probe ended the next one starts (±20 %).
pub const PERIOD: Duration = Duration::from_secs(5);
const JITTER: f64 = 0.2;
/// Probes in flight at once, across all targets.
pub const CONCURRENCY: usize = 64;
/// Slots only targets that answered quickly may take (see the module doc).
pub const RESERVE: usize = CONCURRENCY / 4;
/// How often the targets and the schedule are looked at; a finished probe
/// frees its slot for the next due target at once.
pub const TICK: Duration = Duration::from_millis(250);
/// A verdict is stale after this many periods (plus its timeout) without a new one.
pub const STALE_AFTER_PERIODS: u32 = 3;
/// Longest address put into a message (a DNS name and a port).
const ADDR_SHOWN: usize = 260;

/// What is probed: `host:port` with its connect timeout, for the McpServers of
/// one namespace. Verdicts are never shared across namespaces, so one tenant's
/// targets cannot stand in for (or hold up) another's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub namespace: String,
    pub addr: String,
    pub timeout_ms: u64,
}

impl Target {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Past this age a verdict is stale: [`STALE_AFTER_PERIODS`] periods and a
    /// probe's timeout went by without a new one.
    pub fn max_age(&self) -> Duration {
        PERIOD * STALE_AFTER_PERIODS + self.timeout()
    }

    /// The address as messages show it (the spec does not bound its length).
    fn shown(&self) -> String {
        if self.addr.chars().count() <= ADDR_SHOWN {
            return self.addr.clone();
        }
        let mut s: String = self.addr.chars().take(ADDR_SHOWN).collect();
        s.push_str("...");
        s
    }
}

/// One probe's outcome, and how old it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub up: bool,
    /// When the probe ended: the verdict's age counts from here.
    pub at: Instant,
    /// The same moment on the wall clock, for messages.
    pub checked_at: Timestamp,
    /// When the target went up (or down), on the wall clock.
    pub since: Timestamp,
}

/// The last verdict per target.
#[derive(Clone, Default)]
pub struct Verdicts(Arc<Mutex<HashMap<Target, Verdict>>>);

impl Verdicts {
    /// None until the target was probed once.
    pub fn get(&self, t: &Target) -> Option<Verdict> {
        self.0.lock().ok().and_then(|m| m.get(t).cloned())
    }

    /// Record a probe that ended at `at` (`wall` on the wall clock); true when
    /// the verdict changed (or is the first).
    pub fn record(&self, t: &Target, up: bool, at: Instant, wall: Timestamp) -> bool {
        let Ok(mut m) = self.0.lock() else {
            return false;
        };
        let prev = m.get(t);
        let changed = prev.is_none_or(|p| p.up != up);
        let since = match prev {
            Some(p) if !changed => p.since,
            _ => wall,
        };
        m.insert(
            t.clone(),
            Verdict {
                up,
                at,
                checked_at: wall,
                since,
            },
        );
        changed
    }

    fn retain(&self, keep: impl Fn(&Target) -> bool) {
        if let Ok(mut m) = self.0.lock() {
            m.retain(|t, _| keep(t));
        }
    }
}

/// With dependencies confined to the McpServer's namespace `ns`: the host to
/// dial (`<svc>.<ns>.svc`) when `host` names a Service of `ns` as `<svc>`,
/// `<svc>.<ns>`, `<svc>.<ns>.svc` or `<svc>.<ns>.svc.cluster.local`; None for
/// anything else (an IP address, another namespace, a name outside the cluster).
/// The short forms are spelt out because the operator resolves names from its
/// own namespace, not the McpServer's.
pub fn confined_host(host: &str, ns: &str) -> Option<String> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let labels: Vec<&str> = host.split('.').collect();
    let (svc, rest) = labels.split_first()?;
    let in_ns = match rest {
        [] => true,
        [n] | [n, "svc"] | [n, "svc", "cluster", "local"] => *n == ns,
        _ => false,
    };
    (in_ns && is_service_name(svc)).then(|| format!("{svc}.{ns}.svc"))
}

/// A Service name: an RFC 1035 label (so never a number, never part of an IP).
fn is_service_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1] != b'-'
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// The target an McpServer's `database.probe` names. None without a probe, and
/// (nothing is probed then) when dependencies are confined to the McpServer's
/// namespace and the host is not a Service there.
pub fn target(mcp: &McpServer, own_namespace_only: bool) -> Option<Target> {
    let p = mcp.spec.database.as_ref()?.probe.as_ref()?;
    let namespace = mcp.namespace()?;
    let host = if own_namespace_only {
        confined_host(&p.host, &namespace)?
    } else {
        p.host.clone()
    };
    Some(Target {
        addr: format!("{host}:{}", p.port),
        timeout_ms: u64::try_from(p.timeout_ms).unwrap_or(500),
        namespace,
    })
}

/// Pure: the dependency as the last verdict says at `now`.
pub fn observe(t: &Target, verdict: Option<&Verdict>, now: Instant) -> DependencyObs {
    let addr = t.shown();
    let Some(v) = verdict else {
        return DependencyObs {
            state: DependencyState::Unknown,
            since: None,
            message: Some(format!("TCP probe of {addr} has not run yet")),
            reason: Some("ProbePending".into()),
        };
    };
    if now.saturating_duration_since(v.at) > t.max_age() {
        // The time of the last verdict, not its age: the message (and so the
        // status) stays the same until a new verdict comes.
        let at = Timestamp::from_second(v.checked_at.as_second()).unwrap_or(v.checked_at);
        return DependencyObs {
            state: DependencyState::Unknown,
            since: None,
            message: Some(format!(
                "no TCP probe of {addr} ended within {}s; the last one ({}, at {at}) is stale and counts as unknown: nothing is evicted or resumed on it",
                t.max_age().as_secs(),
                if v.up { "succeeded" } else { "failed" },
            )),
            reason: Some("ProbeStale".into()),
        };
    }
    let obs = if v.up {
        DependencyObs::up_because("ProbeSucceeded", format!("TCP connect to {addr} succeeded"))
    } else {
        DependencyObs::down(format!(
            "TCP connect to {addr} failed within {}ms",
            t.timeout_ms
        ))
        .because("ProbeFailed")
    };
    DependencyObs {
        since: Some(Time(v.since)),
        ..obs
    }
}

/// How a target's last probe went, in the order due targets are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Pace {
    /// Answered (either way) within half its timeout.
    Fast,
    /// Not probed yet.
    New,
    /// Took half its timeout or more, or hung until it.
    Slow,
}

#[derive(Debug)]
struct Entry {
    due: Instant,
    pace: Pace,
    running: bool,
    /// Still named by an McpServer; an unwanted entry lives on only until its
    /// running probe ends, so the slot counts stay right.
    wanted: bool,
    /// When its last probe ended.
    last: Option<Instant>,
    /// Its verdict was reported stale (once per stale spell).
    stale_told: bool,
}

/// Probes in flight in one namespace.
#[derive(Debug, Default, Clone, Copy)]
struct Running {
    all: usize,
    fast: usize,
    new: usize,
}

impl Running {
    /// A probe of `pace` started (`up`) or ended.
    fn count(&mut self, pace: Pace, up: bool) {
        let step = |n: &mut usize| {
            *n = if up { *n + 1 } else { n.saturating_sub(1) };
        };
        step(&mut self.all);
        match pace {
            Pace::Fast => step(&mut self.fast),
            Pace::New => step(&mut self.new),
            Pace::Slow => {}
        }
    }
}

/// Pure: which probe runs when (see the module doc for the rules).
#[derive(Debug, Default)]
pub struct Schedule {
    entries: BTreeMap<Target, Entry>,
    running: usize,
    by_namespace: HashMap<String, Running>,
}

impl Schedule {
    /// Follow the targets the McpServers name now: a new one is first due
    /// `first()` from `now` (spread over a period, so many targets do not
    /// start at once); one no longer named is forgotten once its probe ended.
    pub fn sync<'a>(
        &mut self,
        targets: impl IntoIterator<Item = &'a Target>,
        now: Instant,
        mut first: impl FnMut() -> Duration,
    ) {
        for e in self.entries.values_mut() {
            e.wanted = false;
        }
        for t in targets {
            match self.entries.get_mut(t) {
                Some(e) => e.wanted = true,
                None => {
                    self.entries.insert(
                        t.clone(),
                        Entry {
                            due: now + first(),
                            pace: Pace::New,
                            running: false,
                            wanted: true,
                            last: None,
                            stale_told: false,
                        },
                    );
                }
            }
        }
        self.entries.retain(|_, e| e.wanted || e.running);
    }

    /// The probes to start at `now`, in order; they count as running until
    /// [`Schedule::finished`]. Rules, first match wins, for the best due target
    /// of the namespace with the fewest probes in flight (fast before new
    /// before slow, then the earliest due):
    /// 1. no slot free: none;
    /// 2. more than [`RESERVE`] slots free: start;
    /// 3. its last probe was fast and its namespace has fewer fast probes in
    ///    flight than its share of the reserve: start;
    /// 4. it was never probed and its namespace has no first probe in flight:
    ///    start;
    /// 5. otherwise that namespace waits.
    pub fn start(&mut self, now: Instant) -> Vec<Target> {
        let owners: BTreeSet<&str> = self
            .entries
            .iter()
            .filter(|(_, e)| e.wanted)
            .map(|(t, _)| t.namespace.as_str())
            .collect();
        // A share for each namespace and one left for the next: a namespace
        // that starts probing finds reserve slots free.
        let reserve_share = (RESERVE / (owners.len() + 1)).max(1);
        let mut queues: BTreeMap<String, VecDeque<(Pace, Instant, Target)>> = BTreeMap::new();
        for (t, e) in &self.entries {
            if e.wanted && !e.running && e.due <= now {
                queues.entry(t.namespace.clone()).or_default().push_back((
                    e.pace,
                    e.due,
                    t.clone(),
                ));
            }
        }
        for q in queues.values_mut() {
            q.make_contiguous().sort();
        }
        let mut out = Vec::new();
        while self.running < CONCURRENCY {
            let free = CONCURRENCY - self.running;
            let pick = queues
                .iter()
                .filter_map(|(ns, q)| {
                    let (pace, _, _) = q.front()?;
                    let r = self.by_namespace.get(ns).copied().unwrap_or_default();
                    let may = free > RESERVE
                        || match pace {
                            Pace::Fast => r.fast < reserve_share,
                            Pace::New => r.new == 0,
                            Pace::Slow => false,
                        };
                    may.then(|| (r.all, ns.clone()))
                })
                .min();
            let Some((_, ns)) = pick else {
                break;
            };
            let Some((pace, _, t)) = queues.get_mut(&ns).and_then(VecDeque::pop_front) else {
                break;
            };
            if let Some(e) = self.entries.get_mut(&t) {
                e.running = true;
            }
            self.running += 1;
            self.by_namespace.entry(ns).or_default().count(pace, true);
            out.push(t);
        }
        out
    }

    /// A probe of `t` ended at `now` after `took`; its next one is due `next`
    /// from now. True when its verdict had been reported stale (the new one
    /// is news, whatever it says).
    pub fn finished(&mut self, t: &Target, took: Duration, now: Instant, next: Duration) -> bool {
        let Some(e) = self.entries.get_mut(t) else {
            return false;
        };
        if !e.running {
            return false;
        }
        e.running = false;
        self.running = self.running.saturating_sub(1);
        if let Some(r) = self.by_namespace.get_mut(&t.namespace) {
            r.count(e.pace, false);
            if r.all == 0 {
                self.by_namespace.remove(&t.namespace);
            }
        }
        if !e.wanted {
            self.entries.remove(t);
            return false;
        }
        e.pace = if took >= t.timeout() / 2 {
            Pace::Slow
        } else {
            Pace::Fast
        };
        e.due = now + next;
        e.last = Some(now);
        std::mem::take(&mut e.stale_told)
    }

    /// Targets whose verdict went stale since the last call.
    pub fn newly_stale(&mut self, now: Instant) -> Vec<Target> {
        let mut out = Vec::new();
        for (t, e) in &mut self.entries {
            let stale = e
                .last
                .is_some_and(|l| now.saturating_duration_since(l) > t.max_age());
            if e.wanted && stale && !e.stale_told {
                e.stale_told = true;
                out.push(t.clone());
            }
        }
        out
    }
}

/// The McpServers of each target.
fn users(
    servers: &[Arc<McpServer>],
    own_namespace_only: bool,
) -> HashMap<Target, Vec<ObjectRef<McpServer>>> {
    let mut users: HashMap<Target, Vec<ObjectRef<McpServer>>> = HashMap::new();
    for m in servers {
        if let Some(t) = target(m, own_namespace_only) {
            users
                .entry(t)
                .or_default()
                .push(ObjectRef::from_obj(m.as_ref()));
        }
    }
    users
}

fn jittered(period: Duration) -> Duration {
    period.mul_f64(rand::rng().random_range(1.0 - JITTER..1.0 + JITTER))
}

/// One TCP connect, bounded by the target's timeout: (up, how long it took).
async fn probe(t: &Target) -> (bool, Duration) {
    let started = Instant::now();
    let up = matches!(
        tokio::time::timeout(t.timeout(), tokio::net::TcpStream::connect(&t.addr)).await,
        Ok(Ok(_))
    );
    (up, started.elapsed())
}

/// Probe every target the McpServers in `store` name, each on its own
/// schedule, for ever; wake the McpServers of a target whose verdict changed
/// or went stale.
pub async fn run(
    store: Store<McpServer>,
    verdicts: Verdicts,
    wake: mpsc::Sender<ObjectRef<McpServer>>,
    own_namespace_only: bool,
) {
    let mut schedule = Schedule::default();
    let mut probes: JoinSet<(bool, Duration)> = JoinSet::new();
    let mut probing: HashMap<tokio::task::Id, Target> = HashMap::new();
    let spawn = |ts: Vec<Target>,
                 probes: &mut JoinSet<(bool, Duration)>,
                 probing: &mut HashMap<tokio::task::Id, Target>| {
        for t in ts {
            let p = t.clone();
            let h = probes.spawn(async move { probe(&p).await });
            probing.insert(h.id(), t);
        }
    };
    loop {
        let now = Instant::now();
        let users = users(&store.state(), own_namespace_only);
        schedule.sync(users.keys(), now, || {
            PERIOD.mul_f64(rand::rng().random_range(0.0..1.0))
        });
        verdicts.retain(|t| users.contains_key(t));
        for t in schedule.newly_stale(now) {
            if !send(&wake, users.get(&t)).await {
                return;
            }
        }
        spawn(schedule.start(now), &mut probes, &mut probing);
        // Collect what ends until the next look at the targets.
        let next_look = now + TICK;
        loop {
            let done = tokio::select! {
                Some(res) = probes.join_next_with_id() => res,
                _ = tokio::time::sleep_until(next_look) => break,
            };
            // A probe task cannot panic short of a bug; its slot is freed all the same.
            let (id, (up, took)) = match done {
                Ok(ok) => ok,
                Err(e) => (e.id(), (false, Duration::MAX)),
            };
            let Some(t) = probing.remove(&id) else {
                continue;
            };
            let now = Instant::now();
            let was_stale = schedule.finished(&t, took, now, jittered(PERIOD));
            if let Some(who) = users.get(&t) {
                let changed = verdicts.record(&t, up, now, Timestamp::now());
                if (changed || was_stale) && !send(&wake, Some(who)).await {
                    return;
                }
            }
            // The freed slot goes to the next due target now, not at the next look.
            spawn(schedule.start(now), &mut probes, &mut probing);
        }
    }
}

/// Wake `who`; false once the controller is gone.
async fn send(
    wake: &mpsc::Sender<ObjectRef<McpServer>>,
    who: Option<&Vec<ObjectRef<McpServer>>>,
) -> bool {
    for r in who.into_iter().flatten() {
        if wake.send(r.clone()).await.is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests;
