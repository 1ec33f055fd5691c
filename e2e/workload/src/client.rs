//! The load/verify client: an **open-loop** load of `put_note` calls through a
//! pool of real MCP sessions (rmcp streamable-HTTP client), then a read-back of
//! every acknowledged key.
//!
//! * Schedule: call `k` is sent at `start + k / rate` in its own task, whether
//!   or not earlier calls finished or succeeded (see [`crate::openloop`]). No
//!   backoff, no `retry_after_ms` delays: the schedule never moves. At most
//!   `max_in_flight` calls run at once; a slot that comes due at the cap is
//!   recorded as a failed call of kind `not_sent_in_flight_cap`.
//! * Era: 2026-07-28 by default (`server/discover` once per connection, then
//!   stateless requests with per-request `_meta`; no session exists, so none
//!   can be lost); legacy (`initialize`, `Mcp-Session-Id`) with
//!   [`ClientEra::Legacy`]. The report says which.
//! * Sessions: a [`SessionPool`] of `concurrency` MCP connections (legacy:
//!   sessions); calls are assigned round-robin and a connection carries
//!   several calls at once.
//! * Session loss (legacy only) is explicit: rmcp's transparent re-initialization is off
//!   (`reinit_on_expired_session(false)`), so an HTTP 404 for the session
//!   surfaces as `StreamableHttpError::SessionExpired`. The pool counts the
//!   loss once per lost session, re-initializes that slot once (concurrent
//!   calls on the same dead session share the new one) and retries the call
//!   once on it, as the MCP spec tells a client to do.
//! * Other transport failures (connect refused, timeout, 5xx, closed stream)
//!   are errors; the slot's session is dropped and the next call on the slot
//!   connects again (one connect at a time per slot).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    ProtocolVersion,
};
use rmcp::service::{
    ClientLifecycleMode, ClientServiceExt, RoleClient, RunningService, ServiceError,
};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::transport::StreamableHttpClientTransport;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use crate::eras::ClientEra;
use crate::openloop::{self, Attempt};
use crate::report::{self, Bucket, CallEvent, Outage};

/// Error kind of a call whose session the server did not know (HTTP 404).
pub const SESSION_LOST: &str = "session_lost";

/// rmcp's default limit of concurrent POSTs per session.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 16;

fn legacy_era() -> String {
    ClientEra::Legacy.name().to_string()
}

/// Current unix time in ms.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// An MCP client session.
pub type McpSession = RunningService<RoleClient, ClientConfig>;

/// The transport configuration every session of this client uses: rmcp's
/// transparent re-initialization on HTTP 404 is **off**, so a lost session is
/// seen (and counted) by the caller.
pub fn transport_config(
    url: &str,
    max_concurrent_requests: usize,
) -> StreamableHttpClientTransportConfig {
    StreamableHttpClientTransportConfig::with_uri(url)
        .reinit_on_expired_session(false)
        .max_concurrent_requests(max_concurrent_requests)
}

/// What this client says it is (`clientInfo`).
pub fn client_config() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("mcp-loadclient", env!("CARGO_PKG_VERSION")),
    )
}

/// How rmcp opens a connection of `era`: 2026-07-28 never falls back to
/// `initialize` (a legacy-only server is an error, not a silent downgrade).
pub fn lifecycle(era: ClientEra) -> ClientLifecycleMode {
    match era {
        ClientEra::Current => ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
        ClientEra::Legacy => ClientLifecycleMode::Initialize,
    }
}

/// Open an MCP connection of the default era (2026-07-28: `server/discover`).
pub async fn connect(url: &str, timeout: Duration) -> Result<McpSession, String> {
    connect_era(url, timeout, ClientEra::default()).await
}

/// Open an MCP connection of `era` (`server/discover`, or the `initialize`
/// handshake that opens a legacy session).
pub async fn connect_era(
    url: &str,
    timeout: Duration,
    era: ClientEra,
) -> Result<McpSession, String> {
    connect_with(url, timeout, DEFAULT_MAX_CONCURRENT_REQUESTS, era).await
}

async fn connect_with(
    url: &str,
    timeout: Duration,
    max_concurrent_requests: usize,
    era: ClientEra,
) -> Result<McpSession, String> {
    let transport =
        StreamableHttpClientTransport::from_config(transport_config(url, max_concurrent_requests));
    let opening = client_config().serve_with_lifecycle(transport, lifecycle(era));
    let what = match era {
        ClientEra::Current => "server/discover",
        ClientEra::Legacy => "initialize",
    };
    match tokio::time::timeout(timeout, opening).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what} timed out after {} ms", timeout.as_millis())),
    }
}

/// Result of one tool call.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ok(Value),
    Err {
        kind: String,
        message: String,
        retry_after_ms: Option<u64>,
        data: Option<Value>,
        /// The session should be discarded.
        reset: bool,
    },
}

