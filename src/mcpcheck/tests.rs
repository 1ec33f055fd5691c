//! The checker against in-process servers on loopback: rmcp's own streamable
//! HTTP server (both eras; healthy, slow, hung, wrong or legacy-only protocol
//! version, both response modes), hand-written servers of one era only, a
//! 2024-11-05 HTTP+SSE server written here (rmcp no longer ships one), and
//! hostile ones: auth and rate-limit statuses, redirects and SSE endpoints to
//! a server that counts what it receives, floods, and 10 KB control-laden
//! names.
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
    let (out, took) = check(&target(&addr, Transport::StreamableHttp, true)).await;
    assert_eq!(kind(&out), Some(FailureKind::Timeout), "{out:?}");
    assert!(out.err().is_some_and(|f| f.detail.contains("tools/list")));
    assert!(took < DEADLINE + Duration::from_millis(500), "{took:?}");

    // a 2026-07-28 server is asked for tools/list whenever it advertises
    // tools; a legacy one gets ping, which does not touch the slow handler
    let (out, _) = check(&target(&addr, Transport::StreamableHttp, false)).await;
    assert_eq!(kind(&out), Some(FailureKind::Timeout), "{out:?}");
    let legacy = rmcp_server(
        Fake {
            tools: 1,
            slow_tools: Some(Duration::from_secs(30)),
            version: Some("2025-06-18"),
        },
        false,
    )
    .await;
    let (out, _) = check(&target(&legacy, Transport::StreamableHttp, false)).await;
    assert!(out.is_ok(), "{out:?}");
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

// ---- both eras -------------------------------------------------------------

/// What a hand-written server saw: HTTP method, JSON-RPC method, and the
/// `Mcp-Method` / `MCP-Protocol-Version` headers and `_meta` version.
#[derive(Clone, Debug, Default)]
struct Seen {
    http: String,
    method: Option<String>,
    mcp_method: Option<String>,
    header_version: Option<String>,
    meta_version: Option<String>,
    /// `params.protocolVersion` (what `initialize` offers).
    offered_version: Option<String>,
}

type Log = Arc<std::sync::Mutex<Vec<Seen>>>;

fn seen(log: &Log) -> Vec<Seen> {
    log.lock().map(|g| g.clone()).unwrap_or_default()
}

fn methods(log: &Log) -> Vec<String> {
    seen(log).into_iter().filter_map(|s| s.method).collect()
}

