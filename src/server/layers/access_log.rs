//! The access log, outermost stage: one line per request (target `gphotos_dav::access`), and
//! the request counter of `/metrics`.
//!
//! The line holds the method, the path (never the query, which may carry a link signature),
//! the status, the announced length (`-` for streamed answers such as listings), the time to
//! the response head, and the user (`-` when anonymous or refused). It is ours rather than
//! `tower-http`'s `TraceLayer` because its fields are a format users and tests read: the user
//! comes from the `Authorization` header (the password is dropped at once) and is shown only
//! when the answer was not a 401. Being outermost, it also logs the 500 of a caught panic and
//! every refusal of the stages below.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use tower::{Layer, Service};

use super::stage::Peer;
use crate::server::auth;

/// Puts the access log around a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLogLayer;

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog { inner }
    }
}

/// A service whose every request is counted and logged (see the module docs).
#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for AccessLog<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let started = Instant::now();
        let peer = Peer::of(&req);
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let user = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(auth::basic_user);
        let answer = self.inner.call(req);
        Box::pin(async move {
            let response = answer.await?;
            crate::metrics::get().requests.inc();
            let status = response.status().as_u16();
            let bytes = response
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string();
            let user = match user {
                Some(name) if status != 401 => name,
                _ => "-".into(),
            };
            tracing::info!(
                target: "gphotos_dav::access",
                %peer,
                %method,
                path,
                status,
                bytes,
                ms = started.elapsed().as_millis() as u64,
                user,
                "request"
            );
            Ok(response)
        })
    }
}
