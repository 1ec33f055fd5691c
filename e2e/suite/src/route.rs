//! When the Postgres Service routes to the new pod again after a kill: TCP
//! connects from this host to the Service's ClusterIP (through the same
//! kube-proxy rules the MCP pods' connections take). The first one that
//! succeeds after Postgres is Ready splits a recovery into what Kubernetes
//! took (endpoint propagation, kube-proxy's sync) and what the MCP pods took.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::Api;
use mcp_workload::client::now_ms;
use tokio_util::sync::CancellationToken;

use crate::cluster::{tcp_ok, Ctx, DB_NS};

/// One connect every this long, each given at most `TIMEOUT`.
const EVERY: Duration = Duration::from_millis(25);
const TIMEOUT: Duration = Duration::from_millis(100);

/// A connect attempt: when it started and ended (unix ms), and whether it connected.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attempt {
    pub start_ms: u64,
    pub end_ms: u64,
    pub ok: bool,
}

pub struct RouteProbe {
    attempts: Arc<Mutex<Vec<Attempt>>>,
    stop: CancellationToken,
}

impl RouteProbe {
    /// Probing from now on; `None` when the Service has no ClusterIP.
    pub async fn start(ctx: &Ctx) -> Option<Self> {
        let svc: Api<Service> = Api::namespaced(ctx.client.clone(), DB_NS);
        let spec = svc.get("postgres").await.ok()?.spec?;
        let ip = spec.cluster_ip.filter(|ip| ip != "None")?;
        let port = spec.ports?.first()?.port;
        let addr: SocketAddr = format!("{ip}:{port}").parse().ok()?;
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (log, done) = (attempts.clone(), stop.clone());
        tokio::spawn(async move {
            while !done.is_cancelled() {
                let start_ms = now_ms();
                let ok = tcp_ok(addr, TIMEOUT).await;
                if let Ok(mut a) = log.lock() {
                    a.push(Attempt {
                        start_ms,
                        end_ms: now_ms(),
                        ok,
                    });
                }
                tokio::select! {
                    _ = done.cancelled() => break,
                    _ = tokio::time::sleep(EVERY) => {}
                }
            }
        });
        Some(Self { attempts, stop })
    }

    /// When the route came back after `pg_ready_ms`, if it did yet.
    pub fn routed_after(&self, pg_ready_ms: u64) -> Option<u64> {
        let a = self.attempts.lock().ok()?;
        routed_after(&a, pg_ready_ms)
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for RouteProbe {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The end of the first successful connect started at or after `pg_ready_ms`
/// (an earlier one may have reached the pod being killed).
pub fn routed_after(attempts: &[Attempt], pg_ready_ms: u64) -> Option<u64> {
    attempts
        .iter()
        .find(|a| a.ok && a.start_ms >= pg_ready_ms)
        .map(|a| a.end_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start_ms: u64, ok: bool) -> Attempt {
        Attempt {
            start_ms,
            end_ms: start_ms + 2,
            ok,
        }
    }

    #[test]
    fn the_route_is_back_at_the_first_connect_after_postgres_is_ready() {
        // connects to the dying pod succeed before the kill lands; they do not count
        let a = [
            at(0, true),
            at(25, false),
            at(50, false),
            at(75, true),
            at(100, true),
        ];
        assert_eq!(routed_after(&a, 60), Some(77));
        assert_eq!(routed_after(&a, 110), None);
        assert_eq!(routed_after(&[], 0), None);
    }
}