fn record(log: &Log, http: &axum::http::Method, headers: &axum::http::HeaderMap, m: &Value) {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let s = Seen {
        http: http.to_string(),
        method: m.get("method").and_then(Value::as_str).map(str::to_owned),
        mcp_method: h("mcp-method"),
        header_version: h("mcp-protocol-version"),
        meta_version: m
            .pointer("/params/_meta/io.modelcontextprotocol~1protocolVersion")
            .and_then(Value::as_str)
            .map(str::to_owned),
        offered_version: m
            .pointer("/params/protocolVersion")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    if let Ok(mut g) = log.lock() {
        g.push(s);
    }
}

/// What `initialize` offered: the newest revision that has it.
fn initialize_offered(log: &Log) -> Vec<Option<String>> {
    seen(log)
        .into_iter()
        .filter(|r| r.method.as_deref() == Some("initialize"))
        .map(|r| r.offered_version)
        .collect()
}

fn rpc_result(id: &Value, result: Value) -> axum::response::Response {
    axum::response::IntoResponse::into_response(axum::Json(
        json!({"jsonrpc": "2.0", "id": id, "result": result}),
    ))
}

fn rpc_error(id: &Value, code: i64, message: &str) -> axum::response::Response {
    axum::response::IntoResponse::into_response(axum::Json(
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
    ))
}

fn accepted() -> axum::response::Response {
    axum::response::IntoResponse::into_response(axum::http::StatusCode::ACCEPTED)
}

/// A server of one era only, written out so that nothing negotiates for it.
#[derive(Clone)]
struct OneEra {
    log: Log,
    name: String,
    tools: bool,
    /// 2026-07-28 only, else legacy only.
    stateless: bool,
    /// Legacy: `server/discover` refused with HTTP 400 and no JSON-RPC
    /// (what a session-checking SDK answers), not a -32601.
    discover_http_400: bool,
    /// Legacy: every method it does not know (`server/discover` too) is
    /// answered with an empty result, not an error.
    unknown_is_empty_result: bool,
    /// Legacy: `ping` is not implemented.
    no_ping: bool,
}

impl OneEra {
    fn stateless() -> Self {
        Self {
            log: Log::default(),
            name: "stateless-mcp".into(),
            tools: true,
            stateless: true,
            discover_http_400: false,
            unknown_is_empty_result: false,
            no_ping: false,
        }
    }

    fn legacy() -> Self {
        Self {
            stateless: false,
            name: "legacy-only-mcp".into(),
            ..Self::stateless()
        }
    }

    fn caps(&self) -> Value {
        if self.tools {
            json!({"tools": {}})
        } else {
            json!({})
        }
    }

    fn answer(&self, m: &Value) -> axum::response::Response {
        let Some(id) = m.get("id") else {
            return accepted();
        };
        let method = m.get("method").and_then(Value::as_str).unwrap_or_default();
        let tools = json!({"tools": [{"name": "a", "inputSchema": {"type": "object"}}]});
        match (self.stateless, method) {
            (true, "server/discover") => {
                let caps: ServerCapabilities =
                    serde_json::from_value(self.caps()).unwrap_or_default();
                let d = rmcp::model::DiscoverResult::new(vec![version("2026-07-28")], caps)
                    .with_server_info(Implementation::new(self.name.clone(), "2.0.0"));
                rpc_result(id, serde_json::to_value(d).unwrap_or_default())
            }
            (false, "server/discover") if self.discover_http_400 => {
                axum::response::IntoResponse::into_response((
                    axum::http::StatusCode::BAD_REQUEST,
                    "Bad Request: No valid session ID provided",
                ))
            }
            (false, "initialize") => rpc_result(
                id,
                json!({
                    "protocolVersion": "2025-06-18",
                    "capabilities": self.caps(),
                    "serverInfo": {"name": self.name, "version": "1.0.0"},
                }),
            ),
            (false, "ping") if !self.no_ping => rpc_result(id, json!({})),
            (_, "tools/list") if self.tools => rpc_result(id, tools),
            _ if self.unknown_is_empty_result => rpc_result(id, json!({})),
            _ => rpc_error(id, -32601, "Method not found"),
        }
    }
}

async fn one_era_server(s: OneEra) -> String {
    let app = Router::new()
        .route(
            "/mcp",
            axum::routing::any(
                |axum::extract::State(s): axum::extract::State<OneEra>,
                 method: axum::http::Method,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    let m: Value = serde_json::from_slice(&body).unwrap_or_default();
                    record(&s.log, &method, &headers, &m);
                    if method != axum::http::Method::POST {
                        return axum::response::IntoResponse::into_response(
                            axum::http::StatusCode::METHOD_NOT_ALLOWED,
                        );
                    }
                    s.answer(&m)
                },
            ),
        )
        .with_state(s);
    serve(app).await
}

