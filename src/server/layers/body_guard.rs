//! The body guard, fourth stage of the tree's stack: XML bodies read whole (bounded) and
//! refused when they declare a DOCTYPE or nest too deep, other bodies but a PUT's read whole
//! so that a broken one is a 400 (the checks and why they exist: `guard`).
//!
//! It runs after authentication, so a client without credentials never makes the server read
//! a megabyte of XML; a PUT's body streams on untouched to the upload.

use super::guard::screen;
use super::stage::{Inner, Next, Peer, Req, Res, Stage};

/// The body guard stage (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyGuard;

impl Stage for BodyGuard {
    async fn handle<S: Inner>(&self, req: Req, next: Next<S>) -> Res {
        let peer = Peer::of(&req);
        let method = req.method().clone();
        match screen(req).await {
            Ok(req) => next.run(req).await,
            Err(rejection) => rejection.response(peer, &method),
        }
    }
}