impl Outcome {
    /// Error kind, if any.
    pub fn kind(&self) -> Option<&str> {
        match self {
            Outcome::Ok(_) => None,
            Outcome::Err { kind, .. } => Some(kind),
        }
    }

    fn transport(kind: &str, message: String) -> Self {
        Outcome::Err {
            kind: kind.to_string(),
            message,
            retry_after_ms: None,
            data: None,
            reset: true,
        }
    }
}

/// The streamable-HTTP transport error behind a failed request, if any
/// (found by type along the error's source chain).
pub fn http_transport_error(e: &ServiceError) -> Option<&StreamableHttpError<reqwest::Error>> {
    let ServiceError::TransportSend(t) = e else {
        return None;
    };
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(t.error.as_ref());
    while let Some(c) = cur {
        if let Some(h) = c.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
            return Some(h);
        }
        cur = c.source();
    }
    None
}

/// The request failed because the server does not know the session: rmcp's
/// `StreamableHttpError::SessionExpired` (an HTTP 404 to a request that
/// carried an `Mcp-Session-Id`), which reaches the caller only with
/// `reinit_on_expired_session(false)`.
pub fn is_session_expired(e: &ServiceError) -> bool {
    matches!(
        http_transport_error(e),
        Some(StreamableHttpError::SessionExpired)
    )
}

/// Classify an rmcp service error.
pub fn classify(e: &ServiceError) -> Outcome {
    match e {
        ServiceError::McpError(err) => {
            let data = err.data.clone();
            let kind = data
                .as_ref()
                .and_then(|d| d.get("kind"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let transport_closed = data
                .as_ref()
                .and_then(Value::as_object)
                .is_some_and(|o| o.keys().any(|k| k.contains("transportClosed")));
            let retry_after_ms = data
                .as_ref()
                .and_then(|d| d.get("retry_after_ms"))
                .and_then(Value::as_u64);
            Outcome::Err {
                kind: kind.unwrap_or_else(|| {
                    if transport_closed {
                        "transport_closed".to_string()
                    } else {
                        format!("mcp_error_{}", err.code.0)
                    }
                }),
                message: err.message.to_string(),
                retry_after_ms,
                data,
                reset: transport_closed,
            }
        }
        ServiceError::TransportSend(t) => {
            let kind = match http_transport_error(e) {
                Some(StreamableHttpError::SessionExpired) => SESSION_LOST.to_string(),
                Some(StreamableHttpError::Client(c)) if c.is_connect() => "connect".to_string(),
                Some(StreamableHttpError::Client(c)) if c.is_timeout() => "timeout".to_string(),
                Some(StreamableHttpError::HttpStatus(s)) => format!("http_{}", s.status),
                _ => "transport".to_string(),
            };
            Outcome::transport(&kind, t.to_string())
        }
        ServiceError::TransportClosed => Outcome::transport("transport_closed", e.to_string()),
        ServiceError::Timeout { .. } => Outcome::transport("timeout", e.to_string()),
        other => Outcome::transport("other", other.to_string()),
    }
}

fn tool_params(tool: &str, args: Value) -> CallToolRequestParams {
    match args {
        Value::Object(map) => CallToolRequestParams::new(tool.to_string()).with_arguments(map),
        _ => CallToolRequestParams::new(tool.to_string()),
    }
}

fn tool_result(r: CallToolResult) -> Outcome {
    let value = r.structured_content.clone().or_else(|| {
        r.content
            .iter()
            .find_map(|c| c.as_text().and_then(|t| serde_json::from_str(&t.text).ok()))
    });
    if r.is_error == Some(true) {
        Outcome::Err {
            kind: "tool_error".to_string(),
            message: value.as_ref().map(Value::to_string).unwrap_or_default(),
            retry_after_ms: None,
            data: value,
            reset: false,
        }
    } else {
        Outcome::Ok(value.unwrap_or(Value::Null))
    }
}

fn timeout_outcome(budget: Duration, what: &str) -> Outcome {
    Outcome::transport(
        "timeout",
        format!("{what}: no answer within {} ms", budget.as_millis()),
    )
}

/// One `tools/call` on `session` until `deadline`; the flag is "the session
/// was lost" (typed, see [`is_session_expired`]).
async fn call_once(
    session: &McpSession,
    params: CallToolRequestParams,
    deadline: Instant,
    budget: Duration,
) -> (Outcome, bool) {
    match tokio::time::timeout_at(deadline, session.call_tool(params)).await {
        Err(_) => (timeout_outcome(budget, "call"), false),
        Ok(Err(e)) => (classify(&e), is_session_expired(&e)),
        Ok(Ok(r)) => (tool_result(r), false),
    }
}

/// A lazily (re)connecting single session for sequential use (the verify
/// phase, tests). Any transport failure, a lost session or a timeout drops it
/// and the next call initializes a new one.
pub struct Session {
    url: String,
    era: ClientEra,
    inner: Option<McpSession>,
    call_timeout: Duration,
    /// Sessions opened so far.
    pub opened: u64,
}

impl Session {
    /// A session to `url` of the default era; connects on first use.
    pub fn new(url: &str, call_timeout: Duration) -> Self {
        Self::with_era(url, call_timeout, ClientEra::default())
    }

    /// A session to `url` of `era`; connects on first use.
    pub fn with_era(url: &str, call_timeout: Duration, era: ClientEra) -> Self {
        Self {
            url: url.to_string(),
            era,
            inner: None,
            call_timeout,
            opened: 0,
        }
    }

    fn reset(&mut self) {
        if let Some(s) = self.inner.take() {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), s.cancel()).await;
            });
        }
    }

    /// Close the session.
    pub async fn close(&mut self) {
        if let Some(s) = self.inner.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), s.cancel()).await;
        }
    }

    /// Call `tool` with `args`; connects first if needed.
    pub async fn call(&mut self, tool: &str, args: Value) -> Outcome {
        if self.inner.is_none() {
            match connect_era(&self.url, self.call_timeout, self.era).await {
                Ok(s) => {
                    self.opened += 1;
                    self.inner = Some(s);
                }
                Err(message) => return Outcome::transport("connect", message),
            }
        }
        let Some(session) = self.inner.as_ref() else {
            return Outcome::transport("connect", "no session".to_string());
        };
        let deadline = Instant::now() + self.call_timeout;
        let (outcome, _) = call_once(
            session,
            tool_params(tool, args),
            deadline,
            self.call_timeout,
        )
        .await;
        if let Outcome::Err { reset: true, .. } = outcome {
            self.reset();
        }
        outcome
    }
}

