//! The load/verify client: real MCP sessions (rmcp streamable-HTTP client)
//! driving `put_note` at a rate and concurrency, then reading every
//! acknowledged key back.
//!
//! Sessions are disposable: any transport failure, session loss (a Service
//! that switched pods answers 404 for an unknown session) or timeout drops the
//! session and the next call initializes a new one. `retry_after_ms` in an MCP
//! error's data is honoured before the worker's next call.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde::Serialize;
use serde_json::{json, Value};

use crate::backoff::Backoff;
use crate::report::{self, Bucket, CallEvent, Outage};

/// Current unix time in ms.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// An MCP client session.
pub type McpSession = RunningService<RoleClient, ClientConfig>;

/// Open an MCP session (initialize handshake included).
pub async fn connect(url: &str, timeout: Duration) -> Result<McpSession, String> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url),
    );
    match tokio::time::timeout(timeout, ClientConfig::default().serve(transport)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "initialize timed out after {} ms",
            timeout.as_millis()
        )),
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
            let msg = format!("{t}");
            let lower = msg.to_lowercase();
            let kind = if lower.contains("session") || lower.contains("404") {
                "session_lost"
            } else if lower.contains("connect") || lower.contains("refused") {
                "connect"
            } else {
                "transport"
            };
            Outcome::Err {
                kind: kind.to_string(),
                message: msg,
                retry_after_ms: None,
                data: None,
                reset: true,
            }
        }
        ServiceError::TransportClosed => Outcome::Err {
            kind: "transport_closed".to_string(),
            message: e.to_string(),
            retry_after_ms: None,
            data: None,
            reset: true,
        },
        ServiceError::Timeout { .. } => Outcome::Err {
            kind: "timeout".to_string(),
            message: e.to_string(),
            retry_after_ms: None,
            data: None,
            reset: true,
        },
        other => Outcome::Err {
            kind: "other".to_string(),
            message: other.to_string(),
            retry_after_ms: None,
            data: None,
            reset: true,
        },
    }
}

/// A lazily (re)connecting session.
pub struct Session {
    url: String,
    inner: Option<McpSession>,
    call_timeout: Duration,
    /// Sessions opened so far.
    pub opened: u64,
}

impl Session {
    /// A session to `url`; connects on first use.
    pub fn new(url: &str, call_timeout: Duration) -> Self {
        Self {
            url: url.to_string(),
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
            match connect(&self.url, self.call_timeout).await {
                Ok(s) => {
                    self.opened += 1;
                    self.inner = Some(s);
                }
                Err(message) => {
                    return Outcome::Err {
                        kind: "connect".to_string(),
                        message,
                        retry_after_ms: None,
                        data: None,
                        reset: true,
                    }
                }
            }
        }
        let Some(session) = self.inner.as_ref() else {
            return Outcome::Err {
                kind: "connect".to_string(),
                message: "no session".to_string(),
                retry_after_ms: None,
                data: None,
                reset: true,
            };
        };
        let params = match args {
            Value::Object(map) => CallToolRequestParams::new(tool.to_string()).with_arguments(map),
            _ => CallToolRequestParams::new(tool.to_string()),
        };
        let outcome = match tokio::time::timeout(self.call_timeout, session.call_tool(params)).await
        {
            Err(_) => Outcome::Err {
                kind: "timeout".to_string(),
                message: format!("no answer within {} ms", self.call_timeout.as_millis()),
                retry_after_ms: None,
                data: None,
                reset: true,
            },
            Ok(Err(e)) => classify(&e),
            Ok(Ok(r)) => {
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
        };
        if let Outcome::Err { reset: true, .. } = outcome {
            self.reset();
        }
        outcome
    }
}

/// Load options (the CLI flags).
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub url: String,
    /// Calls per second across all workers.
    pub rate: f64,
    pub concurrency: usize,
    pub duration: Duration,
    pub key_prefix: String,
    pub call_timeout: Duration,
    pub verify_timeout: Duration,
    pub bucket_ms: u64,
    pub mark_file: Option<PathBuf>,
    pub since_ms: Option<u64>,
}

