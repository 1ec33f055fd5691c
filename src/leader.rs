//! Leader election on a coordination.k8s.io Lease, with client-go's timing rules:
//!
//! - **Expiry is judged on local observation time.** A standby takes over only
//!   after it has seen the lease record unchanged for `leaseDurationSeconds` of
//!   its own monotonic clock; the holder's `renewTime` (written for humans and
//!   other tools) is never compared with the local wall clock, so clock skew
//!   cannot hand the lease over early.
//! - **The leader has a renew deadline.** Every renew runs under a timeout; if no
//!   renew has succeeded for `renew_deadline` (measured from when the successful
//!   request was *sent*), the [`Fence`] closes and the replica stops leading.
//!   `renew_deadline < lease_duration` leaves a margin for in-flight writes and
//!   clock-rate drift before any standby may act.
//! - **No write without the lease.** The [`Fence`] is checked by the API client for
//!   every write (see `apiclient`), so applies, evictions, status writes and
//!   Events of a replica past its deadline are refused before they are sent.
//! - **No write arrives after the lease could expire.** A write sent at `t` may
//!   be in flight until `t + timeout`; a standby may act from `renew_sent +
//!   lease_duration` (it counts from its sight of our renewed record, which
//!   landed after we sent it). So every write gets the timeout
//!   `min(request timeout, renew_sent + lease_duration - WRITE_MARGIN - t)`:
//!   `t + timeout < renew_sent + lease_duration` always holds ([`Fence::write_budget`]).
//! - **Renewal through shutdown.** On SIGTERM the leader keeps renewing while its
//!   reconciles drain ([`Elector::hold_until`]), then releases the lease so a
//!   standby takes over at once.
//! - **A unique identity per replica** ([`identity`]): two replicas with the same
//!   holder identity would both renew the lease and both write.
//! - Writes of the Lease carry `resourceVersion`: two replicas racing for it get
//!   one success and one 409, never two leaders.
//!
//! Why not a crate: kube 5 has no leader election; kubert's `LeaseManager` is
//! built on kube 1.1; `kube-lease-manager` 0.13 (kube 5) computes expiry as the
//! holder's `renewTime` + duration against the local wall clock (the skew
//! problem above) and has no renew deadline for fencing writes.
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::ResourceExt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{timeout, Instant};

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub identity: String,
    /// How long a standby waits, from its last sight of a change, before it
    /// may take the lease.
    pub lease_duration: Duration,
    /// How long the leader keeps acting without a successful renew.
    pub renew_deadline: Duration,
    /// Pause between attempts (acquire and renew).
    pub retry_period: Duration,
    /// Added to the wall clock for the times written into the Lease. Tests use
    /// it to run a replica with a skewed clock; the election never reads it.
    pub wall_clock_offset: SignedDuration,
}