#[derive(Default)]
struct SlotState {
    session: Option<Arc<McpSession>>,
    /// Incremented each time a session is installed (0: never connected).
    generation: u64,
}

#[derive(Default)]
struct Slot {
    /// Held across a connect: at most one connect in flight per slot, and
    /// calls arriving meanwhile wait for it (within their own deadline).
    state: tokio::sync::Mutex<SlotState>,
    /// Highest session generation counted as lost.
    lost_generation: AtomicU64,
}

/// What a pooled call came to.
#[derive(Debug, Clone)]
pub struct PoolOutcome {
    pub outcome: Outcome,
    /// The call met a session loss (and was retried once on a new session).
    pub session_lost: bool,
}

/// A fixed number of MCP sessions to one URL, shared by concurrent calls.
///
/// Each slot holds at most one live session, connected lazily and replaced:
/// * on a session loss (HTTP 404, [`is_session_expired`]): counted once per
///   lost session, re-initialized once (concurrent calls that hit the same
///   dead session use the replacement), and the call retried once on it;
/// * on any other transport failure or a timeout: dropped; the next call on
///   the slot connects again. Calls still running on a dropped session finish
///   on it.
pub struct SessionPool {
    url: String,
    era: ClientEra,
    max_concurrent_requests: usize,
    slots: Vec<Arc<Slot>>,
    opened: AtomicU64,
    losses: AtomicU64,
}

impl SessionPool {
    /// `size` slots (at least 1) of the default era; each session allows up
    /// to `max_concurrent_requests` POSTs at once (rmcp queues beyond that).
    pub fn new(url: &str, size: usize, max_concurrent_requests: usize) -> Self {
        Self::with_era(url, size, max_concurrent_requests, ClientEra::default())
    }

    /// [`Self::new`] for connections of `era`.
    pub fn with_era(
        url: &str,
        size: usize,
        max_concurrent_requests: usize,
        era: ClientEra,
    ) -> Self {
        Self {
            url: url.to_string(),
            era,
            max_concurrent_requests: max_concurrent_requests.max(1),
            slots: (0..size.max(1))
                .map(|_| Arc::new(Slot::default()))
                .collect(),
            opened: AtomicU64::new(0),
            losses: AtomicU64::new(0),
        }
    }

    /// Number of slots.
    pub fn size(&self) -> usize {
        self.slots.len()
    }

    /// Connections opened (`server/discover` or `initialize` handshakes that
    /// succeeded: first connects, reconnects and re-initializations after a loss).
    pub fn sessions_opened(&self) -> u64 {
        self.opened.load(Ordering::SeqCst)
    }

    /// Sessions the server disowned (HTTP 404), each counted once.
    pub fn session_losses(&self) -> u64 {
        self.losses.load(Ordering::SeqCst)
    }

