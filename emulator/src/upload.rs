//! Uploads: `POST /v1/uploads` (raw and resumable), `mediaItems:batchCreate` and
//! `albums.create`, and what Google serves back for an uploaded item.
//!
//! Google's upload is two steps: the bytes go to `/v1/uploads` and come back as an opaque
//! *upload token* (plain text, valid for a day, usable once); `mediaItems:batchCreate` then
//! turns up to 50 tokens into media items, answering each one separately. Large files use
//! the resumable protocol: `X-Goog-Upload-Command: start` opens a session whose URL comes
//! back in `X-Goog-Upload-URL`; chunks are sent with `upload` at an `X-Goog-Upload-Offset`,
//! the last with `upload, finalize` (whose body is the token); `query` tells how many bytes
//! arrived (`X-Goog-Upload-Size-Received`), so a client resumes after a broken chunk.
//!
//! What the content host serves for an uploaded item is *not* what was uploaded, as at
//! Google: `=d` of a photo drops the EXIF location (the GPS IFD), and `=dv` of a video is a
//! transcode. Both are deterministic here so tests can predict them. And a new video is not
//! served at once: it stays PROCESSING for [`super::EmulatorOptions::video_processing`]
//! (emulator clock), as Google transcodes it first.
//!
//! The uploaded items live in an overlay on top of the shared seeded library: the emulator
//! swaps in a new [`Library`] (copy on write) after each batchCreate or albums.create, so
//! every reader sees a consistent snapshot. A resumable session collects its chunks in a
//! temporary file, which its token keeps until batchCreate; only then are the bytes read into
//! memory, where the content host serves every item from.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::StatusCode;
use http::header::HeaderValue;
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

use super::api::{INVALID_ARGUMENT, album_json, authorize_scope, bearer_token, media_item_json};
use super::fixtures::{FixtureAlbum, FixtureItem, Library, MediaKind};
use super::oauth::{APPEND_SCOPE, EDIT_SCOPE};
use super::reply::Reply;
use super::{Inner, Req, relock};

/// How long an upload token can be used (Google: one day).
const TOKEN_TTL_HOURS: i64 = 24;
/// batchCreate takes at most this many items.
pub(crate) const BATCH_CREATE_MAX: usize = 50;
/// Longest album title albums.create accepts.
const TITLE_MAX: usize = 500;
/// Chunks of a resumable upload (other than the last) must be multiples of the granularity
/// the start announces: this, unless [`super::EmulatorOptions::upload_chunk_granularity`]
/// says otherwise.
pub(crate) const CHUNK_GRANULARITY: usize = 256 * 1024;
/// What the uploads endpoint answers (401, bare body) to a token without
/// `photoslibrary.appendonly`, and here also to a missing, unknown or expired token.
const NO_SESSION: &str = "Authentication session is not defined.";
/// What Google answers per item for a token it cannot use.
const ITEM_FAILED: &str = "Failed: There was an error while trying to create this media item.";

/// Where an upload's bytes wait for batchCreate.
#[derive(Clone, Debug)]
enum Payload {
    /// A raw upload (its body was read whole anyway).
    Memory(Bytes),
    /// A finalized resumable session's file.
    File(Arc<tempfile::TempPath>),
}

impl Payload {
    fn load(&self) -> std::io::Result<Bytes> {
        match self {
            Payload::Memory(b) => Ok(b.clone()),
            Payload::File(path) => {
                std::fs::read(path.as_ref() as &std::path::Path).map(Bytes::from)
            }
        }
    }
}

/// Bytes that arrived and were given a token.
#[derive(Clone, Debug)]
struct Uploaded {
    payload: Payload,
    mime_type: Option<String>,
    issued_at: DateTime<Utc>,
    used: bool,
}

/// A resumable upload in progress.
#[derive(Debug)]
struct Session {
    /// The chunks so far, on disk (taken when the session is finalized).
    file: Option<tempfile::NamedTempFile>,
    received: usize,
    raw_size: Option<u64>,
    mime_type: Option<String>,
    /// The token once finalized (a repeated finalize answers the same token).
    token: Option<String>,
}