#[tokio::test]
async fn stateless_only_server_passes_with_discover_and_no_ping() {
    for list_tools in [false, true] {
        let s = OneEra::stateless();
        let addr = one_era_server(s.clone()).await;
        let (out, _) = check(&target(&addr, Transport::StreamableHttp, list_tools)).await;
        let facts = out.expect("a 2026-07-28 server passes");
        assert_eq!(facts.era, Era::Stateless2026);
        assert_eq!(facts.protocol_version.as_deref(), Some("2026-07-28"));
        assert_eq!(facts.server_name.as_deref(), Some("stateless-mcp"));
        assert_eq!(facts.tools, list_tools.then_some(1));
        assert_eq!(methods(&s.log), ["server/discover", "tools/list"]);
        for r in seen(&s.log) {
            assert_eq!(r.http, "POST", "{r:?}");
            assert_eq!(r.mcp_method, r.method, "Mcp-Method header: {r:?}");
            assert_eq!(r.header_version.as_deref(), Some("2026-07-28"), "{r:?}");
            assert_eq!(
                r.meta_version.as_deref(),
                Some("2026-07-28"),
                "_meta: {r:?}"
            );
        }
    }
}

#[tokio::test]
async fn stateless_server_without_tools_is_checked_by_discover_alone() {
    let s = OneEra {
        tools: false,
        ..OneEra::stateless()
    };
    let addr = one_era_server(s.clone()).await;
    // listTools asked for, but the server advertises no tools: not probed
    let (out, _) = check(&target(&addr, Transport::StreamableHttp, true)).await;
    let facts = out.expect("discover alone passes");
    assert_eq!(facts.tools, None);
    assert_eq!(methods(&s.log), ["server/discover"]);
}

#[tokio::test]
async fn legacy_only_server_passes_through_initialize() {
    for discover_http_400 in [false, true] {
        let s = OneEra {
            discover_http_400,
            ..OneEra::legacy()
        };
        let addr = one_era_server(s.clone()).await;
        let (out, _) = check(&target(&addr, Transport::StreamableHttp, false)).await;
        let facts = out.expect("a legacy server passes");
        assert_eq!(facts.era, Era::Legacy);
        assert_eq!(facts.protocol_version.as_deref(), Some("2025-06-18"));
        assert_eq!(facts.server_name.as_deref(), Some("legacy-only-mcp"));
        assert_eq!(
            methods(&s.log),
            [
                "server/discover",
                "initialize",
                "notifications/initialized",
                "ping"
            ],
            "HTTP 400 to discover: {discover_http_400}"
        );
        assert_eq!(
            initialize_offered(&s.log),
            [Some("2025-11-25".to_string())],
            "not 2026-07-28, which has no initialize"
        );
        assert!(seen(&s.log).iter().all(|r| r.http == "POST"));

        let (out, _) = check(&target(&addr, Transport::StreamableHttp, true)).await;
        assert_eq!(out.expect("tools/list passes").tools, Some(1));
    }
}

/// A lenient legacy server answers `server/discover` with `{}` (the
/// conformance suite's `initialize` scenario does): legacy, not a protocol
/// error.
#[tokio::test]
async fn legacy_server_answering_discover_with_an_empty_result_passes() {
    let s = OneEra {
        unknown_is_empty_result: true,
        ..OneEra::legacy()
    };
    let addr = one_era_server(s.clone()).await;
    let (out, _) = check(&target(&addr, Transport::StreamableHttp, false)).await;
    let facts = out.expect("a lenient legacy server passes");
    assert_eq!(facts.era, Era::Legacy);
    assert_eq!(facts.protocol_version.as_deref(), Some("2025-06-18"));
    assert_eq!(
        methods(&s.log),
        [
            "server/discover",
            "initialize",
            "notifications/initialized",
            "ping"
        ]
    );
    assert_eq!(initialize_offered(&s.log), [Some("2025-11-25".to_string())]);
}

/// rmcp's own server speaks both eras: the newer one is used.
#[tokio::test]
async fn dual_era_server_is_spoken_to_in_2026_07_28() {
    let addr = rmcp_server(Fake::default(), true).await;
    let (out, _) = check(&target(&addr, Transport::StreamableHttp, false)).await;
    let facts = out.expect("passes");
    assert_eq!(facts.era, Era::Stateless2026);
    assert_eq!(facts.protocol_version.as_deref(), Some("2026-07-28"));
    assert_eq!(facts.server_name.as_deref(), Some("fake-mcp"));
}