    /// Call `tool` on slot `idx % size` within `timeout` (connect, a
    /// re-initialization and the retry included).
    pub async fn call(
        &self,
        idx: usize,
        tool: &str,
        args: Value,
        timeout: Duration,
    ) -> PoolOutcome {
        let deadline = Instant::now() + timeout;
        let slot = &self.slots[idx % self.slots.len()];
        let params = tool_params(tool, args);
        let (session, generation) = match self.acquire(slot, deadline, timeout).await {
            Ok(s) => s,
            Err(outcome) => {
                return PoolOutcome {
                    outcome,
                    session_lost: false,
                }
            }
        };
        let (outcome, expired) = call_once(&session, params.clone(), deadline, timeout).await;
        drop(session);
        if !expired {
            if let Outcome::Err { reset: true, .. } = outcome {
                invalidate(slot, generation);
            }
            return PoolOutcome {
                outcome,
                session_lost: false,
            };
        }
        // Lost session: re-initialize (once per lost session) and retry once.
        let (session, generation) = match self.reinit(slot, generation, deadline, timeout).await {
            Ok(s) => s,
            Err(outcome) => {
                return PoolOutcome {
                    outcome,
                    session_lost: true,
                }
            }
        };
        let (outcome, expired) = call_once(&session, params, deadline, timeout).await;
        drop(session);
        if expired {
            self.count_loss(slot, generation);
            invalidate(slot, generation);
        } else if let Outcome::Err { reset: true, .. } = outcome {
            invalidate(slot, generation);
        }
        PoolOutcome {
            outcome,
            session_lost: true,
        }
    }

    async fn lock<'a>(
        &self,
        slot: &'a Slot,
        deadline: Instant,
        budget: Duration,
    ) -> Result<tokio::sync::MutexGuard<'a, SlotState>, Outcome> {
        tokio::time::timeout_at(deadline, slot.state.lock())
            .await
            .map_err(|_| timeout_outcome(budget, "waiting for the session to connect"))
    }

    async fn acquire(
        &self,
        slot: &Slot,
        deadline: Instant,
        budget: Duration,
    ) -> Result<(Arc<McpSession>, u64), Outcome> {
        let mut g = self.lock(slot, deadline, budget).await?;
        if let Some(s) = &g.session {
            return Ok((s.clone(), g.generation));
        }
        self.connect_locked(&mut g, deadline, budget).await
    }

    fn count_loss(&self, slot: &Slot, generation: u64) {
        if slot.lost_generation.fetch_max(generation, Ordering::SeqCst) < generation {
            self.losses.fetch_add(1, Ordering::SeqCst);
        }
    }

    async fn reinit(
        &self,
        slot: &Slot,
        lost: u64,
        deadline: Instant,
        budget: Duration,
    ) -> Result<(Arc<McpSession>, u64), Outcome> {
        self.count_loss(slot, lost);
        let mut g = self.lock(slot, deadline, budget).await?;
        if g.generation == lost {
            g.session = None;
        }
        if let Some(s) = &g.session {
            // Another call already re-initialized this slot.
            return Ok((s.clone(), g.generation));
        }
        self.connect_locked(&mut g, deadline, budget).await
    }

    async fn connect_locked(
        &self,
        g: &mut SlotState,
        deadline: Instant,
        budget: Duration,
    ) -> Result<(Arc<McpSession>, u64), Outcome> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timeout_outcome(budget, "connect"));
        }
        match connect_with(&self.url, remaining, self.max_concurrent_requests, self.era).await {
            Ok(s) => {
                let s = Arc::new(s);
                g.session = Some(s.clone());
                g.generation += 1;
                self.opened.fetch_add(1, Ordering::SeqCst);
                Ok((s, g.generation))
            }
            Err(message) => Err(Outcome::transport("connect", message)),
        }
    }

    /// Close every session (those still shared are dropped, which closes them
    /// in the background).
    pub async fn close(&self) {
        let closing = self.slots.iter().map(|slot| async move {
            let s = slot.state.lock().await.session.take();
            if let Some(s) = s.and_then(|s| Arc::try_unwrap(s).ok()) {
                let _ = tokio::time::timeout(Duration::from_secs(2), s.cancel()).await;
            }
        });
        futures::future::join_all(closing).await;
    }
}

/// Drop the slot's session if it still is `generation`. Never waits: if the
/// slot is busy (a connect in flight replaces the session anyway) a task does it.
fn invalidate(slot: &Arc<Slot>, generation: u64) {
    if let Ok(mut g) = slot.state.try_lock() {
        if g.generation == generation {
            g.session = None;
        }
        return;
    }
    let slot = slot.clone();
    tokio::spawn(async move {
        let mut g = slot.state.lock().await;
        if g.generation == generation {
            g.session = None;
        }
    });
}

/// Load options (the CLI flags).
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub url: String,
    /// Offered rate, calls/s (open loop: call `k` is sent at `start + k / rate`).
    pub rate: f64,
    /// Number of MCP sessions in the pool; calls are assigned round-robin.
    pub concurrency: usize,
    /// How long calls are offered.
    pub duration: Duration,
    pub key_prefix: String,
    /// Per call: connect/re-initialize, the call and its one retry after a
    /// session loss, all within this.
    pub call_timeout: Duration,
    pub verify_timeout: Duration,
    pub bucket_ms: u64,
    pub mark_file: Option<PathBuf>,
    pub since_ms: Option<u64>,
    /// Most calls in flight at once; a slot due at the cap is not sent and is
    /// recorded as an error `not_sent_in_flight_cap`. `None`:
    /// `ceil(rate × call_timeout)`, at least 1.
    pub max_in_flight: Option<usize>,
    /// Where the acknowledged writes are read back; `None`: `url`. A scenario
    /// that breaks its own path to the Service reads back through a pod.
    pub verify_url: Option<String>,
    /// The protocol era of every connection (load and read-back).
    pub era: ClientEra,
}

