//! The Postgres pool and its supervisor.
//!
//! * deadpool-postgres holds the connections; a custom [`Connect`] watches
//!   every connection task, so a connection that dies (Postgres stopped,
//!   backend killed, network cut) is reported to the supervisor at once
//!   instead of on the next query: loss detection takes milliseconds.
//! * The supervisor owns the database state. On a loss it drops dead idle
//!   connections, opens the circuit (calls fail fast with `db_unavailable`
//!   instead of piling up on connect timeouts) and probes with jittered
//!   exponential backoff capped at `RECONNECT_BACKOFF_MAX_MS` (1 s), so the
//!   pool serves again within about a second of Postgres accepting.
//! * In fragile mode the first loss is final: the state becomes `Broken` and
//!   nothing ever probes again, which models a server only a restart fixes.
//! * Acquisition has a bounded wait queue (`POOL_MAX_WAITING`) and the
//!   acquire timeout; both end in a [`DbError::Exhausted`] carrying the pool
//!   stats and a retry-after hint. Nothing waits unboundedly.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::{
    Connect, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, Timeouts,
};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_postgres::NoTls;

use crate::backoff::Backoff;
use crate::config::{Config, WorkloadMode};
use crate::metrics::Metrics;
use crate::redact::redact_credentials;

/// Reconnect attempts that may be pending at once (see `supervise`).
const HEDGED_ATTEMPTS: usize = 3;

/// SQL run once the database is reachable.
pub const SCHEMA_SQL: &str = "CREATE TABLE IF NOT EXISTS notes (
    key text PRIMARY KEY,
    value text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)";

/// Pool statistics reported in errors, `/readyz` and metrics.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open (idle + active).
    pub total: usize,
    /// Connections checked out.
    pub active: usize,
    /// Idle connections.
    pub idle: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
    /// Configured maximum.
    pub max: usize,
    /// Configured bound of the wait queue.
    pub max_waiting: usize,
}

/// The database state as seen by the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DbPhase {
    /// Never connected yet (startup).
    Connecting,
    /// Reachable; calls go to the pool.
    Up,
    /// Lost; the supervisor is reconnecting.
    Down,
    /// Lost in fragile mode; never recovers.
    Broken,
}

#[derive(Debug, Clone, Copy)]
struct DbState {
    phase: DbPhase,
    since: Instant,
    next_probe: Option<Instant>,
    generation: u64,
}

/// Why a connection could not be had or a query failed.
#[derive(Debug, Clone)]
pub enum DbError {
    /// The wait queue is full or the acquire timeout passed.
    Exhausted {
        stats: PoolStats,
        reason: &'static str,
        retry_after_ms: u64,
        waited_ms: u64,
    },
    /// The database is unreachable (circuit open) or the connection broke.
    Unavailable {
        phase: DbPhase,
        down_for_ms: u64,
        retry_after_ms: u64,
        detail: String,
    },
    /// The query ran past `QUERY_TIMEOUT_SECONDS`.
    QueryTimeout { timeout_ms: u64 },
    /// Postgres answered with an error.
    Query { detail: String },
    /// The server is shutting down.
    ShuttingDown,
}

impl DbError {
    /// A stable machine-readable kind.
    pub fn kind(&self) -> &'static str {
        match self {
            DbError::Exhausted { .. } => "pool_exhausted",
            DbError::Unavailable { .. } => "db_unavailable",
            DbError::QueryTimeout { .. } => "query_timeout",
            DbError::Query { .. } => "db_error",
            DbError::ShuttingDown => "shutting_down",
        }
    }

    /// Suggested wait before retrying, if retrying makes sense.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            DbError::Exhausted { retry_after_ms, .. }
            | DbError::Unavailable { retry_after_ms, .. } => Some(*retry_after_ms),
            DbError::QueryTimeout { .. } => Some(1000),
            DbError::Query { .. } => None,
            DbError::ShuttingDown => Some(1000),
        }
    }

    /// A human-readable, actionable message (never contains credentials).
    pub fn message(&self) -> String {
        match self {
            DbError::Exhausted {
                stats,
                reason,
                retry_after_ms,
                waited_ms,
            } => {
                let why = if *reason == "queue_full" {
                    format!("the wait queue is full ({} waiting, limit {})", stats.waiting, stats.max_waiting)
                } else {
                    format!("no connection became free within {waited_ms} ms")
                };
                format!(
                    "connection pool exhausted: {why}; pool total={} active={} idle={} waiting={} max={}; retry after {retry_after_ms} ms or raise POOL_MAX_SIZE",
                    stats.total, stats.active, stats.idle, stats.waiting, stats.max
                )
            }
            DbError::Unavailable {
                phase,
                down_for_ms,
                retry_after_ms,
                detail,
            } => match phase {
                DbPhase::Broken => format!(
                    "database connection lost {down_for_ms} ms ago and this server (WORKLOAD_MODE=fragile) will not reconnect; restart it ({detail})"
                ),
                _ => format!(
                    "database unavailable for {down_for_ms} ms, reconnecting; retry after {retry_after_ms} ms ({detail})"
                ),
            },
            DbError::QueryTimeout { timeout_ms } => {
                format!("query did not finish within {timeout_ms} ms (QUERY_TIMEOUT_SECONDS)")
            }
            DbError::Query { detail } => format!("database error: {detail}"),
            DbError::ShuttingDown => "server is shutting down; retry on another replica".to_string(),
        }
    }
}

