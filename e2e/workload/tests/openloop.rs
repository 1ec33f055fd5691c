//! The open-loop load client against the real server (real Postgres, real
//! rmcp server and client, real HTTP; see tests/common).

mod common;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use common::{require_pg, PgCluster, Server};
use mcp_workload::client::{run_with_events, ClientEra, LoadOptions, Outcome, SessionPool};
use serde_json::json;

/// Server settings for these tests: a deep pool wait queue, so a CPU-starved
/// machine (2 shared cores) makes calls slower rather than failing them with
/// `pool_exhausted`; what is tested here is the client.
const SERVER_ENV: &[(&str, &str)] = &[("POOL_MAX_WAITING", "1000")];

fn opts(url: &str, prefix: &str, rate: f64, secs: f64) -> LoadOptions {
    let mut o = LoadOptions::new(url);
    o.rate = rate;
    o.concurrency = 4;
    o.duration = Duration::from_secs_f64(secs);
    o.key_prefix = prefix.to_string();
    o.call_timeout = Duration::from_secs(5);
    o.verify_timeout = Duration::from_secs(30);
    o
}

/// 50 calls/s for 2 s: 100 slots offered and sent on schedule, all
/// acknowledged and read back, 4 sessions, no session loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_loop_offers_the_fixed_rate() {
    if require_pg("open_loop_offers_the_fixed_rate").is_none() {
        return;
    }
    let pg = PgCluster::start("openloop");
    let server = Server::spawn(&pg.url, SERVER_ENV);
    server.wait_ready().await;
    let (r, events) = run_with_events(opts(&server.mcp_url(), "ol", 50.0, 2.0)).await;
    let json = serde_json::to_string(&r).unwrap_or_default();
    eprintln!(
        "open loop: offered={} calls={} errors={:?} p99={}ms sessions={}",
        r.offered, r.calls, r.errors, r.latency_ms.p99, r.sessions_opened
    );
    assert_eq!(r.offered, 100, "{json}");
    assert_eq!(r.calls, 100, "{json}");
    assert_eq!(events.len(), 100);
    assert_eq!(r.errors_total, 0, "{json}");
    assert_eq!(r.acknowledged, 100, "{json}");
    assert_eq!(r.lost_acked_writes, 0, "{json}");
    assert_eq!(r.unverified_acked_writes, 0, "{json}");
    assert_eq!(r.session_losses, 0, "{json}");
    assert_eq!(r.session_lost_calls, 0, "{json}");
    assert_eq!(r.sessions_opened, 4, "{json}");
    assert_eq!(r.max_in_flight, 250, "50/s x 5 s call timeout");
    for (k, e) in events.iter().enumerate() {
        assert_eq!(e.slot, k as u64);
        let due = r.started_unix_ms + 20 * k as u64;
        assert!(e.scheduled_ms.abs_diff(due) <= 1, "slot {k}: {e:?}");
        assert!(
            e.start_ms.saturating_sub(e.scheduled_ms) < 100,
            "slot {k} sent late: {e:?}"
        );
        assert!(e.ok && !e.session_lost);
    }
}

