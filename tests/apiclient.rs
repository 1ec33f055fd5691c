//! The operator's client against a real HTTP server on loopback: a 429 comes
//! back at once (kube's hidden retry is off), a hung API server costs at most
//! the request timeout, a closed fence sends nothing, and the user agent names
//! the replica.
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{any, post};
use axum::Router;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, EvictParams};
use kube::Config;
use mcp_operator::apiclient;
use mcp_operator::leader::Fence;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
struct Seen {
    requests: Arc<AtomicUsize>,
    agents: Arc<Mutex<Vec<String>>>,
}

async fn too_many(State(seen): State<Seen>, headers: HeaderMap) -> (StatusCode, String) {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    if let Some(ua) = headers.get("user-agent").and_then(|v| v.to_str().ok()) {
        if let Ok(mut a) = seen.agents.lock() {
            a.push(ua.to_string());
        }
    }
    (
        StatusCode::TOO_MANY_REQUESTS,
        r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"TooManyRequests","code":429,"message":"Cannot evict pod as it would violate the pod's disruption budget."}"#
            .to_string(),
    )
}

async fn hang(State(seen): State<Seen>) -> StatusCode {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(30)).await;
    StatusCode::OK
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

fn pods(url: &str, timeout: Duration, fence: Option<Fence>) -> Api<Pod> {
    let config = Config::new(url.parse().expect("url"));
    let client = apiclient::build(config, "op-0", timeout, fence).expect("client");
    Api::namespaced(client, "ns")
}

#[tokio::test]
async fn a_pdb_429_comes_back_at_once_after_one_request_naming_the_replica() {
    let seen = Seen::default();
    let url = serve(
        Router::new()
            .route("/api/v1/namespaces/ns/pods/p/eviction", post(too_many))
            .with_state(seen.clone()),
    )
    .await;
    let t = Instant::now();
    let res = pods(&url, Duration::from_secs(15), Some(Fence::open()))
        .evict("p", &EvictParams::default())
        .await;
    assert!(
        matches!(res, Err(kube::Error::Api(ref s)) if s.code == 429),
        "{res:?}"
    );
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1, "no hidden retry");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let agents = seen.agents.lock().map(|a| a.clone()).unwrap_or_default();
    assert_eq!(agents, vec![apiclient::user_agent("op-0")]);
}

#[tokio::test]
async fn a_hung_api_server_costs_at_most_the_request_timeout() {
    let seen = Seen::default();
    let url = serve(Router::new().fallback(any(hang)).with_state(seen.clone())).await;
    let t = Instant::now();
    let res = pods(&url, Duration::from_millis(300), None).get("p").await;
    assert!(res.is_err());
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_closed_fence_sends_no_write_at_all() {
    let seen = Seen::default();
    let url = serve(
        Router::new()
            .fallback(any(too_many))
            .with_state(seen.clone()),
    )
    .await;
    let res = pods(&url, Duration::from_secs(5), Some(Fence::closed()))
        .evict("p", &EvictParams::default())
        .await;
    assert!(res.as_ref().is_err_and(apiclient::is_not_leader), "{res:?}");
    assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
    // reads still go out
    let _ = pods(&url, Duration::from_secs(5), Some(Fence::closed()))
        .get("p")
        .await;
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
}
