//! The write path: PUT uploads a photo or video, MKCOL creates an album, COPY, MOVE and
//! DELETE change which albums hold an item ([`organise`]), and the writes Google cannot do
//! (deleting or renaming items, deleting albums) are refused with the reason.
//!
//! A PUT goes through these steps, and each can end it with a status and a message:
//! 1. **Where.** `/album/<title>/<name>` (an existing album) or `/upload/<name>` (no album);
//!    anywhere else is 403. Finder's `._*` and `.DS_Store` are kept in memory, never uploaded
//!    ([`local`]). Locks (LOCK/UNLOCK, dav-server's `MemLs`) are checked as dav-server would.
//! 2. **Spool** ([`spool`]). The body is written to a temporary file (mode 0600) while it is hashed
//!    (SHA-256), counted and sniffed: content that is not an image or video is 415 after its
//!    first bytes, a photo over 200 MB or a video over 20 GB is 413 as soon as it is known,
//!    and a body shorter or longer than announced (`Content-Length`, or Finder's
//!    `X-Expected-Entity-Length`) is 400: nothing is created for it. An empty body is a
//!    placeholder (Finder and Explorer create files in several steps), kept locally.
//! 3. **Idempotence.** The store remembers the SHA-256 and size of what was uploaded at each
//!    path. The same bytes again answer 204 without any Google call (so re-running
//!    `rclone copy` never duplicates items, which Google can never delete); other bytes
//!    answer 409, since Google cannot replace an item. A name the tree already shows that
//!    was not uploaded here is 409 too.
//! 4. **Upload.** The file streams to Google (raw, or resumable when large), giving an
//!    upload token; the [`batcher`] creates the item together with others finishing at the
//!    same time. The PUT answers 201 only once its own item exists, and the store records it.
//! 5. **Afterwards.** The listings that show the new item are forgotten, so the next listing
//!    probes the size Google actually serves (which differs from the upload: see
//!    docs/uploads.md). A video is listed with its uploaded size until Google has processed
//!    it (see `catalog::processing`).
//!
//! Steps 2 to 5 run one at a time per path, so two PUTs of one name cannot both upload.
//!
//! MKCOL, DELETE and MOVE are in [`folders`], the album changes of COPY, MOVE and DELETE in
//! [`organise`]; every refusal is worded once, in [`answer`].

mod answer;
pub mod batcher;
mod folders;
pub mod local;
mod organise;
pub mod sniff;
mod spool;

pub use answer::Answer;

use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dav_server::davpath::DavPath;
use dav_server::ls::DavLockSystem;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;

use crate::catalog::store::Upload;
use crate::catalog::{Catalog, CatalogError, UploadDir};
use crate::google::library::NewItem;
use crate::google::{UploadClient, UploadTuning};
use answer::{CANNOT_REPLACE, NOT_HERE, not_media, too_large};
use batcher::{BatchPolicy, Batcher, CreateError};
use local::LocalFiles;
use sniff::Kind;
use spool::announced_length;

/// The request body, as the HTTP layer hands it over.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// How uploads are batched and sent (`[upload]` in the configuration).
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// How long the batcher waits after the first finished upload for others to join.
    pub batch_window: Duration,
    /// At most this many items per batch (Google: 50).
    pub batch_max_items: usize,
    /// Close a batch as soon as no other upload is on its way (see `batcher`).
    pub batch_close_early: bool,
    /// Where PUT bodies are spooled (None: the system's temporary directory).
    pub spool_dir: Option<PathBuf>,
    /// Raw or resumable, chunk sizes.
    pub tuning: UploadTuning,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            batch_window: Duration::from_secs(2),
            batch_max_items: 50,
            batch_close_early: true,
            spool_dir: None,
            tuning: UploadTuning::default(),
        }
    }
}

/// The write path. Cheap to clone.
#[derive(Clone)]
pub struct Uploader {
    catalog: Catalog,
    upload: UploadClient,
    batcher: Batcher,
    /// Album additions and removals, collected like item creations (see [`organise`]).
    albums: organise::AlbumBatches,
    local: LocalFiles,
    locks: Box<dyn DavLockSystem>,
    spool_dir: PathBuf,
    /// One gate per path being written.
    gates: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// One per folder written into: PUTs share it, an album rename takes it alone, so no
    /// upload is recorded under a folder name that stopped existing while it ran.
    folders: Arc<Mutex<HashMap<String, Arc<tokio::sync::RwLock<()>>>>>,
}

/// The lock tokens a request submits in its `If` header (`(<opaquelocktoken:...>)`).
fn submitted_tokens(headers: &HeaderMap) -> Vec<String> {
    let Some(value) = headers.get("If").and_then(|v| v.to_str().ok()) else {
        return Vec::new();
    };
    let mut tokens = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        let inside = &rest[start + 1..start + len];
        // Resource tags (`<http://...>`) name resources, not locks.
        if !inside.contains("://") {
            tokens.push(inside.to_string());
        }
        rest = &rest[start + len + 1..];
    }
    tokens
}