/// A reverse proxy in front of the server, like a Kubernetes Service: every
/// request goes to the backend port current at the time it arrives, so
/// replacing the backend makes the old sessions unknown (HTTP 404) without a
/// connection-refused gap.
struct SwitchProxy {
    port: u16,
    backend: Arc<AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl SwitchProxy {
    async fn start(backend_port: u16) -> SwitchProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let backend = Arc::new(AtomicU16::new(backend_port));
        let http = reqwest::Client::new();
        let app = axum::Router::new().fallback({
            let backend = backend.clone();
            move |req: Request| forward(http.clone(), backend.load(Ordering::SeqCst), req)
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SwitchProxy {
            port,
            backend,
            task,
        }
    }

    fn mcp_url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    fn switch_to(&self, backend_port: u16) {
        self.backend.store(backend_port, Ordering::SeqCst);
    }
}

impl Drop for SwitchProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(http: reqwest::Client, port: u16, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("http://127.0.0.1:{port}{path}");
    let Ok(body) = axum::body::to_bytes(body, 16 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut headers = parts.headers;
    for h in [
        header::HOST,
        header::CONNECTION,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
    ] {
        headers.remove(h);
    }
    let resp = match http
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = resp.status();
    let mut out_headers = resp.headers().clone();
    for h in [
        header::CONNECTION,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
    ] {
        out_headers.remove(h);
    }
    // Stream the body through (SSE responses stay open).
    let stream = futures::stream::unfold(Some(resp), |state| async move {
        let mut r = state?;
        match r.chunk().await {
            Ok(Some(bytes)) => Some((Ok(bytes), Some(r))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    *response.headers_mut() = out_headers;
    response
}

/// The server behind the URL is replaced mid-run (new process, the old one
/// stopped): calls on the old sessions get HTTP 404. Each lost session is
/// counted once, re-initialized once, and the calls that hit it are retried
/// on the new session, so nothing fails and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_replacement_is_counted_as_session_loss_and_recovered() {
    if require_pg("server_replacement_session_loss").is_none() {
        return;
    }
    let pg = PgCluster::start("sessloss");
    let old = Server::spawn(&pg.url, SERVER_ENV);
    old.wait_ready().await;
    let proxy = SwitchProxy::start(old.port).await;
    // Sessions exist in the legacy era only.
    let mut o = opts(&proxy.mcp_url(), "sl", 50.0, 4.0);
    o.era = ClientEra::Legacy;
    let load = tokio::spawn(run_with_events(o));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let new = Server::spawn(&pg.url, SERVER_ENV);
    new.wait_ready().await;
    proxy.switch_to(new.port);
    old.sigterm();
    let (r, events) = load.await.expect("load task");
    let json = serde_json::to_string(&r).unwrap_or_default();
    eprintln!(
        "session loss: offered={} errors={:?} session_losses={} session_lost_calls={} sessions_opened={}",
        r.offered, r.errors, r.session_losses, r.session_lost_calls, r.sessions_opened
    );
    assert_eq!(r.offered, 200, "{json}");
    assert_eq!(r.calls, 200, "{json}");
    assert!(r.session_losses >= 1, "{json}");
    assert!(r.session_losses <= 4, "one loss per pooled session: {json}");
    assert!(r.session_lost_calls >= r.session_losses, "{json}");
    assert_eq!(
        events.iter().filter(|e| e.session_lost).count() as u64,
        r.session_lost_calls
    );
    assert_eq!(
        r.errors_total, 0,
        "the retry on the new session succeeds: {json}"
    );
    assert_eq!(r.acknowledged, 200, "{json}");
    assert_eq!(
        r.sessions_opened,
        4 + r.session_losses,
        "one re-initialization per lost session: {json}"
    );
    assert!(events
        .iter()
        .filter(|e| e.session_lost)
        .all(|e| e.ok && e.scheduled_ms >= r.started_unix_ms + 1500));
    assert_eq!(r.lost_acked_writes, 0, "{json}");
    assert_eq!(r.unverified_acked_writes, 0, "{json}");
}

/// The same replacement in the 2026-07-28 era (the default): no session to
/// lose, so no call notices it; nothing fails and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_replacement_goes_unnoticed_by_a_stateless_client() {
    if require_pg("server_replacement_stateless").is_none() {
        return;
    }
    let pg = PgCluster::start("stateless");
    let old = Server::spawn(&pg.url, SERVER_ENV);
    old.wait_ready().await;
    let proxy = SwitchProxy::start(old.port).await;
    let load = tokio::spawn(run_with_events(opts(&proxy.mcp_url(), "st", 50.0, 4.0)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let new = Server::spawn(&pg.url, SERVER_ENV);
    new.wait_ready().await;
    proxy.switch_to(new.port);
    old.sigterm();
    let (r, events) = load.await.expect("load task");
    let json = serde_json::to_string(&r).unwrap_or_default();
    assert_eq!(r.era, "2026-07-28", "{json}");
    assert_eq!(r.offered, 200, "{json}");
    assert_eq!(r.session_losses, 0, "{json}");
    assert_eq!(r.session_lost_calls, 0, "{json}");
    assert!(events.iter().all(|e| !e.session_lost));
    assert_eq!(r.errors_total, 0, "{json}");
    assert_eq!(r.acknowledged, 200, "{json}");
    assert_eq!(r.sessions_opened, 4, "no reconnect: {json}");
    assert_eq!(r.lost_acked_writes, 0, "{json}");
    assert_eq!(r.unverified_acked_writes, 0, "{json}");
}

/// Ten calls in flight on one session when its server is replaced: the lost
/// session is counted once and re-initialized once; every call is retried on
/// the one new session and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_on_a_lost_session_share_one_reinit() {
    if require_pg("concurrent_calls_share_one_reinit").is_none() {
        return;
    }
    let pg = PgCluster::start("reinit");
    let old = Server::spawn(&pg.url, SERVER_ENV);
    let new = Server::spawn(&pg.url, SERVER_ENV);
    old.wait_ready().await;
    new.wait_ready().await;
    let proxy = SwitchProxy::start(old.port).await;
    let pool = Arc::new(SessionPool::with_era(
        &proxy.mcp_url(),
        1,
        32,
        ClientEra::Legacy,
    ));
    let timeout = Duration::from_secs(10);
    let first = pool.call(0, "count_notes", json!({}), timeout).await;
    assert!(matches!(first.outcome, Outcome::Ok(_)), "{first:?}");
    assert_eq!(pool.sessions_opened(), 1);
    proxy.switch_to(new.port);
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let args = json!({"key": format!("reinit-{i}"), "value": "v"});
                pool.call(0, "put_note", args, timeout).await
            })
        })
        .collect();
    let mut lost_calls = 0;
    for c in calls {
        let r = c.await.expect("call task");
        assert!(matches!(r.outcome, Outcome::Ok(_)), "{r:?}");
        if r.session_lost {
            lost_calls += 1;
        }
    }
    eprintln!(
        "reinit: lost_calls={lost_calls} opened={}",
        pool.sessions_opened()
    );
    assert_eq!(pool.session_losses(), 1);
    assert_eq!(pool.sessions_opened(), 2, "one re-initialization");
    assert!(
        lost_calls >= 2,
        "only {lost_calls} calls met the dead session"
    );
    pool.close().await;
}
