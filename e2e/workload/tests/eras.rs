//! The MCP eras the workload server answers (`MCP_ERAS`), its `serverInfo`,
//! its Host/Origin check, and the era the load client speaks: real rmcp
//! clients in each lifecycle mode against the real server router, in process.
//! No Postgres: `server/discover`, `initialize` and `tools/list` never touch
//! the database (the pool points at a closed port).

use std::sync::Arc;
use std::time::Duration;

use mcp_workload::client::{self, ClientEra, LoadOptions};
use mcp_workload::config::Config;
use mcp_workload::eras::Eras;
use mcp_workload::hosts::HostPolicy;
use mcp_workload::metrics::Metrics;
use mcp_workload::pool::{Db, PoolSettings};
use mcp_workload::server::mcp_router;
use mcp_workload::tools::{InFlight, Shared};
use mcp_workload::wedge::Wedge;
use rmcp::model::ProtocolVersion;
use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const TOOLS: [&str; 4] = ["count_notes", "get_note", "put_note", "slow_query"];

/// The server's MCP endpoint on a loopback port; stops when dropped.
struct Served {
    url: String,
    stop: CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(eras: Eras, hosts: HostPolicy) -> Served {
    let cfg = Config::from_lookup(&|k| {
        (k == "DATABASE_URL").then(|| "postgres://nobody@127.0.0.1:1/none".to_string())
    })
    .expect("config");
    let metrics = Arc::new(Metrics::new());
    let db = Db::new(cfg.pg.clone(), PoolSettings::from(&cfg), metrics.clone()).expect("pool");
    let shared = Arc::new(Shared {
        db,
        metrics,
        inflight: Arc::new(InFlight::default()),
        eras,
    });
    let stop = CancellationToken::new();
    let app = mcp_router(
        "/mcp",
        shared,
        hosts,
        Wedge::new(stop.child_token()),
        stop.child_token(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let until = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { until.cancelled().await })
            .await;
    });
    Served {
        url: format!("http://{addr}/mcp"),
        stop,
    }
}

fn discover_mode() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    }
}

/// Open an rmcp client in `mode`; returns the negotiated version, the
/// `serverInfo` name and version, and the tool names, or the error text.
async fn open(
    url: &str,
    mode: ClientLifecycleMode,
) -> Result<(String, String, Vec<String>), String> {
    let transport = StreamableHttpClientTransport::from_config(client::transport_config(url, 4));
    let running = tokio::time::timeout(
        Duration::from_secs(10),
        client::client_config().serve_with_lifecycle(transport, mode),
    )
    .await
    .map_err(|_| "timed out".to_string())?
    .map_err(|e| format!("{e:?}"))?;
    let info = running.peer_info().ok_or("no peer info")?;
    let server = info.server_info.clone().ok_or("no serverInfo")?;
    let mut tools: Vec<String> = running
        .list_all_tools()
        .await
        .map_err(|e| format!("tools/list: {e}"))?
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    tools.sort();
    let version = info.protocol_version.as_str().to_string();
    let _ = running.cancel().await;
    Ok((
        version,
        format!("{} {}", server.name, server.version),
        tools,
    ))
}

fn own_name() -> String {
    format!("mcp-workload {}", env!("CARGO_PKG_VERSION"))
}

/// A raw JSON-RPC POST (no `_meta`: what a legacy client sends before it
/// has a session); returns the HTTP status, the session header and the
/// JSON-RPC message (from a JSON or an SSE body).
async fn post(url: &str, body: Value, headers: &[(&str, &str)]) -> (u16, Option<String>, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("POST");
    let status = resp.status().as_u16();
    let session = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str(&text).unwrap_or_else(|_| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("id").is_some())
            .unwrap_or(Value::Null)
    });
    (status, session, message)
}

fn initialize_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}})
}

#[tokio::test]
async fn both_eras_answer_with_the_workload_s_own_server_info() {
    let s = serve(Eras::Both, HostPolicy::default()).await;
    let (version, name, tools) = open(&s.url, discover_mode()).await.expect("discover");
    assert_eq!(version, "2026-07-28");
    assert_eq!(name, own_name());
    assert_eq!(tools, TOOLS);
    let (version, name, tools) = open(&s.url, ClientLifecycleMode::Initialize)
        .await
        .expect("initialize");
    assert_eq!(version, "2025-11-25");
    assert_eq!(name, own_name());
    assert_eq!(tools, TOOLS);
    // The legacy handshake opens a session.
    let (status, session, msg) = post(&s.url, initialize_body(), &[]).await;
    assert_eq!(status, 200, "{msg}");
    assert!(session.is_some(), "a legacy initialize opens a session");
    assert_eq!(msg["result"]["serverInfo"]["name"], "mcp-workload");
}