impl Uploader {
    /// Starts the batcher on the current runtime.
    pub fn new(
        catalog: Catalog,
        local: LocalFiles,
        locks: Box<dyn DavLockSystem>,
        opts: UploadOptions,
    ) -> Uploader {
        let google = catalog.google();
        let policy = BatchPolicy {
            window: opts.batch_window,
            max_items: opts.batch_max_items,
            close_early: opts.batch_close_early,
        };
        let batcher = Batcher::start(google.library.clone(), policy);
        let albums = organise::AlbumBatches::start(google.library.clone(), policy);
        Uploader {
            upload: google.upload.clone().with_tuning(opts.tuning.clone()),
            batcher,
            albums,
            local,
            locks,
            spool_dir: opts.spool_dir.unwrap_or_else(std::env::temp_dir),
            gates: Arc::default(),
            folders: Arc::default(),
            catalog,
        }
    }

    pub fn local(&self) -> &LocalFiles {
        &self.local
    }

    fn gate(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self.gates.lock();
        // Drop gates nobody holds, so the map does not grow with every path ever written.
        gates.retain(|_, g| Arc::strong_count(g) > 1);
        gates.entry(key.to_string()).or_default().clone()
    }

    fn folder_gate(&self, key: &str) -> Arc<tokio::sync::RwLock<()>> {
        let mut folders = self.folders.lock();
        folders.retain(|_, g| Arc::strong_count(g) > 1);
        folders.entry(key.to_string()).or_default().clone()
    }

    /// Whether a write may change `path` under the lock system (RFC 4918 7): a locked
    /// resource, or with `deep` one holding a locked resource, needs its lock token in the
    /// request's `If` header; 423 otherwise. DELETE and MOVE ask it of their source, COPY and
    /// MOVE of their destination (PUT checks its own path).
    pub async fn lock_check(
        &self,
        path: &DavPath,
        deep: bool,
        headers: &HeaderMap,
    ) -> Result<(), Answer> {
        self.locks
            .check(path, None, false, deep, &submitted_tokens(headers))
            .await
            .map_err(|_| {
                Answer::new(
                    StatusCode::LOCKED,
                    "the resource is locked; send the lock token in an If header",
                )
            })
    }