/// Pool sizing and timing knobs (a subset of [`Config`]).
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub min_size: usize,
    pub max_size: usize,
    pub acquire_timeout: Duration,
    pub max_waiting: usize,
    pub connect_timeout: Duration,
    pub query_timeout: Duration,
    pub reconnect_base: Duration,
    pub reconnect_max: Duration,
    pub mode: WorkloadMode,
}

impl From<&Config> for PoolSettings {
    fn from(c: &Config) -> Self {
        Self {
            min_size: c.pool_min_size,
            max_size: c.pool_max_size,
            acquire_timeout: c.pool_acquire_timeout,
            max_waiting: c.pool_max_waiting,
            connect_timeout: c.db_connect_timeout,
            query_timeout: c.query_timeout,
            reconnect_base: c.reconnect_base,
            reconnect_max: c.reconnect_max,
            mode: c.mode,
        }
    }
}

/// Connects like deadpool's default but reports the end of every connection
/// task (which only happens when the connection breaks: deadpool aborts the
/// task when it drops a client on purpose).
struct WatchedConnect {
    loss: Arc<LossSignal>,
}

/// Loss notifications from connection tasks and failed queries.
#[derive(Default)]
struct LossSignal {
    notify: Notify,
    pending: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl LossSignal {
    fn raise(&self, detail: String) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(detail);
        }
        self.pending.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    fn take_detail(&self) -> String {
        self.last_error
            .lock()
            .ok()
            .and_then(|mut g| g.take())
            .unwrap_or_else(|| "connection lost".to_string())
    }
}

impl Connect for WatchedConnect {
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> BoxFuture<
        '_,
        Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>,
    > {
        let pg_config = pg_config.clone();
        let loss = self.loss.clone();
        Box::pin(async move {
            let (client, connection) = pg_config.connect(NoTls).await?;
            let task = tokio::spawn(async move {
                let detail = match connection.await {
                    Ok(()) => "connection closed by the server".to_string(),
                    Err(e) => redact_credentials(&e.to_string()),
                };
                loss.raise(detail);
            });
            Ok((client, task))
        })
    }
}

/// The database handle shared by tools, health checks and the supervisor.
pub struct Db {
    pool: Pool,
    pg: tokio_postgres::Config,
    settings: PoolSettings,
    state: Mutex<DbState>,
    loss: Arc<LossSignal>,
    waiting: AtomicUsize,
    metrics: Arc<Metrics>,
    schema_ready: AtomicBool,
    closing: AtomicBool,
    generation: AtomicU64,
    /// When the pool last handed out a connection (ms after `born`; 0: never).
    last_handout_ms: AtomicU64,
    born: Instant,
}

/// A pool whose every connection is busy (or whose new connection takes longer
/// than `/readyz`'s budget) is loaded, not broken, as long as it keeps handing
/// connections out: `/readyz` fails on it only after none was handed out for
/// this long (a wedged pool). Unready under load would take the pod out of the
/// Service and pile its load on the others.
pub const STUCK_AFTER: Duration = Duration::from_secs(5);

