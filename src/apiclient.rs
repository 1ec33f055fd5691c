//! The operator's one Kubernetes client configuration.
//!
//! - Connect timeout 5 s; every request must get its response headers within
//!   `request_timeout` (a watch gets them at once, so watches are unaffected;
//!   their idle timeout is the watcher's own).
//! - kube's built-in retry of 429/503/504 (up to 15 attempts over minutes) is
//!   off: a PDB's 429 on an eviction, or a throttled status write, comes back
//!   at once and the reconcile records it and requeues.
//! - Every write (POST, PUT, PATCH, DELETE) passes the leader [`Fence`]; a
//!   replica past its renew deadline gets [`NotLeader`] without sending it, and
//!   a write sent in time is cut ([`LeaseExpiring`]) before the lease could
//!   expire for a standby (the request timeout alone would let a write sent
//!   just before the deadline land 15 s later, 10 s after expiry).
//! - The user agent names the replica (`mcp-operator/<version> (pod=<name>)`),
//!   so the API server's audit log can attribute every write.
use crate::leader::{Fence, WriteBudget};
use futures::future::BoxFuture;
use http::{header::USER_AGENT, HeaderValue, Method, Request};
use kube::client::ClientBuilder;
use kube::{Client, Config};
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{BoxError, Layer, Service};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A write refused because this replica may not write (not the leader, or
/// past its renew deadline).
#[derive(Debug, thiserror::Error)]
#[error("write refused: this replica is not within its leader lease")]
pub struct NotLeader;

/// A write cut short: had it gone on, it could have landed after the leader
/// lease could expire for a standby.
#[derive(Debug, thiserror::Error)]
#[error("write cancelled: it could not complete before the leader lease could expire")]
pub struct LeaseExpiring;

/// Whether a kube error is the fence's refusal.
pub fn is_not_leader(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Service(b) if b.downcast_ref::<NotLeader>().is_some())
}

pub fn user_agent(identity: &str) -> String {
    format!(
        "mcp-operator/{} (pod={identity})",
        env!("CARGO_PKG_VERSION")
    )
}

/// The operator's client: `config` as inferred, with the settings above.
/// `fence` None: no write fence (the Lease client itself).
pub fn build(
    mut config: Config,
    identity: &str,
    request_timeout: Duration,
    fence: Option<Fence>,
) -> kube::Result<Client> {
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.default_retry = false;
    if let Ok(ua) = HeaderValue::from_str(&user_agent(identity)) {
        config.headers.retain(|(k, _)| k != USER_AGENT);
        config.headers.push((USER_AGENT, ua));
    }
    let builder = ClientBuilder::try_from(config)?
        .with_layer(&tower::timeout::TimeoutLayer::new(request_timeout))
        .with_layer(&FenceLayer(fence));
    Ok(builder.build())
}

/// Resolves once the API server has answered a request (`GET /version`, which
/// every authenticated identity may call), trying every `retry`. Readiness
/// waits for it: a replica that cannot reach the API server is not ready.
pub async fn wait_until_answered(client: &Client, retry: Duration) {
    loop {
        match client.apiserver_version().await {
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(error = %crate::redact::redact(&e.to_string()), "API server not answering yet")
            }
        }
        tokio::time::sleep(retry).await;
    }
}

