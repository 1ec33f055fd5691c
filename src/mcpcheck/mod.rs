//! One MCP health check of one pod, as a client would see it: TCP connect,
//! then the server's handshake, then one request, all under one deadline.
//! Kubelet probes can only GET a path or open a port; a server whose MCP layer
//! hangs while `/readyz` answers passes them and fails this.
//!
//! Two eras of MCP are spoken (streamable HTTP, through rmcp's client):
//! - **2026-07-28** ([`Era::Stateless2026`]): `server/discover` (with the
//!   2026-07-28 `_meta` and `Mcp-Method` headers), then `tools/list` if the
//!   server advertised tools, else `prompts/list` or `resources/list`, else
//!   the discover alone is the check. No `ping`, no session.
//! - **legacy** ([`Era::Legacy`], 2024-11-05 to 2025-11-25): when the server
//!   does not know `server/discover`, the `initialize` handshake, then `ping`
//!   (or `tools/list` with `listTools`, if the server advertised tools).
//!
//! The `sse` transport (2024-11-05 HTTP+SSE, `sse.rs`; rmcp dropped it) is
//! legacy only. Only advertised capabilities are probed, only with POSTs (the
//! `sse` transport's event stream is its one GET; a legacy session is closed
//! with DELETE after the check).
//!
//! What a pod cannot make the prober do:
//! - follow a redirect (a 3xx is an `HttpStatus` failure), or POST anywhere
//!   but the pod's own origin (the `sse` endpoint event must be same-origin);
//! - read more than [`MAX_MESSAGE_BYTES`] per body or SSE event (and so per
//!   SSE line) or [`MAX_CHECK_BYTES`] in one check (`limits.rs`; every read
//!   goes through it, before any parser);
//! - put more than [`MAX_NAME_CHARS`] / [`MAX_DETAIL_CHARS`] characters, or
//!   any control character, into [`Facts`] or [`Failure::detail`] ([`sanitize`]).
//!
//! Memory: a check reads at most [`MAX_CHECK_BYTES`] from the pod and holds
//! at most one message of it ([`MAX_MESSAGE_BYTES`]) and its decoded form at
//! a time; hyper's connection buffer (its default, at most 408 KiB) holds the
//! response head and the chunk being read. With the prober's 32 checks in
//! flight (`controller::mcp_prober::CONCURRENCY`), what pods can make the
//! operator hold is at most 32 x 512 KiB = 16 MiB of their bytes plus
//! 32 x 408 KiB = 13 MiB of connection buffers, however they answer (before:
//! rmcp's 16 MiB per body, 512 MiB for 32 checks, and no limit at all on the
//! `sse` transport).
//!
//! Classification: [`FailureKind::counts_against_pod`] says which failures are
//! evidence that the pod's MCP layer misbehaves; authentication required, a
//! rate limit, a method the server never advertised, an answer over the caps
//! and an unreachable pod are reported but are not that.

mod http;
mod limits;
mod sse;
mod streamable;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::api::Transport;
use limits::Budget;
pub use limits::{TooLarge, MAX_CHECK_BYTES, MAX_MESSAGE_BYTES};

/// Longest server name, version or protocol version kept from a pod.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest [`Failure::detail`].
pub const MAX_DETAIL_CHARS: usize = 256;
/// Longest `Retry-After` honoured: a pod cannot ask to be left alone longer.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `http://<pod IP>:<port><path>`.
    pub url: String,
    /// `<pod IP>:<port>`, for the connect step.
    pub addr: String,
    pub transport: Transport,
    pub timeout: Duration,
    /// `tools/list` instead of `ping`.
    pub list_tools: bool,
}

/// How the server's lifecycle works.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Era {
    /// `initialize`, then requests in a session (2024-11-05 to 2025-11-25).
    #[default]
    Legacy,
    /// `server/discover`; every request carries its own version and
    /// capabilities, no session (2026-07-28 on).
    Stateless2026,
}

impl Era {
    /// The metric label, and the word in status.
    pub fn label(self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::Stateless2026 => "stateless",
        }
    }
}

/// What a passing check learnt about the server. Every string is
/// [`sanitize`]d to [`MAX_NAME_CHARS`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub era: Era,
    pub server_name: Option<String>,
    pub server_version: Option<String>,
    /// The version spoken: negotiated by `initialize`, or chosen from the
    /// server's `supportedVersions` (2026-07-28).
    pub protocol_version: Option<String>,
    /// Tools listed (with `listTools`, when the server advertises tools).
    pub tools: Option<u32>,
}