impl LeaseConfig {
    /// client-go's defaults for controllers: 15 s / 10 s / 2 s.
    pub fn new(name: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            wall_clock_offset: SignedDuration::ZERO,
        }
    }

    /// The invariants that make the fence safe.
    pub fn validate(&self) -> Result<(), String> {
        if self.identity.trim().is_empty() {
            return Err("the holder identity is empty".into());
        }
        if self.retry_period.is_zero() {
            // A zero pause renews (and retries a failed acquire) in a hot loop.
            return Err("the retry period must be at least 1 s".into());
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "renew deadline ({:?}) must be shorter than the lease duration ({:?})",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(format!(
                "retry period ({:?}) must be shorter than the renew deadline ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(())
    }

    fn wall_now(&self) -> Timestamp {
        Timestamp::now()
            .checked_add(self.wall_clock_offset)
            .unwrap_or_else(|_| Timestamp::now())
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(15)
    }
}

/// The holder identity of this replica: `pod_name` (the chart sets POD_NAME from
/// the downward API), else `hostname` (the pod name in Kubernetes), else an
/// error. Never a fallback such as the PID, which is 1 in every container: two
/// replicas with one identity both renew the lease and both write.
pub fn identity(pod_name: Option<&str>, hostname: Option<&str>) -> Result<String, String> {
    [pod_name, hostname]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(String::from)
        .ok_or_else(|| {
            "no identity: set POD_NAME (from the downward API's \
             metadata.name, as the chart does) or --identity to a name unique to this \
             replica; HOSTNAME is empty too"
                .to_string()
        })
}

/// Taken off a write's time budget: the time between its timeout firing and
/// the connection being closed, and clock-rate drift against the standby.
pub const WRITE_MARGIN: Duration = Duration::from_millis(500);

/// Until when this replica may write. Shared by the elector (which extends or
/// closes it) and the API client (which checks it before every write).
#[derive(Clone, Debug)]
pub struct Fence(Arc<Mutex<FenceState>>);

#[derive(Debug, Clone, Copy)]
enum FenceState {
    /// No election: this replica always may write.
    Open,
    /// May send writes before `deadline` (renew sent + renew deadline); each
    /// must be over before `expiry` (renew sent + lease duration).
    Until {
        deadline: Instant,
        expiry: Instant,
    },
    Closed,
}

/// Whether, and for how long, a write may be in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteBudget {
    /// No election: the client's own request timeout applies.
    Unlimited,
    /// Sent now, the write must be over within this time.
    Within(Duration),
    Refused,
}

impl FenceState {
    /// The fence's rule, on an explicit clock: a write sent at `now` is allowed
    /// before the renew deadline, and its timeout `t` keeps
    /// `now + t + WRITE_MARGIN <= expiry`, i.e. it is over before any standby
    /// may take the lease.
    fn budget(&self, now: Instant) -> WriteBudget {
        match *self {
            FenceState::Open => WriteBudget::Unlimited,
            FenceState::Until { deadline, expiry } if now < deadline => {
                match expiry
                    .saturating_duration_since(now)
                    .checked_sub(WRITE_MARGIN)
                {
                    Some(t) if !t.is_zero() => WriteBudget::Within(t),
                    _ => WriteBudget::Refused,
                }
            }
            FenceState::Until { .. } | FenceState::Closed => WriteBudget::Refused,
        }
    }
}

impl Fence {
    /// For a replica that runs without leader election.
    pub fn open() -> Self {
        Self(Arc::new(Mutex::new(FenceState::Open)))
    }

    /// For a replica that must win the lease first.
    pub fn closed() -> Self {
        Self(Arc::new(Mutex::new(FenceState::Closed)))
    }

    fn state(&self) -> FenceState {
        self.0.lock().map(|g| *g).unwrap_or(FenceState::Closed)
    }

    pub fn may_write(&self) -> bool {
        self.write_budget(Instant::now()) != WriteBudget::Refused
    }

    /// Whether a write sent at `now` may go, and how long it may take.
    pub fn write_budget(&self, now: Instant) -> WriteBudget {
        self.state().budget(now)
    }

    /// Time left before the fence closes (None: no election, no limit).
    pub fn remaining(&self) -> Option<Duration> {
        match self.state() {
            FenceState::Open => None,
            FenceState::Until { deadline, .. } => {
                Some(deadline.saturating_duration_since(Instant::now()))
            }
            FenceState::Closed => Some(Duration::ZERO),
        }
    }

    /// A renew sent at `sent` succeeded: writes may go until its renew
    /// deadline, and must be over before its lease could expire.
    pub(crate) fn renewed(&self, sent: Instant, cfg: &LeaseConfig) {
        if let Ok(mut g) = self.0.lock() {
            if !matches!(*g, FenceState::Open) {
                *g = FenceState::Until {
                    deadline: sent + cfg.renew_deadline,
                    expiry: sent + cfg.lease_duration,
                };
            }
        }
    }

    pub fn close(&self) {
        if let Ok(mut g) = self.0.lock() {
            if !matches!(*g, FenceState::Open) {
                *g = FenceState::Closed;
            }
        }
    }
}

/// Outcome of one attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    Leading,
    Following { holder: String },
}

/// Why `hold` returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Lost {
    /// Another replica holds the lease.
    TakenBy(String),
    /// No renew succeeded within the renew deadline.
    RenewDeadline,
}

/// The lease record as this replica last saw it, and when (local monotonic time).
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    holder: String,
    renew_time: Option<Timestamp>,
    transitions: i32,
    duration: Duration,
    at: Instant,
}

/// Whether a record seen at `observed.at`, unchanged since, has expired at `now`.
/// An empty holder (a released lease) is free at once.
fn expired(observed: &Observed, now: Instant) -> bool {
    observed.holder.is_empty() || observed.at + observed.duration <= now
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    fence: Fence,
    observed: Option<Observed>,
}

