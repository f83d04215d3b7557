//! The response helpers every part of the HTTP side shares: the body type, plain-text answers,
//! and the answer for a request Google failed.
//!
//! They live here, below everything else in `server`, so that the stages of the stack, the
//! signed-link route and the DAV handler all import them from one place and none of them imports
//! another to borrow a helper (which is how `signed` and `service` once ended up in an import
//! cycle). This module imports nothing from `server`.

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};

use crate::catalog::CatalogError;
use crate::google::GoogleError;

/// The body of every response the stack produces: streamed (a download, a listing) or whole
/// (a message), boxed so that all stages and routes answer with one type.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// The request body every stage sees: hyper's body, boxed at the connection with its error made
/// an `io::Error` (the type dav-server and the uploader read), and after the body guard either
/// the whole screened body or, for a PUT, still the stream.
pub type ReqBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// How much of a file dav-server asks the filesystem for per read (the tree's handler and the
/// signed-link handler alike).
pub const READ_BUF_SIZE: usize = 256 * 1024;

/// A response with a plain-text body (`text` may be empty).
pub fn text_response(status: StatusCode, text: &str) -> Response<Body> {
    let mut resp = Response::new(full(text.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        "Content-Type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A whole body from a string.
pub fn full(text: String) -> Body {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// The answer for a request that failed because Google did: a status that tells the client
/// it was not its fault, and a body and log line that tell the user what to do.
pub fn upstream_failure(method: &Method, path: &str, err: &CatalogError) -> Response<Body> {
    let (status, retry_after) = match err {
        CatalogError::NotFound | CatalogError::Google(GoogleError::NotFound(_)) => {
            (StatusCode::NOT_FOUND, None)
        }
        CatalogError::Google(GoogleError::RateLimited { retry_after, .. }) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(retry_after.map_or(60, |d| d.as_secs().max(1))),
        ),
        CatalogError::Google(GoogleError::GateClosed { retry_after, .. }) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(retry_after.as_secs().max(1)),
        ),
        // Not Google's refusal: ours, to keep the day's media quota for downloads.
        CatalogError::ProbeBudgetSpent { retry_after, .. }
        | CatalogError::Google(GoogleError::ProbeBudgetSpent { retry_after }) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(retry_after.as_secs().max(1)),
        ),
        CatalogError::Google(_) => (StatusCode::BAD_GATEWAY, None),
        // Not a failure: the video exists, Google has not finished transcoding it.
        CatalogError::Processing { retry_after } => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(retry_after.as_secs().max(1)),
        ),
    };
    if matches!(
        err,
        CatalogError::Processing { .. } | CatalogError::ProbeBudgetSpent { .. }
    ) {
        tracing::info!(%method, path, status = status.as_u16(), "not yet: {err}");
    } else {
        tracing::warn!(%method, path, status = status.as_u16(), "request failed upstream: {err}");
    }
    let mut resp = text_response(status, &format!("gphotos-dav: {err}\n"));
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert("Retry-After", HeaderValue::from(secs));
    }
    resp
}
