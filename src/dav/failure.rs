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
//!
//! And one thing down: the span a GET or HEAD is about to read ([`capture_reading`]), so that
//! a file whose size nobody knows yet learns it from the download itself, which the file then
//! streams ([`reading`], [`keep_download`]): one request to Google, not a size probe and a
//! download.

use std::cell::RefCell;
use std::future::Future;

use super::file::PhotoFile;
use crate::catalog::{CatalogError, ReadSpan};
use crate::google::content::Download;

tokio::task_local! {
    static FAILURE: RefCell<Option<CatalogError>>;
    static OPENED: RefCell<Option<PhotoFile>>;
    static READING: RefCell<Reading>;
}

/// What the request reads of a file, and the download a stat already opened for it.
#[derive(Default)]
struct Reading {
    /// None: the request reads no file's bytes, or in a way that cannot be told before
    /// dav-server decides.
    span: Option<ReadSpan>,
    /// The download a stat opened to learn an unknown size of item `String`, waiting for the
    /// file to be opened.
    kept: Option<(String, Download)>,
}

/// Runs `f` (the handling of one request) and returns what it produced together with the last
/// upstream failure it recorded.
pub async fn capture<F: Future>(f: F) -> (F::Output, Option<CatalogError>) {
    capture_reading(None, f).await
}

/// [`capture`] for a request that will read `span` of the file it names: a GET with no Range or
/// a single `bytes=a-b` / `bytes=a-`, or a HEAD.
pub async fn capture_reading<F: Future>(
    span: Option<ReadSpan>,
    f: F,
) -> (F::Output, Option<CatalogError>) {
    let reading = Reading { span, kept: None };
    FAILURE
        .scope(
            RefCell::new(None),
            OPENED.scope(
                RefCell::new(None),
                READING.scope(RefCell::new(reading), async {
                    let out = f.await;
                    let failure = FAILURE.with(|slot| slot.borrow_mut().take());
                    (out, failure)
                }),
            ),
        )
        .await
}

/// The span the request reads (see [`capture_reading`]), if it reads one.
pub(super) fn reading() -> Option<ReadSpan> {
    READING.try_with(|r| r.borrow().span).ok().flatten()
}

/// Keeps the download a stat of item `id` opened, for the file the request opens next.
pub(super) fn keep_download(id: String, download: Download) {
    let _ = READING.try_with(|r| r.borrow_mut().kept = Some((id, download)));
}

/// The download kept for item `id`, if any (taken: it is read once).
pub(super) fn take_download(id: &str) -> Option<Download> {
    READING
        .try_with(|r| {
            let mut r = r.borrow_mut();
            match &r.kept {
                Some((kept, _)) if kept == id => r.kept.take().map(|(_, d)| d),
                _ => None,
            }
        })
        .ok()
        .flatten()
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