fn is_write(m: &Method) -> bool {
    matches!(
        *m,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Refuses writes while the fence is closed.
#[derive(Clone)]
pub struct FenceLayer(pub Option<Fence>);

impl<S> Layer<S> for FenceLayer {
    type Service = Fenced<S>;
    fn layer(&self, inner: S) -> Fenced<S> {
        Fenced {
            inner,
            fence: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Fenced<S> {
    inner: S,
    fence: Option<Fence>,
}

impl<S, B> Service<Request<B>> for Fenced<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let budget = match &self.fence {
            Some(f) if is_write(req.method()) => f.write_budget(tokio::time::Instant::now()),
            _ => WriteBudget::Unlimited,
        };
        if budget == WriteBudget::Refused {
            return Box::pin(async { Err(NotLeader.into()) });
        }
        let fut = self.inner.call(req);
        match budget {
            WriteBudget::Refused | WriteBudget::Unlimited => {
                Box::pin(async move { fut.await.map_err(Into::into) })
            }
            WriteBudget::Within(t) => Box::pin(async move {
                match tokio::time::timeout(t, fut).await {
                    Ok(res) => res.map_err(Into::into),
                    Err(_) => Err(LeaseExpiring.into()),
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Response;
    use kube::client::Body;
    use tower::ServiceExt;

    fn echo() -> impl Service<
        Request<Body>,
        Response = Response<Body>,
        Error = BoxError,
        Future = impl Send + 'static,
    > + Clone {
        tower::service_fn(|_req: Request<Body>| async {
            Ok::<_, BoxError>(Response::new(Body::empty()))
        })
    }

    fn req(m: Method) -> Request<Body> {
        let mut r = Request::new(Body::empty());
        *r.method_mut() = m;
        r
    }

    #[tokio::test]
    async fn a_closed_fence_refuses_writes_and_lets_reads_through() {
        let fence = Fence::closed();
        let svc = FenceLayer(Some(fence)).layer(echo());
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let err = svc.clone().oneshot(req(m.clone())).await.err();
            assert!(
                err.is_some_and(|e| e.downcast_ref::<NotLeader>().is_some()),
                "{m} must be refused"
            );
        }
        assert!(svc.clone().oneshot(req(Method::GET)).await.is_ok());
    }

    #[tokio::test]
    async fn an_open_fence_or_none_lets_writes_through() {
        for fence in [Some(Fence::open()), None] {
            let svc = FenceLayer(fence).layer(echo());
            assert!(svc.oneshot(req(Method::PATCH)).await.is_ok());
        }
    }

    /// Renewed at t0 (renew deadline 10 s, lease 15 s), a write sent at 9.9 s
    /// to an API server that never answers is cut before 15 s, when a standby
    /// may take over; the client's 15 s request timeout alone would let it
    /// land until 24.9 s.
    #[tokio::test(start_paused = true)]
    async fn a_write_sent_before_the_deadline_is_cut_before_the_lease_could_expire() {
        let cfg = crate::leader::LeaseConfig::new("op", "a");
        let fence = Fence::closed();
        let renewed = tokio::time::Instant::now();
        fence.renewed(renewed, &cfg);
        tokio::time::sleep(Duration::from_millis(9_900)).await;
        let hung = tower::service_fn(|_req: Request<Body>| {
            std::future::pending::<Result<Response<Body>, BoxError>>()
        });
        let svc = FenceLayer(Some(fence.clone())).layer(hung);
        let res = tokio::time::timeout(
            Duration::from_secs(60),
            svc.clone().oneshot(req(Method::PATCH)),
        )
        .await;
        assert!(
            matches!(&res, Ok(Err(e)) if e.downcast_ref::<LeaseExpiring>().is_some()),
            "the write was not cut: {res:?}"
        );
        assert!(tokio::time::Instant::now() < renewed + cfg.lease_duration);
        // Reads are not cut (a watch may stay open for minutes).
        let read =
            tokio::time::timeout(Duration::from_secs(60), svc.oneshot(req(Method::GET))).await;
        assert!(read.is_err(), "the read ran to the test's own timeout");
    }

    /// Ready waits for an answer: two failed calls, then `/version` answers.
    #[tokio::test(start_paused = true)]
    async fn waiting_for_the_api_server_ends_with_its_first_answer() {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(svc, "default");
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c, a) = (calls.clone(), answered.clone());
        let server = tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                assert_eq!(req.uri().path(), "/version");
                let n = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (code, body) = if n < 2 {
                    (503, serde_json::json!({"kind": "Status", "code": 503}))
                } else {
                    a.store(true, std::sync::atomic::Ordering::SeqCst);
                    (
                        200,
                        serde_json::json!({
                            "major": "1", "minor": "33", "gitVersion": "v1.33.0",
                            "gitCommit": "", "gitTreeState": "", "buildDate": "",
                            "goVersion": "", "compiler": "", "platform": ""
                        }),
                    )
                };
                let res = Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&body).unwrap_or_default()));
                if let Ok(res) = res {
                    send.send_response(res);
                }
            }
        });
        wait_until_answered(&client, Duration::from_secs(1)).await;
        assert!(answered.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
        server.abort();
    }

    #[test]
    fn the_user_agent_names_the_pod() {
        assert!(user_agent("op-7d9-x").ends_with("(pod=op-7d9-x)"));
    }
}
