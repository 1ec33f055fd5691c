//! Streamable HTTP through rmcp's client, both eras: `server/discover` first,
//! the legacy `initialize` when the server does not know it (rmcp's `Auto`
//! lifecycle), then one request the server advertised. Transparent session
//! re-initialisation is off: a lost session is a failed check, not a retry.
use rmcp::model::{
    ClientCapabilities, ClientConfig, ClientRequest, ErrorCode, Implementation,
    PaginatedRequestParams, PingRequest, ProtocolVersion, ServerCapabilities, ServerResult,
};
use rmcp::service::{
    ClientInitializeError, ClientLifecycleMode, ClientServiceExt, RoleClient, RunningService,
    ServiceError,
};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::transport::StreamableHttpClientTransport;
use std::time::Duration;

use super::http::{ProbeClient, ProbeHttpError};
use super::limits::{Budget, ReadError};
use super::{
    from_reqwest, from_status, known_version, name, Era, Facts, Failure, FailureKind, Outcome,
    Step, Target,
};

/// Pages of `tools/list` read at most (a server that pages for ever is cut off).
const MAX_TOOL_PAGES: usize = 20;

const HANDSHAKE: &str = "the handshake (server/discover, else initialize)";

/// The request that shows the server's MCP layer answers, after the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    Ping,
    Tools,
    Prompts,
    Resources,
    /// `server/discover` was the check.
    None,
}

impl Probe {
    /// Only what the server advertised; `ping` only where it exists (legacy).
    fn choose(era: Era, caps: &ServerCapabilities, list_tools: bool) -> Self {
        match era {
            Era::Legacy if list_tools && caps.tools.is_some() => Self::Tools,
            Era::Legacy => Self::Ping,
            Era::Stateless2026 if caps.tools.is_some() => Self::Tools,
            Era::Stateless2026 if caps.prompts.is_some() => Self::Prompts,
            Era::Stateless2026 if caps.resources.is_some() => Self::Resources,
            Era::Stateless2026 => Self::None,
        }
    }

    fn method(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Tools => "tools/list",
            Self::Prompts => "prompts/list",
            Self::Resources => "resources/list",
            Self::None => "server/discover",
        }
    }
}

fn connect(client: &ProbeClient, t: &Target) -> StreamableHttpClientTransport<ProbeClient> {
    let config = StreamableHttpClientTransportConfig::with_uri(t.url.as_str())
        .reinit_on_expired_session(false)
        .max_concurrent_requests(1);
    StreamableHttpClientTransport::with_client(client.clone(), config)
}

/// The answer to `server/discover` says the server speaks only the legacy
/// era, so the legacy handshake follows, on a new transport: it knows
/// discover but not 2026-07-28 (an rmcp server limited to legacy versions),
/// or it answered with a result that is no discover result (a lenient legacy
/// server answers every method it does not know with `{}`; the conformance
/// suite's `initialize` scenario does).
fn legacy_only(e: &ClientInitializeError) -> bool {
    match e {
        ClientInitializeError::NoCompatibleProtocolVersion {
            server_supported, ..
        } => server_supported.iter().any(ProtocolVersion::has_initialize),
        ClientInitializeError::ExpectedInitResult(Some(_)) => true,
        _ => false,
    }
}

pub(super) async fn check(
    http: &reqwest::Client,
    t: &Target,
    step: &Step,
    budget: &Budget,
) -> Outcome {
    step.set(HANDSHAKE);
    let client = ProbeClient {
        http: http.clone(),
        budget: budget.clone(),
    };
    let hello = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("mcp-operator-prober", env!("CARGO_PKG_VERSION")),
    );
    // `initialize` offers the newest revision that has it: 2026-07-28 means
    // nothing to a legacy server (the conformance suite's `initialize`
    // scenario requires 2025-11-25).
    let auto = ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        legacy_version: Some(ProtocolVersion::LATEST_WITH_INITIALIZE),
    };
    let mut legacy_hello = hello.clone();
    legacy_hello.protocol_version = ProtocolVersion::LATEST_WITH_INITIALIZE;
    let session = match hello
        .clone()
        .serve_with_lifecycle(connect(&client, t), auto)
        .await
    {
        Ok(s) => s,
        Err(e) if legacy_only(&e) => {
            step.set("initialize");
            legacy_hello
                .serve_with_lifecycle(connect(&client, t), ClientLifecycleMode::Initialize)
                .await
                .map_err(|e| classify(&e, "initialize", false))?
        }
        Err(e) => return Err(classify(&e, HANDSHAKE, false)),
    };
    let res = probe(&session, t, step).await;
    // Close a legacy session (DELETE) off the check's clock.
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(2), session.cancel()).await;
    });
    res
}

