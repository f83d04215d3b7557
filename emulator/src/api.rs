//! The Photos Library API routes (`/v1/albums...`, `/v1/mediaItems...`).
//!
//! Shapes follow Google's proto3 JSON mapping, which matters to a client in two ways that
//! are easy to miss: fields holding their default value are omitted (an empty album has no
//! `mediaItemsCount`, an item with an empty filename has no `filename`, an empty page has no
//! `mediaItems`), and int64 fields are strings.

use std::collections::HashSet;
use std::ops::Range;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::SecondsFormat;
use http::StatusCode;
use http::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::content;
use super::fixtures::{FixtureAlbum, FixtureItem, MediaKind, id_hash};
use super::oauth::{Grant, READ_SCOPE};
use super::reply::Reply;
use super::{Inner, Req};

const SERVICE: &str = "photoslibrary.googleapis.com";
const RPC_PREFIX: &str = "google.photos.library.v1.PhotosLibrary.";
/// The Cloud project number the "API disabled" error names.
const PROJECT_NUMBER: &str = "123456789012";
pub(super) const INVALID_MEDIA_ITEM_ID: &str = "Request contains an invalid media item id.";
pub(super) const INVALID_ARGUMENT: &str = "Request contains an invalid argument.";
const INVALID_PAGE_TOKEN: &str = "Invalid page token.";
const UNAUTHENTICATED: &str = "Request had invalid authentication credentials. Expected OAuth 2 \
    access token, login cookie or other valid authentication credential. See \
    https://developers.google.com/identity/sign-in/web/devconsole-project.";
const REALM: &str = "Bearer realm=\"https://accounts.google.com/\"";

const ALBUMS_DEFAULT_PAGE: usize = 20;
const ALBUMS_MAX_PAGE: usize = 50;
pub(super) const ITEMS_DEFAULT_PAGE: usize = 25;
pub(super) const ITEMS_MAX_PAGE: usize = 100;
const BATCH_GET_MAX: usize = 50;

/// Query parameters every Google API accepts (system parameters). Their effects (field
/// masks, pretty printing, ...) are not emulated; they are only not rejected.
const SYSTEM_PARAMS: &[&str] = &[
    "$.xgafv",
    "access_token",
    "alt",
    "callback",
    "fields",
    "key",
    "oauth_token",
    "prettyPrint",
    "quotaUser",
    "uploadType",
    "upload_protocol",
];

// ---------------------------------------------------------------------------------------
// Authentication and authorisation

/// One Google API as its errors name it: the service, the RPC prefix of its methods and the
/// scope its calls need.
pub(super) struct Service {
    pub name: &'static str,
    pub rpc_prefix: &'static str,
    pub scope: &'static str,
}

/// The Photos Library API (read calls).
pub(super) const LIBRARY: Service = Service {
    name: SERVICE,
    rpc_prefix: RPC_PREFIX,
    scope: READ_SCOPE,
};

/// Checks the bearer token for a Library API RPC named `rpc` (e.g. `ListAlbums`); the error
/// reply is what Google answers in that situation.
pub(super) fn authorize(inner: &Inner, req: &Req, rpc: &str) -> Result<Grant, Reply> {
    authorize_for(&LIBRARY, inner, req, rpc)
}

/// [`authorize`] for a Library API call that needs `scope` (uploads need
/// `photoslibrary.appendonly`).
pub(super) fn authorize_scope(
    inner: &Inner,
    req: &Req,
    rpc: &str,
    scope: &'static str,
) -> Result<Grant, Reply> {
    let service = Service { scope, ..LIBRARY };
    authorize_for(&service, inner, req, rpc)
}