struct WaitGuard<'a>(&'a AtomicUsize);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Db {
    /// Build the pool (no connection is made here) and its settings.
    pub fn new(
        pg: tokio_postgres::Config,
        settings: PoolSettings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Arc<Self>> {
        let mut pg = pg;
        pg.connect_timeout(settings.connect_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("mcp-workload");
        }
        let loss = Arc::new(LossSignal::default());
        let manager = Manager::from_connect(
            pg.clone(),
            WatchedConnect { loss: loss.clone() },
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.max_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(settings.acquire_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(Duration::from_secs(1)))
            .build()
            .map_err(|e| anyhow::anyhow!("building the connection pool failed: {e}"))?;
        metrics.pool_max.set(settings.max_size as i64);
        Ok(Arc::new(Self {
            pool,
            pg,
            settings,
            state: Mutex::new(DbState {
                phase: DbPhase::Connecting,
                since: Instant::now(),
                next_probe: None,
                generation: 0,
            }),
            loss,
            waiting: AtomicUsize::new(0),
            metrics,
            schema_ready: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            last_handout_ms: AtomicU64::new(0),
            born: Instant::now(),
            generation: AtomicU64::new(0),
        }))
    }

    fn state(&self) -> DbState {
        match self.state.lock() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        }
    }

    fn set_state(&self, phase: DbPhase, next_probe: Option<Instant>) {
        let gen = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let mut g = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.phase != phase {
            g.since = Instant::now();
        }
        g.phase = phase;
        g.next_probe = next_probe;
        g.generation = gen;
        self.metrics.db_up.set(i64::from(phase == DbPhase::Up));
    }

    /// Current phase.
    pub fn phase(&self) -> DbPhase {
        self.state().phase
    }

    /// Changes whenever the phase changes (used to invalidate cached readiness).
    pub fn generation(&self) -> u64 {
        self.state().generation
    }

    /// Time since the current phase began.
    pub fn phase_age(&self) -> Duration {
        self.state().since.elapsed()
    }

    /// Settings in use.
    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// Pool statistics (also refreshes the pool gauges).
    pub fn stats(&self) -> PoolStats {
        let s = self.pool.status();
        let waiting = self.waiting.load(Ordering::SeqCst).max(s.waiting);
        let stats = PoolStats {
            total: s.size,
            active: s.size.saturating_sub(s.available),
            idle: s.available,
            waiting,
            max: s.max_size,
            max_waiting: self.settings.max_waiting,
        };
        self.metrics.pool_size.set(stats.total as i64);
        self.metrics.pool_idle.set(stats.idle as i64);
        self.metrics.pool_active.set(stats.active as i64);
        self.metrics.pool_waiting.set(stats.waiting as i64);
        stats
    }

    fn unavailable(&self, detail: &str) -> DbError {
        let st = self.state();
        let retry_after_ms = match (st.phase, st.next_probe) {
            (DbPhase::Broken, _) => 5000,
            // While reconnecting, point clients just past the next probe but
            // never more than 300 ms out: failing fast is cheap (no database
            // work), and a short hint keeps the first success close to the
            // moment the pool is back.
            (_, Some(t)) => (ms(t.saturating_duration_since(Instant::now())) + 50).min(300),
            _ => 250,
        };
        DbError::Unavailable {
            phase: st.phase,
            down_for_ms: ms(st.since.elapsed()),
            retry_after_ms: retry_after_ms.clamp(50, 5000),
            detail: detail.to_string(),
        }
    }

    fn exhausted(&self, reason: &'static str, waited: Duration) -> DbError {
        let stats = self.stats();
        // Rough time for the queue ahead to drain, bounded to [100 ms, 5 s].
        let per_round = 250u64;
        let rounds = 1 + (stats.waiting / stats.max.max(1)) as u64;
        DbError::Exhausted {
            stats,
            reason,
            retry_after_ms: (per_round * rounds).clamp(100, 5000),
            waited_ms: ms(waited),
        }
    }

    /// Report a broken connection found by a query.
    pub fn report_query_error(&self, e: &tokio_postgres::Error) {
        if e.is_closed() || e.as_db_error().is_none() {
            self.loss.raise(redact_credentials(&e.to_string()));
        }
    }

    /// Get a connection: fail fast when the database is down, wait in a bounded
    /// queue for at most the acquire timeout otherwise.
    pub async fn acquire(&self) -> Result<Object, DbError> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(DbError::ShuttingDown);
        }
        match self.phase() {
            DbPhase::Up => {}
            DbPhase::Connecting => return Err(self.unavailable("not connected yet")),
            DbPhase::Down => return Err(self.unavailable("connection lost")),
            DbPhase::Broken => return Err(self.unavailable("fragile mode")),
        }
        let status = self.pool.status();
        let waiting_now = self.waiting.load(Ordering::SeqCst);
        let free = status.available > 0 || status.size < status.max_size;
        if !free && waiting_now >= self.settings.max_waiting {
            self.metrics.acquire_seconds.observe(0.0);
            return Err(self.exhausted("queue_full", Duration::ZERO));
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let guard = WaitGuard(&self.waiting);
        let started = Instant::now();
        let res = self
            .pool
            .timeout_get(&Timeouts {
                wait: Some(self.settings.acquire_timeout),
                create: Some(self.settings.connect_timeout),
                recycle: Some(Duration::from_secs(1)),
            })
            .await;
        let waited = started.elapsed();
        self.metrics.acquire_seconds.observe(waited.as_secs_f64());
        match res {
            Ok(obj) => {
                drop(guard);
                self.note_handout();
                Ok(obj)
            }
            Err(PoolError::Timeout(deadpool_postgres::TimeoutType::Wait)) => {
                let e = self.exhausted("acquire_timeout", waited);
                drop(guard);
                Err(e)
            }
            Err(PoolError::Timeout(_)) => {
                drop(guard);
                self.loss.raise("connecting timed out".to_string());
                Err(self.unavailable("connecting timed out"))
            }
            Err(PoolError::Backend(e)) => {
                drop(guard);
                let detail = redact_credentials(&e.to_string());
                self.report_query_error(&e);
                Err(self.unavailable(&detail))
            }
            Err(PoolError::Closed) => Err(DbError::ShuttingDown),
            Err(other) => {
                drop(guard);
                Err(DbError::Query {
                    detail: redact_credentials(&other.to_string()),
                })
            }
        }
    }

