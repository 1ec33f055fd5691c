//! /metrics, /healthz and /readyz of the operator itself, and the server that
//! answers them with bounds: a cap on open connections (more wait in the
//! kernel's accept queue, costing this process nothing), a header-read timeout
//! (a client sending its headers slowly is cut), a request timeout, HTTP/1 only,
//! and a small read buffer.
use super::health::Health;
use super::metrics::Metrics;
use axum::error_handling::HandleErrorLayer;
use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceBuilder;

#[derive(Clone)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    /// /healthz fails when a core task died; /readyz answers once the API
    /// server has answered (see [`Health`]).
    pub health: Arc<Health>,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

/// Fails once a core task has died, so the kubelet restarts the replica
/// (nothing else would: the process and this server still run).
async fn healthz(State(s): State<HttpState>) -> impl IntoResponse {
    let dead = s.health.dead();
    if dead.is_empty() {
        (StatusCode::OK, "ok".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("dead: {}", dead.join(", ")),
        )
    }
}

async fn readyz(State(s): State<HttpState>) -> impl IntoResponse {
    if s.health.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Bounds of the HTTP server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; further ones wait to be accepted.
    pub max_connections: usize,
    /// A client must send a request's headers within this time (also cuts
    /// idle keep-alive connections).
    pub header_read_timeout: Duration,
    /// A request must be answered within this time (408 otherwise).
    pub request_timeout: Duration,
}

impl Default for Limits {
    /// Probes and a few scrapers need a handful of connections; the kubelet's
    /// probe timeout is 1 s.
    fn default() -> Self {
        Self {
            max_connections: 32,
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// hyper's smallest read buffer (8 KiB) bounds a request head.
const MAX_BUF_SIZE: usize = 8 * 1024;

/// Serve `router` on `listener` within `limits` until `shutdown` resolves,
/// then let open requests finish (at most one request timeout).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let app = router.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                StatusCode::REQUEST_TIMEOUT
            }))
            .timeout(limits.request_timeout),
    );
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Accept only with a free slot: past the cap, connections stay in the
        // kernel's queue instead of costing a task and buffers here.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let stream = tokio::select! {
            r = listener.accept() => r,
            () = &mut shutdown => break,
        };
        let stream = match stream {
            Ok((s, _)) => s,
            Err(e) => {
                // e.g. out of file descriptors: wait instead of spinning.
                tracing::warn!(error = %e, "http: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(MAX_BUF_SIZE);
            let conn = http.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = closed(&mut closing) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(limits.request_timeout, conn).await;
                }
            }
            drop(slot);
        });
    }
    let _ = closing_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(limits.request_timeout, slots.acquire_many(all)).await;
}

async fn closed(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|c| *c).await;
}

#[cfg(test)]
mod tests;