/// An acknowledged write.
#[derive(Debug, Clone, Serialize)]
pub struct Ack {
    pub key: String,
    pub value: String,
    pub acked_unix_ms: u64,
}

#[derive(Default)]
struct Log {
    events: Vec<CallEvent>,
    acks: Vec<Ack>,
    latencies_ms: Vec<f64>,
    sessions: u64,
    samples: BTreeMap<String, String>,
}

struct Schedule {
    next: Mutex<Instant>,
    interval: Duration,
    end: Instant,
}

impl Schedule {
    fn take(&self) -> Option<Instant> {
        let mut g = self.next.lock().ok()?;
        let slot = (*g).max(Instant::now());
        if slot >= self.end {
            return None;
        }
        *g = slot + self.interval;
        Some(slot)
    }
}

/// A mark (an instant of interest, e.g. "Postgres accepting again") and the
/// first success after it.
#[derive(Debug, Clone, Serialize)]
pub struct MarkResult {
    pub mark_unix_ms: u64,
    pub first_success_after_s: Option<f64>,
}

/// Latency summary.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// The client's JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub url: String,
    pub key_prefix: String,
    pub started_unix_ms: u64,
    pub ended_unix_ms: u64,
    pub duration_s: f64,
    pub rate: f64,
    pub concurrency: usize,
    pub calls: u64,
    pub acknowledged: u64,
    pub errors_total: u64,
    pub errors: BTreeMap<String, u64>,
    /// One example message per error kind.
    pub error_samples: BTreeMap<String, String>,
    pub sessions_opened: u64,
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
    pub latency_ms: Latency,
    pub timeline_bucket_ms: u64,
    pub timeline: Vec<Bucket>,
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