/// The upload state of one emulator.
#[derive(Default, Debug)]
pub(crate) struct Uploads {
    tokens: HashMap<String, Uploaded>,
    sessions: HashMap<String, Session>,
    /// batchCreate answers items with these file names with a per-item error (tests).
    rejected_names: Vec<String>,
    created: u64,
    /// Every resumable chunk received, accepted or not: its length and whether it was the
    /// last (`finalize`), so tests see how a client sized its chunks.
    chunks: Vec<(usize, bool)>,
}

impl Uploads {
    pub(crate) fn reject_filename(&mut self, name: &str) {
        self.rejected_names.push(name.to_owned());
    }

    pub(crate) fn chunks(&self) -> Vec<(usize, bool)> {
        self.chunks.clone()
    }
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The uploads endpoint answers errors without the `error` wrapper.
fn upload_error(status: StatusCode, code: u16, message: &str) -> Reply {
    Reply::json(status, &json!({"code": code, "message": message}))
}

fn header<'r>(req: &'r Req, name: &str) -> Option<&'r str> {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn query_param(req: &Req, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn check_append(inner: &Inner, req: &Req, rpc: &str) -> Result<(), Reply> {
    authorize_scope(inner, req, rpc, APPEND_SCOPE).map(|_| ())
}

/// The uploads endpoint's own authentication: a token lacking `photoslibrary.appendonly`
/// gets `401 {"code":16,"message":"Authentication session is not defined."}` (bare, like all
/// of this endpoint's errors), not the Library API's 403. Whether Google answers an expired
/// or unknown token the same way is not documented; the emulator does, which is the harder
/// case for a client: it must refresh to tell an expired token from a missing scope.
fn check_upload_auth(inner: &Inner, req: &Req) -> Result<(), Reply> {
    let now = inner.clock.now();
    let grant = bearer_token(req)
        .and_then(|t| inner.lock_tokens().get(&t).cloned())
        .filter(|t| t.expires_at > now)
        .map(|t| t.grant);
    match grant {
        // Every other case (a disabled API, ...) as the Library API answers it.
        Some(g) if g.has_scope(APPEND_SCOPE) => check_append(inner, req, "Upload"),
        _ => Err(upload_error(StatusCode::UNAUTHORIZED, 16, NO_SESSION)),
    }
}

/// Mints a token for `payload`.
fn issue(inner: &Inner, payload: Payload, mime_type: Option<String>) -> String {
    let token = format!("CAIS{}", random_token(60));
    relock(&inner.uploads).tokens.insert(
        token.clone(),
        Uploaded {
            payload,
            mime_type,
            issued_at: inner.clock.now(),
            used: false,
        },
    );
    token
}

/// `POST /v1/uploads`: a raw upload, the start of a resumable one, or (with `upload_id`) a
/// command on a resumable session.
pub(crate) fn uploads(inner: &Inner, req: &Req) -> Reply {
    uploads_inner(inner, req).unwrap_or_else(|e| e)
}

fn uploads_inner(inner: &Inner, req: &Req) -> Result<Reply, Reply> {
    if let Some(id) = query_param(req, "upload_id") {
        // The session URL is the capability; Google does not ask for the token again.
        return Ok(session_command(inner, req, &id));
    }
    check_upload_auth(inner, req)?;
    let mime = header(req, "X-Goog-Upload-Content-Type").map(str::to_owned);
    match header(req, "X-Goog-Upload-Protocol") {
        Some("raw") => {
            if req.body.is_empty() {
                return Err(upload_error(
                    StatusCode::BAD_REQUEST,
                    3,
                    "The upload is empty.",
                ));
            }
            let token = issue(inner, Payload::Memory(req.body.clone()), mime);
            Ok(Reply::new(StatusCode::OK, "text/plain", token))
        }
        Some("resumable") => {
            if header(req, "X-Goog-Upload-Command") != Some("start") {
                return Err(upload_error(
                    StatusCode::BAD_REQUEST,
                    3,
                    "A resumable upload starts with X-Goog-Upload-Command: start.",
                ));
            }
            let raw_size = header(req, "X-Goog-Upload-Raw-Size").and_then(|v| v.parse().ok());
            let id = random_token(40);
            let file = tempfile::NamedTempFile::new().map_err(|e| {
                upload_error(StatusCode::INTERNAL_SERVER_ERROR, 13, &format!("{e}"))
            })?;
            relock(&inner.uploads).sessions.insert(
                id.clone(),
                Session {
                    file: Some(file),
                    received: 0,
                    raw_size,
                    mime_type: mime,
                    token: None,
                },
            );
            let url = format!(
                "{}/v1/uploads?upload_id={id}&upload_protocol=resumable",
                req.base
            );
            Ok(Reply::new(StatusCode::OK, "text/plain", "")
                .with_header(
                    "X-Goog-Upload-URL".parse().expect("valid name"),
                    HeaderValue::from_str(&url).expect("URL is ASCII"),
                )
                .with_header(
                    "X-Goog-Upload-Status".parse().expect("valid name"),
                    HeaderValue::from_static("active"),
                )
                .with_header(
                    "X-Goog-Upload-Chunk-Granularity"
                        .parse()
                        .expect("valid name"),
                    HeaderValue::from(inner.opts.upload_chunk_granularity),
                ))
        }
        _ => Err(upload_error(
            StatusCode::BAD_REQUEST,
            3,
            "X-Goog-Upload-Protocol must be raw or resumable.",
        )),
    }
}

