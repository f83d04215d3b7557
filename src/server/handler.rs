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

use bytes::Bytes;
use dav_server::body::Body as DavBody;
use dav_server::{DavHandler, DavMethodSet};
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::Service;

use crate::catalog::{Catalog, CatalogError, ReadSpan};
use crate::dav::file::PhotoFile;
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
    /// `delivery` says. `root`: the catalog folder served as `/` (see `PhotosFs::with_root`).
    pub fn new(
        catalog: Catalog,
        prefix: &Prefix,
        root: &[String],
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
            .with_root(root)
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
    let (response, failure) = run(handler, req).await;
    let response = match response {
        Ok(response) => response,
        Err(()) => return failed_before_bytes(&method, &path, failure),
    };
    let status = response.status();
    match failure {
        Some(err) if status.is_client_error() || status.is_server_error() => {
            upstream_failure(&method, &path, &err)
        }
        _ => response,
    }
}

/// dav-server's answer to `req`, inside the request's failure scope, with the upstream failure
/// it recorded. A GET of an item streams the item's bytes itself ([`lean`]) and holds its
/// head until the first of them ([`first_bytes`]): `Err(())` when they could not be had (the
/// failure says why). The signed-link route runs its own handler through here too.
pub async fn run<B>(
    handler: &DavHandler,
    req: Request<B>,
) -> (Result<Response<Body>, ()>, Option<CatalogError>)
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let is_get = req.method() == Method::GET;
    let span = read_span(&req);
    failure::capture_reading(span, async {
        let response = handler.handle(req).await;
        if is_get {
            first_bytes(lean(response, failure::take_opened())).await
        } else {
            Ok(response.map(box_dav_body))
        }
    })
    .await
}

/// What a GET or HEAD will read of the file it names, as far as the request alone tells
/// (`failure::capture_reading`): all of it, or one `bytes=a-b` / `bytes=a-` range; a HEAD
/// reads nothing, so asks for the first byte only (the answer still tells the size). A suffix
/// range, several ranges or an `If-Range` depend on what dav-server decides: None.
fn read_span<B>(req: &Request<B>) -> Option<ReadSpan> {
    let whole = |start, last| {
        Some(ReadSpan {
            start,
            last,
            streams: true,
        })
    };
    if req.method() == Method::HEAD {
        return Some(ReadSpan {
            start: 0,
            last: Some(0),
            streams: false,
        });
    }
    if req.method() != Method::GET || req.headers().contains_key(http::header::IF_RANGE) {
        return None;
    }
    let Some(range) = req.headers().get(http::header::RANGE) else {
        return whole(0, None);
    };
    let spec = range.to_str().ok()?.trim().strip_prefix("bytes=")?;
    let (first, last) = spec.split_once('-')?;
    let first: u64 = first.trim().parse().ok()?;
    match last.trim() {
        "" => whole(first, None),
        last => {
            let last: u64 = last.parse().ok()?;
            if last >= first {
                whole(first, Some(last))
            } else {
                None
            }
        }
    }
}

/// The answer when a GET's bytes could not be had before its head went out.
pub fn failed_before_bytes(method: &Method, path: &str, failure: Option<CatalogError>) -> Res {
    match failure {
        Some(err) => upstream_failure(method, path, &err),
        None => {
            tracing::warn!(%method, path, "the download failed before any byte was sent");
            text_response(
                StatusCode::BAD_GATEWAY,
                "gphotos-dav: the download from Google failed before any byte was sent; the \
                 server log says why\n",
            )
        }
    }
}