#[tokio::test]
async fn a_2026_only_server_refuses_initialize_and_ping_and_keeps_no_session() {
    let s = serve(Eras::Current, HostPolicy::default()).await;
    let (version, name, tools) = open(&s.url, discover_mode()).await.expect("discover");
    assert_eq!(version, "2026-07-28");
    assert_eq!(name, own_name());
    assert_eq!(tools, TOOLS);
    let err = open(&s.url, ClientLifecycleMode::Initialize)
        .await
        .expect_err("no initialize on a 2026-only server");
    assert!(
        err.contains("-32601") || err.contains("METHOD_NOT_FOUND"),
        "{err}"
    );
    for body in [
        initialize_body(),
        json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}),
    ] {
        let (status, session, msg) = post(&s.url, body.clone(), &[]).await;
        assert_eq!(msg["error"]["code"], -32601, "{body} -> {status} {msg}");
        assert_eq!(session, None, "{body}: no session on a 2026-only server");
    }
    // A legacy-era tools/list (no `_meta`) is not this server's era either.
    let (_, session, msg) = post(
        &s.url,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
        &[],
    )
    .await;
    assert!(msg.get("error").is_some(), "{msg}");
    assert_eq!(session, None);
}

#[tokio::test]
async fn a_legacy_only_server_refuses_discover() {
    let s = serve(Eras::Legacy, HostPolicy::default()).await;
    let (version, name, tools) = open(&s.url, ClientLifecycleMode::Initialize)
        .await
        .expect("initialize");
    assert_eq!(version, "2025-11-25");
    assert_eq!(name, own_name());
    assert_eq!(tools, TOOLS);
    open(&s.url, discover_mode())
        .await
        .expect_err("no server/discover on a legacy-only server");
}

#[tokio::test]
async fn foreign_host_or_origin_is_refused_cluster_addresses_are_served() {
    let s = serve(Eras::Both, HostPolicy::default()).await;
    let port = s
        .url
        .split(':')
        .nth(2)
        .and_then(|p| p.split('/').next())
        .expect("port");
    let local = format!("127.0.0.1:{port}");
    let origin = format!("http://{local}");
    for (host, origin, want) in [
        ("evil.example.com", "http://evil.example.com", 403),
        (local.as_str(), "http://evil.example.com", 403),
        ("evil.example.com", origin.as_str(), 403),
        (local.as_str(), origin.as_str(), 200),
        ("10.244.0.17:8080", "", 200),
        ("notes.mcp-e2e.svc:8080", "", 200),
        ("notes.mcp-e2e.svc.cluster.local", "", 200),
    ] {
        let mut headers = vec![("host", host)];
        if !origin.is_empty() {
            headers.push(("origin", origin));
        }
        let (status, _, msg) = post(&s.url, initialize_body(), &headers).await;
        assert_eq!(status, want, "Host {host} Origin {origin:?}: {msg}");
    }
    // Configured names are served; `*` turns the check off.
    let s = serve(
        Eras::Both,
        HostPolicy::from_setting(Some("mcp.example.com")),
    )
    .await;
    let (status, _, _) = post(&s.url, initialize_body(), &[("host", "mcp.example.com")]).await;
    assert_eq!(status, 200);
    let s = serve(Eras::Both, HostPolicy::from_setting(Some("*"))).await;
    let (status, _, _) = post(&s.url, initialize_body(), &[("host", "evil.example.com")]).await;
    assert_eq!(status, 200);
}

/// The load client's era: 2026-07-28 by default, legacy when asked; each
/// connects only to a server of its era, and the report says which it used.
#[tokio::test]
async fn load_client_speaks_2026_by_default_and_reports_its_era() {
    let current = serve(Eras::Current, HostPolicy::default()).await;
    let legacy = serve(Eras::Legacy, HostPolicy::default()).await;
    let run = |url: &str, era: ClientEra| {
        let mut o = LoadOptions::new(url);
        o.era = era;
        o.rate = 20.0;
        o.concurrency = 2;
        o.duration = Duration::from_millis(200);
        o.call_timeout = Duration::from_secs(3);
        o.verify_timeout = Duration::from_millis(100);
        client::run(o)
    };
    assert_eq!(LoadOptions::new("http://x/mcp").era, ClientEra::Current);
    for (url, era, name) in [
        (&current.url, ClientEra::Current, "2026-07-28"),
        (&legacy.url, ClientEra::Legacy, "legacy"),
    ] {
        let r = run(url, era).await;
        assert_eq!(r.era, name);
        // Connected (the calls then fail on the absent database, not on the era).
        assert!(r.sessions_opened >= 1, "{name}: {:?}", r.error_samples);
        assert_eq!(
            r.errors.get("connect"),
            None,
            "{name}: {:?}",
            r.error_samples
        );
        assert_eq!(r.session_losses, 0);
    }
    // The wrong era never gets a connection.
    for (url, era) in [
        (&current.url, ClientEra::Legacy),
        (&legacy.url, ClientEra::Current),
    ] {
        let r = run(url, era).await;
        assert_eq!(r.sessions_opened, 0, "{era:?}");
        assert_eq!(r.errors.get("connect").copied(), Some(r.calls), "{era:?}");
    }
}