async fn probe(
    session: &RunningService<RoleClient, ClientConfig>,
    t: &Target,
    step: &Step,
) -> Outcome {
    let Some(info) = session.peer_info() else {
        return Err(Failure::new(
            FailureKind::Protocol,
            "the handshake left no server info",
        ));
    };
    let era = if info.protocol_version.has_initialize() {
        Era::Legacy
    } else {
        Era::Stateless2026
    };
    let mut facts = Facts {
        era,
        protocol_version: Some(name(info.protocol_version.as_str())),
        ..Facts::default()
    };
    if let Some(s) = &info.server_info {
        facts.server_name = Some(name(&s.name));
        facts.server_version = Some(name(&s.version));
    }
    known_version(info.protocol_version.as_str())?;
    let p = Probe::choose(era, &info.capabilities, t.list_tools);
    step.set(p.method());
    let failed = |e: ServiceError| classify(&e, p.method(), p == Probe::Ping);
    match p {
        Probe::None => {}
        Probe::Tools => {
            let mut count = 0u32;
            let mut cursor = None;
            for _ in 0..MAX_TOOL_PAGES {
                let page = session
                    .list_tools(Some(PaginatedRequestParams::default().with_cursor(cursor)))
                    .await
                    .map_err(failed)?;
                count = count.saturating_add(u32::try_from(page.tools.len()).unwrap_or(u32::MAX));
                // the count is reported only when asked for; one page shows
                // the server answers
                if !t.list_tools {
                    break;
                }
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            facts.tools = t.list_tools.then_some(count);
        }
        Probe::Prompts => {
            session.list_prompts(None).await.map_err(failed)?;
        }
        Probe::Resources => {
            session.list_resources(None).await.map_err(failed)?;
        }
        Probe::Ping => {
            let ping = ClientRequest::PingRequest(PingRequest {
                method: Default::default(),
                extensions: Default::default(),
            });
            match session.send_request(ping).await {
                Ok(ServerResult::EmptyResult(_)) => {}
                Ok(_) => {
                    return Err(Failure::new(
                        FailureKind::Protocol,
                        "ping: expected an empty result",
                    ))
                }
                Err(e) => return Err(failed(e)),
            }
        }
    }
    Ok(facts)
}

/// A JSON-RPC error the server answered `step` with. "Method not found" to a
/// method the server never advertised is the prober's mistake.
fn from_json_rpc(e: &rmcp::ErrorData, step: &str, unadvertised: bool) -> Failure {
    let kind = if unadvertised && e.code == ErrorCode::METHOD_NOT_FOUND {
        FailureKind::UnadvertisedMethod
    } else {
        FailureKind::Protocol
    };
    Failure::new(
        kind,
        format!("{step}: JSON-RPC error {}: {}", e.code.0, e.message),
    )
}

/// The cause of an rmcp error: the HTTP status or read error our backend
/// returned, the server's JSON-RPC error, else a protocol error. rmcp wraps
/// the transport's error in a `DynamicTransportError` that is not on the
/// `source()` chain, so that layer is opened by hand.
fn classify(e: &(dyn std::error::Error + 'static), step: &str, unadvertised: bool) -> Failure {
    if let Some(init) = e.downcast_ref::<ClientInitializeError>() {
        match init {
            // the legacy attempt says more than the discover before it
            ClientInitializeError::LegacyFallbackFailed { fallback, .. } => {
                return classify(fallback.as_ref(), "initialize", false)
            }
            ClientInitializeError::JsonRpcError(j) => return from_json_rpc(j, step, false),
            _ => {}
        }
    }
    if let Some(ServiceError::McpError(j)) = e.downcast_ref::<ServiceError>() {
        return from_json_rpc(j, step, unadvertised);
    }
    let inner: Option<&(dyn std::error::Error + 'static)> =
        if let Some(ClientInitializeError::TransportError { error, .. }) = e.downcast_ref() {
            Some(error.error.as_ref())
        } else if let Some(ServiceError::TransportSend(t)) = e.downcast_ref() {
            Some(t.error.as_ref())
        } else {
            None
        };
    let mut cur: Option<&(dyn std::error::Error + 'static)> = inner.or(Some(e));
    while let Some(c) = cur {
        if let Some(h) = c.downcast_ref::<StreamableHttpError<ProbeHttpError>>() {
            return match h {
                StreamableHttpError::Client(p) => from_probe(p, step),
                other => Failure::new(FailureKind::Protocol, format!("{step}: {other}")),
            };
        }
        if let Some(p) = c.downcast_ref::<ProbeHttpError>() {
            return from_probe(p, step);
        }
        cur = c.source();
    }
    Failure::new(FailureKind::Protocol, format!("{step}: {e}"))
}

fn from_probe(e: &ProbeHttpError, step: &str) -> Failure {
    match e {
        ProbeHttpError::Status {
            status,
            retry_after,
        } => from_status(*status, retry_after.as_deref(), step),
        ProbeHttpError::Read(ReadError::Http(r)) => from_reqwest(r, step),
        ProbeHttpError::Read(ReadError::TooLarge(hit)) => Failure::too_large(*hit, step),
    }
}