impl LoadOptions {
    /// The CLI defaults: 50 calls/s, 4 sessions, 30 s, key prefix
    /// `lc-<unix-ms>`, call timeout 10 s, verify timeout 60 s, 1 s buckets.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            rate: 50.0,
            concurrency: 4,
            duration: Duration::from_secs(30),
            key_prefix: format!("lc-{}", now_ms()),
            call_timeout: Duration::from_secs(10),
            verify_timeout: Duration::from_secs(60),
            bucket_ms: 1000,
            mark_file: None,
            since_ms: None,
            max_in_flight: None,
            verify_url: None,
            era: ClientEra::default(),
        }
    }

    /// The in-flight cap in effect.
    pub fn effective_max_in_flight(&self) -> usize {
        match self.max_in_flight {
            Some(n) => n.clamp(1, openloop::MAX_IN_FLIGHT_LIMIT),
            None => openloop::default_max_in_flight(self.rate, self.call_timeout),
        }
    }
}

/// An acknowledged write.
#[derive(Debug, Clone, Serialize)]
pub struct Ack {
    pub key: String,
    pub value: String,
    pub acked_unix_ms: u64,
}

/// A mark (an instant of interest, e.g. "Postgres accepting again") and the
/// first success after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MarkResult {
    pub mark_unix_ms: u64,
    pub first_success_after_s: Option<f64>,
}

/// Latency summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// The client's JSON report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    pub url: String,
    pub key_prefix: String,
    pub started_unix_ms: u64,
    /// When the last call finished (the verify phase comes after).
    pub ended_unix_ms: u64,
    pub duration_s: f64,
    /// Offered rate, calls/s.
    pub rate: f64,
    /// MCP sessions in the pool.
    pub concurrency: usize,
    /// In-flight cap in effect.
    pub max_in_flight: usize,
    /// Schedule slots that came due (sent or not).
    pub offered: u64,
    /// Calls completed, failures included (slots not sent at the in-flight
    /// cap count as failed calls); equals `offered` at the end of a run.
    pub calls: u64,
    pub acknowledged: u64,
    pub errors_total: u64,
    pub errors: BTreeMap<String, u64>,
    /// One example message per error kind.
    pub error_samples: BTreeMap<String, String>,
    /// The protocol era of the run: `2026-07-28` (`server/discover`, then
    /// stateless requests) or `legacy` (`initialize`, then `Mcp-Session-Id`
    /// sessions). Reports without it were written by legacy-only clients.
    #[serde(default = "legacy_era")]
    pub era: String,
    /// Connections opened during the load (`server/discover` or `initialize`
    /// handshakes: first connects, reconnects, re-initializations after a
    /// session loss).
    pub sessions_opened: u64,
    /// Legacy runs only (always 0 in a 2026-07-28 run, which has no
    /// sessions to lose): sessions the server disowned (HTTP 404 for the
    /// session), each counted once however many calls hit it; each was
    /// re-initialized.
    pub session_losses: u64,
    /// Legacy runs only, as `session_losses`: calls that met a session loss
    /// (retried once; failed or not).
    pub session_lost_calls: u64,
    pub longest_outage_s: f64,
    pub outages: Vec<Outage>,
    /// First mark (from --mark-file or --since), unix ms.
    pub mark_unix_ms: Option<u64>,
    /// Seconds from the first mark to the first successful call sent after it.
    pub first_success_after_s: Option<f64>,
    pub marks: Vec<MarkResult>,
    pub lost_acked_writes: u64,
    pub unverified_acked_writes: u64,
    pub lost_keys: Vec<String>,
    pub verify_duration_s: f64,
    /// Failed read-backs by error kind (each retried until the verify
    /// deadline), and one message per kind: why writes stayed unverified.
    #[serde(default)]
    pub verify_errors: BTreeMap<String, u64>,
    #[serde(default)]
    pub verify_error_samples: BTreeMap<String, String>,
    /// Successful calls, from the scheduled send time to the answer.
    pub latency_ms: Latency,
    pub timeline_bucket_ms: u64,
    pub timeline: Vec<Bucket>,
}

/// What `mcp-loadclient --events` prints: the report and every call, for a
/// caller that runs the client elsewhere (the e2e suite's in-cluster load) and
/// measures itself. Printed as JSON in numbered lines ([`result_lines`]):
/// container runtimes split long log lines and interleave them with stderr.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadResult {
    pub report: LoadReport,
    pub events: Vec<CallEvent>,
}