fn status_reply(status: &'static str, received: usize) -> Reply {
    Reply::new(StatusCode::OK, "text/plain", "")
        .with_header(
            "X-Goog-Upload-Status".parse().expect("valid name"),
            HeaderValue::from_static(status),
        )
        .with_header(
            "X-Goog-Upload-Size-Received".parse().expect("valid name"),
            HeaderValue::from(received),
        )
}

/// `query`, `upload`, `finalize` or `upload, finalize` on a session.
fn session_command(inner: &Inner, req: &Req, id: &str) -> Reply {
    let command: Vec<String> = header(req, "X-Goog-Upload-Command")
        .unwrap_or("")
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .collect();
    let mut guard = relock(&inner.uploads);
    // Through a plain reference, so the session and the chunk log borrow apart.
    let state = &mut *guard;
    let Some(session) = state.sessions.get_mut(id) else {
        return upload_error(StatusCode::NOT_FOUND, 5, "No such upload session.");
    };
    if let Some(token) = &session.token {
        let token = token.clone();
        return Reply::new(StatusCode::OK, "text/plain", token).with_header(
            "X-Goog-Upload-Status".parse().expect("valid name"),
            HeaderValue::from_static("final"),
        );
    }
    if command == ["query"] {
        return status_reply("active", session.received);
    }
    let upload = command.iter().any(|c| c == "upload");
    let finalize = command.iter().any(|c| c == "finalize");
    if !upload && !finalize {
        return upload_error(StatusCode::BAD_REQUEST, 3, "Unknown upload command.");
    }
    if upload {
        state.chunks.push((req.body.len(), finalize));
        let offset: Option<usize> =
            header(req, "X-Goog-Upload-Offset").and_then(|v| v.parse().ok());
        if offset != Some(session.received) {
            // Google answers the offset it has, so the client can query and resume.
            return status_reply("active", session.received).with_status(StatusCode::BAD_REQUEST);
        }
        if !finalize
            && !req
                .body
                .len()
                .is_multiple_of(inner.opts.upload_chunk_granularity.max(1))
        {
            return upload_error(
                StatusCode::BAD_REQUEST,
                3,
                "Chunks other than the last must be a multiple of the chunk granularity.",
            );
        }
        use std::io::Write;
        let Some(file) = session.file.as_mut() else {
            return upload_error(StatusCode::CONFLICT, 10, "The upload is being finalized.");
        };
        if let Err(e) = file.write_all(&req.body) {
            return upload_error(StatusCode::INTERNAL_SERVER_ERROR, 13, &format!("{e}"));
        }
        session.received += req.body.len();
    }
    if !finalize {
        return status_reply("active", session.received);
    }
    if let Some(size) = session.raw_size
        && size != session.received as u64
    {
        return upload_error(
            StatusCode::BAD_REQUEST,
            3,
            "The upload is shorter or longer than X-Goog-Upload-Raw-Size.",
        );
    }
    let Some(file) = session.file.take() else {
        return upload_error(StatusCode::CONFLICT, 10, "The upload is being finalized.");
    };
    let mime = session.mime_type.clone();
    drop(guard);
    let token = issue(inner, Payload::File(Arc::new(file.into_temp_path())), mime);
    if let Some(session) = relock(&inner.uploads).sessions.get_mut(id) {
        session.token = Some(token.clone());
    }
    Reply::new(StatusCode::OK, "text/plain", token).with_header(
        "X-Goog-Upload-Status".parse().expect("valid name"),
        HeaderValue::from_static("final"),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchCreate {
    album_id: Option<String>,
    #[serde(default)]
    new_media_items: Vec<NewMediaItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewMediaItem {
    #[serde(default)]
    description: String,
    simple_media_item: Option<SimpleMediaItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SimpleMediaItem {
    upload_token: String,
    #[serde(default)]
    file_name: String,
}

/// `POST /v1/mediaItems:batchCreate`
pub(crate) fn batch_create(inner: &Inner, req: &Req) -> Reply {
    batch_create_inner(inner, req).unwrap_or_else(|e| e)
}

fn batch_create_inner(inner: &Inner, req: &Req) -> Result<Reply, Reply> {
    check_append(inner, req, "BatchCreateMediaItems")?;
    let body: BatchCreate = serde_json::from_slice(&req.body)
        .map_err(|e| Reply::invalid_argument(&format!("Invalid JSON payload received. {e}")))?;
    if body.new_media_items.is_empty() {
        return Err(Reply::invalid_argument(
            "Request must contain at least one new media item.",
        ));
    }
    if body.new_media_items.len() > BATCH_CREATE_MAX {
        return Err(Reply::invalid_argument(&format!(
            "Request must not contain more than {BATCH_CREATE_MAX} new media items."
        )));
    }
    let _write = relock(&inner.write_lock);
    let library = inner.current();
    if let Some(album) = &body.album_id
        && library.album(album).is_none()
    {
        return Err(Reply::invalid_argument(INVALID_ARGUMENT));
    }
    let now = inner.clock.now();
    let mut results = Vec::new();
    let mut created: Vec<FixtureItem> = Vec::new();
    {
        let mut state = relock(&inner.uploads);
        for new in &body.new_media_items {
            let Some(simple) = &new.simple_media_item else {
                results.push(json!({"status": {"code": 3, "message": INVALID_ARGUMENT}}));
                continue;
            };
            let token = simple.upload_token.clone();
            let rejected = state.rejected_names.contains(&simple.file_name);
            let usable = state.tokens.get(&token).is_some_and(|t| {
                !t.used && now - t.issued_at < chrono::Duration::hours(TOKEN_TTL_HOURS)
            });
            if rejected || !usable {
                results.push(json!({
                    "uploadToken": token,
                    "status": {"code": 3, "message": ITEM_FAILED},
                }));
                continue;
            }
            let upload = state.tokens.get_mut(&token).expect("checked above");
            upload.used = true;
            let upload = upload.clone();
            let bytes = match upload.payload.load() {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!("emulator cannot read an upload back: {e}");
                    results.push(json!({
                        "uploadToken": token,
                        "status": {"code": 13, "message": ITEM_FAILED},
                    }));
                    continue;
                }
            };
            state.created += 1;
            let id = format!("AF1QipUp{:05}{}", state.created, random_token(20));
            let item = uploaded_item(
                id,
                &simple.file_name,
                &new.description,
                &bytes,
                upload.mime_type.as_deref(),
                now,
            );
            results.push(
                json!({"uploadToken": token, "status": {"message": "Success"}, "id": item.id}),
            );
            created.push(item);
        }
    }
    if !created.is_empty() {
        let mut next: Library = (*library).clone();
        for item in &created {
            if let Some(album) = &body.album_id
                && let Some(a) = next.albums.iter_mut().find(|a| &a.id == album)
            {
                a.item_ids.push(item.id.clone());
            }
        }
        // Newest first: the new items are the newest.
        let mut items: Vec<FixtureItem> = created.iter().rev().cloned().collect();
        items.append(&mut next.items);
        next.items = items;
        inner.replace_library(next);
        // Google transcodes a new video before it serves it: PROCESSING for a while.
        for item in created.iter().filter(|i| i.kind == MediaKind::Video) {
            inner.start_processing(&item.id, inner.opts.video_processing);
        }
    }
    let library = inner.current();
    let results: Vec<Value> = results
        .into_iter()
        .map(|mut r| {
            if let Some(id) = r.get("id").and_then(Value::as_str).map(str::to_owned) {
                r.as_object_mut().expect("object").remove("id");
                if let Some(item) = library.item(&id) {
                    r["mediaItem"] = media_item_json(inner, &req.base, item);
                }
            }
            r
        })
        .collect();
    Ok(Reply::json(
        StatusCode::OK,
        &json!({"newMediaItemResults": results}),
    ))
}

/// The media item an upload becomes, with the bytes the content host will serve for it.
fn uploaded_item(
    id: String,
    file_name: &str,
    description: &str,
    uploaded: &[u8],
    declared_mime: Option<&str>,
    now: DateTime<Utc>,
) -> FixtureItem {
    let sniffed = sniff_mime(uploaded);
    let mime_type = sniffed
        .or(declared_mime)
        .map(str::to_owned)
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let kind = if mime_type.starts_with("video/") {
        MediaKind::Video
    } else {
        MediaKind::Photo
    };
    let (width, height) = dimensions(uploaded).unwrap_or((640, 480));
    let bytes = match kind {
        MediaKind::Photo => strip_gps(uploaded),
        MediaKind::Video => transcode(uploaded),
    };
    FixtureItem {
        id,
        filename: file_name.to_owned(),
        description: description.to_owned(),
        mime_type,
        creation_time: now,
        width,
        height,
        kind,
        favorite: false,
        bytes,
    }
}

fn sniff_mime(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"GIF8") {
        Some("image/gif")
    } else if bytes.len() > 12 && &bytes[4..8] == b"ftyp" {
        match &bytes[8..12] {
            b"qt  " => Some("video/quicktime"),
            b"heic" | b"heix" | b"mif1" => Some("image/heic"),
            b"avif" => Some("image/avif"),
            _ => Some("video/mp4"),
        }
    } else {
        None
    }
}

/// Width and height of a JPEG or PNG.
fn dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() >= 24 {
        let w = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
        let h = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
        return Some((w, h));
    }
    let reader =
        image::ImageReader::with_format(std::io::Cursor::new(bytes), image::ImageFormat::Jpeg);
    reader.into_dimensions().ok()
}

/// What `=dv` serves for an uploaded video: a deterministic "transcode" of it, of another
/// length and other bytes than the upload, keeping the container's `ftyp` box so sniffers
/// still see an MP4.
pub fn transcode(original: &[u8]) -> Bytes {
    let keep = if original.len() > 12 && &original[4..8] == b"ftyp" {
        (u32::from_be_bytes(original[0..4].try_into().expect("4 bytes")) as usize)
            .min(original.len())
    } else {
        0
    };
    let mut out = original[..keep].to_vec();
    let mut key = Sha256::digest(original).to_vec();
    for (i, b) in original[keep..].iter().enumerate() {
        if i % 32 == 0 && i > 0 {
            key = Sha256::digest(&key).to_vec();
        }
        out.push(b ^ key[i % 32] ^ 0x5a);
    }
    // A `free` box: the transcode is not the original's length either.
    let pad = 16 + original.len() % 1000;
    out.extend_from_slice(&(pad as u32).to_be_bytes());
    out.extend_from_slice(b"free");
    out.resize(out.len() + pad - 8, 0);
    Bytes::from(out)
}

/// A minimal JPEG whose EXIF holds a GPS IFD with latitude reference `lat_ref` (`b'N'` or
/// `b'S'`): a big-endian TIFF whose GPS IFD is not the last thing in the block, followed by
/// four bytes of something else. Tests feed it to [`strip_gps`] and to the upload path.
pub fn jpeg_with_gps(lat_ref: u8) -> Vec<u8> {
    let mut t = b"MM\0\x2a\0\0\0\x08".to_vec();
    t.extend_from_slice(&1u16.to_be_bytes());
    t.extend_from_slice(&[0x88, 0x25, 0, 4]);
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&26u32.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    // The GPS IFD at 26: one inline entry (GPSLatitudeRef), then the tail.
    t.extend_from_slice(&1u16.to_be_bytes());
    t.extend_from_slice(&[0, 1, 0, 2]);
    t.extend_from_slice(&2u32.to_be_bytes());
    t.extend_from_slice(&[lat_ref, 0, 0, 0]);
    t.extend_from_slice(&0u32.to_be_bytes());
    t.extend_from_slice(b"tail");
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE1];
    jpeg.extend_from_slice(&((t.len() + 8) as u16).to_be_bytes());
    jpeg.extend_from_slice(b"Exif\0\0");
    jpeg.extend_from_slice(&t);
    jpeg.extend_from_slice(&[0xFF, 0xD9]);
    jpeg
}