/// The lean GET: dav-server decides the answer (status, conditional requests, Range and
/// If-Range, every header), and its body is replaced by the item's bytes streamed straight
/// from the upstream's chunks ([`PhotoFile::into_stream`]).
///
/// dav-server's own body reads the file in fixed-size pieces through a boxed future each and
/// hands them over through a generator; here each upstream chunk goes to hyper as it came,
/// and the request to Google asks for exactly the client's range (dav-server never tells a
/// file where a range ends). dav-server's body is dropped unread: its file contacts nobody
/// before its first read, so nothing was asked of Google for it.
///
/// Only a single span is replaced (200, or 206 with one `Content-Range`); a multipart
/// answer, an empty one, or a request that opened no item (a local upload's file, a folder)
/// keeps dav-server's body.
fn lean(response: Response<DavBody>, opened: Option<PhotoFile>) -> Response<Body> {
    use http_body::Body as _;
    let Some(file) = opened else {
        return response.map(box_dav_body);
    };
    let span = match response.status() {
        _ if response.body().is_end_stream() => None,
        StatusCode::OK => content_length(&response).map(|n| (0, n)),
        StatusCode::PARTIAL_CONTENT => {
            content_range(&response).filter(|&(_, count)| content_length(&response) == Some(count))
        }
        _ => None,
    };
    let Some((start, count)) = span.filter(|&(_, count)| count > 0) else {
        return response.map(box_dav_body);
    };
    let (parts, _unread) = response.into_parts();
    let frames = file.into_stream(start, count).map(|piece| {
        piece
            .map(http_body::Frame::data)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))
    });
    Response::from_parts(
        parts,
        http_body_util::StreamBody::new(frames).boxed_unsync(),
    )
}

fn content_length<B>(response: &Response<B>) -> Option<u64> {
    response
        .headers()
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// `(start, count)` of a single-range answer's `Content-Range: bytes a-b/len` (parsed as the
/// content host's answers are).
fn content_range<B>(response: &Response<B>) -> Option<(u64, u64)> {
    let value = response
        .headers()
        .get(http::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    let (first, last, _) = crate::google::content::parse_content_range(value)?;
    (last >= first).then_some((first, last - first + 1))
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
async fn first_bytes(response: Response<Body>) -> Result<Response<Body>, ()> {
    use http_body::Body as _;
    if !matches!(
        response.status(),
        StatusCode::OK | StatusCode::PARTIAL_CONTENT
    ) || response.body().is_end_stream()
    {
        return Ok(response);
    }
    let (parts, mut body) = response.into_parts();
    let first = match body.frame().await {
        None => return Ok(Response::from_parts(parts, body)),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn span(method: Method, headers: &[(&str, &str)]) -> Option<ReadSpan> {
        let mut req = Request::builder().method(method).uri("/a.jpg");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        read_span(&req.body(()).unwrap())
    }

    fn get(start: u64, last: Option<u64>) -> Option<ReadSpan> {
        Some(ReadSpan {
            start,
            last,
            streams: true,
        })
    }

    #[test]
    fn the_span_a_request_reads_is_told_only_where_the_request_alone_tells_it() {
        assert_eq!(span(Method::GET, &[]), get(0, None));
        assert_eq!(
            span(Method::GET, &[("range", "bytes=10-99")]),
            get(10, Some(99))
        );
        assert_eq!(
            span(Method::GET, &[("range", "bytes=1000-")]),
            get(1000, None)
        );
        assert_eq!(
            span(Method::GET, &[("range", " bytes=5-5 ")]),
            get(5, Some(5))
        );
        let head = span(Method::HEAD, &[("range", "bytes=10-99")]).unwrap();
        assert_eq!((head.start, head.last, head.streams), (0, Some(0), false));
        // What dav-server decides: a suffix, several ranges, If-Range; and nonsense.
        for range in [
            "bytes=-500",
            "bytes=0-9,20-29",
            "bytes=9-3",
            "items=0-9",
            "bytes=a-",
        ] {
            assert_eq!(span(Method::GET, &[("range", range)]), None, "{range}");
        }
        let if_range = [("range", "bytes=10-"), ("if-range", "\"x\"")];
        assert_eq!(span(Method::GET, &if_range), None);
        assert_eq!(span(Method::PUT, &[]), None);
        assert_eq!(span(Method::from_bytes(b"PROPFIND").unwrap(), &[]), None);
    }
}