pub const RESULT_PREFIX: &str = "mcp-load-result ";
/// Bytes of JSON per result line, well under the runtimes' 16 KiB split.
const RESULT_CHUNK: usize = 4096;

/// `json` as lines `mcp-load-result <i>/<n> <piece>`, pieces cut on char
/// boundaries.
pub fn result_lines(json: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < json.len() {
        let mut end = (start + RESULT_CHUNK).min(json.len());
        while !json.is_char_boundary(end) {
            end -= 1;
        }
        pieces.push(&json[start..end]);
        start = end;
    }
    let n = pieces.len();
    pieces
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{RESULT_PREFIX}{}/{n} {p}", i + 1))
        .collect()
}

/// The JSON [`result_lines`] printed, from a log that may hold other lines
/// in between; an error names what is missing.
pub fn join_result_lines(log: &str) -> Result<String, String> {
    let mut parts: BTreeMap<usize, &str> = BTreeMap::new();
    let mut total = None;
    for line in log.lines() {
        let Some(rest) = line.strip_prefix(RESULT_PREFIX) else {
            continue;
        };
        let (pos, piece) = rest.split_once(' ').unwrap_or((rest, ""));
        let Some((i, n)) = pos.split_once('/') else {
            return Err(format!("malformed result line {pos:?}"));
        };
        let (Ok(i), Ok(n)) = (i.parse::<usize>(), n.parse::<usize>()) else {
            return Err(format!("malformed result line {pos:?}"));
        };
        total = Some(n);
        parts.insert(i, piece);
    }
    let n = total.ok_or_else(|| format!("no '{}' lines", RESULT_PREFIX.trim()))?;
    if parts.len() != n || (1..=n).any(|i| !parts.contains_key(&i)) {
        return Err(format!("{} of {n} result lines", parts.len()));
    }
    Ok(parts.into_values().collect())
}