/// What `=d` serves for an uploaded JPEG: the same bytes without the EXIF GPS IFD (Google
/// keeps EXIF but drops location). The pointer entry (tag 0x8825) is removed from IFD0; a
/// GPS IFD stored at the end of the EXIF block is cut off (the segment shrinks), one stored
/// elsewhere is zeroed in place. Anything that is not a JPEG with such a block is served as
/// uploaded.
pub fn strip_gps(jpeg: &[u8]) -> Bytes {
    strip_gps_inner(jpeg).map_or_else(|| Bytes::copy_from_slice(jpeg), Bytes::from)
}

fn strip_gps_inner(jpeg: &[u8]) -> Option<Vec<u8>> {
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    // Walk the segments before the image data for APP1 "Exif\0\0".
    let mut pos = 2;
    while pos + 4 <= jpeg.len() && jpeg[pos] == 0xFF {
        let marker = jpeg[pos + 1];
        if marker == 0xDA || marker == 0xD9 {
            return None;
        }
        let len = u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]) as usize;
        let end = pos + 2 + len;
        if end > jpeg.len() || len < 2 {
            return None;
        }
        if marker == 0xE1 && jpeg[pos + 4..end].starts_with(b"Exif\0\0") {
            let tiff = &jpeg[pos + 10..end];
            let new_tiff = strip_gps_tiff(tiff)?;
            let new_len = u16::try_from(new_tiff.len() + 8).ok()?;
            let mut out = Vec::with_capacity(jpeg.len());
            out.extend_from_slice(&jpeg[..pos + 2]);
            out.extend_from_slice(&new_len.to_be_bytes());
            out.extend_from_slice(b"Exif\0\0");
            out.extend_from_slice(&new_tiff);
            out.extend_from_slice(&jpeg[end..]);
            return Some(out);
        }
        pos = end;
    }
    None
}