/// The access token a request carries: the `Authorization: Bearer` header, or the
/// `access_token` query parameter Google also accepts (the client never sends it so).
pub(super) fn bearer_token(req: &Req) -> Option<String> {
    let from_header = req
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    from_header.or_else(|| {
        url::form_urlencoded::parse(req.query.as_deref().unwrap_or("").as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
    })
}

/// Checks the bearer token for an RPC named `rpc` of `service`.
pub(super) fn authorize_for(
    service: &Service,
    inner: &Inner,
    req: &Req,
    rpc: &str,
) -> Result<Grant, Reply> {
    let Some(token) = bearer_token(req) else {
        return Err(unauthenticated(
            service,
            rpc,
            "CREDENTIALS_MISSING",
            REALM.to_owned(),
        ));
    };
    let invalid_realm = format!("{REALM}, error=\"invalid_token\"");
    let found = inner.lock_tokens().get(&token).cloned();
    let Some(found) = found else {
        return Err(unauthenticated(
            service,
            rpc,
            "ACCESS_TOKEN_TYPE_UNSUPPORTED",
            invalid_realm,
        ));
    };
    if inner.clock.now() >= found.expires_at {
        return Err(unauthenticated(
            service,
            rpc,
            "ACCESS_TOKEN_EXPIRED",
            invalid_realm,
        ));
    }
    match found.grant {
        Grant::ApiDisabled => Err(api_disabled()),
        grant if !grant.has_scope(service.scope) => Err(insufficient_scopes(service, rpc)),
        grant => Ok(grant),
    }
}

fn unauthenticated(service: &Service, rpc: &str, reason: &str, www_authenticate: String) -> Reply {
    let reply = Reply::google_error_with_details(
        StatusCode::UNAUTHORIZED,
        UNAUTHENTICATED,
        "UNAUTHENTICATED",
        json!([{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": "googleapis.com",
            "metadata": {"service": service.name, "method": format!("{}{rpc}", service.rpc_prefix)},
        }]),
    );
    match HeaderValue::from_str(&www_authenticate) {
        Ok(v) => reply.with_header(WWW_AUTHENTICATE, v),
        Err(_) => reply,
    }
}

fn insufficient_scopes(service: &Service, rpc: &str) -> Reply {
    let reply = Reply::google_error_with_details(
        StatusCode::FORBIDDEN,
        "Request had insufficient authentication scopes.",
        "PERMISSION_DENIED",
        json!([{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            "domain": "googleapis.com",
            "metadata": {"service": service.name, "method": format!("{}{rpc}", service.rpc_prefix)},
        }]),
    );
    let challenge = format!(
        "{REALM}, error=\"insufficient_scope\", \
         scope=\"https://www.googleapis.com/auth/{}\"",
        service.scope
    );
    match HeaderValue::from_str(&challenge) {
        Ok(v) => reply.with_header(WWW_AUTHENTICATE, v),
        Err(_) => reply,
    }
}

fn api_disabled() -> Reply {
    let url = format!(
        "https://console.developers.google.com/apis/api/{SERVICE}/overview?project={PROJECT_NUMBER}"
    );
    Reply::google_error_with_details(
        StatusCode::FORBIDDEN,
        &format!(
            "Photos Library API has not been used in project {PROJECT_NUMBER} before or it is \
             disabled. Enable it by visiting {url} then retry."
        ),
        "PERMISSION_DENIED",
        json!([
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [{"description": "Google developers console API activation", "url": url}],
            },
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "SERVICE_DISABLED",
                "domain": "googleapis.com",
                "metadata": {"consumer": format!("projects/{PROJECT_NUMBER}"), "service": SERVICE},
            },
        ]),
    )
}

// ---------------------------------------------------------------------------------------
// Query strings, page sizes and page tokens

/// The decoded query string of a request.
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    /// Parses the query, rejecting parameters the method does not have, as Google does.
    pub(super) fn parse(req: &Req, allowed: &[&str]) -> Result<Query, Reply> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(req.query.as_deref().unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        if let Some((name, _)) = pairs
            .iter()
            .find(|(k, _)| !allowed.contains(&k.as_str()) && !SYSTEM_PARAMS.contains(&k.as_str()))
        {
            return Err(Reply::invalid_argument(&format!(
                "Invalid JSON payload received. Unknown name \"{name}\": Cannot bind query \
                 parameter. Field '{name}' could not be found in request message."
            )));
        }
        Ok(Query(pairs))
    }

    pub(super) fn first(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// An int32 as proto3 JSON allows it: a number or a decimal string.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub(super) enum Int32 {
    Number(i64),
    Text(String),
}

impl Int32 {
    pub(super) fn value(&self, field: &str) -> Result<i64, Reply> {
        let parsed = match self {
            Int32::Number(n) => Some(*n),
            Int32::Text(s) => s.trim().parse::<i64>().ok(),
        }
        .filter(|n| i32::try_from(*n).is_ok());
        parsed.ok_or_else(|| {
            let shown = match self {
                Int32::Number(n) => n.to_string(),
                Int32::Text(s) => format!("\"{s}\""),
            };
            Reply::invalid_argument(&format!("Invalid value at '{field}' (TYPE_INT32), {shown}"))
        })
    }
}