/// An rmcp server limited to a legacy version knows `server/discover` but
/// refuses 2026-07-28: the legacy handshake follows.
#[tokio::test]
async fn server_knowing_discover_but_only_legacy_versions_passes_through_initialize() {
    let addr = rmcp_server(
        Fake {
            version: Some("2025-06-18"),
            tools: 2,
            ..Fake::default()
        },
        true,
    )
    .await;
    let (out, _) = check(&target(&addr, Transport::StreamableHttp, true)).await;
    let facts = out.expect("passes");
    assert_eq!(facts.era, Era::Legacy);
    assert_eq!(facts.protocol_version.as_deref(), Some("2025-06-18"));
    assert_eq!(facts.tools, Some(2));
}

#[tokio::test]
async fn ping_not_implemented_is_the_probers_mistake_not_the_pods() {
    let s = OneEra {
        no_ping: true,
        ..OneEra::legacy()
    };
    let addr = one_era_server(s).await;
    let (out, _) = check(&target(&addr, Transport::StreamableHttp, false)).await;
    let k = kind(&out);
    assert_eq!(k, Some(FailureKind::UnadvertisedMethod), "{out:?}");
    assert!(k.is_some_and(|k| !k.counts_against_pod()));
}

// ---- HTTP statuses ---------------------------------------------------------

type Header = (&'static str, &'static str);

async fn status_server(status: u16, headers: &'static [Header]) -> String {
    let reply = move || async move {
        let mut r = axum::response::IntoResponse::into_response("no");
        *r.status_mut() =
            axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::IM_A_TEAPOT);
        for (k, v) in headers {
            if let (Ok(k), Ok(v)) = (
                axum::http::HeaderName::from_bytes(k.as_bytes()),
                axum::http::HeaderValue::from_str(v),
            ) {
                r.headers_mut().insert(k, v);
            }
        }
        r
    };
    serve(
        Router::new()
            .route("/mcp", post(reply))
            .route("/sse", get(reply)),
    )
    .await
}

#[tokio::test]
async fn auth_required_is_reachable_not_wedged() {
    for (status, headers) in [
        (401, &[("www-authenticate", "Bearer realm=\"mcp\"")][..]),
        (401, &[][..]),
        (403, &[][..]),
    ] {
        for transport in [Transport::StreamableHttp, Transport::Sse] {
            let addr = status_server(status, headers).await;
            let (out, _) = check(&target(&addr, transport, false)).await;
            assert_eq!(
                kind(&out),
                Some(FailureKind::AuthRequired),
                "{status}: {out:?}"
            );
            assert!(!FailureKind::AuthRequired.counts_against_pod());
        }
    }
}

#[tokio::test]
async fn rate_limits_are_transient() {
    let cases: [(u16, &'static [Header], FailureKind); 4] = [
        (
            429,
            &[("retry-after", "7")],
            FailureKind::Transient {
                retry_after: Some(Duration::from_secs(7)),
            },
        ),
        (429, &[], FailureKind::Transient { retry_after: None }),
        (
            503,
            &[("retry-after", "99999999")],
            FailureKind::Transient {
                retry_after: Some(MAX_RETRY_AFTER),
            },
        ),
        (503, &[], FailureKind::HttpStatus),
    ];
    for (status, headers, want) in cases {
        for transport in [Transport::StreamableHttp, Transport::Sse] {
            let addr = status_server(status, headers).await;
            let (out, _) = check(&target(&addr, transport, false)).await;
            assert_eq!(kind(&out), Some(want), "{status} {headers:?}: {out:?}");
        }
    }
    assert!(!FailureKind::Transient { retry_after: None }.counts_against_pod());
    assert!(FailureKind::HttpStatus.counts_against_pod());
}

// ---- hardening -------------------------------------------------------------

/// A server that counts the requests it gets: the victim a pod points at.
async fn counting_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(move || {
        let h = h.clone();
        async move {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            "stolen"
        }
    });
    (serve(app).await, hits)
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (victim, hits) = counting_server().await;
    let location: &'static str = Box::leak(format!("http://{victim}/stolen").into_boxed_str());
    for status in [301, 302, 307, 308] {
        for transport in [Transport::StreamableHttp, Transport::Sse] {
            let addr = status_server(status, Box::leak(Box::new([("location", location)]))).await;
            let (out, _) = check(&target(&addr, transport, false)).await;
            let stolen = hits.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(stolen, 0, "{status} followed: {out:?}");
            assert_eq!(
                kind(&out),
                Some(FailureKind::HttpStatus),
                "{status}: {out:?}"
            );
        }
    }
}

