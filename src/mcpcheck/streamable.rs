//! Streamable HTTP through rmcp's client: a session with transparent
//! re-initialisation off (a lost session is a failed check, not a retry).
use rmcp::model::{
    ClientCapabilities, ClientConfig, ClientRequest, Implementation, PingRequest, ServerResult,
};
use rmcp::service::{ClientInitializeError, ServiceError};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use std::time::Duration;

use super::{from_reqwest, known_version, Facts, Failure, FailureKind, Outcome, Step, Target};

/// Pages of `tools/list` read at most (a server that pages for ever is cut off).
const MAX_TOOL_PAGES: usize = 20;

pub(super) async fn check(http: &reqwest::Client, t: &Target, step: &Step) -> Outcome {
    step.set("initialize");
    let config = StreamableHttpClientTransportConfig::with_uri(t.url.as_str())
        .reinit_on_expired_session(false)
        .max_concurrent_requests(1);
    let transport = StreamableHttpClientTransport::with_client(http.clone(), config);
    let hello = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("mcp-operator-prober", env!("CARGO_PKG_VERSION")),
    );
    let session = hello
        .serve(transport)
        .await
        .map_err(|e| classify(&e, "initialize"))?;
    let mut facts = Facts::default();
    if let Some(info) = session.peer_info() {
        facts.protocol_version = Some(info.protocol_version.to_string());
        if let Some(s) = &info.server_info {
            facts.server_name = Some(s.name.clone());
            facts.server_version = Some(s.version.clone());
        }
    }
    let res = async {
        if let Some(v) = &facts.protocol_version {
            known_version(v)?;
        }
        if t.list_tools {
            step.set("tools/list");
            let mut count = 0u32;
            let mut cursor = None;
            for _ in 0..MAX_TOOL_PAGES {
                let page = session
                    .list_tools(Some(
                        rmcp::model::PaginatedRequestParams::default().with_cursor(cursor),
                    ))
                    .await
                    .map_err(|e| classify(&e, "tools/list"))?;
                count = count.saturating_add(u32::try_from(page.tools.len()).unwrap_or(u32::MAX));
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            facts.tools = Some(count);
        } else {
            step.set("ping");
            let ping = ClientRequest::PingRequest(PingRequest {
                method: Default::default(),
                extensions: Default::default(),
            });
            match session.send_request(ping).await {
                Ok(ServerResult::EmptyResult(_)) => {}
                Ok(other) => {
                    return Err(Failure::new(
                        FailureKind::Protocol,
                        format!("ping: expected an empty result, got {other:?}"),
                    ))
                }
                Err(e) => return Err(classify(&e, "ping")),
            }
        }
        Ok(())
    }
    .await;
    // Close the session (DELETE) off the check's clock.
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(2), session.cancel()).await;
    });
    res.map(|()| facts)
}

/// The HTTP-level cause of an rmcp error, else a protocol error. rmcp wraps
/// the transport's error in a `DynamicTransportError` that is not on the
/// `source()` chain, so that layer is opened by hand.
fn classify(e: &(dyn std::error::Error + 'static), step: &str) -> Failure {
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
        if let Some(h) = c.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
            return match h {
                StreamableHttpError::HttpStatus(s) => Failure::new(
                    FailureKind::HttpStatus,
                    format!("{step}: HTTP {}", s.status),
                ),
                StreamableHttpError::Client(r) => from_reqwest(r, step),
                StreamableHttpError::AuthRequired(_)
                | StreamableHttpError::InsufficientScope(_) => {
                    Failure::new(FailureKind::HttpStatus, format!("{step}: {h}"))
                }
                other => Failure::new(FailureKind::Protocol, format!("{step}: {other}")),
            };
        }
        if let Some(r) = c.downcast_ref::<reqwest::Error>() {
            return from_reqwest(r, step);
        }
        cur = c.source();
    }
    Failure::new(FailureKind::Protocol, format!("{step}: {e}"))
}