/// Resolves `pageSize`: unset or 0 means the default, values above the maximum are clamped
/// (Google clamps rather than rejects), negative values are rejected.
pub(super) fn page_size(raw: Option<Int32>, default: usize, max: usize) -> Result<usize, Reply> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    match raw.value("page_size")? {
        n if n < 0 => Err(Reply::invalid_argument(INVALID_ARGUMENT)),
        0 => Ok(default),
        n => Ok(usize::try_from(n).unwrap_or(max).min(max)),
    }
}

pub(super) fn query_page_size(query: &Query, default: usize, max: usize) -> Result<usize, Reply> {
    page_size(
        query
            .first("pageSize")
            .filter(|s| !s.is_empty())
            .map(|s| Int32::Text(s.to_owned())),
        default,
        max,
    )
}

/// The check part of a page token: binds the offset to the listing it came from and to this
/// emulator instance, so that tampered or foreign tokens are rejected like Google's.
fn page_token_mac(inner: &Inner, listing: &str, offset: usize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(inner.page_key);
    hasher.update(listing.as_bytes());
    hasher.update((offset as u64).to_le_bytes());
    hex::encode(&hasher.finalize()[..8])
}

pub(super) fn encode_page_token(inner: &Inner, listing: &str, offset: usize) -> String {
    let mac = page_token_mac(inner, listing, offset);
    URL_SAFE_NO_PAD.encode(format!("{offset}.{mac}"))
}

/// The offset a page token stands for; no token (or an empty one) starts at 0.
pub(super) fn decode_page_token(
    inner: &Inner,
    listing: &str,
    token: Option<&str>,
) -> Result<usize, Reply> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    let invalid = || Reply::invalid_argument(INVALID_PAGE_TOKEN);
    let decoded = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (offset, mac) = decoded.split_once('.').ok_or_else(invalid)?;
    let offset: usize = offset.parse().map_err(|_| invalid())?;
    if mac != page_token_mac(inner, listing, offset) {
        return Err(invalid());
    }
    Ok(offset)
}

/// [`page_range`] for the Library API's listings, which at times repeat the last entry of a
/// page at the top of the next one (see [`Emulator::set_repeat_last_entry`]): while that
/// knob is on, a page after the first starts one entry early. The repeat takes one of the
/// page's `size` places, as the documented maximum stays the maximum; with `size` 1 a page
/// would hold nothing new and the listing never end, so such pages repeat nothing.
///
/// [`Emulator::set_repeat_last_entry`]: super::Emulator::set_repeat_last_entry
pub(super) fn library_page_range(
    inner: &Inner,
    total: usize,
    offset: usize,
    size: usize,
) -> (Range<usize>, Option<usize>) {
    let repeat = inner.repeat_last_entry() && offset > 0 && size > 1;
    page_range(total, if repeat { offset - 1 } else { offset }, size)
}

/// The slice of a listing one page covers, and the offset of the next page if any remain.
pub(super) fn page_range(
    total: usize,
    offset: usize,
    size: usize,
) -> (Range<usize>, Option<usize>) {
    let start = offset.min(total);
    let end = start.saturating_add(size).min(total);
    (start..end, (end < total).then_some(end))
}

// ---------------------------------------------------------------------------------------
// JSON shapes

pub(super) fn album_json(inner: &Inner, base: &str, album: &FixtureAlbum) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(album.id));
    m.insert("title".into(), json!(album.title));
    m.insert(
        "productUrl".into(),
        json!(format!("https://photos.google.com/lr/album/{}", album.id)),
    );
    m.insert("isWriteable".into(), json!(true));
    if let Some(cover) = album.item_ids.first() {
        m.insert(
            "mediaItemsCount".into(),
            json!(album.item_ids.len().to_string()),
        );
        m.insert(
            "coverPhotoBaseUrl".into(),
            json!(content::mint(inner, base, cover)),
        );
        m.insert("coverPhotoMediaItemId".into(), json!(cover));
    }
    Value::Object(m)
}

pub(super) const CAMERAS: [(&str, &str); 4] = [
    ("Google", "Pixel 7"),
    ("Apple", "iPhone 12"),
    ("Canon", "Canon EOS 5D Mark IV"),
    ("SONY", "ILCE-7M3"),
];