    /// PUT of `segments` (`lock_path` as dav-server's lock system knows it).
    pub async fn put(
        &self,
        segments: &[String],
        lock_path: &DavPath,
        headers: &HeaderMap,
        body: Body,
    ) -> Answer {
        let Some((name, dir)) = segments.split_last() else {
            return Answer::new(StatusCode::FORBIDDEN, NOT_HERE);
        };
        let key = local::key(segments);
        let folder = self.folder_gate(&local::key(dir));
        let _in_folder = folder.read().await;
        if self
            .locks
            .check(lock_path, None, false, false, &submitted_tokens(headers))
            .await
            .is_err()
        {
            return Answer::new(
                StatusCode::LOCKED,
                "the file is locked; send the lock token in an If header",
            );
        }
        if local::is_sidecar(name) {
            return match self.catalog.is_dir(dir).await {
                Ok(true) => self.put_sidecar(&key, body).await,
                Ok(false) | Err(CatalogError::NotFound) => {
                    Answer::new(StatusCode::CONFLICT, "the folder does not exist")
                }
                Err(e) => Answer::catalog("cannot list the folder", &e),
            };
        }
        let album = match self.catalog.upload_dir(dir).await {
            Ok(Some(UploadDir::Album(id))) => Some(id),
            Ok(Some(UploadDir::NoAlbum)) => None,
            Ok(None) => return Answer::new(StatusCode::FORBIDDEN, NOT_HERE),
            Err(CatalogError::NotFound) => {
                return Answer::new(
                    StatusCode::CONFLICT,
                    "the folder does not exist; create an album with MKCOL /album/<title> first",
                );
            }
            Err(e) => return Answer::catalog("cannot list the folder", &e),
        };
        let announced = announced_length(headers);
        if announced.is_some_and(|n| n > sniff::VIDEO_MAX) {
            return too_large(Kind::Video);
        }

        let gate = self.gate(&key);
        let _held = gate.lock().await;
        let recorded = self.catalog.store().upload_at(&key).await;
        // A record whose item has left the album since (a DELETE, or a MOVE out of it) no
        // longer says what the folder holds: it is `left`, kept only so that the same bytes
        // put that item back rather than uploading a duplicate.
        let (recorded, left) = match (recorded, &album) {
            (Some(up), Some(_)) => match self.catalog.folder_holds(dir, &up.item_id).await {
                Ok(true) => (Some(up), None),
                Ok(false) => (None, Some(up)),
                Err(e) => return Answer::catalog("cannot list the folder", &e),
            },
            (recorded, _) => (recorded, None),
        };
        if recorded.is_none() {
            match self.catalog.is_file(segments).await {
                Ok(true) => return Answer::new(StatusCode::CONFLICT, CANNOT_REPLACE),
                Ok(false) => {}
                Err(CatalogError::NotFound) => {}
                Err(e) => return Answer::catalog("cannot list the folder", &e),
            }
        }
        // From here this PUT may produce an item: batches wait for it (see `batcher`).
        let ticket = self.batcher.ticket();
        let spooled = match spool::spool(&self.spool_dir, body, announced).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
        if spooled.size == 0 {
            if recorded.is_some() {
                return Answer::new(StatusCode::CONFLICT, CANNOT_REPLACE);
            }
            return match self.local.put(&key, Bytes::new()) {
                Some(true) => Answer::new(StatusCode::NO_CONTENT, ""),
                Some(false) => Answer::new(StatusCode::CREATED, ""),
                None => Answer::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "too many placeholder files are open",
                ),
            };
        }
        if let (Some(up), Some(album)) = (&left, &album)
            && up.sha256 == spooled.sha256
            && up.size == spooled.size
        {
            return self.put_back(&key, album, &up.item_id).await;
        }
        if let Some(up) = recorded {
            if up.sha256 == spooled.sha256 && up.size == spooled.size {
                tracing::info!(path = %key, "identical bytes were already uploaded here; nothing to do");
                return Answer::new(StatusCode::NO_CONTENT, "");
            }
            return Answer::new(StatusCode::CONFLICT, CANNOT_REPLACE);
        }
        let Some((kind, mime)) = spooled.kind else {
            return not_media();
        };
        let token = match self
            .upload
            .upload_file(&spooled.path, spooled.size, mime)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(path = %key, "upload failed: {e}");
                return Answer::upstream("Google did not accept the upload", &e);
            }
        };
        let file_name = crate::catalog::naming::nfc(name);
        let item = match self
            .batcher
            .create(
                ticket,
                album.clone(),
                NewItem {
                    upload_token: token,
                    file_name,
                },
            )
            .await
        {
            Ok(item) => item,
            Err(CreateError::Call(e)) => {
                tracing::warn!(path = %key, "batchCreate failed: {e}");
                return Answer::upstream("Google could not create the item", &e);
            }
            Err(e) => {
                tracing::warn!(path = %key, "item not created: {e}");
                return Answer::new(StatusCode::BAD_GATEWAY, e.to_string());
            }
        };
        tracing::info!(path = %key, item = %item.id, size = spooled.size, kind = kind.noun(), "uploaded");
        if let Err(e) = self
            .catalog
            .store()
            .record_upload(Upload {
                path: key.clone(),
                sha256: spooled.sha256.clone(),
                size: spooled.size,
                item_id: item.id.clone(),
                uploaded_at: chrono::Utc::now(),
            })
            .await
        {
            // The item exists; only the duplicate check for a later PUT is lost.
            tracing::error!(path = %key, "could not record the upload in the store: {e}");
        }
        // What listings show for the item while Google processes it (a video).
        self.catalog.note_upload(&item.id, spooled.size);
        let had_placeholder = self.local.remove(&key);
        self.catalog.forget_uploaded(album.as_deref());
        if had_placeholder {
            Answer::new(StatusCode::NO_CONTENT, "")
        } else {
            Answer::new(StatusCode::CREATED, "")
        }
    }

    /// Finder's `._*` and `.DS_Store`: kept in memory (see [`local`]).
    async fn put_sidecar(&self, key: &str, mut body: Body) -> Answer {
        let mut kept = Vec::new();
        let mut dropped = false;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        if kept.len() + data.len() > local::SIDECAR_MAX {
                            dropped = true;
                        } else {
                            kept.extend_from_slice(&data);
                        }
                    }
                }
                Err(_) => {
                    return Answer::new(StatusCode::BAD_REQUEST, "the request body broke off");
                }
            }
        }
        if dropped {
            return Answer::new(StatusCode::CREATED, "");
        }
        match self.local.put(key, Bytes::from(kept)) {
            Some(true) => Answer::new(StatusCode::NO_CONTENT, ""),
            _ => Answer::new(StatusCode::CREATED, ""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_header_tokens() {
        let mut h = HeaderMap::new();
        h.insert(
            "If",
            "<http://host/a.jpg> (<opaquelocktoken:abc-1>) (Not <DAV:no-lock>)"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            submitted_tokens(&h),
            vec![
                "opaquelocktoken:abc-1".to_string(),
                "DAV:no-lock".to_string()
            ]
        );
        let mut h = HeaderMap::new();
        h.insert("X-Expected-Entity-Length", "42".parse().unwrap());
        h.insert("Content-Length", "7".parse().unwrap());
        assert_eq!(announced_length(&h), Some(42));
    }
}