    fn note_handout(&self) {
        let ms = ms(self.born.elapsed()).max(1);
        self.last_handout_ms.store(ms, Ordering::Relaxed);
    }

    /// Was a connection handed out in the last `d`?
    fn handed_out_within(&self, d: Duration) -> bool {
        let last = self.last_handout_ms.load(Ordering::Relaxed);
        last > 0 && ms(self.born.elapsed()).saturating_sub(last) <= ms(d)
    }

    /// Can a connection be had within `within`? Used by `/readyz`.
    pub async fn check_ready(&self, within: Duration) -> Result<(), String> {
        if self.closing.load(Ordering::SeqCst) {
            return Err("shutting down".to_string());
        }
        match self.phase() {
            DbPhase::Up => {}
            other => {
                return Err(format!(
                    "database {}",
                    serde_json::to_string(&other)
                        .unwrap_or_default()
                        .trim_matches('"')
                ))
            }
        }
        let res = self
            .pool
            .timeout_get(&Timeouts {
                wait: Some(within),
                create: Some(within),
                recycle: Some(within),
            })
            .await;
        match res {
            Ok(_obj) => {
                self.note_handout();
                Ok(())
            }
            // Every connection busy, or a new one slower than the budget on a
            // loaded machine: load, while others are being handed out.
            Err(PoolError::Timeout(
                deadpool_postgres::TimeoutType::Wait | deadpool_postgres::TimeoutType::Create,
            )) if self.handed_out_within(STUCK_AFTER) => Ok(()),
            Err(PoolError::Timeout(t)) => Err(format!(
                "no connection within {} ms ({t:?}) and none handed out for {} s",
                within.as_millis(),
                STUCK_AFTER.as_secs()
            )),
            Err(e) => Err(redact_credentials(&e.to_string())),
        }
    }

    /// Does the database accept a fresh connection (outside the pool)? Tells a
    /// pool of our own that is broken from a database that is down for all.
    /// Bounded by `within`, so a probe of `/readyz` answers in time; no answer
    /// counts as not accepting.
    pub async fn accepts_fresh(&self, within: Duration) -> bool {
        matches!(tokio::time::timeout(within, self.probe()).await, Ok(Ok(())))
    }

