//! Unknown methods, second stage of the tree's stack: anything but the methods WebDAV classes
//! 1 and 2 define is answered 405 here, before credentials are asked for. dav-server would
//! treat an unknown method like a GET.

use http::{HeaderValue, StatusCode};

use super::stage::{Inner, Next, Peer, Req, Res, Stage};
use crate::server::response::text_response;

/// The methods WebDAV class 1 and 2 define.
const KNOWN_METHODS: [&str; 13] = [
    "OPTIONS",
    "GET",
    "HEAD",
    "PROPFIND",
    "PROPPATCH",
    "PUT",
    "DELETE",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    // The gallery's API (`<prefix>/_/api/`); anywhere else `gallery::WebRoutes` refuses it
    // as this stage refuses unknown methods.
    "POST",
];

/// The method stage (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct KnownMethods;

impl Stage for KnownMethods {
    async fn handle<S: Inner>(&self, req: Req, next: Next<S>) -> Res {
        let method = req.method();
        if KNOWN_METHODS.contains(&method.as_str()) {
            return next.run(req).await;
        }
        refuse(&req)
    }
}

/// The 405 for a method the tree does not take (logged with the peer).
pub fn refuse(req: &Req) -> Res {
    let method = req.method();
    {
        tracing::info!(peer = %Peer::of(req), %method, "unknown method refused");
        let mut resp = text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("gphotos-dav: method {method} is not supported\n"),
        );
        resp.headers_mut().insert(
            http::header::ALLOW,
            HeaderValue::from_static(
                "OPTIONS, GET, HEAD, PROPFIND, PROPPATCH, PUT, DELETE, MKCOL, COPY, MOVE",
            ),
        );
        resp
    }
}