/// Read marks (unix ms, one per line) from a file; missing file = no marks.
pub fn read_marks(path: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .map(|s| {
            s.split_whitespace()
                .filter_map(|t| t.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

async fn put_note(
    pool: Arc<SessionPool>,
    idx: usize,
    key: String,
    value: String,
    timeout: Duration,
    acks: Arc<Mutex<Vec<Ack>>>,
) -> Attempt {
    let args = json!({"key": key, "value": value});
    let r = pool.call(idx, "put_note", args, timeout).await;
    match r.outcome {
        Outcome::Ok(_) => {
            if let Ok(mut a) = acks.lock() {
                a.push(Ack {
                    key,
                    value,
                    acked_unix_ms: now_ms(),
                });
            }
            Attempt {
                ok: true,
                kind: None,
                message: None,
                session_lost: r.session_lost,
            }
        }
        Outcome::Err { kind, message, .. } => Attempt {
            ok: false,
            kind: Some(kind),
            message: Some(message),
            session_lost: r.session_lost,
        },
    }
}

enum Verdict {
    Ok,
    Lost,
    Unverified,
}

/// What the read-back came to.
#[derive(Default, Clone)]
struct Verified {
    lost: u64,
    unverified: u64,
    /// Up to 50.
    lost_keys: Vec<String>,
    errors: BTreeMap<String, u64>,
    error_samples: BTreeMap<String, String>,
}

async fn verify_worker(
    opts: Arc<LoadOptions>,
    queue: Arc<Mutex<Vec<Ack>>>,
    deadline: std::time::Instant,
    results: Arc<Mutex<Verified>>,
) {
    let url = opts.verify_url.as_deref().unwrap_or(&opts.url);
    let mut session = Session::with_era(url, opts.call_timeout, opts.era);
    loop {
        let next = queue.lock().ok().and_then(|mut q| q.pop());
        let Some(ack) = next else { break };
        let mut verdict = Verdict::Unverified;
        // Past the deadline the rest count as unverified without a call: a server
        // that never answers would otherwise cost a call timeout per write (S16
        // once spent 45 minutes here).
        while std::time::Instant::now() < deadline {
            match session.call("get_note", json!({"key": ack.key})).await {
                Outcome::Ok(v) => {
                    let found = v.get("found").and_then(Value::as_bool).unwrap_or(false);
                    let same = v.get("value").and_then(Value::as_str) == Some(ack.value.as_str());
                    verdict = if found && same {
                        Verdict::Ok
                    } else {
                        Verdict::Lost
                    };
                    break;
                }
                Outcome::Err {
                    kind,
                    message,
                    retry_after_ms,
                    ..
                } => {
                    if let Ok(mut r) = results.lock() {
                        *r.errors.entry(kind.clone()).or_default() += 1;
                        r.error_samples.entry(kind).or_insert(message);
                    }
                    let wait = Duration::from_millis(retry_after_ms.unwrap_or(200).clamp(50, 2000));
                    tokio::time::sleep(wait).await;
                }
            }
        }
        if let Ok(mut r) = results.lock() {
            match verdict {
                Verdict::Ok => {}
                Verdict::Lost => {
                    r.lost += 1;
                    if r.lost_keys.len() < 50 {
                        r.lost_keys.push(ack.key.clone());
                    }
                }
                Verdict::Unverified => r.unverified += 1,
            }
        }
    }
    session.close().await;
}

/// Read every acknowledged write back.
async fn verify(opts: &Arc<LoadOptions>, acks: Vec<Ack>) -> Verified {
    let deadline = std::time::Instant::now() + opts.verify_timeout;
    let queue = Arc::new(Mutex::new(acks));
    let results = Arc::new(Mutex::new(Verified::default()));
    let verifiers: Vec<_> = (0..opts.concurrency.clamp(1, 16))
        .map(|_| {
            tokio::spawn(verify_worker(
                opts.clone(),
                queue.clone(),
                deadline,
                results.clone(),
            ))
        })
        .collect();
    for v in verifiers {
        let _ = v.await;
    }
    results.lock().map(|r| r.clone()).unwrap_or_default()
}

/// Run the load, verify, and build the report.
pub async fn run(opts: LoadOptions) -> LoadReport {
    run_with_events(opts).await.0
}

/// [`run`], also returning the raw per-call log (one [`CallEvent`] per offered
/// slot, ordered by slot) for callers that compute their own measures.
pub async fn run_with_events(opts: LoadOptions) -> (LoadReport, Vec<CallEvent>) {
    run_until(opts, CancellationToken::new()).await
}

/// [`run_with_events`] that stops offering calls when `stop` is cancelled
/// (or at `opts.duration`, whichever comes first). Calls already sent finish,
/// then every acknowledged write is verified as usual.
pub async fn run_until(opts: LoadOptions, stop: CancellationToken) -> (LoadReport, Vec<CallEvent>) {
    let opts = Arc::new(opts);
    let max_in_flight = opts.effective_max_in_flight();
    let pool = Arc::new(SessionPool::with_era(
        &opts.url,
        opts.concurrency.max(1),
        max_in_flight.max(DEFAULT_MAX_CONCURRENT_REQUESTS),
        opts.era,
    ));
    let sessions = pool.size() as u64;
    let acks = Arc::new(Mutex::new(Vec::new()));
    let started_ms = now_ms();
    let d = openloop::dispatch(
        opts.rate,
        opts.duration,
        max_in_flight,
        &stop,
        started_ms,
        |k| {
            let idx = usize::try_from(k % sessions).unwrap_or(0);
            let key = format!("{}-{idx}-{k}", opts.key_prefix);
            let value = format!("v:{key}:{}", now_ms());
            put_note(
                pool.clone(),
                idx,
                key,
                value,
                opts.call_timeout,
                acks.clone(),
            )
        },
    )
    .await;
    pool.close().await;
    let acks = acks.lock().map(|a| a.clone()).unwrap_or_default();

    let verify_started = std::time::Instant::now();
    let verified = verify(&opts, acks.clone()).await;
    let verify_duration_s = verify_started.elapsed().as_secs_f64();

    let events = d.events;
    let (started_ms, ended_ms) = (d.started_unix_ms, d.ended_unix_ms);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for e in events.iter().filter(|e| !e.ok) {
        *errors
            .entry(e.kind.clone().unwrap_or_else(|| "unknown".into()))
            .or_default() += 1;
    }
    let outages = report::outages(&events, started_ms, ended_ms);
    let mut marks: Vec<u64> = opts.since_ms.into_iter().collect();
    if let Some(p) = &opts.mark_file {
        marks.extend(read_marks(p));
    }
    let marks: Vec<MarkResult> = marks
        .into_iter()
        .map(|m| MarkResult {
            mark_unix_ms: m,
            first_success_after_s: report::first_success_after(&events, m),
        })
        .collect();
    let mut lat = d.latencies_ms;
    lat.sort_by(f64::total_cmp);
    let report = LoadReport {
        url: crate::redact::redact_credentials(&opts.url),
        key_prefix: opts.key_prefix.clone(),
        started_unix_ms: started_ms,
        ended_unix_ms: ended_ms,
        duration_s: ended_ms.saturating_sub(started_ms) as f64 / 1000.0,
        rate: opts.rate,
        concurrency: opts.concurrency,
        max_in_flight,
        offered: d.offered,
        calls: events.len() as u64,
        acknowledged: acks.len() as u64,
        errors_total: errors.values().sum(),
        errors,
        error_samples: d.samples,
        era: opts.era.name().to_string(),
        sessions_opened: pool.sessions_opened(),
        session_losses: pool.session_losses(),
        session_lost_calls: events.iter().filter(|e| e.session_lost).count() as u64,
        longest_outage_s: report::longest_outage_s(&outages),
        outages,
        mark_unix_ms: marks.first().map(|m| m.mark_unix_ms),
        first_success_after_s: marks.first().and_then(|m| m.first_success_after_s),
        marks,
        lost_acked_writes: verified.lost,
        unverified_acked_writes: verified.unverified,
        lost_keys: verified.lost_keys,
        verify_duration_s,
        verify_errors: verified.errors,
        verify_error_samples: verified.error_samples,
        latency_ms: Latency {
            p50: report::percentile(&lat, 50.0),
            p95: report::percentile(&lat, 95.0),
            p99: report::percentile(&lat, 99.0),
            max: lat.last().copied().unwrap_or(0.0),
        },
        timeline_bucket_ms: opts.bucket_ms,
        timeline: report::timeline(&events, started_ms, ended_ms, opts.bucket_ms),
    };
    (report, events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::transport::DynamicTransportError;

    fn transport_err(e: StreamableHttpError<reqwest::Error>) -> ServiceError {
        ServiceError::TransportSend(DynamicTransportError::from_parts(
            "test",
            std::any::TypeId::of::<()>(),
            Box::new(e),
        ))
    }

    #[test]
    fn session_expired_is_recognised_by_type() {
        let e = transport_err(StreamableHttpError::SessionExpired);
        assert!(is_session_expired(&e));
        let o = classify(&e);
        assert_eq!(o.kind(), Some(SESSION_LOST));
        assert!(matches!(o, Outcome::Err { reset: true, .. }));
    }

    #[test]
    fn other_transport_errors_are_not_session_loss() {
        let e = transport_err(StreamableHttpError::UnexpectedEndOfStream);
        assert!(!is_session_expired(&e));
        assert_eq!(classify(&e).kind(), Some("transport"));
        assert!(!is_session_expired(&ServiceError::TransportClosed));
        assert_eq!(
            classify(&ServiceError::TransportClosed).kind(),
            Some("transport_closed")
        );
        let s = transport_err(StreamableHttpError::HttpStatus(
            rmcp::transport::streamable_http_client::HttpStatusError::new(503, None),
        ));
        assert!(!is_session_expired(&s));
        assert_eq!(classify(&s).kind(), Some("http_503"));
    }

    #[test]
    fn default_options_and_cap() {
        let o = LoadOptions::new("http://x/mcp");
        assert_eq!(o.rate, 50.0);
        assert_eq!(o.concurrency, 4);
        assert_eq!(o.effective_max_in_flight(), 500);
        let o = LoadOptions {
            max_in_flight: Some(0),
            ..o
        };
        assert_eq!(o.effective_max_in_flight(), 1);
    }

    /// Nothing listens: every call fails with `connect`, none is a session
    /// loss, and the schedule is kept (no backoff).
    #[tokio::test]
    async fn unreachable_server_fails_fast_on_schedule() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut o = LoadOptions::new(format!("http://127.0.0.1:{port}/mcp"));
        o.rate = 100.0;
        o.duration = Duration::from_millis(300);
        o.call_timeout = Duration::from_secs(2);
        o.verify_timeout = Duration::from_millis(100);
        let (r, events) = run_with_events(o).await;
        assert_eq!(r.offered, 30);
        assert_eq!(r.calls, 30);
        assert_eq!(events.len(), 30);
        assert_eq!(r.errors_total, 30);
        assert_eq!(r.acknowledged, 0);
        assert_eq!(r.session_losses, 0);
        assert_eq!(r.sessions_opened, 0);
        assert!(events.iter().all(|e| !e.session_lost));
        assert_eq!(r.errors.get("connect"), Some(&30), "{:?}", r.errors);
        let last = events.last().map(|e| e.start_ms - r.started_unix_ms);
        assert!(
            last.is_some_and(|t| (280..400).contains(&t)),
            "last call sent at +{last:?} ms"
        );
    }

    /// A server that accepts connections and never answers: read-back gives up
    /// at its deadline and counts every write unverified, instead of spending a
    /// call timeout on each one.
    #[tokio::test]
    async fn verify_stops_at_its_deadline_against_a_silent_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let held = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((c, _)) = listener.accept().await {
                conns.push(c);
            }
        });
        let mut o = LoadOptions::new(format!("http://127.0.0.1:{port}/mcp"));
        o.concurrency = 4;
        o.call_timeout = Duration::from_secs(1);
        o.verify_timeout = Duration::from_millis(300);
        let acks: Vec<Ack> = (0..40)
            .map(|i| Ack {
                key: format!("k{i}"),
                value: "v".into(),
                acked_unix_ms: 0,
            })
            .collect();
        let started = std::time::Instant::now();
        let v = verify(&Arc::new(o), acks).await;
        let took = started.elapsed();
        held.abort();
        assert_eq!((v.lost, v.unverified), (0, 40));
        // The report says why: the calls made before the deadline failed.
        assert!(!v.errors.is_empty() && v.errors.keys().all(|k| v.error_samples.contains_key(k)));
        // One call timeout past the deadline at most (plus the sessions' close);
        // a call per write would take 40 / 4 x 1 s = 10 s.
        assert!(took < Duration::from_secs(5), "verify took {took:?}");
    }
}