    /// Run `fut` under the query timeout, classifying errors.
    pub async fn with_timeout<T, F>(&self, extra: Duration, fut: F) -> Result<T, DbError>
    where
        F: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let limit = self.settings.query_timeout + extra;
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.report_query_error(&e);
                let detail = redact_credentials(&e.to_string());
                if e.is_closed() || e.as_db_error().is_none() {
                    Err(self.unavailable(&detail))
                } else {
                    Err(DbError::Query { detail })
                }
            }
            Err(_) => Err(DbError::QueryTimeout {
                timeout_ms: ms(limit),
            }),
        }
    }

    /// Stop handing out connections and close the pool.
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.pool.close();
    }

    async fn probe(&self) -> Result<(), String> {
        let connect = self.pg.connect(NoTls);
        let (client, connection) = tokio::time::timeout(self.settings.connect_timeout, connect)
            .await
            .map_err(|_| {
                format!(
                    "connect timed out after {} ms",
                    self.settings.connect_timeout.as_millis()
                )
            })?
            .map_err(|e| redact_credentials(&e.to_string()))?;
        let conn_task = tokio::spawn(async move {
            let _ = connection.await;
        });
        let result = async {
            if !self.schema_ready.load(Ordering::SeqCst) {
                client.batch_execute(SCHEMA_SQL).await.map_err(|e| {
                    format!(
                        "creating table notes failed: {}",
                        redact_credentials(&e.to_string())
                    )
                })?;
                self.schema_ready.store(true, Ordering::SeqCst);
                tracing::info!(event = "schema_ready", "table notes is ready");
            } else {
                client
                    .simple_query("SELECT 1")
                    .await
                    .map_err(|e| redact_credentials(&e.to_string()))?;
            }
            Ok::<(), String>(())
        };
        let r = tokio::time::timeout(self.settings.connect_timeout, result)
            .await
            .unwrap_or_else(|_| Err("probe query timed out".to_string()));
        drop(client);
        conn_task.abort();
        r
    }

    /// Open `min_size` connections so the first calls after (re)connecting do
    /// not pay the connect cost.
    async fn prewarm(&self) {
        let want = self
            .settings
            .min_size
            .saturating_sub(self.pool.status().size);
        if want == 0 {
            return;
        }
        let mut held = Vec::with_capacity(want);
        for _ in 0..want {
            match self
                .pool
                .timeout_get(&Timeouts {
                    wait: Some(Duration::from_millis(50)),
                    create: Some(self.settings.connect_timeout),
                    recycle: Some(Duration::from_secs(1)),
                })
                .await
            {
                Ok(o) => held.push(o),
                Err(_) => break,
            }
        }
        drop(held);
        self.stats();
    }

    /// Drop idle connections whose socket is closed.
    fn purge_dead(&self) -> usize {
        let r = self.pool.retain(|c, _| !c.is_closed());
        r.removed.len()
    }

    /// The supervisor loop: connect at startup (retrying until the database
    /// is reachable), then watch for losses and reconnect. Runs until the pool
    /// is closed.
    pub async fn supervise(self: Arc<Self>) {
        let mut lost_at = Instant::now();
        let mut first = true;
        loop {
            if self.closing.load(Ordering::SeqCst) {
                return;
            }
            // (Re)connect with jittered exponential backoff, hedged: each
            // backoff step starts a new attempt even while older ones are still
            // pending (at most `HEDGED_ATTEMPTS`), so an attempt stuck on a
            // stale route (SYN to the old pod, up to the connect timeout)
            // does not delay noticing the new one.
            let mut backoff =
                Backoff::new(self.settings.reconnect_base, self.settings.reconnect_max);
            let mut last_logged = Instant::now() - Duration::from_secs(60);
            let mut pending = FuturesUnordered::new();
            let mut next_at = tokio::time::Instant::now();
            loop {
                if self.closing.load(Ordering::SeqCst) {
                    return;
                }
                let now = tokio::time::Instant::now();
                if now >= next_at && pending.len() < HEDGED_ATTEMPTS {
                    self.loss.pending.store(false, Ordering::SeqCst);
                    pending.push(self.probe());
                    next_at = now + backoff.next_delay();
                }
                let step = tokio::time::sleep_until(next_at);
                tokio::select! {
                    Some(r) = pending.next() => match r {
                        Ok(()) => break,
                        Err(detail) => {
                            self.metrics.connection_failures.inc();
                            let phase = self.phase();
                            self.set_state(phase, Some(next_at.into_std()));
                            // Log the first failure and then at most every 5 s.
                            if backoff.attempt() == 1
                                || last_logged.elapsed() >= Duration::from_secs(5)
                            {
                                last_logged = Instant::now();
                                tracing::warn!(
                                    event = "database_connect_failed",
                                    attempt = backoff.attempt(),
                                    in_flight = pending.len(),
                                    retry_in_ms = ms(next_at.saturating_duration_since(tokio::time::Instant::now())),
                                    down_for_ms = ms(lost_at.elapsed()),
                                    error = %detail,
                                    "database not reachable, retrying"
                                );
                            }
                        }
                    },
                    _ = step => {}
                }
            }
            drop(pending);
            // The probe proved the database serves: open the circuit at once
            // and warm the pool afterwards (calls create connections on demand).
            self.set_state(DbPhase::Up, None);
            let recovery = lost_at.elapsed();
            // Old connections died with the database; their loss signals are stale.
            let _ = futures::FutureExt::now_or_never(self.loss.notify.notified());
            self.loss.pending.store(false, Ordering::SeqCst);
            self.purge_dead();
            self.prewarm().await;
            if first {
                tracing::info!(
                    event = "database_connected",
                    after_ms = ms(recovery),
                    pool = ?self.stats(),
                    "database reachable, serving"
                );
                first = false;
            } else {
                self.metrics.reconnects.inc();
                self.metrics
                    .recovery_seconds
                    .observe(recovery.as_secs_f64());
                tracing::info!(
                    event = "database_reconnection_successful",
                    recovery_time_ms = ms(recovery),
                    attempts = backoff.attempt(),
                    pool = ?self.stats(),
                    "database reachable again, serving"
                );
            }

            // Watch: wake on a loss signal, or every 2 s to top up min_size.
            loop {
                if self.closing.load(Ordering::SeqCst) {
                    return;
                }
                let woke =
                    tokio::time::timeout(Duration::from_secs(2), self.loss.notify.notified()).await;
                let signalled = woke.is_ok() || self.loss.pending.swap(false, Ordering::SeqCst);
                if !signalled {
                    self.prewarm().await;
                    continue;
                }
                if self.closing.load(Ordering::SeqCst) {
                    return;
                }
                let detail = self.loss.take_detail();
                let purged = self.purge_dead();
                // A single broken connection is not an outage: check at once.
                match self.settings.mode {
                    WorkloadMode::Fragile => {
                        self.metrics.connection_failures.inc();
                        self.set_state(DbPhase::Broken, None);
                        self.pool.retain(|_, _| false);
                        tracing::error!(
                            event = "database_connection_lost",
                            mode = "fragile",
                            error = %detail,
                            "database connection lost; WORKLOAD_MODE=fragile: this server will not reconnect until restarted"
                        );
                        // Never recover. Keep the task alive (idle) until shutdown.
                        loop {
                            if self.closing.load(Ordering::SeqCst) {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                    WorkloadMode::Normal | WorkloadMode::WedgedAfter(_) => {
                        if self.probe().await.is_ok() {
                            tracing::warn!(
                                event = "database_connection_dropped",
                                purged,
                                error = %detail,
                                "a database connection broke but the database is reachable"
                            );
                            continue;
                        }
                        self.metrics.connection_failures.inc();
                        lost_at = Instant::now();
                        self.set_state(DbPhase::Down, Some(Instant::now()));
                        let purged_more = self.purge_dead();
                        tracing::error!(
                            event = "database_connection_lost",
                            error = %detail,
                            purged = purged + purged_more,
                            pool = ?self.stats(),
                            "database connection lost, reconnecting with backoff"
                        );
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> PoolStats {
        PoolStats {
            total: 3,
            active: 3,
            idle: 0,
            waiting: 12,
            max: 3,
            max_waiting: 12,
        }
    }

    #[test]
    fn exhaustion_message_has_stats_and_hint() {
        let e = DbError::Exhausted {
            stats: stats(),
            reason: "queue_full",
            retry_after_ms: 1250,
            waited_ms: 0,
        };
        let m = e.message();
        assert!(m.contains("total=3 active=3 idle=0 waiting=12"), "{m}");
        assert!(m.contains("retry after 1250 ms"), "{m}");
        assert_eq!(e.kind(), "pool_exhausted");
        assert_eq!(e.retry_after_ms(), Some(1250));
    }

    #[test]
    fn broken_message_says_restart() {
        let e = DbError::Unavailable {
            phase: DbPhase::Broken,
            down_for_ms: 10,
            retry_after_ms: 5000,
            detail: "x".into(),
        };
        assert!(e.message().contains("restart"));
        assert_eq!(e.kind(), "db_unavailable");
    }
}