/// Every MediaItem JSON mints a fresh base URL, as Google does on each read.
pub(crate) fn media_item_json(inner: &Inner, base: &str, item: &FixtureItem) -> Value {
    let h = id_hash(&item.id);
    let (make, model) = CAMERAS[(h % 4) as usize];
    let mut metadata = Map::new();
    metadata.insert(
        "creationTime".into(),
        json!(
            item.creation_time
                .to_rfc3339_opts(SecondsFormat::AutoSi, true)
        ),
    );
    metadata.insert("width".into(), json!(item.width.to_string()));
    metadata.insert("height".into(), json!(item.height.to_string()));
    match item.kind {
        MediaKind::Photo => {
            let focal = [4.38, 26.0, 50.0, 35.0][((h >> 8) % 4) as usize];
            let aperture = [1.85, 1.6, 2.8, 4.0][((h >> 16) % 4) as usize];
            let iso = [50, 100, 400, 3200][((h >> 24) % 4) as usize];
            let exposure =
                ["0.008s", "0.0125s", "0.000625s", "0.033333333s"][((h >> 32) % 4) as usize];
            metadata.insert(
                "photo".into(),
                json!({
                    "cameraMake": make,
                    "cameraModel": model,
                    "focalLength": focal,
                    "apertureFNumber": aperture,
                    "isoEquivalent": iso,
                    "exposureTime": exposure,
                }),
            );
        }
        MediaKind::Video if inner.processing(&item.id) => {
            // What the video's metadata holds while Google transcodes it: the status only
            // (the camera and frame rate are not read out yet; unverified, and not relied on).
            metadata.insert("video".into(), json!({"status": "PROCESSING"}));
        }
        MediaKind::Video => {
            let fps = [29.97, 30.0, 59.94, 60.0][((h >> 8) % 4) as usize];
            metadata.insert(
                "video".into(),
                json!({"cameraMake": make, "cameraModel": model, "fps": fps, "status": "READY"}),
            );
        }
    }

    let mut m = Map::new();
    m.insert("id".into(), json!(item.id));
    if !item.description.is_empty() {
        m.insert("description".into(), json!(item.description));
    }
    m.insert(
        "productUrl".into(),
        json!(format!("https://photos.google.com/lr/photo/{}", item.id)),
    );
    m.insert(
        "baseUrl".into(),
        json!(content::mint(inner, base, &item.id)),
    );
    m.insert("mimeType".into(), json!(item.mime_type));
    if !item.filename.is_empty() {
        m.insert("filename".into(), json!(item.filename));
    }
    m.insert("mediaMetadata".into(), Value::Object(metadata));
    Value::Object(m)
}

/// `{"<field>":[...],"nextPageToken":"..."}`, with both members omitted when empty.
pub(super) fn listing_json(
    field: &str,
    entries: Vec<Value>,
    next_page_token: Option<String>,
) -> Value {
    let mut m = Map::new();
    if !entries.is_empty() {
        m.insert(field.into(), Value::Array(entries));
    }
    if let Some(token) = next_page_token {
        m.insert("nextPageToken".into(), json!(token));
    }
    Value::Object(m)
}

// ---------------------------------------------------------------------------------------
// Albums

/// `GET /v1/albums`
pub(crate) fn albums_list(inner: &Inner, req: &Req) -> Reply {
    albums_list_inner(inner, req).unwrap_or_else(|e| e)
}

fn albums_list_inner(inner: &Inner, req: &Req) -> Result<Reply, Reply> {
    authorize(inner, req, "ListAlbums")?;
    let query = Query::parse(req, &["pageSize", "pageToken", "excludeNonAppCreatedData"])?;
    let size = query_page_size(&query, ALBUMS_DEFAULT_PAGE, ALBUMS_MAX_PAGE)?;
    let offset = decode_page_token(inner, "albums", query.first("pageToken"))?;
    let library = inner.current();
    let albums = &library.albums;
    let (range, next) = library_page_range(inner, albums.len(), offset, size);
    let entries = albums[range]
        .iter()
        .map(|a| album_json(inner, &req.base, a))
        .collect();
    let next = next.map(|n| encode_page_token(inner, "albums", n));
    Ok(Reply::json(
        StatusCode::OK,
        &listing_json("albums", entries, next),
    ))
}

/// `GET /v1/albums/{id}`
pub(crate) fn albums_get(inner: &Inner, req: &Req, id: &str) -> Reply {
    albums_get_inner(inner, req, id).unwrap_or_else(|e| e)
}

fn albums_get_inner(inner: &Inner, req: &Req, id: &str) -> Result<Reply, Reply> {
    authorize(inner, req, "GetAlbum")?;
    Query::parse(req, &[])?;
    let library = inner.current();
    let album = library
        .album(id)
        .ok_or_else(|| Reply::invalid_argument(INVALID_ARGUMENT))?;
    Ok(Reply::json(
        StatusCode::OK,
        &album_json(inner, &req.base, album),
    ))
}

