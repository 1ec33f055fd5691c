//! The real router (tower oneshot) on the health state, and the real server
//! on a loopback socket against slow and surplus clients.
use super::*;
use axum::body::Body;
use http::Request;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

fn state() -> HttpState {
    HttpState {
        metrics: Arc::new(Metrics::default()),
        health: Arc::new(Health::default()),
    }
}

async fn fetch(router: &Router, path: &str) -> (StatusCode, String) {
    let req = Request::get(path).body(Body::empty());
    let Ok(req) = req else {
        return (StatusCode::BAD_REQUEST, String::new());
    };
    let Ok(res) = router.clone().oneshot(req).await;
    let code = res.status();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    (code, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn healthz_fails_once_a_core_task_died() {
    let s = state();
    let router = router(s.clone());
    let prober = tokio::spawn(std::future::pending::<()>());
    let _p = s.health.watch("dependency prober", &prober, None);
    assert_eq!(
        fetch(&router, "/healthz").await,
        (StatusCode::OK, "ok".into())
    );
    prober.abort();
    let _ = prober.await;
    let (code, body) = fetch(&router, "/healthz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "dead: dependency prober");
}

#[tokio::test]
async fn readyz_waits_for_the_api_server() {
    let s = state();
    let router = router(s.clone());
    assert_eq!(
        fetch(&router, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    s.health.set_ready(true);
    assert_eq!(fetch(&router, "/readyz").await.0, StatusCode::OK);
}

/// Starts the server with `limits` on a free loopback port.
async fn start(limits: Limits, router: Router) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await;
    let Ok(listener) = listener else {
        panic!("cannot bind a loopback port");
    };
    let Ok(addr) = listener.local_addr() else {
        panic!("no local address");
    };
    tokio::spawn(serve(listener, router, limits, std::future::pending()));
    addr
}

async fn connect(addr: std::net::SocketAddr) -> TcpStream {
    match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => panic!("connect: {e}"),
    }
}

/// Reads until the server closes the connection (or `within` passes); returns
/// what came and whether it closed.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let closed = tokio::time::timeout(within, async {
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

#[tokio::test]
async fn a_client_sending_its_headers_slowly_is_cut() {
    let limits = Limits {
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let addr = start(limits, router(state())).await;
    let stream = connect(addr).await;
    let (mut rd, mut wr) = stream.into_split();
    let started = Instant::now();
    // One header byte every 50 ms, for up to 5 s: never a complete head.
    let dribble = tokio::spawn(async move {
        let _ = wr.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
        for _ in 0..100 {
            if wr.write_all(b"X").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        let mut buf = [0u8; 256];
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await
    .is_ok();
    dribble.abort();
    assert!(closed, "the slow client was not cut");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn past_the_connection_cap_a_client_waits_until_a_slot_frees() {
    let limits = Limits {
        max_connections: 1,
        header_read_timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let addr = start(limits, router(state())).await;
    // The first connection holds the only slot (it sends nothing).
    let first = connect(addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Surplus clients connect (the kernel queues them) but are not served.
    let mut waiting = Vec::new();
    for _ in 0..20 {
        let mut s = connect(addr).await;
        let _ = s
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        waiting.push(s);
    }
    for s in &mut waiting[..1] {
        let (got, closed) = read_until_closed(s, Duration::from_millis(500)).await;
        assert!(got.is_empty() && !closed, "served past the cap: {got:?}");
    }
    // The slot frees: every queued client is served in turn.
    drop(first);
    for s in &mut waiting {
        let (got, closed) = read_until_closed(s, Duration::from_secs(5)).await;
        assert!(closed && got.starts_with("HTTP/1.1 200"), "{got:?}");
    }
}

#[tokio::test]
async fn a_slow_handler_is_answered_408_at_the_request_timeout() {
    let limits = Limits {
        request_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let slow = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    );
    let addr = start(limits, slow).await;
    let mut s = connect(addr).await;
    let _ = s
        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(closed && got.starts_with("HTTP/1.1 408"), "{got:?}");
}
