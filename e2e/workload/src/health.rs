//! `/healthz`, `/readyz` and `/metrics`.
//!
//! `/healthz` never touches the database. `/readyz` asks the pool for a
//! connection with a 100 ms budget; a pool whose every connection is busy
//! passes while it still hands connections out (load), and fails once it
//! handed none out for `pool::STUCK_AFTER` (stuck). With `READINESS=process`
//! (the default) a failure makes the server unready only when it is this server's own: while
//! the supervisor finds the database unreachable (an outage every server
//! shares) `/readyz` answers 200 with `"status": "degraded"` and tool calls
//! answer with a retry-after error, so the Service keeps its endpoints and the
//! first call after the database returns lands at once; a fragile (broken)
//! pool is unready when the database accepts a fresh connection. With
//! `READINESS=database` any failure is unready. The result is memoized for up to
//! `READY_CACHE_MS` (1 s) and concurrent probes share one check, so a probe
//! storm costs at most one pool checkout per second. A change of the database
//! state (loss, recovery) invalidates the memo at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::config::Readiness;
use crate::metrics::Metrics;
use crate::pool::{Db, DbPhase};

/// Budget for obtaining a connection in `/readyz`.
pub const READY_BUDGET: Duration = Duration::from_millis(100);
/// Budget for a fresh connection when the pool is broken (process readiness).
pub const FRESH_BUDGET: Duration = Duration::from_millis(500);

#[derive(Clone)]
struct Cached {
    at: Instant,
    generation: u64,
    ok: bool,
    reason: Option<String>,
    /// Ready, though the database is down for everyone (process readiness).
    degraded: bool,
}

/// State for the health endpoints.
pub struct HealthState {
    pub db: Arc<Db>,
    pub metrics: Arc<Metrics>,
    pub shutting_down: Arc<AtomicBool>,
    pub cache_for: Duration,
    pub mode: &'static str,
    pub readiness: Readiness,
    cache: Mutex<Option<Cached>>,
    last: std::sync::RwLock<Option<Cached>>,
}

impl HealthState {
    /// New health state.
    pub fn new(
        db: Arc<Db>,
        metrics: Arc<Metrics>,
        shutting_down: Arc<AtomicBool>,
        cache_for: Duration,
        mode: &'static str,
        readiness: Readiness,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            metrics,
            shutting_down,
            cache_for,
            mode,
            readiness,
            cache: Mutex::new(None),
            last: std::sync::RwLock::new(None),
        })
    }

    fn fresh(&self, gen: u64) -> Option<Cached> {
        let g = self.last.read().ok()?;
        g.as_ref()
            .filter(|c| c.at.elapsed() < self.cache_for && c.generation == gen)
            .cloned()
    }

    async fn readiness(&self) -> (Cached, bool) {
        // Fast path: a fresh memo, read without queueing behind the check.
        if let Some(c) = self.fresh(self.db.generation()) {
            return (c, true);
        }
        // Slow path: one check at a time; waiters reuse its result.
        let mut guard = self.cache.lock().await;
        let gen = self.db.generation();
        if let Some(c) = guard.as_ref() {
            if c.at.elapsed() < self.cache_for && c.generation == gen {
                return (c.clone(), true);
            }
        }
        let res = self.db.check_ready(READY_BUDGET).await;
        let shared_outage = match (&res, self.readiness) {
            (Ok(()), _) | (Err(_), Readiness::Database) => false,
            (Err(_), Readiness::Process) => match self.db.phase() {
                DbPhase::Down => true,
                DbPhase::Broken => !self.db.accepts_fresh(FRESH_BUDGET).await,
                DbPhase::Connecting | DbPhase::Up => false,
            },
        };
        let fresh = Cached {
            at: Instant::now(),
            generation: gen,
            ok: res.is_ok() || shared_outage,
            reason: res.err().map(|r| {
                if shared_outage {
                    format!("{r}; the database is unreachable, not this server's pool: still ready, calls answer with retry-after")
                } else {
                    r
                }
            }),
            degraded: shared_outage,
        };
        *guard = Some(fresh.clone());
        if let Ok(mut last) = self.last.write() {
            *last = Some(fresh.clone());
        }
        (fresh, false)
    }
}

async fn healthz(State(s): State<Arc<HealthState>>) -> Json<Value> {
    Json(json!({
        "status": "alive",
        "mode": s.mode,
        "shutting_down": s.shutting_down.load(Ordering::SeqCst),
    }))
}

async fn readyz(State(s): State<Arc<HealthState>>) -> Response {
    if s.shutting_down.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "reason": "shutting down", "pool": s.db.stats()})),
        )
            .into_response();
    }
    let (r, cached) = s.readiness().await;
    let body = json!({
        "status": match (r.ok, r.degraded) {
            (true, false) => "ready",
            (true, true) => "degraded",
            (false, _) => "not_ready",
        },
        "readiness": s.readiness.name(),
        "reason": r.reason,
        "db": s.db.phase(),
        "db_phase_age_ms": u64::try_from(s.db.phase_age().as_millis()).unwrap_or(u64::MAX),
        "pool": s.db.stats(),
        "cached": cached,
        "checked_ms_ago": u64::try_from(r.at.elapsed().as_millis()).unwrap_or(u64::MAX),
        "mode": s.mode,
    });
    let code = if r.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn metrics(State(s): State<Arc<HealthState>>) -> Response {
    s.db.stats();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

/// Router with the three endpoints.
pub fn router(state: Arc<HealthState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}
