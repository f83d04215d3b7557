//! Client probes, fifth stage of the tree's stack: a desktop client's look for a file it
//! expects to be missing (`.DS_Store`, `desktop.ini`, `Thumbs.db` and the like; the list is in
//! `dav::probes`) is answered 404 here, unless listings already in memory or the files kept
//! on this server show that name. A probe never costs a Google call.

use http::StatusCode;

use super::prefix::Target;
use super::stage::{Inner, Next, Req, Res, Stage};
use crate::catalog::Catalog;
use crate::dav::probes;
use crate::server::response::text_response;
use crate::upload::local::LocalFiles;

/// The probe stage (see the module docs).
pub struct Probes {
    catalog: Catalog,
    /// The files kept on this server (writable servers only): a probed name may be one.
    local: Option<LocalFiles>,
}

impl Probes {
    /// Answers from what `catalog` and `local` hold in memory.
    pub fn new(catalog: Catalog, local: Option<LocalFiles>) -> Self {
        Probes { catalog, local }
    }

    /// The 404 for a probe of a name nothing in memory shows, or None to pass it on.
    fn miss(&self, req: &Req) -> Option<Res> {
        if !matches!(req.method().as_str(), "GET" | "HEAD" | "PROPFIND") {
            return None;
        }
        let target = Target::of(req);
        let segs = target.segments()?;
        let agent = req
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let kept_locally = self
            .local
            .as_ref()
            .is_some_and(|l| l.get(&crate::upload::local::key(&segs)).is_some());
        if !segs.iter().any(|s| probes::is_probe(s, agent))
            || kept_locally
            || self.catalog.resolves_from_memory(&segs)
        {
            return None;
        }
        tracing::debug!(path = target.tree, "client probe answered from memory");
        Some(text_response(StatusCode::NOT_FOUND, ""))
    }
}

impl Stage for Probes {
    async fn handle<S: Inner>(&self, req: Req, next: Next<S>) -> Res {
        match self.miss(&req) {
            Some(miss) => miss,
            None => next.run(req).await,
        }
    }
}
