//! Which service answers a request, by the start of its path: the signed download links
//! (`<prefix>/d/`), room for the web routes of issue #14 (`<prefix>/_/`), and the WebDAV tree
//! for everything else (the fallback).
//!
//! Why not axum's `Router`: the routes live under `[webdav] prefix`, a configured path that
//! would have to be spliced into route patterns, and axum's routes rewrite answers on their
//! way out (a `Content-Length` taken from the body's size hint, the body of a HEAD dropped),
//! which would change what the tree answers and what the access log records. Matching a
//! handful of path starts is all the tree needs; this is that, as a tower service.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use crate::server::layers::stage::{Inner, Req, Res};

/// A service a route leads to: any stage stack, boxed so routes of different types share a
/// table.
pub type Route = BoxCloneSyncService<Req, Res, Infallible>;

/// The route table (see the module docs).
#[derive(Clone)]
pub struct Router {
    /// Path starts and their services, tried in order.
    routes: Arc<Vec<(String, Route)>>,
    /// The service of every other path.
    fallback: Route,
}

impl Router {
    /// A router that sends every request to `fallback`.
    pub fn new<S: Inner>(fallback: S) -> Self {
        Router {
            routes: Arc::new(Vec::new()),
            fallback: BoxCloneSyncService::new(fallback),
        }
    }

    /// Sends the requests whose path starts with `start` (for example `/photos/d/`) to
    /// `service`, before the routes added later and before the fallback.
    pub fn route<S: Inner>(mut self, start: impl Into<String>, service: S) -> Self {
        Arc::make_mut(&mut self.routes).push((start.into(), BoxCloneSyncService::new(service)));
        self
    }

    /// The service `path` is routed to.
    fn pick(&self, path: &str) -> Route {
        self.routes
            .iter()
            .find(|(start, _)| path.starts_with(start.as_str()))
            .map_or(&self.fallback, |(_, route)| route)
            .clone()
    }
}

impl Service<Req> for Router {
    type Response = Res;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Res, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Each request readies its own route (`oneshot`).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let route = self.pick(req.uri().path());
        Box::pin(route.oneshot(req))
    }
}