/// `GET /v1/sharedAlbums`: since the 2025 scope change no grantable scope allows it.
pub(crate) fn shared_albums_list(inner: &Inner, req: &Req) -> Reply {
    match authorize(inner, req, "ListSharedAlbums") {
        Err(e) => e,
        Ok(_) => insufficient_scopes(&LIBRARY, "ListSharedAlbums"),
    }
}

// ---------------------------------------------------------------------------------------
// Media items

/// `GET /v1/mediaItems`: every item, newest first.
pub(crate) fn media_list(inner: &Inner, req: &Req) -> Reply {
    media_list_inner(inner, req).unwrap_or_else(|e| e)
}

fn media_list_inner(inner: &Inner, req: &Req) -> Result<Reply, Reply> {
    authorize(inner, req, "ListMediaItems")?;
    let query = Query::parse(req, &["pageSize", "pageToken"])?;
    let size = query_page_size(&query, ITEMS_DEFAULT_PAGE, ITEMS_MAX_PAGE)?;
    let offset = decode_page_token(inner, "mediaItems", query.first("pageToken"))?;
    let library = inner.current();
    let items = &library.items;
    Ok(items_page(
        inner,
        req,
        items.len(),
        |i| items.get(i),
        "mediaItems",
        offset,
        size,
    ))
}

/// One page of a listing of `total` items, the one at position `i` given by `item` (None:
/// left out, as an album's id whose item is gone): only the page's items are looked at, so a
/// page costs the same in a library of a thousand items or of a million.
pub(super) fn items_page<'a>(
    inner: &Inner,
    req: &Req,
    total: usize,
    item: impl Fn(usize) -> Option<&'a FixtureItem>,
    listing: &str,
    offset: usize,
    size: usize,
) -> Reply {
    let (range, next) = library_page_range(inner, total, offset, size);
    inner.examined(range.len());
    let entries = range
        .filter_map(item)
        .map(|item| media_item_json(inner, &req.base, item))
        .collect();
    let next = next.map(|n| encode_page_token(inner, listing, n));
    Reply::json(StatusCode::OK, &listing_json("mediaItems", entries, next))
}

/// `GET /v1/mediaItems/{id}`
pub(crate) fn media_get(inner: &Inner, req: &Req, id: &str) -> Reply {
    media_get_inner(inner, req, id).unwrap_or_else(|e| e)
}

fn media_get_inner(inner: &Inner, req: &Req, id: &str) -> Result<Reply, Reply> {
    authorize(inner, req, "GetMediaItem")?;
    Query::parse(req, &[])?;
    let library = inner.current();
    let item = library
        .item(id)
        .ok_or_else(|| Reply::invalid_argument(INVALID_MEDIA_ITEM_ID))?;
    Ok(Reply::json(
        StatusCode::OK,
        &media_item_json(inner, &req.base, item),
    ))
}

/// `GET /v1/mediaItems:batchGet?mediaItemIds=...`: results in request order, unknown ids
/// answered per item rather than failing the call.
pub(crate) fn media_batch_get(inner: &Inner, req: &Req) -> Reply {
    media_batch_get_inner(inner, req).unwrap_or_else(|e| e)
}

fn media_batch_get_inner(inner: &Inner, req: &Req) -> Result<Reply, Reply> {
    authorize(inner, req, "BatchGetMediaItems")?;
    let query = Query::parse(req, &["mediaItemIds"])?;
    let ids = query.all("mediaItemIds");
    if ids.is_empty() {
        return Err(Reply::invalid_argument(
            "Request must contain at least one media item id.",
        ));
    }
    if ids.len() > BATCH_GET_MAX {
        return Err(Reply::invalid_argument(&format!(
            "Request must not contain more than {BATCH_GET_MAX} media item ids."
        )));
    }
    let mut seen = HashSet::new();
    if !ids.iter().all(|id| seen.insert(*id)) {
        return Err(Reply::invalid_argument(
            "Request contains duplicate media item ids.",
        ));
    }
    let library = inner.current();
    let results: Vec<Value> = ids
        .iter()
        .map(|id| match library.item(id) {
            Some(item) => json!({"mediaItem": media_item_json(inner, &req.base, item)}),
            None => json!({"status": {"code": 3, "message": INVALID_MEDIA_ITEM_ID}}),
        })
        .collect();
    Ok(Reply::json(
        StatusCode::OK,
        &json!({"mediaItemResults": results}),
    ))
}
