//! The gallery page for browsers (issue #17), between the folder-slash stage and the writes:
//! a GET or HEAD of a folder whose `Accept` names `text/html` is answered with the folder's
//! page (`server::web::page`); every other request passes unchanged, so Finder (`*/*`) and
//! WebDAV clients get exactly what dav-server answers them.
//!
//! The page's answer carries `Vary: Accept`: the same URL answers a browser and a WebDAV
//! client differently, and a cache between them must keep the two apart.

use http::{HeaderValue, Method};

use super::prefix::Target;
use super::stage::{Inner, Next, Req, Res, Stage};
use crate::server::web::{Asked, Web};

/// The gallery stage (see the module docs).
pub struct Gallery {
    web: Web,
}

impl Gallery {
    pub fn new(web: Web) -> Self {
        Gallery { web }
    }
}

/// Whether `Accept` names `text/html` (with a weight above 0): what browsers send when they
/// navigate, and no WebDAV client does (Finder sends `*/*`).
pub fn wants_html(req: &Req) -> bool {
    req.headers()
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case("text/html") && !refused
        })
}

impl Stage for Gallery {
    async fn handle<S: Inner>(&self, req: Req, next: Next<S>) -> Res {
        if (req.method() == Method::GET || req.method() == Method::HEAD) && wants_html(&req) {
            let target = Target::of(&req);
            let asked = Asked::of(&req);
            if let Some(mut resp) = self.web.folder_page(&asked, &target.tree).await {
                resp.headers_mut()
                    .insert(http::header::VARY, HeaderValue::from_static("Accept"));
                return resp;
            }
        }
        next.run(req).await
    }
}

/// The gallery's own routes, `<prefix>/_/` (the API, thumbnails, assets), at the top of a
/// library's stages: below authentication (the same credentials as the tree; a read-only
/// user's POST is refused there), and per library (a family server's `/<mount>/_/`). `_` is
/// in `catalog::RESERVED_ROOT_NAMES`, so no folder of the tree hides behind them.
pub struct WebRoutes {
    web: Web,
    base: String,
}

impl WebRoutes {
    pub fn new(web: Web) -> Self {
        let base = web.base();
        WebRoutes { web, base }
    }
}

impl Stage for WebRoutes {
    async fn handle<S: Inner>(&self, req: Req, next: Next<S>) -> Res {
        if req.uri().path().starts_with(&self.base) {
            return self.web.handle(req).await;
        }
        if req.method() == Method::POST {
            return super::methods::refuse(&req);
        }
        next.run(req).await
    }
}
