//! What every stage of the stack is made of: the [`Stage`] trait, the tower [`Layer`] and
//! [`Service`] that put a stage around the services below it, and the per-request state the
//! stages hand down in the request's extensions ([`Peer`]; the prefix stage adds
//! [`Target`](super::prefix::Target), the authentication stage the
//! [`Identity`](crate::server::auth::Identity)).
//!
//! A stage is an async function of the request and of the rest of the stack, the shape of
//! axum's `middleware::from_fn`: it answers itself (a refusal, a probe miss, a write), or
//! changes the request and calls [`Next::run`], and may change the response on its way back.
//! Writing each stage as a hand-made `Service` with its own future type would repeat the same
//! thirty lines of tower plumbing a dozen times; here it is written once.
//!
//! Every stage below the router speaks one request type ([`Req`]) and one response type
//! ([`Res`]) and never fails (`Infallible`): a failure is an HTTP answer, never a dropped
//! connection.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use crate::server::response::{Body, ReqBody};

/// The request every stage sees.
pub type Req = Request<ReqBody>;
/// The response every stage gives.
pub type Res = Response<Body>;

/// The client's address, put in each request's extensions by the accept loop: the stages that
/// refuse a request log who sent it, and the access log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

impl Peer {
    /// The peer of `req`; an unspecified address when none was recorded (a stack driven
    /// without the accept loop, as in unit tests).
    pub fn of<B>(req: &Request<B>) -> SocketAddr {
        req.extensions()
            .get::<Peer>()
            .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |p| p.0)
    }
}

/// The services below a stage, as one bound: they take a [`Req`], answer a [`Res`], never
/// fail, and can be shared between the connections' tasks.
pub trait Inner:
    Service<Req, Response = Res, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static
{
}

impl<T> Inner for T where
    T: Service<Req, Response = Res, Error = Infallible, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// One stage of the stack: what it does to a request on its way in, and to the response on
/// its way out. It calls `next.run(req)` to pass the request on, or answers without calling it.
pub trait Stage: Send + Sync + 'static {
    /// Handles `req`, with `next` the rest of the stack.
    fn handle<S: Inner>(&self, req: Req, next: Next<S>) -> impl Future<Output = Res> + Send;
}

/// The rest of the stack below a stage, ready to take one request.
pub struct Next<S> {
    inner: S,
}

impl<S: Inner> Next<S> {
    /// Passes `req` on and waits for the answer.
    pub async fn run(mut self, req: Req) -> Res {
        match self.inner.call(req).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// The tower [`Layer`] that puts a [`Stage`] around a service (what `ServiceBuilder::layer`
/// takes).
pub struct StageLayer<St> {
    stage: Arc<St>,
}

impl<St> StageLayer<St> {
    /// A layer running `stage`; every request shares the one stage (its state is shared).
    pub fn new(stage: St) -> Self {
        StageLayer {
            stage: Arc::new(stage),
        }
    }
}

impl<St> Clone for StageLayer<St> {
    fn clone(&self) -> Self {
        StageLayer {
            stage: self.stage.clone(),
        }
    }
}

impl<St, S> Layer<S> for StageLayer<St> {
    type Service = StageService<St, S>;

    fn layer(&self, inner: S) -> Self::Service {
        StageService {
            stage: self.stage.clone(),
            inner,
        }
    }
}

/// A [`Stage`] around the service below it: the tower [`Service`] a [`StageLayer`] makes.
pub struct StageService<St, S> {
    stage: Arc<St>,
    inner: S,
}

impl<St, S: Clone> Clone for StageService<St, S> {
    fn clone(&self) -> Self {
        StageService {
            stage: self.stage.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<St: Stage, S: Inner> Service<Req> for StageService<St, S> {
    type Response = Res;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Res, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        // The service that was polled ready goes with this request; a clone takes its place
        // (tower's rule for services called from a future).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let stage = self.stage.clone();
        Box::pin(async move { Ok(stage.handle(req, Next { inner }).await) })
    }
}
