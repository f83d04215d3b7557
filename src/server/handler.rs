//! The bottom of the tree's stack: dav-server's [`DavHandler`] over [`PhotosFs`], run inside
//! the request's failure scope (`dav::failure`), so that why Google failed becomes the status
//! and body of the answer.
//!
//! - **Readable upstream errors.** The filesystem records why Google failed; an answer
//!   dav-server gives as a bare 4xx or 5xx becomes a 404, a 502, or a 503 with Retry-After,
//!   whose body and log line say what to do ([`upstream_failure`]).
//! - **A GET holds its head until the first bytes** (`first_bytes`): a refused download is
//!   a status, never a body cut after a 200.
//!
//! Everything dav-server cannot do on its own happens in the stages above (`layers`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use dav_server::body::Body as DavBody;
use dav_server::{DavHandler, DavMethodSet};
use futures::StreamExt;
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use tower::Service;

use crate::catalog::Catalog;
use crate::dav::{PhotosFs, failure};
use crate::server::layers::prefix::{Prefix, Target};
use crate::server::layers::stage::{Req, Res};
use crate::server::policy::Delivery;
use crate::server::response::{Body, READ_BUF_SIZE, text_response, upstream_failure};
use crate::upload::Uploader;

/// The DAV handler as a tower service (the router's fallback: every request of the tree).
#[derive(Clone)]
pub struct DavEndpoint {
    handler: DavHandler,
}

impl DavEndpoint {
    /// dav-server over `catalog`'s tree, under `prefix`: read-write with `locks` (the lock
    /// system `uploader` shares) on writable servers, read-only without; files redirect as
    /// `delivery` says.
    pub fn new(
        catalog: Catalog,
        prefix: &Prefix,
        delivery: &Delivery,
        uploader: Option<&Uploader>,
        locks: Option<Box<dyn dav_server::ls::DavLockSystem>>,
    ) -> Self {
        let methods = if uploader.is_some() {
            DavMethodSet::WEBDAV_RW
        } else {
            DavMethodSet::WEBDAV_RO
        };
        let fs = PhotosFs::new(catalog)
            .with_redirect(delivery.redirect.clone())
            .with_local(uploader.map(|u| u.local().clone()));
        let mut builder = DavHandler::builder()
            .filesystem(Box::new(fs))
            .methods(methods)
            .read_buf_size(READ_BUF_SIZE)
            .redirect(delivery.redirect.is_some());
        if let Some(locks) = locks {
            builder = builder.locksystem(locks);
        }
        if !prefix.as_str().is_empty() {
            builder = builder.strip_prefix(prefix.as_str());
        }
        DavEndpoint {
            handler: builder.build_handler(),
        }
    }
}

impl Service<Req> for DavEndpoint {
    type Response = Res;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Res, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let handler = self.handler.clone();
        Box::pin(async move { Ok(serve(&handler, req).await) })
    }
}

/// Answers one request with dav-server (see the module docs).
async fn serve(handler: &DavHandler, req: Req) -> Res {
    let method = req.method().clone();
    // The path as the client sent it, before the folder-slash stage added a slash.
    let path = Target::of(&req).path;
    let is_get = method == Method::GET;
    let (response, failure) = failure::capture(async {
        let response = handler.handle(req).await;
        if is_get {
            first_bytes(response).await
        } else {
            Ok(response.map(box_dav_body))
        }
    })
    .await;
    let response = match response {
        Ok(response) => response,
        Err(()) => {
            return match failure {
                Some(err) => upstream_failure(&method, &path, &err),
                None => {
                    tracing::warn!(%method, path, "the download failed before any byte was sent");
                    text_response(
                        StatusCode::BAD_GATEWAY,
                        "gphotos-dav: the download from Google failed before any byte was \
                         sent; the server log says why\n",
                    )
                }
            };
        }
    };
    let status = response.status();
    match failure {
        Some(err) if status.is_client_error() || status.is_server_error() => {
            upstream_failure(&method, &path, &err)
        }
        _ => response,
    }
}

/// Waits for the first piece of a GET's body before the response head goes out.
///
/// dav-server sends the head (200 or 206, with a `Content-Length`) before it reads the file,
/// and the file contacts Google at its first read. Without this wait, a refused download (a
/// spent quota, an item Google no longer serves, an expired token) could only show as a body
/// cut after the head: a client cannot tell that from a network fault and retries at once.
/// Here the first read happens first, inside the request's failure scope: a failure becomes an
/// `Err` and the caller answers its status (404, 502, 503 with `Retry-After`) instead. Once
/// bytes flow, a later failure can only cut the connection, never pad it.
async fn first_bytes(response: Response<DavBody>) -> Result<Response<Body>, ()> {
    use http_body::Body as _;
    if !matches!(
        response.status(),
        StatusCode::OK | StatusCode::PARTIAL_CONTENT
    ) || response.body().is_end_stream()
    {
        return Ok(response.map(box_dav_body));
    }
    let (parts, mut body) = response.into_parts();
    let first = match body.frame().await {
        None => return Ok(Response::from_parts(parts, box_dav_body(body))),
        Some(Err(e)) => {
            tracing::debug!("the first read of a download failed: {e}");
            return Err(());
        }
        Some(Ok(frame)) => frame,
    };
    let rest = http_body_util::BodyStream::new(body);
    let stream = futures::stream::once(std::future::ready(Ok(first))).chain(rest);
    Ok(Response::from_parts(
        parts,
        http_body_util::StreamBody::new(stream).boxed_unsync(),
    ))
}

fn box_dav_body(body: DavBody) -> Body {
    body.boxed_unsync()
}