/// An SSE server whose endpoint event is `endpoint`.
async fn sse_endpoint_server(endpoint: String) -> String {
    let app = Router::new().route(
        "/sse",
        get(move || {
            let endpoint = endpoint.clone();
            async move {
                let first = futures::stream::once(async move {
                    Ok::<_, std::convert::Infallible>(
                        Event::default().event("endpoint").data(endpoint),
                    )
                });
                Sse::new(futures::StreamExt::chain(first, futures::stream::pending()))
            }
        }),
    );
    serve(app).await
}

#[tokio::test]
async fn sse_endpoint_on_another_origin_is_refused() {
    let (victim, hits) = counting_server().await;
    let port = victim.rsplit(':').next().unwrap_or_default().to_string();
    for endpoint in [
        format!("http://{victim}/messages"),
        format!("//{victim}/messages"),
        format!("http://localhost:{port}/messages"),
    ] {
        let addr = sse_endpoint_server(endpoint.clone()).await;
        let (out, took) = check(&target(&addr, Transport::Sse, false)).await;
        let stolen = hits.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(stolen, 0, "{endpoint} got a POST: {out:?}");
        assert_eq!(
            kind(&out),
            Some(FailureKind::Protocol),
            "{endpoint}: {out:?}"
        );
        assert!(took < DEADLINE, "refused at once: {took:?}");
    }
}

/// `prefix`, then 8 MiB of `chunk` repeated (under rmcp's 16 MiB limit),
/// then silence.
fn flood(prefix: &'static [u8], chunk: &'static [u8]) -> axum::body::Body {
    use futures::StreamExt;
    let n = 8 * 1024 * 1024 / chunk.len();
    let chunks =
        futures::stream::iter(std::iter::once(prefix).chain(std::iter::repeat_n(chunk, n)))
            .map(Ok::<_, std::convert::Infallible>)
            .chain(futures::stream::pending());
    axum::body::Body::from_stream(chunks)
}

async fn flood_server(content_type: &'static str, prefix: &'static [u8]) -> String {
    let x64k: &'static [u8] = Box::leak(vec![b'x'; 64 * 1024].into_boxed_slice());
    let reply = move || async move {
        (
            [(axum::http::header::CONTENT_TYPE, content_type)],
            flood(prefix, x64k),
        )
    };
    serve(
        Router::new()
            .route("/mcp", post(reply))
            .route("/sse", get(reply)),
    )
    .await
}

#[tokio::test]
async fn huge_answers_are_cut_off_at_the_cap_at_once() {
    let cases = [
        (
            "application/json",
            &b"{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":\""[..],
            Transport::StreamableHttp,
        ),
        (
            "text/event-stream",
            &b"data: "[..],
            Transport::StreamableHttp,
        ),
        ("text/event-stream", &b"data: "[..], Transport::Sse),
    ];
    for (ct, prefix, transport) in cases {
        let addr = flood_server(ct, prefix).await;
        let (out, took) = check(&target(&addr, transport, false)).await;
        assert_eq!(kind(&out), Some(FailureKind::TooLarge), "{ct}: {out:?}");
        assert!(
            out.as_ref()
                .err()
                .is_some_and(|f| f.detail.contains("KiB cap")),
            "{out:?}"
        );
        assert!(
            took < DEADLINE / 2,
            "{ct}: cut off at the cap, not the deadline: {took:?}"
        );
    }
}

