//! The operator's one Kubernetes client configuration.
//!
//! - Connect timeout 5 s; every request must get its response headers within
//!   `request_timeout` (a watch gets them at once, so watches are unaffected;
//!   their idle timeout is the watcher's own).
//! - kube's built-in retry of 429/503/504 (up to 15 attempts over minutes) is
//!   off: a PDB's 429 on an eviction, or a throttled status write, comes back
//!   at once and the reconcile records it and requeues.
//! - Every write (POST, PUT, PATCH, DELETE) passes the leader [`Fence`]; a
//!   replica past its renew deadline gets [`NotLeader`] without sending it.
//! - The user agent names the replica (`mcp-operator/<version> (pod=<name>)`),
//!   so the API server's audit log can attribute every write.
use crate::leader::Fence;
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
        let refused = is_write(req.method()) && self.fence.as_ref().is_some_and(|f| !f.may_write());
        if refused {
            return Box::pin(async { Err(NotLeader.into()) });
        }
        let fut = self.inner.call(req);
        Box::pin(async move { fut.await.map_err(Into::into) })
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

    #[test]
    fn the_user_agent_names_the_pod() {
        assert!(user_agent("op-7d9-x").ends_with("(pod=op-7d9-x)"));
    }
}