/// Why a check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// TCP connect refused or timed out: the operator could not reach the pod
    /// (a NetworkPolicy, routing); says nothing about the server itself.
    Connect,
    /// Connected, but no answer within the deadline.
    Timeout,
    /// An HTTP status other than success (a 3xx included: redirects are not
    /// followed), and not one of the kinds below.
    HttpStatus,
    /// An answer that is not MCP: bad JSON-RPC, an error result, an
    /// unsupported protocol version, a closed stream, an SSE endpoint on
    /// another origin.
    Protocol,
    /// HTTP 401 or 403: the server answers, and wants credentials the
    /// operator does not send.
    AuthRequired,
    /// HTTP 429, or 503 with `Retry-After`: the server is shedding load and
    /// says so. `retry_after` is the delay it asked for, when given in
    /// seconds (at most [`MAX_RETRY_AFTER`]).
    Transient { retry_after: Option<Duration> },
    /// JSON-RPC "Method not found" (-32601) to a method the server never
    /// advertised (`ping` on a legacy server that does not implement it): the
    /// prober asked for something it should not have; the server answered.
    UnadvertisedMethod,
    /// The server answered with more than the prober reads
    /// ([`MAX_MESSAGE_BYTES`], [`MAX_CHECK_BYTES`]).
    TooLarge,
}

impl FailureKind {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::HttpStatus => "http_status",
            Self::Protocol => "protocol",
            Self::AuthRequired => "auth_required",
            Self::Transient { .. } => "transient",
            Self::UnadvertisedMethod => "unadvertised_method",
            Self::TooLarge => "too_large",
        }
    }

    /// The CamelCase reason in status.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Connect => "ConnectFailed",
            Self::Timeout => "Timeout",
            Self::HttpStatus => "HttpStatus",
            Self::Protocol => "ProtocolError",
            Self::AuthRequired => "AuthRequired",
            Self::Transient { .. } => "Transient",
            Self::UnadvertisedMethod => "UnadvertisedMethod",
            Self::TooLarge => "ResponseTooLarge",
        }
    }

    /// Whether this failure is evidence that the pod's MCP layer misbehaves:
    /// what counts toward `unhealthyAfterSeconds`, "wedged" and eviction.
    ///
    /// Only `Timeout`, `HttpStatus` and `Protocol` do. Not `Connect` (the
    /// operator could not reach the pod; tracked apart as unreachable), nor
    /// the answers of a live server: `AuthRequired` (it answered, wants
    /// credentials), `Transient` (it answered, asked to come back later),
    /// `UnadvertisedMethod` (the prober's mistake) and `TooLarge` (it
    /// answered, more than the prober reads).
    pub fn counts_against_pod(self) -> bool {
        match self {
            Self::Timeout | Self::HttpStatus | Self::Protocol => true,
            Self::Connect
            | Self::AuthRequired
            | Self::Transient { .. }
            | Self::UnadvertisedMethod
            | Self::TooLarge => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    /// For humans; names the step that failed. [`sanitize`]d to
    /// [`MAX_DETAIL_CHARS`]: it quotes what the pod said.
    pub detail: String,
}

impl Failure {
    fn new(kind: FailureKind, detail: impl AsRef<str>) -> Self {
        Self {
            kind,
            detail: sanitize(detail.as_ref(), MAX_DETAIL_CHARS),
        }
    }

    fn too_large(hit: TooLarge, step: &str) -> Self {
        Self::new(FailureKind::TooLarge, format!("{step}: the pod sent {hit}"))
    }
}

pub type Outcome = Result<Facts, Failure>;

/// `s` made safe for status, messages, Events and logs: control characters
/// (newlines included) and bidirectional-text overrides become spaces, and at
/// most `max` characters are kept (the last one an ellipsis when cut).
pub fn sanitize(s: &str, max: usize) -> String {
    let clean = |c: char| {
        if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            ' '
        } else {
            c
        }
    };
    if s.chars().nth(max).is_none() {
        return s.chars().map(clean).collect();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).map(clean).collect();
    if max > 0 {
        out.push('…');
    }
    out
}

/// The step a check is in, readable after its future was dropped by the deadline.
#[derive(Clone, Default)]
pub(crate) struct Step(Arc<Mutex<&'static str>>);

impl Step {
    pub(crate) fn set(&self, s: &'static str) {
        if let Ok(mut g) = self.0.lock() {
            *g = s;
        }
    }

    pub(crate) fn get(&self) -> &'static str {
        self.0.lock().map(|g| *g).unwrap_or("?")
    }
}

