//! The checker against in-process servers on loopback: rmcp's own streamable
//! HTTP server (healthy, slow, hung, wrong protocol version, both response
//! modes), a plain HTTP 500, a closed port, and a 2024-11-05 HTTP+SSE server
//! written here (rmcp no longer ships one).
use super::*;
use axum::response::sse::{Event, Sse};
use axum::routing::{get, post};
use axum::Router;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    Implementation, ListToolsResult, PaginatedRequestParams, ProtocolVersion, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::{
    session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
};
use rmcp::ErrorData;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::sync::Arc;
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_millis(1500);

#[derive(Clone, Default)]
struct Fake {
    tools: usize,
    slow_tools: Option<Duration>,
    version: Option<&'static str>,
}

fn version(v: &str) -> ProtocolVersion {
    serde_json::from_value(json!(v)).unwrap_or_default()
}

impl ServerHandler for Fake {
    fn get_info(&self) -> ServerConfig {
        let info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("fake-mcp", "1.2.3"));
        match self.version {
            Some(v) => info.with_protocol_version(version(v)),
            None => info,
        }
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        match self.version {
            Some(v) => Cow::Owned(vec![version(v)]),
            None => Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS),
        }
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        if let Some(d) = self.slow_tools {
            tokio::time::sleep(d).await;
        }
        let tools: Vec<Value> = (0..self.tools)
            .map(|i| json!({"name": format!("t{i}"), "inputSchema": {"type": "object"}}))
            .collect();
        serde_json::from_value(json!({ "tools": tools }))
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }
}

async fn serve(app: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = l.local_addr().expect("local addr").to_string();
    tokio::spawn(async move { axum::serve(l, app).await });
    addr
}

async fn rmcp_server(fake: Fake, json_response: bool) -> String {
    let mut cfg = StreamableHttpServerConfig::default().disable_allowed_hosts();
    cfg.json_response = json_response;
    let svc: StreamableHttpService<Fake, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(fake.clone()), Default::default(), cfg);
    serve(Router::new().nest_service("/mcp", svc)).await
}

fn target(addr: &str, transport: Transport, list_tools: bool) -> Target {
    let path = match transport {
        Transport::StreamableHttp => "/mcp",
        Transport::Sse => "/sse",
    };
    Target {
        url: format!("http://{addr}{path}"),
        addr: addr.to_string(),
        transport,
        timeout: DEADLINE,
        list_tools,
    }
}

async fn check(t: &Target) -> (Outcome, Duration) {
    let c = Checker::new().expect("http client");
    let started = Instant::now();
    let out = c.check(t).await;
    (out, started.elapsed())
}

fn kind(o: &Outcome) -> Option<FailureKind> {
    o.as_ref().err().map(|f| f.kind)
}

#[tokio::test]
async fn healthy_streamable_server_in_both_response_modes() {
    for json_response in [false, true] {
        let addr = rmcp_server(
            Fake {
                tools: 3,
                ..Fake::default()
            },
            json_response,
        )
        .await;
        let (out, _) = check(&target(&addr, Transport::StreamableHttp, false)).await;
        let facts = out.expect("ping passes");
        assert_eq!(facts.server_name.as_deref(), Some("fake-mcp"));
        assert_eq!(facts.server_version.as_deref(), Some("1.2.3"));
        assert!(facts.protocol_version.is_some());
        assert_eq!(facts.tools, None, "ping lists no tools");
        let (out, _) = check(&target(&addr, Transport::StreamableHttp, true)).await;
        assert_eq!(out.expect("tools/list passes").tools, Some(3));
    }
}

#[tokio::test]
async fn slow_tools_list_times_out_within_the_deadline() {
    let addr = rmcp_server(
        Fake {
            tools: 1,
            slow_tools: Some(Duration::from_secs(30)),
            ..Fake::default()
        },
        false,
    )
    .await;
    // ping does not touch the slow handler
    let (out, _) = check(&target(&addr, Transport::StreamableHttp, false)).await;
    assert!(out.is_ok(), "{out:?}");
    let (out, took) = check(&target(&addr, Transport::StreamableHttp, true)).await;
    assert_eq!(kind(&out), Some(FailureKind::Timeout), "{out:?}");
    assert!(out.err().is_some_and(|f| f.detail.contains("tools/list")));
    assert!(took < DEADLINE + Duration::from_millis(500), "{took:?}");
}

