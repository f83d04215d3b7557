//! Conditionals on redirects, ninth stage of the tree's stack and the outermost of its
//! response stages (redirecting policies only; see `server::policy`).
//!
//! Under `302_redirect` and `use_proxy_url` dav-server answers a file's GET with its 302
//! before it evaluates If-None-Match and friends. This stage keeps the request's headers on
//! the way in and applies them to the 302 on the way out
//! ([`conditional_redirect`]): a client revalidating its copy gets 304, not a new URL.

use super::stage::{Inner, Next, Req, Res, Stage};
use crate::server::policy::conditional_redirect;

/// The conditionals stage (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct RedirectConditionals {
    /// Whether files redirect at all (not under `native_proxy`, where dav-server evaluates
    /// the conditionals itself).
    redirecting: bool,
}

impl RedirectConditionals {
    /// Active when `redirecting`.
    pub fn new(redirecting: bool) -> Self {
        RedirectConditionals { redirecting }
    }
}

impl Stage for RedirectConditionals {
    async fn handle<S: Inner>(&self, req: Req, next: Next<S>) -> Res {
        if !self.redirecting {
            return next.run(req).await;
        }
        let method = req.method().clone();
        let headers = req.headers().clone();
        let response = next.run(req).await;
        conditional_redirect(&method, &headers, response)
    }
}