#[tokio::test]
async fn many_small_events_stop_at_the_total_per_check() {
    // each event is small; together they are endless
    let reply = || async {
        let ev: &'static [u8] = b": keep-alive padding padding padding padding\n\n";
        (
            [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
            flood(b"", ev),
        )
    };
    let addr = serve(Router::new().route("/mcp", post(reply))).await;
    let (out, took) = check(&target(&addr, Transport::StreamableHttp, false)).await;
    assert_eq!(kind(&out), Some(FailureKind::TooLarge), "{out:?}");
    assert!(out
        .as_ref()
        .err()
        .is_some_and(|f| f.detail.contains("in total")));
    assert!(took < DEADLINE / 2, "{took:?}");
}

#[tokio::test]
async fn pod_strings_are_bounded_and_clean() {
    let evil = "\u{1b}[31mevil\r\nname\u{202e}\t".repeat(700);
    assert!(evil.len() > 10_000);
    let s = OneEra {
        name: evil.clone(),
        ..OneEra::stateless()
    };
    let addr = one_era_server(s).await;
    let (out, _) = check(&target(&addr, Transport::StreamableHttp, false)).await;
    let name = out.expect("passes").server_name.unwrap_or_default();
    assert!(name.chars().count() <= MAX_NAME_CHARS, "{}", name.len());
    assert!(name.starts_with(" [31mevil  name"), "{name:?}");
    assert!(
        !name.chars().any(|c| c.is_control() || c == '\u{202e}'),
        "{name:?}"
    );

    // a JSON-RPC error text in Failure::detail
    let msg = evil.clone();
    let app = Router::new().route(
        "/mcp",
        post(move |axum::Json(m): axum::Json<Value>| {
            let msg = msg.clone();
            async move { rpc_error(m.get("id").unwrap_or(&Value::Null), -32000, &msg) }
        }),
    );
    let addr = serve(app).await;
    let (out, _) = check(&target(&addr, Transport::StreamableHttp, false)).await;
    let detail = out.err().map(|f| f.detail).unwrap_or_default();
    assert!(
        detail.chars().count() <= MAX_DETAIL_CHARS,
        "{}",
        detail.len()
    );
    assert!(detail.contains("evil"), "{detail:?}");
    assert!(!detail.chars().any(char::is_control), "{detail:?}");
}

#[test]
fn sanitize_cuts_and_cleans() {
    assert_eq!(sanitize("plain", 10), "plain");
    assert_eq!(sanitize("a\nb\u{0}c", 10), "a b c");
    assert_eq!(sanitize("abcdef", 4), "abc…");
    assert_eq!(sanitize("ééééé", 3), "éé…");
    assert_eq!(sanitize("abc", 3), "abc");
    assert_eq!(sanitize("abc", 0), "");
}

#[test]
fn only_misbehaviour_counts_against_the_pod() {
    use FailureKind::*;
    let all = [
        Connect,
        Timeout,
        HttpStatus,
        Protocol,
        AuthRequired,
        Transient { retry_after: None },
        UnadvertisedMethod,
        TooLarge,
    ];
    let counted: Vec<_> = all.into_iter().filter(|k| k.counts_against_pod()).collect();
    assert_eq!(counted, [Timeout, HttpStatus, Protocol]);
    let labels: std::collections::HashSet<_> = all.iter().map(|k| k.label()).collect();
    let reasons: std::collections::HashSet<_> = all.iter().map(|k| k.reason()).collect();
    assert_eq!((labels.len(), reasons.len()), (all.len(), all.len()));
}