async fn load_worker(
    id: usize,
    opts: Arc<LoadOptions>,
    schedule: Arc<Schedule>,
    log: Arc<Mutex<Log>>,
) {
    let mut session = Session::new(&opts.url, opts.call_timeout);
    let mut backoff = Backoff::new(Duration::from_millis(25), Duration::from_millis(500));
    let mut not_before: Option<Instant> = None;
    let mut n = 0u64;
    while let Some(slot) = schedule.take() {
        let at = not_before.take().map_or(slot, |nb| nb.max(slot));
        if at >= schedule.end {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        n += 1;
        let key = format!("{}-{id}-{n}", opts.key_prefix);
        let value = format!("v:{key}:{}", now_ms());
        let start_ms = now_ms();
        let t0 = Instant::now();
        let outcome = session
            .call("put_note", json!({"key": key, "value": value}))
            .await;
        let end_ms = now_ms();
        let latency = t0.elapsed().as_secs_f64() * 1000.0;
        let Ok(mut g) = log.lock() else { return };
        match outcome {
            Outcome::Ok(_) => {
                backoff.reset();
                g.events.push(CallEvent {
                    start_ms,
                    end_ms,
                    ok: true,
                    kind: None,
                });
                g.latencies_ms.push(latency);
                g.acks.push(Ack {
                    key,
                    value,
                    acked_unix_ms: end_ms,
                });
            }
            Outcome::Err {
                kind,
                message,
                retry_after_ms,
                ..
            } => {
                g.samples.entry(kind.clone()).or_insert(message);
                g.events.push(CallEvent {
                    start_ms,
                    end_ms,
                    ok: false,
                    kind: Some(kind),
                });
                let wait = match retry_after_ms {
                    Some(ms) => Duration::from_millis(ms.min(5000)),
                    None => backoff.next_delay(),
                };
                not_before = Some(Instant::now() + wait);
            }
        }
    }
    let opened = session.opened;
    session.close().await;
    if let Ok(mut g) = log.lock() {
        g.sessions += opened;
    }
}

enum Verdict {
    Ok,
    Lost,
    Unverified,
}

async fn verify_worker(
    opts: Arc<LoadOptions>,
    queue: Arc<Mutex<Vec<Ack>>>,
    deadline: Instant,
    results: Arc<Mutex<(u64, u64, Vec<String>)>>,
) {
    let mut session = Session::new(&opts.url, opts.call_timeout);
    loop {
        let next = queue.lock().ok().and_then(|mut q| q.pop());
        let Some(ack) = next else { break };
        let mut verdict = Verdict::Unverified;
        loop {
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
                Outcome::Err { retry_after_ms, .. } => {
                    if Instant::now() >= deadline {
                        break;
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
                    r.0 += 1;
                    if r.2.len() < 50 {
                        r.2.push(ack.key.clone());
                    }
                }
                Verdict::Unverified => r.1 += 1,
            }
        }
    }
    session.close().await;
}

/// Run the load, verify, and build the report.
pub async fn run(opts: LoadOptions) -> LoadReport {
    let opts = Arc::new(opts);
    let started_ms = now_ms();
    let start = Instant::now();
    let interval = if opts.rate > 0.0 {
        Duration::from_secs_f64(1.0 / opts.rate)
    } else {
        Duration::ZERO
    };
    let schedule = Arc::new(Schedule {
        next: Mutex::new(start),
        interval,
        end: start + opts.duration,
    });
    let log = Arc::new(Mutex::new(Log::default()));
    let workers: Vec<_> = (0..opts.concurrency.max(1))
        .map(|i| tokio::spawn(load_worker(i, opts.clone(), schedule.clone(), log.clone())))
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let ended_ms = now_ms();
    let log = match Arc::try_unwrap(log) {
        Ok(m) => m.into_inner().unwrap_or_default(),
        Err(arc) => arc
            .lock()
            .map(|g| Log {
                events: g.events.clone(),
                acks: g.acks.clone(),
                latencies_ms: g.latencies_ms.clone(),
                sessions: g.sessions,
                samples: g.samples.clone(),
            })
            .unwrap_or_default(),
    };

    // Verify every acknowledged write.
    let verify_started = Instant::now();
    let deadline = verify_started + opts.verify_timeout;
    let queue = Arc::new(Mutex::new(log.acks.clone()));
    let results = Arc::new(Mutex::new((0u64, 0u64, Vec::new())));
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
    let (lost, unverified, lost_keys) =
        results
            .lock()
            .map(|r| r.clone())
            .unwrap_or((0, 0, Vec::new()));
    let verify_duration_s = verify_started.elapsed().as_secs_f64();

    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for e in log.events.iter().filter(|e| !e.ok) {
        *errors
            .entry(e.kind.clone().unwrap_or_else(|| "unknown".into()))
            .or_default() += 1;
    }
    let outages = report::outages(&log.events, started_ms, ended_ms);
    let mut marks: Vec<u64> = opts.since_ms.into_iter().collect();
    if let Some(p) = &opts.mark_file {
        marks.extend(read_marks(p));
    }
    let marks: Vec<MarkResult> = marks
        .into_iter()
        .map(|m| MarkResult {
            mark_unix_ms: m,
            first_success_after_s: report::first_success_after(&log.events, m),
        })
        .collect();
    let mut lat = log.latencies_ms.clone();
    lat.sort_by(f64::total_cmp);
    LoadReport {
        url: crate::redact::redact_credentials(&opts.url),
        key_prefix: opts.key_prefix.clone(),
        started_unix_ms: started_ms,
        ended_unix_ms: ended_ms,
        duration_s: (ended_ms - started_ms) as f64 / 1000.0,
        rate: opts.rate,
        concurrency: opts.concurrency,
        calls: log.events.len() as u64,
        acknowledged: log.acks.len() as u64,
        errors_total: errors.values().sum(),
        errors,
        error_samples: log.samples,
        sessions_opened: log.sessions,
        longest_outage_s: report::longest_outage_s(&outages),
        outages,
        mark_unix_ms: marks.first().map(|m| m.mark_unix_ms),
        first_success_after_s: marks.first().and_then(|m| m.first_success_after_s),
        marks,
        lost_acked_writes: lost,
        unverified_acked_writes: unverified,
        lost_keys,
        verify_duration_s,
        latency_ms: Latency {
            p50: report::percentile(&lat, 50.0),
            p95: report::percentile(&lat, 95.0),
            p99: report::percentile(&lat, 99.0),
            max: lat.last().copied().unwrap_or(0.0),
        },
        timeline_bucket_ms: opts.bucket_ms,
        timeline: report::timeline(&log.events, started_ms, ended_ms, opts.bucket_ms),
    }
}