fn strip_gps_tiff(tiff: &[u8]) -> Option<Vec<u8>> {
    let little = match tiff.get(0..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let u16_at = |b: &[u8], at: usize| -> Option<u16> {
        let raw: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(if little {
            u16::from_le_bytes(raw)
        } else {
            u16::from_be_bytes(raw)
        })
    };
    let u32_at = |b: &[u8], at: usize| -> Option<u32> {
        let raw: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(raw)
        } else {
            u32::from_be_bytes(raw)
        })
    };
    let ifd0 = u32_at(tiff, 4)? as usize;
    let count = u16_at(tiff, ifd0)? as usize;
    let entries = ifd0 + 2;
    let gps_index = (0..count).find(|i| u16_at(tiff, entries + i * 12) == Some(0x8825))?;
    let gps_ifd = u32_at(tiff, entries + gps_index * 12 + 8)? as usize;
    // The GPS IFD's extent: its entries, and the values they point to.
    let gps_count = u16_at(tiff, gps_ifd)? as usize;
    let mut gps_end = gps_ifd + 2 + gps_count * 12 + 4;
    const TYPE_SIZES: [usize; 13] = [0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8];
    for i in 0..gps_count {
        let at = gps_ifd + 2 + i * 12;
        let kind = u16_at(tiff, at + 2)? as usize;
        let n = u32_at(tiff, at + 4)? as usize;
        let size = TYPE_SIZES.get(kind).copied().unwrap_or(1).saturating_mul(n);
        if size > 4 {
            let off = u32_at(tiff, at + 8)? as usize;
            gps_end = gps_end.max(off + size);
        }
    }
    if gps_end > tiff.len() {
        return None;
    }
    let mut out = tiff.to_vec();
    // Remove the pointer entry: later entries and the next-IFD offset move up 12 bytes, and
    // the freed 12 bytes at the end of IFD0 are zeroed (offsets elsewhere stay valid).
    let entry = entries + gps_index * 12;
    let ifd_end = entries + count * 12 + 4;
    out.copy_within(entry + 12..ifd_end, entry);
    out[ifd_end - 12..ifd_end].fill(0);
    let new_count = (count - 1) as u16;
    let count_bytes = if little {
        new_count.to_le_bytes()
    } else {
        new_count.to_be_bytes()
    };
    out[ifd0..ifd0 + 2].copy_from_slice(&count_bytes);
    if gps_end == tiff.len() && gps_ifd >= ifd_end {
        out.truncate(gps_ifd);
    } else {
        out[gps_ifd..gps_end].fill(0);
    }
    Some(out)
}