/// The wedge: the port accepts, nothing under the MCP path ever answers.
#[tokio::test]
async fn hung_mcp_layer_is_a_timeout_not_a_connect_failure() {
    let app = Router::new()
        .route("/mcp", post(std::future::pending::<&'static str>))
        .route("/readyz", get(|| async { "ok" }));
    let addr = serve(app).await;
    let (out, took) = check(&target(&addr, Transport::StreamableHttp, false)).await;
    assert_eq!(kind(&out), Some(FailureKind::Timeout), "{out:?}");
    assert!(took >= DEADLINE && took < DEADLINE + Duration::from_millis(500));
}

#[tokio::test]
async fn http_500_is_an_http_status_failure() {
    let app = Router::new().route(
        "/mcp",
        post(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
    );
    let addr = serve(app).await;
    let (out, _) = check(&target(&addr, Transport::StreamableHttp, false)).await;
    assert_eq!(kind(&out), Some(FailureKind::HttpStatus), "{out:?}");
}

#[tokio::test]
async fn closed_port_is_a_connect_failure() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    drop(l);
    let (out, took) = check(&target(&addr, Transport::StreamableHttp, false)).await;
    assert_eq!(kind(&out), Some(FailureKind::Connect), "{out:?}");
    assert!(took < Duration::from_millis(500));
}

#[tokio::test]
async fn unknown_protocol_version_is_a_protocol_error() {
    let addr = rmcp_server(
        Fake {
            version: Some("1999-01-01"),
            ..Fake::default()
        },
        true,
    )
    .await;
    let (out, _) = check(&target(&addr, Transport::StreamableHttp, false)).await;
    assert_eq!(kind(&out), Some(FailureKind::Protocol), "{out:?}");
}

/// A 2024-11-05 HTTP+SSE server: GET /sse, POST /messages.
#[derive(Clone, Default)]
struct Legacy {
    version: &'static str,
    stream: Arc<std::sync::Mutex<Option<mpsc::UnboundedSender<Value>>>>,
}

async fn legacy_server(version: &'static str) -> String {
    let legacy = Legacy {
        version,
        ..Legacy::default()
    };
    let app = Router::new()
        .route(
            "/sse",
            get(
                |axum::extract::State(s): axum::extract::State<Legacy>| async move {
                    let (tx, rx) = mpsc::unbounded_channel::<Value>();
                    if let Ok(mut g) = s.stream.lock() {
                        *g = Some(tx);
                    }
                    let first = futures::stream::once(async {
                        Ok::<_, std::convert::Infallible>(
                            Event::default()
                                .event("endpoint")
                                .data("/messages?sessionId=1"),
                        )
                    });
                    let rest = futures::stream::unfold(rx, |mut rx| async move {
                        let m = rx.recv().await?;
                        Some((
                            Ok(Event::default().event("message").data(m.to_string())),
                            rx,
                        ))
                    });
                    Sse::new(futures::StreamExt::chain(first, rest))
                },
            ),
        )
        .route(
            "/messages",
            post(
                |axum::extract::State(s): axum::extract::State<Legacy>,
                 axum::Json(m): axum::Json<Value>| async move {
                    let result = match m.get("method").and_then(Value::as_str) {
                        Some("initialize") => json!({
                            "protocolVersion": s.version,
                            "capabilities": {"tools": {}},
                            "serverInfo": {"name": "legacy-mcp", "version": "0.9"},
                        }),
                        Some("tools/list") => json!({"tools": [
                            {"name": "a", "inputSchema": {"type": "object"}},
                            {"name": "b", "inputSchema": {"type": "object"}},
                        ]}),
                        _ => json!({}),
                    };
                    if let Some(id) = m.get("id") {
                        let tx = s.stream.lock().ok().and_then(|g| g.clone());
                        if let Some(tx) = tx {
                            let _ = tx.send(json!({"jsonrpc": "2.0", "id": id, "result": result}));
                        }
                    }
                    axum::http::StatusCode::ACCEPTED
                },
            ),
        )
        .with_state(legacy);
    serve(app).await
}

#[tokio::test]
async fn legacy_sse_transport() {
    let addr = legacy_server("2024-11-05").await;
    let (out, _) = check(&target(&addr, Transport::Sse, false)).await;
    let facts = out.expect("SSE ping passes");
    assert_eq!(facts.server_name.as_deref(), Some("legacy-mcp"));
    assert_eq!(facts.protocol_version.as_deref(), Some("2024-11-05"));
    let (out, _) = check(&target(&addr, Transport::Sse, true)).await;
    assert_eq!(out.expect("SSE tools/list passes").tools, Some(2));

    let addr = legacy_server("1999-01-01").await;
    let (out, _) = check(&target(&addr, Transport::Sse, false)).await;
    assert_eq!(kind(&out), Some(FailureKind::Protocol), "{out:?}");

    // a streamable-only server spoken to as SSE: GET is refused
    let addr = rmcp_server(Fake::default(), false).await;
    let (out, _) = check(&target(&addr, Transport::Sse, false)).await;
    assert!(out.is_err(), "{out:?}");
}
