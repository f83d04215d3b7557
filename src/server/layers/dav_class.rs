//! A truthful `DAV` header, eleventh stage of the tree's stack (a response stage).
//!
//! dav-server always claims classes 1, 2 and 3. A read-only server has no lock system and
//! says class 1; a writable one locks with dav-server's `MemLs` and says `1, 2` (Finder mounts
//! read-only without class 2).

use http::HeaderValue;

use super::stage::{Inner, Next, Req, Res, Stage};

/// The DAV-class stage (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct DavClass {
    class: &'static str,
}

impl DavClass {
    /// Class `1, 2` when the server locks (is writable), else `1`.
    pub fn new(locks: bool) -> Self {
        DavClass {
            class: if locks { "1, 2" } else { "1" },
        }
    }
}

impl Stage for DavClass {
    async fn handle<S: Inner>(&self, req: Req, next: Next<S>) -> Res {
        let mut response = next.run(req).await;
        if response.headers().contains_key("DAV") {
            response
                .headers_mut()
                .insert("DAV", HeaderValue::from_static(self.class));
        }
        response
    }
}
