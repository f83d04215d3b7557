//! Folders without their slash, seventh stage of the tree's stack (GET and HEAD only).
//!
//! dav-server answers GET and HEAD on a folder named without its trailing slash with a 302 to
//! the slashed URL. Windows asks for `/folder` and does not follow redirects, so such a
//! request is served here as if it had the slash.

use super::prefix::Target;
use super::stage::{Inner, Next, Req, Res, Stage};
use crate::catalog::Catalog;

/// The folder-slash stage (see the module docs).
pub struct FolderSlash {
    catalog: Catalog,
}

impl FolderSlash {
    /// Tells folders from files with `catalog`.
    pub fn new(catalog: Catalog) -> Self {
        FolderSlash { catalog }
    }

    /// Gives `req` the slash when it names a folder without one.
    async fn add_slash(&self, req: &mut Req) {
        let path = req.uri().path();
        if path.ends_with('/') || !Target::of(req).is_collection(&self.catalog).await {
            return;
        }
        let path = req.uri().path();
        let slashed = match req.uri().query() {
            Some(q) => format!("{path}/?{q}"),
            None => format!("{path}/"),
        };
        let mut parts = req.uri().clone().into_parts();
        match slashed.parse() {
            Ok(pq) => parts.path_and_query = Some(pq),
            Err(_) => return,
        }
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}

impl Stage for FolderSlash {
    async fn handle<S: Inner>(&self, mut req: Req, next: Next<S>) -> Res {
        if req.method() == http::Method::GET || req.method() == http::Method::HEAD {
            self.add_slash(&mut req).await;
        }
        next.run(req).await
    }
}
