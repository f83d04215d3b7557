//! The write path: PUT uploads a photo or video, MKCOL creates an album, and the writes
//! Google cannot do (DELETE, MOVE, COPY) are refused with the reason.
//!
//! A PUT goes through these steps, and each can end it with a status and a message:
//! 1. **Where.** `/album/<title>/<name>` (an existing album) or `/upload/<name>` (no album);
//!    anywhere else is 403. Finder's `._*` and `.DS_Store` are kept in memory, never uploaded
//!    ([`local`]). Locks (LOCK/UNLOCK, dav-server's `MemLs`) are checked as dav-server would.
//! 2. **Spool.** The body is written to a temporary file (mode 0600) while it is hashed
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

pub mod batcher;
pub mod local;
pub mod sniff;

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
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::catalog::store::Upload;
use crate::catalog::{Catalog, CatalogError, Entry, FolderKey, UploadDir};
use crate::google::library::NewItem;
use crate::google::{GoogleError, UploadClient, UploadTuning};
use batcher::{BatchPolicy, Batcher, CreateError};
use local::LocalFiles;
use sniff::Kind;

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

/// What a write request is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub message: String,
    /// Seconds, for 503 answers caused by Google's rate limits.
    pub retry_after: Option<u64>,
}

impl Answer {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Answer {
        Answer {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A failure to look a path up (other than NotFound), worded for the user.
    fn catalog(what: &str, e: &CatalogError) -> Answer {
        match e {
            CatalogError::Google(e) => Answer::upstream(what, e),
            CatalogError::Processing { retry_after } => Answer {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!("{what}: {e}"),
                retry_after: Some(retry_after.as_secs().max(1)),
            },
            CatalogError::NotFound => Answer::new(StatusCode::NOT_FOUND, format!("{what}: {e}")),
        }
    }

    /// A failure of Google's, worded for the user. A missing scope is 403, as for an album
    /// rename without the edit scope: no retry helps until the user authorizes again, and
    /// the message says how (for an upload, Google's uploads endpoint answers it with a
    /// 401 code 16, which `google::upload` recognises).
    fn upstream(what: &str, e: &GoogleError) -> Answer {
        let (status, retry_after) = match e {
            GoogleError::RateLimited { retry_after, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                Some(retry_after.map_or(60, |d| d.as_secs().max(1))),
            ),
            GoogleError::InsufficientScopes => (StatusCode::FORBIDDEN, None),
            GoogleError::GateClosed { retry_after, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                Some(retry_after.as_secs().max(1)),
            ),
            _ => (StatusCode::BAD_GATEWAY, None),
        };
        let message = match e {
            GoogleError::InsufficientScopes => format!(
                "{what}: {e}. Run `gphotos-dav auth` again to grant them (it asks for every \
                 scope this program uses)"
            ),
            _ => format!("{what}: {e}"),
        };
        Answer {
            status,
            message,
            retry_after,
        }
    }
}

const NOT_HERE: &str = "files can only be created in an album folder (/album/<title>/<name>) or \
    in /upload/<name>; the other folders are views Google fills";
const CANNOT_REPLACE: &str = "Google Photos cannot replace or change an item once it is \
    uploaded (its API cannot delete or overwrite items), and different bytes were already \
    uploaded under this name. Upload under another name, or delete the item in the Google \
    Photos app first";
const CANNOT_DELETE: &str = "Google Photos' API cannot delete items or albums; delete them in \
    the Google Photos app";
const CANNOT_MOVE: &str = "Google Photos' API cannot move, rename or copy items, nor move or \
    copy albums; the one move it can do is renaming an album folder within /album";

/// The write path. Cheap to clone.
#[derive(Clone)]
pub struct Uploader {
    catalog: Catalog,
    upload: UploadClient,
    batcher: Batcher,
    local: LocalFiles,
    locks: Box<dyn DavLockSystem>,
    spool_dir: PathBuf,
    /// One gate per path being written.
    gates: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// One per folder written into: PUTs share it, an album rename takes it alone, so no
    /// upload is recorded under a folder name that stopped existing while it ran.
    folders: Arc<Mutex<HashMap<String, Arc<tokio::sync::RwLock<()>>>>>,
}

/// A spooled body.
struct Spooled {
    /// Deleted when dropped.
    path: tempfile::TempPath,
    size: u64,
    sha256: String,
    kind: Option<(Kind, &'static str)>,
}

/// The length a client announced: `Content-Length`, or Finder's `X-Expected-Entity-Length`
/// with a chunked body.
fn announced_length(headers: &HeaderMap) -> Option<u64> {
    ["X-Expected-Entity-Length", "Content-Length"]
        .iter()
        .find_map(|h| headers.get(*h)?.to_str().ok()?.trim().parse().ok())
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
        let batcher = Batcher::start(
            google.library.clone(),
            BatchPolicy {
                window: opts.batch_window,
                max_items: opts.batch_max_items,
                close_early: opts.batch_close_early,
            },
        );
        Uploader {
            upload: google.upload.clone().with_tuning(opts.tuning.clone()),
            batcher,
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
        let spooled = match self.spool(body, announced).await {
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

    /// Writes the body to a temporary file, hashing, counting and sniffing it (see the
    /// module docs for what ends it early).
    async fn spool(&self, mut body: Body, announced: Option<u64>) -> Result<Spooled, Answer> {
        let tmp = tempfile::Builder::new()
            .prefix(".gphotos-dav-upload-")
            .tempfile_in(&self.spool_dir)
            .map_err(|e| {
                tracing::error!(dir = %self.spool_dir.display(), "cannot create a spool file: {e}");
                Answer::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "the server cannot spool the upload (see its log)",
                )
            })?;
        let (file, path) = tmp.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut head: Vec<u8> = Vec::with_capacity(sniff::SNIFF_LEN);
        let mut kind: Option<(Kind, &'static str)> = None;
        let disk_error = |e: std::io::Error| {
            tracing::error!("cannot write a spool file: {e}");
            Answer::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "the server cannot spool the upload (see its log)",
            )
        };
        while let Some(frame) = body.frame().await {
            let data = match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
                Err(e) => {
                    tracing::info!("upload body broke off after {size} bytes: {e}");
                    return Err(Answer::new(
                        StatusCode::BAD_REQUEST,
                        "the request body broke off before its end; nothing was uploaded",
                    ));
                }
            };
            size += data.len() as u64;
            if announced.is_some_and(|n| size > n) {
                return Err(length_mismatch(size, announced));
            }
            if kind.is_none() && head.len() < sniff::SNIFF_LEN {
                let take = (sniff::SNIFF_LEN - head.len()).min(data.len());
                head.extend_from_slice(&data[..take]);
                if head.len() == sniff::SNIFF_LEN {
                    kind = Some(sniff::sniff(&head).ok_or_else(not_media)?);
                }
            }
            if let Some((k, _)) = kind
                && (size > k.max_size() || announced.is_some_and(|n| n > k.max_size()))
            {
                return Err(too_large(k));
            }
            hasher.update(&data);
            file.write_all(&data).await.map_err(disk_error)?;
        }
        if announced.is_some_and(|n| n != size) {
            return Err(length_mismatch(size, announced));
        }
        if kind.is_none() && size > 0 {
            kind = Some(sniff::sniff(&head).ok_or_else(not_media)?);
        }
        file.flush().await.map_err(disk_error)?;
        file.sync_all().await.map_err(disk_error)?;
        Ok(Spooled {
            path,
            size,
            sha256: hex::encode(hasher.finalize()),
            kind,
        })
    }

    /// MKCOL of `segments`: `/album/<title>` creates an album.
    pub async fn mkcol(&self, segments: &[String]) -> Answer {
        // One at a time per path: two clients creating the same folder make one album.
        let gate = self.gate(&local::key(segments));
        let _held = gate.lock().await;
        match self.catalog.is_dir(segments).await {
            Ok(true) => {
                return Answer::new(StatusCode::METHOD_NOT_ALLOWED, "the folder already exists");
            }
            Ok(false) | Err(CatalogError::NotFound) => {}
            Err(e) => return Answer::catalog("cannot list albums", &e),
        }
        let [albums, title] = segments else {
            return Answer::new(
                StatusCode::FORBIDDEN,
                "new folders can only be albums: MKCOL /album/<title>",
            );
        };
        if albums != "album" || self.catalog.upload_dir(&[]).await.ok().flatten().is_some() {
            return Answer::new(
                StatusCode::FORBIDDEN,
                "new folders can only be albums: MKCOL /album/<title>",
            );
        }
        let title = match album_title(title) {
            Ok(title) => title,
            Err(refused) => return refused,
        };
        match self.catalog.google().library.create_album(&title).await {
            Ok(album) => {
                tracing::info!(album = %album.id, %title, "album created");
                self.catalog.forget_albums();
                Answer::new(StatusCode::CREATED, "")
            }
            Err(e) => Answer::upstream("Google could not create the album", &e),
        }
    }

    /// DELETE of `segments`: local files (placeholders, sidecars) go; Google's items stay.
    pub fn delete(&self, segments: &[String]) -> Answer {
        if self.local.remove(&local::key(segments)) {
            return Answer::new(StatusCode::NO_CONTENT, "");
        }
        Answer::new(StatusCode::FORBIDDEN, CANNOT_DELETE)
    }

    /// MOVE and COPY of anything but an album folder renamed in place.
    pub fn refuse_move(&self) -> Answer {
        Answer::new(StatusCode::FORBIDDEN, CANNOT_MOVE)
    }

    /// MOVE of `from` to `to` (decoded segments of the Destination header, None when it is
    /// not on this server). The one move Google can do is renaming an album this app created
    /// (albums.patch): `/album/<old>` to `/album/<new>`. That is what Finder's and Explorer's
    /// *New Folder* does right after its MKCOL of "untitled folder" / "New folder".
    pub async fn move_folder(
        &self,
        from: &[String],
        to: Option<&[String]>,
        overwrite: bool,
    ) -> Answer {
        let (Some(to), [albums, old]) = (to, from) else {
            return self.refuse_move();
        };
        let [to_albums, new] = to else {
            return self.refuse_move();
        };
        if albums != "album" || to_albums != "album" {
            return self.refuse_move();
        }
        if self.catalog.upload_dir(&[]).await.ok().flatten().is_some() {
            // Serving one album as the root: there is no album folder to rename.
            return self.refuse_move();
        }
        let id = match self.catalog.upload_dir(from).await {
            Ok(Some(UploadDir::Album(id))) => id,
            Ok(_) => return self.refuse_move(),
            Err(CatalogError::NotFound) => {
                return Answer::new(StatusCode::NOT_FOUND, "no such album");
            }
            Err(e) => return Answer::catalog("cannot list albums", &e),
        };
        let (from_key, to_key) = (local::key(from), local::key(to));
        if from_key == to_key {
            return Answer::new(
                StatusCode::FORBIDDEN,
                "the source and the destination are the same",
            );
        }
        // One at a time per name, in a fixed order: a MKCOL or another rename of either name
        // waits for this one.
        let (first, second) = if from_key < to_key {
            (&from_key, &to_key)
        } else {
            (&to_key, &from_key)
        };
        let (gate1, gate2) = (self.gate(first), self.gate(second));
        let _held = (gate1.lock().await, gate2.lock().await);
        // Uploads into the album finish first (and record themselves under the old name,
        // which moves below); later ones find the old name gone.
        let folder = self.folder_gate(&from_key);
        let _alone = folder.write().await;
        match self.catalog.is_dir(to).await {
            Ok(true) if overwrite => {
                return Answer::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "an album named {new:?} exists, and Google Photos' API cannot delete \
                         albums to replace it; choose a name not in use"
                    ),
                );
            }
            Ok(true) => {
                return Answer::new(
                    StatusCode::PRECONDITION_FAILED,
                    format!("an album named {new:?} exists (Overwrite: F)"),
                );
            }
            Ok(false) | Err(CatalogError::NotFound) => {}
            Err(e) => return Answer::catalog("cannot list albums", &e),
        }
        let title = match album_title(new) {
            Ok(title) => title,
            Err(refused) => return refused,
        };
        match self
            .catalog
            .google()
            .library
            .rename_album(&id, &title)
            .await
        {
            Ok(_) => {}
            Err(GoogleError::InsufficientScopes) => {
                return Answer::new(
                    StatusCode::FORBIDDEN,
                    "renaming an album needs the photoslibrary.edit.appcreateddata scope, which \
                     this refresh token was not granted: run `gphotos-dav auth` again to grant \
                     it (it asks for every scope this program uses)",
                );
            }
            Err(e) => return Answer::upstream("Google could not rename the album", &e),
        }
        tracing::info!(album = %id, from = %old, %title, "album renamed");
        self.catalog.forget_albums();
        // What the album's folder is called now (the naming rules may differ from the title),
        // so the uploads recorded in it keep answering 204 to the same bytes under it.
        let renamed = match self.catalog.list(std::slice::from_ref(albums)).await {
            Ok(entries) => entries.into_iter().find_map(|e| match e {
                Entry::Dir {
                    name,
                    key: FolderKey::Album(a),
                    ..
                } if a == id => Some(name),
                _ => None,
            }),
            Err(e) => {
                tracing::warn!("could not list the albums after a rename: {e}");
                None
            }
        };
        let new_key = format!("/album/{}", renamed.as_deref().unwrap_or(&title));
        self.local.move_folder(&from_key, &new_key);
        if let Err(e) = self.catalog.store().move_uploads(&from_key, &new_key).await {
            tracing::warn!(
                "the album was renamed, but the uploads recorded in it could not be moved \
                 along ({e}): copying the same files into {new_key:?} again will get 409 \
                 instead of 204"
            );
        }
        Answer::new(StatusCode::CREATED, "")
    }
}

/// The album title a folder name asks for (NFC), or why it cannot be one.
fn album_title(name: &str) -> Result<String, Answer> {
    if local::is_sidecar(name) || name.chars().count() > 500 {
        return Err(Answer::new(
            StatusCode::FORBIDDEN,
            "not a usable album title (Google allows up to 500 characters)",
        ));
    }
    Ok(crate::catalog::naming::nfc(name))
}

fn not_media() -> Answer {
    Answer::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Google Photos only takes photos and videos, and these bytes are neither",
    )
}

fn too_large(kind: Kind) -> Answer {
    let limit = match kind {
        Kind::Photo => "200 MB",
        Kind::Video => "20 GB",
    };
    Answer::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("Google Photos takes {}s of at most {limit}", kind.noun()),
    )
}

fn length_mismatch(got: u64, announced: Option<u64>) -> Answer {
    Answer::new(
        StatusCode::BAD_REQUEST,
        format!(
            "the body has {}{got} bytes but {} were announced; nothing was uploaded",
            if announced.is_some_and(|n| got > n) {
                "more than "
            } else {
                ""
            },
            announced.unwrap_or(0)
        ),
    )
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