#[derive(Deserialize)]
struct CreateAlbum {
    album: Option<NewAlbum>,
}

#[derive(Deserialize)]
struct NewAlbum {
    #[serde(default)]
    title: String,
}

/// `POST /v1/albums`: a new, empty, app-created (so writeable) album.
pub(crate) fn albums_create(inner: &Inner, req: &Req) -> Reply {
    albums_create_inner(inner, req).unwrap_or_else(|e| e)
}

fn albums_create_inner(inner: &Inner, req: &Req) -> Result<Reply, Reply> {
    check_append(inner, req, "CreateAlbum")?;
    let body: CreateAlbum = serde_json::from_slice(&req.body)
        .map_err(|e| Reply::invalid_argument(&format!("Invalid JSON payload received. {e}")))?;
    let Some(album) = body.album else {
        return Err(Reply::invalid_argument(INVALID_ARGUMENT));
    };
    if album.title.chars().count() > TITLE_MAX {
        return Err(Reply::invalid_argument(&format!(
            "The album title must not be longer than {TITLE_MAX} characters."
        )));
    }
    let _write = relock(&inner.write_lock);
    let mut next: Library = (*inner.current()).clone();
    let created = FixtureAlbum {
        id: format!("AF1QipAlbum{}", random_token(24)),
        title: album.title,
        item_ids: Vec::new(),
    };
    next.albums.push(created.clone());
    inner.replace_library(next);
    Ok(Reply::json(
        StatusCode::OK,
        &album_json(inner, &req.base, &created),
    ))
}

