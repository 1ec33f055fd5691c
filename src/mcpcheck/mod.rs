//! One MCP health check of one pod, as a client would see it: TCP connect,
//! then a fresh MCP session (the `initialize` handshake, or whatever the
//! server and rmcp negotiate), then `ping` (or `tools/list`), all under one
//! deadline. Kubelet probes can only GET a path or open a port; a server whose
//! MCP layer hangs while `/readyz` answers passes them and fails this.
//!
//! Streamable HTTP goes through rmcp's client. rmcp no longer ships the
//! 2024-11-05 HTTP+SSE transport, so `sse` is spoken here (`sse.rs`).

mod sse;
mod streamable;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::api::Transport;

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

/// What a passing check learnt about the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub server_name: Option<String>,
    pub server_version: Option<String>,
    pub protocol_version: Option<String>,
    /// Tools listed (with `listTools`).
    pub tools: Option<u32>,
}

/// Why a check failed. Only `Connect` says nothing about the server itself:
/// the operator could not reach the pod (a NetworkPolicy, routing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// TCP connect refused or timed out.
    Connect,
    /// Connected, but no answer within the deadline.
    Timeout,
    /// An HTTP status other than success.
    HttpStatus,
    /// An answer that is not MCP: bad JSON-RPC, an error result, an
    /// unsupported protocol version, a closed stream.
    Protocol,
}

impl FailureKind {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::HttpStatus => "http_status",
            Self::Protocol => "protocol",
        }
    }

    /// The CamelCase reason in status.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Connect => "ConnectFailed",
            Self::Timeout => "Timeout",
            Self::HttpStatus => "HttpStatus",
            Self::Protocol => "ProtocolError",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    /// For humans; names the step that failed.
    pub detail: String,
}

impl Failure {
    fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
}

pub type Outcome = Result<Facts, Failure>;

/// The step a check is in, readable after its future was dropped by the deadline.
#[derive(Clone, Default)]
pub(crate) struct Step(Arc<Mutex<&'static str>>);

impl Step {
    pub(crate) fn set(&self, s: &'static str) {
        if let Ok(mut g) = self.0.lock() {
            *g = s;
        }
    }

    fn get(&self) -> &'static str {
        self.0.lock().map(|g| *g).unwrap_or("?")
    }
}

/// Runs checks; one HTTP client (no proxy, no idle connections kept: every
/// check opens its own connection, as a new client would).
#[derive(Clone)]
pub struct Checker {
    http: reqwest::Client,
}

impl Checker {
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .user_agent(concat!("mcp-operator-prober/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http })
    }

    /// One check; never longer than `t.timeout` (plus closing the session,
    /// which runs detached).
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
        let session = async {
            match t.transport {
                Transport::StreamableHttp => streamable::check(&self.http, t, &step).await,
                Transport::Sse => sse::check(&self.http, t, &step).await,
            }
        };
        match tokio::time::timeout(left, session).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Failure::new(
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

/// Classify a reqwest error from the session's HTTP requests.
fn from_reqwest(e: &reqwest::Error, step: &str) -> Failure {
    if let Some(s) = e.status() {
        Failure::new(FailureKind::HttpStatus, format!("{step}: HTTP {s}"))
    } else if e.is_connect() {
        Failure::new(FailureKind::Connect, format!("{step}: {e}"))
    } else if e.is_timeout() {
        Failure::new(FailureKind::Timeout, format!("{step}: {e}"))
    } else {
        Failure::new(FailureKind::Protocol, format!("{step}: {e}"))
    }
}

/// Protocol versions the prober accepts from a server.
const KNOWN_VERSIONS: &[&str] = &[
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];

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
