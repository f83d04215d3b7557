//! Depth normalisation, sixth stage of the tree's stack (PROPFIND only).
//!
//! dav-server lists only the children when a PROPFIND has no Depth header (and omits the
//! target), and answers 501 to `Depth: infinity`. Here a missing Depth becomes `1` (the target
//! and its children; on a file just the file); infinity on a folder is refused with 403
//! `propfind-finite-depth` (a whole-library walk would cost thousands of Google calls), and on
//! a file it means the file (`0`); other values are a 400.

use http::{HeaderValue, Response, StatusCode};

use super::prefix::Target;
use super::stage::{Inner, Next, Req, Res, Stage};
use crate::catalog::Catalog;
use crate::server::response::{full, text_response};

/// The Depth stage (see the module docs).
pub struct Depth {
    catalog: Catalog,
}

impl Depth {
    /// Tells folders from files with `catalog`.
    pub fn new(catalog: Catalog) -> Self {
        Depth { catalog }
    }

    /// Rewrites the Depth of a PROPFIND, or answers it.
    async fn normalise(&self, req: &mut Req) -> Option<Res> {
        let depth = req
            .headers()
            .get("Depth")
            .map(|v| v.to_str().unwrap_or("invalid").trim().to_ascii_lowercase());
        let new_depth = match depth.as_deref() {
            None => "1",
            Some("0") | Some("1") => return None,
            Some("infinity") => {
                if Target::of(req).is_collection(&self.catalog).await {
                    return Some(finite_depth_required());
                }
                "0"
            }
            Some(other) => {
                tracing::info!(depth = other, "PROPFIND with an invalid Depth header");
                return Some(text_response(
                    StatusCode::BAD_REQUEST,
                    "Depth must be 0, 1 or infinity\n",
                ));
            }
        };
        req.headers_mut()
            .insert("Depth", HeaderValue::from_static(new_depth));
        None
    }
}

impl Stage for Depth {
    async fn handle<S: Inner>(&self, mut req: Req, next: Next<S>) -> Res {
        if req.method().as_str() == "PROPFIND"
            && let Some(early) = self.normalise(&mut req).await
        {
            return early;
        }
        next.run(req).await
    }
}

/// RFC 4918's 403 for a `Depth: infinity` PROPFIND this server does not walk.
fn finite_depth_required() -> Res {
    let xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
               <D:error xmlns:D=\"DAV:\"><D:propfind-finite-depth/></D:error>\n";
    let mut resp = Response::new(full(xml.to_string()));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    resp.headers_mut().insert(
        "Content-Type",
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    resp
}
