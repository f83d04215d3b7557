//! Carries the reason of an upstream failure from the filesystem to the HTTP layer.
//!
//! dav-server's `FsError` is a bare code without a message, and its error bodies are empty. A
//! user whose token lacks a scope deserves to read *that*, so the filesystem records the typed
//! error here and the service around the handler turns it into the status and body it answers.
//! The slot is task-local: it lives exactly as long as the handling of one request.
//!
//! The same scope carries one more thing up: the item file a GET opened
//! ([`opened`]/[`take_opened`]), so the handler can stream its bytes to the client itself
//! rather than through dav-server's read loop (`server::handler`).

use std::cell::RefCell;
use std::future::Future;

use super::file::PhotoFile;
use crate::catalog::CatalogError;

tokio::task_local! {
    static FAILURE: RefCell<Option<CatalogError>>;
    static OPENED: RefCell<Option<PhotoFile>>;
}

/// Runs `f` (the handling of one request) and returns what it produced together with the last
/// upstream failure it recorded.
pub async fn capture<F: Future>(f: F) -> (F::Output, Option<CatalogError>) {
    FAILURE
        .scope(
            RefCell::new(None),
            OPENED.scope(RefCell::new(None), async {
                let out = f.await;
                let failure = FAILURE.with(|slot| slot.borrow_mut().take());
                (out, failure)
            }),
        )
        .await
}

/// Notes the item file the request opened for reading (a copy that has read nothing yet).
pub(super) fn opened(file: PhotoFile) {
    let _ = OPENED.try_with(|slot| *slot.borrow_mut() = Some(file));
}

/// The item file the request opened, if it opened one (taken: asked once).
pub fn take_opened() -> Option<PhotoFile> {
    OPENED
        .try_with(|slot| slot.borrow_mut().take())
        .ok()
        .flatten()
}

/// Records `err` for the request being handled, if any (bodies stream outside that scope).
pub fn record(err: &CatalogError) {
    let _ = FAILURE.try_with(|slot| *slot.borrow_mut() = Some(err.clone()));
}