impl Elector {
    pub fn new(api: Api<Lease>, cfg: LeaseConfig, fence: Fence) -> Self {
        Self {
            api,
            cfg,
            fence,
            observed: None,
        }
    }

    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Note what the API server holds; the observation time moves only when
    /// the record changed.
    fn observe(&mut self, spec: &LeaseSpec, now: Instant) -> Observed {
        let seen = Observed {
            holder: spec.holder_identity.clone().unwrap_or_default(),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
            duration: Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(15)).unwrap_or(15),
            ),
            at: now,
        };
        let same = |o: &Observed| {
            (&o.holder, o.renew_time, o.transitions, o.duration)
                == (
                    &seen.holder,
                    seen.renew_time,
                    seen.transitions,
                    seen.duration,
                )
        };
        match &self.observed {
            Some(o) if same(o) => o.clone(),
            _ => {
                self.observed = Some(seen.clone());
                seen
            }
        }
    }

    /// One get-then-write. `sent` is when this attempt started: a success
    /// extends the fence to `sent + renew_deadline`.
    pub async fn try_acquire_or_renew(&mut self) -> kube::Result<Attempt> {
        let sent = Instant::now();
        let wall = self.cfg.wall_now();
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.cfg.identity.clone()),
                    lease_duration_seconds: Some(self.cfg.duration_seconds()),
                    acquire_time: Some(MicroTime(wall)),
                    renew_time: Some(MicroTime(wall)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => Ok(self.won(&created, sent)),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Following {
                    holder: "unknown".into(),
                }),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let observed = self.observe(&spec, Instant::now());
        let mine = observed.holder == self.cfg.identity;
        if !mine && !expired(&observed, Instant::now()) {
            return Ok(Attempt::Following {
                holder: observed.holder,
            });
        }
        // A replica frozen (or starved) between the read and the write does not
        // act on what it read; it reads again on its next attempt.
        if sent.elapsed()
            >= self
                .cfg
                .renew_deadline
                .saturating_sub(self.cfg.retry_period)
        {
            return Ok(Attempt::Following {
                holder: observed.holder,
            });
        }
        let mut next = spec.clone();
        if !mine {
            next.holder_identity = Some(self.cfg.identity.clone());
            next.acquire_time = Some(MicroTime(wall));
            next.lease_transitions = Some(observed.transitions + 1);
        }
        next.renew_time = Some(MicroTime(wall));
        next.lease_duration_seconds = Some(self.cfg.duration_seconds());
        lease.spec = Some(next);
        // replace carries resourceVersion: a concurrent writer makes this a 409, not a split brain.
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => Ok(self.won(&written, sent)),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Following {
                holder: observed.holder,
            }),
            Err(e) => Err(e),
        }
    }

    fn won(&mut self, written: &Lease, sent: Instant) -> Attempt {
        if let Some(spec) = &written.spec {
            self.observe(spec, Instant::now());
        }
        tracing::trace!(lease = %written.name_any(), "lease written");
        self.fence.renewed(sent, &self.cfg);
        Attempt::Leading
    }

    /// Block until this replica holds the lease. Each attempt is bounded by the
    /// renew deadline, so a hung API server delays, never wedges, the loop.
    pub async fn acquire(&mut self) {
        let mut last_holder = String::new();
        loop {
            match timeout(self.cfg.renew_deadline, self.try_acquire_or_renew()).await {
                Ok(Ok(Attempt::Leading)) => {
                    tracing::info!(lease = %self.cfg.name, identity = %self.cfg.identity, "acquired leadership");
                    return;
                }
                Ok(Ok(Attempt::Following { holder })) => {
                    if holder != last_holder {
                        tracing::info!(lease = %self.cfg.name, %holder, "waiting for leadership");
                        last_holder = holder;
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(lease = %self.cfg.name, error = %e, "lease acquire failed")
                }
                Err(_) => tracing::warn!(lease = %self.cfg.name, "lease acquire timed out"),
            }
            tokio::time::sleep(jittered(self.cfg.retry_period)).await;
        }
    }

    /// Renew every retry period until leadership is lost; the fence is closed
    /// before this returns. Each renew may take only the time left before the
    /// deadline, so a hung or throttled API server cannot keep a stale leader.
    pub async fn hold(&mut self) -> Lost {
        loop {
            tokio::time::sleep(self.cfg.retry_period).await;
            let Some(left) = self.fence.remaining().filter(|d| !d.is_zero()) else {
                return self.lose(Lost::RenewDeadline);
            };
            match timeout(left, self.try_acquire_or_renew()).await {
                Ok(Ok(Attempt::Leading)) => {}
                Ok(Ok(Attempt::Following { holder })) => return self.lose(Lost::TakenBy(holder)),
                Ok(Err(e)) => {
                    tracing::warn!(lease = %self.cfg.name, error = %e, "lease renew failed")
                }
                Err(_) => tracing::warn!(lease = %self.cfg.name, "lease renew timed out"),
            }
            if !self.fence.may_write() {
                return self.lose(Lost::RenewDeadline);
            }
        }
    }

    /// Renew as [`Elector::hold`] does until `drained` resolves (None: still
    /// leading, ready to release) or leadership is lost. A shutdown stops the
    /// controllers first and resolves `drained` once their reconciles are
    /// over: renewing until then keeps the fence open for their last writes and
    /// keeps a standby from starting while they run.
    pub async fn hold_until(&mut self, drained: impl Future<Output = ()>) -> Option<Lost> {
        tokio::select! {
            why = self.hold() => Some(why),
            () = drained => None,
        }
    }

    fn lose(&mut self, why: Lost) -> Lost {
        self.fence.close();
        tracing::warn!(lease = %self.cfg.name, reason = ?why, "leadership lost; writes stopped");
        why
    }

    /// Hand the lease back on a clean shutdown so a standby takes over at once
    /// instead of waiting out the lease duration. Only while still within the
    /// renew deadline: past it, a standby may already hold the lease.
    pub async fn release(&mut self) -> kube::Result<()> {
        if !self.fence.may_write() {
            return Ok(());
        }
        self.fence.close();
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Up to +20 % so standbys started together do not hit the API server in step.
fn jittered(d: Duration) -> Duration {
    d + d.mul_f64(rand::random::<f64>() * 0.2)
}

#[cfg(test)]
mod tests;