/// `PATCH /v1/albums/{id}?updateMask=title`: renames an app-created album. Only `title` and
/// `coverPhotoMediaItemId` may be in the mask (this emulator changes the title only); the
/// body is an Album of which only `title` is read. Needs `photoslibrary.edit.appcreateddata`.
pub(crate) fn albums_patch(inner: &Inner, req: &Req, id: &str) -> Reply {
    albums_patch_inner(inner, req, id).unwrap_or_else(|e| e)
}

fn albums_patch_inner(inner: &Inner, req: &Req, id: &str) -> Result<Reply, Reply> {
    authorize_scope(inner, req, "UpdateAlbum", EDIT_SCOPE)?;
    let mask: Vec<String> =
        url::form_urlencoded::parse(req.query.as_deref().unwrap_or("").as_bytes())
            .filter(|(k, _)| k == "updateMask")
            .flat_map(|(_, v)| {
                v.split(',')
                    .map(str::trim)
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect();
    if mask.is_empty() {
        return Err(Reply::invalid_argument("Request must have an update mask."));
    }
    if let Some(bad) = mask
        .iter()
        .find(|f| *f != "title" && *f != "coverPhotoMediaItemId")
    {
        return Err(Reply::invalid_argument(&format!(
            "Invalid update mask field: {bad}"
        )));
    }
    let body: NewAlbum = serde_json::from_slice(&req.body)
        .map_err(|e| Reply::invalid_argument(&format!("Invalid JSON payload received. {e}")))?;
    let renames = mask.iter().any(|f| f == "title");
    if renames && body.title.trim().is_empty() {
        return Err(Reply::invalid_argument(
            "The album title must not be empty.",
        ));
    }
    if body.title.chars().count() > TITLE_MAX {
        return Err(Reply::invalid_argument(&format!(
            "The album title must not be longer than {TITLE_MAX} characters."
        )));
    }
    let _write = relock(&inner.write_lock);
    let mut next: Library = (*inner.current()).clone();
    let album = next
        .albums
        .iter_mut()
        .find(|a| a.id == id)
        .ok_or_else(|| Reply::invalid_argument(INVALID_ARGUMENT))?;
    if renames {
        album.title = body.title;
    }
    let patched = album.clone();
    inner.replace_library(next);
    Ok(Reply::json(
        StatusCode::OK,
        &album_json(inner, &req.base, &patched),
    ))
}