/// Runs checks; one HTTP client (no proxy, no redirects, no idle connections
/// kept: every check opens its own connection, as a new client would).
#[derive(Clone)]
pub struct Checker {
    http: reqwest::Client,
}

impl Checker {
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .user_agent(concat!("mcp-operator-prober/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http })
    }

    /// One check; never longer than `t.timeout` (plus closing a legacy
    /// session, which runs detached), and over as soon as a cap is hit.
    pub async fn check(&self, t: &Target) -> Outcome {
        let started = Instant::now();
        match tokio::time::timeout(t.timeout, tokio::net::TcpStream::connect(&t.addr)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(Failure::new(
                    FailureKind::Connect,
                    format!("cannot connect to {}: {e}", t.addr),
                ))
            }
            Err(_) => {
                return Err(Failure::new(
                    FailureKind::Connect,
                    format!(
                        "TCP connect to {} timed out after {} ms",
                        t.addr,
                        t.timeout.as_millis()
                    ),
                ))
            }
        }
        let left = t.timeout.saturating_sub(started.elapsed());
        let step = Step::default();
        let budget = Budget::default();
        let session = async {
            match t.transport {
                Transport::StreamableHttp => streamable::check(&self.http, t, &step, &budget).await,
                Transport::Sse => sse::check(&self.http, t, &step, &budget).await,
            }
        };
        // rmcp may turn a read error into a closed transport and wait; a cap
        // hit ends the check at once, and is what it reports.
        let capped = async {
            let hit = budget.tripped().await;
            Err(Failure::too_large(hit, step.get()))
        };
        let out = tokio::select! {
            out = tokio::time::timeout(left, session) => out,
            out = capped => Ok(out),
        };
        match (out, budget.hit()) {
            (Ok(Err(_)) | Err(_), Some(hit)) => Err(Failure::too_large(hit, step.get())),
            (Ok(outcome), _) => outcome,
            (Err(_), None) => Err(Failure::new(
                FailureKind::Timeout,
                format!(
                    "no answer to {} within {} ms",
                    step.get(),
                    t.timeout.as_millis()
                ),
            )),
        }
    }
}

/// Classify an HTTP status the pod answered with (never a success).
fn from_status(status: reqwest::StatusCode, retry_after: Option<&str>, step: &str) -> Failure {
    let code = status.as_u16();
    match code {
        401 | 403 => Failure::new(
            FailureKind::AuthRequired,
            format!("{step}: HTTP {code}: the server wants credentials the operator does not send"),
        ),
        429 => transient(code, retry_after, step),
        503 if retry_after.is_some() => transient(code, retry_after, step),
        300..=399 => Failure::new(
            FailureKind::HttpStatus,
            format!("{step}: HTTP {code} (redirects are not followed)"),
        ),
        _ => Failure::new(FailureKind::HttpStatus, format!("{step}: HTTP {status}")),
    }
}

fn transient(code: u16, retry_after: Option<&str>, step: &str) -> Failure {
    // delta-seconds only; an HTTP date is kept as "no delay given"
    let delay = retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
    let asked = match retry_after {
        Some(v) => format!(", Retry-After {v}"),
        None => String::new(),
    };
    Failure::new(
        FailureKind::Transient { retry_after: delay },
        format!("{step}: HTTP {code}{asked}"),
    )
}

/// Classify a reqwest error from the session's HTTP requests.
fn from_reqwest(e: &reqwest::Error, step: &str) -> Failure {
    if let Some(s) = e.status() {
        from_status(s, None, step)
    } else if e.is_connect() {
        Failure::new(FailureKind::Connect, format!("{step}: {e}"))
    } else if e.is_timeout() {
        Failure::new(FailureKind::Timeout, format!("{step}: {e}"))
    } else {
        Failure::new(FailureKind::Protocol, format!("{step}: {e}"))
    }
}

/// The `Retry-After` header, if short and text.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<&str> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .filter(|v| v.len() <= 64)
        .and_then(|v| v.to_str().ok())
}

/// Protocol versions the prober accepts from a server.
const KNOWN_VERSIONS: &[&str] = &[
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];

/// `sanitize` for the names in [`Facts`].
fn name(s: &str) -> String {
    sanitize(s, MAX_NAME_CHARS)
}

fn known_version(v: &str) -> Result<(), Failure> {
    if KNOWN_VERSIONS.contains(&v) {
        Ok(())
    } else {
        Err(Failure::new(
            FailureKind::Protocol,
            format!(
                "the server answered with protocol version {v:?}, which no MCP revision defines"
            ),
        ))
    }
}

#[cfg(test)]
mod tests;
