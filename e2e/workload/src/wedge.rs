//! `WORKLOAD_MODE=wedged-after=<seconds>`: the MCP layer stops answering
//! (`initialize`, tool calls, everything under `MCP_PATH`) while `/healthz`
//! and `/readyz` keep answering 200 — the failure kubelet probes cannot see.
//!
//! With `WEDGE_CLAIM=<key>`, only the first server to claim `key` in the
//! database wedges (one row in `mcp_workload_wedge`); the others, and every
//! later replacement, stay normal. That turns one pod of a pool wedged, which
//! a pod template shared by all replicas could not otherwise express.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

use crate::pool::Db;

/// Whether the MCP layer hangs.
pub struct Wedge {
    wedged: AtomicBool,
    /// Cancelled at shutdown, so hung requests end and the server can stop.
    stop: CancellationToken,
}

impl Wedge {
    pub fn new(stop: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            wedged: AtomicBool::new(false),
            stop,
        })
    }

    pub fn is_wedged(&self) -> bool {
        self.wedged.load(Ordering::SeqCst)
    }

    /// After `after`, wedge (if `claim` is set, only when this server wins it).
    pub async fn arm(self: Arc<Self>, after: Duration, claim: Option<String>, db: Arc<Db>) {
        tokio::select! {
            _ = tokio::time::sleep(after) => {}
            _ = self.stop.cancelled() => return,
        }
        let won = match claim {
            None => true,
            Some(key) => loop {
                match try_claim(&db, &key).await {
                    Ok(won) => break won,
                    Err(e) => {
                        tracing::warn!(event = "wedge_claim_retry", error = %e, "cannot claim the wedge yet");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = self.stop.cancelled() => return,
                        }
                    }
                }
            },
        };
        if won {
            self.wedged.store(true, Ordering::SeqCst);
            tracing::warn!(
                event = "mcp_wedged",
                after_s = after.as_secs_f64(),
                "WORKLOAD_MODE=wedged-after: the MCP layer no longer answers; /healthz and /readyz still do"
            );
        } else {
            tracing::info!(
                event = "wedge_claimed_elsewhere",
                "another server holds the wedge claim; this one keeps serving"
            );
        }
    }
}

/// Insert the claim; true when this server inserted it.
async fn try_claim(db: &Db, key: &str) -> Result<bool, String> {
    let conn = db.acquire().await.map_err(|e| e.message())?;
    conn.batch_execute(
        "CREATE TABLE IF NOT EXISTS mcp_workload_wedge (claim text PRIMARY KEY, holder text, at timestamptz DEFAULT now())",
    )
    .await
    .map_err(|e| e.to_string())?;
    let holder = std::env::var("HOSTNAME").unwrap_or_default();
    let n = conn
        .execute(
            "INSERT INTO mcp_workload_wedge (claim, holder) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&key, &holder],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(n == 1)
}

/// Middleware on the MCP routes: a wedged server holds the request open and
/// never answers (until shutdown, when it answers 503 so the server can stop).
pub async fn hang_when_wedged(State(w): State<Arc<Wedge>>, req: Request, next: Next) -> Response {
    if w.is_wedged() {
        w.stop.cancelled().await;
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    next.run(req).await
}
