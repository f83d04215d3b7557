//! A `Content-Length` on every GET answer, tenth stage of the tree's stack (a response stage).
//!
//! dav-server streams some GET answers without a length (the folder index); Windows' WebDAV
//! client handles chunked answers badly, so such an answer is collected and given its length
//! here. File downloads always carry one already and pass through untouched, still streamed.

use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::stage::{Inner, Next, Req, Res, Stage};
use crate::server::response::text_response;

/// The Content-Length stage (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct ContentLength;

impl Stage for ContentLength {
    async fn handle<S: Inner>(&self, req: Req, next: Next<S>) -> Res {
        let is_get = req.method() == Method::GET;
        let response = next.run(req).await;
        if is_get {
            with_content_length(response).await
        } else {
            response
        }
    }
}

/// `response` with a `Content-Length`, collected when it had none.
async fn with_content_length(response: Res) -> Res {
    if response
        .headers()
        .contains_key(http::header::CONTENT_LENGTH)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    match body.collect().await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            parts
                .headers
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            Response::from_parts(
                parts,
                Full::new(bytes)
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
        }
        Err(e) => {
            tracing::warn!("could not produce a folder index: {e}");
            text_response(StatusCode::INTERNAL_SERVER_ERROR, "gphotos-dav: no index\n")
        }
    }
}
