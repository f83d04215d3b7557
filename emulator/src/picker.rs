//! The Photos Picker API (`<picker_base>/v1/sessions`, `<picker_base>/v1/mediaItems`), the
//! stand-in for Google's picking page, and the bearer-only content URLs of picked items.
//!
//! Since March 2025 this is the only way an app reaches photos it did not upload itself: the
//! app creates a *session*, the user opens its `pickerUri` in Google Photos and picks items,
//! the app polls `sessions.get` until `mediaItemsSet`, then lists the picked items. What makes
//! it awkward, and what this emulator therefore reproduces:
//! - `mediaItems.list` answers 400 FAILED_PRECONDITION until the user has finished picking;
//! - a session expires (`expireTime`), and with it every access to its items (404 after);
//! - picked base URLs serve bytes only with `Authorization: Bearer <access token>` (so they
//!   cannot be handed to a WebDAV client by a redirect), and expire after the base-URL
//!   lifetime (60 minutes: 403), while `mediaItems.batchGet` does not know picked items: the
//!   only way to a fresh URL is listing the session's items again;
//! - every call needs the `photospicker.mediaitems.readonly` scope;
//! - a user holds a limited number of sessions: one more `sessions.create` answers 429
//!   RESOURCE_EXHAUSTED until sessions are deleted or expire (Google does not say how many;
//!   [`super::EmulatorOptions::picker_session_limit`]).
//! - a picked video may still be processing (`videoMetadata.processingStatus` PROCESSING,
//!   `=dv` refused) for [`super::EmulatorOptions::picked_video_processing`] after the pick.
//!
//! The emulator serves the Picker API under `/picker` on its one port (`picker_base()` is
//! `http://host:port/picker`), so its `/picker/v1/mediaItems` does not collide with the
//! Library API's `/v1/mediaItems`. The "user's library" offered for picking is the seeded
//! fixture library. Picking happens either in process ([`super::Emulator::pick`]) or by a GET
//! of the session's `pickerUri` (optionally with `/autoclose`) with `?ids=ID,ID` (or repeated
//! `id=` from the page's form); without ids that URL shows a page to pick from.

use chrono::{DateTime, SecondsFormat, Utc};
use http::StatusCode;
use rand::Rng;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::api::{
    CAMERAS, Int32, Query, Service, authorize_for, bearer_token, decode_page_token,
    encode_page_token, listing_json, page_range, query_page_size,
};
use super::fixtures::{FixtureItem, MediaKind, id_hash};
use super::oauth::{Grant, PICKER_SCOPE};
use super::reply::Reply;
use super::{Inner, Req, content, relock};

/// The Picker API as its errors name it.
const PICKER: Service = Service {
    name: "photospicker.googleapis.com",
    rpc_prefix: "google.photos.picker.v1.PickingService.",
    scope: PICKER_SCOPE,
};

/// Where the Picker API lives on the emulator's port.
pub(crate) const PICKER_PREFIX: &str = "/picker";
/// How many items a session lets the user pick unless `maxItemCount` says otherwise; also
/// the most it may say (Google: 2000).
const MAX_ITEM_COUNT: i64 = 2000;
/// How long a client should keep polling at most (Google's `timeoutIn` starts at 1800 s).
const POLL_TIMEOUT: chrono::Duration = chrono::Duration::seconds(1800);
const PAGE_DEFAULT: usize = 50;
const PAGE_MAX: usize = 100;
const NOT_FOUND: &str = "Requested entity was not found.";
const NOT_PICKED: &str = "The user has not finished picking media items yet.";
/// sessions.create's answer when the user holds too many sessions. Google documents the
/// RESOURCE_EXHAUSTED but neither the limit nor the message: this wording is the emulator's.
const TOO_MANY_SESSIONS: &str = "The user has too many picking sessions.";

/// One picking session.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    id: String,
    created: DateTime<Utc>,
    expire_time: DateTime<Utc>,
    max_items: i64,
    /// The ids the user picked, once they finished.
    picked: Option<Vec<String>>,
}

/// Which Picker endpoint a path under [`PICKER_PREFIX`] is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PickerRoute {
    Create,
    Get(String),
    Delete(String),
    List,
    /// The stand-in for the user's picking page (`pickerUri`, `pickerUri/autoclose`).
    Page(String),
}

impl PickerRoute {
    /// Classifies a path that starts with [`PICKER_PREFIX`].
    pub(crate) fn classify(method: &http::Method, rest: &str) -> Option<PickerRoute> {
        use http::Method;
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        if let Some(id) = rest.strip_prefix("/pick/") {
            let id = id.strip_suffix("/autoclose").unwrap_or(id);
            return (!id.is_empty() && !id.contains('/') && method == Method::GET)
                .then(|| PickerRoute::Page(decode(id)));
        }
        match (method, rest) {
            (&Method::POST, "/v1/sessions") => Some(PickerRoute::Create),
            (&Method::GET, "/v1/mediaItems") => Some(PickerRoute::List),
            (m, _) => {
                let id = rest.strip_prefix("/v1/sessions/")?;
                if id.is_empty() || id.contains('/') {
                    return None;
                }
                match *m {
                    Method::GET => Some(PickerRoute::Get(decode(id))),
                    Method::DELETE => Some(PickerRoute::Delete(decode(id))),
                    _ => None,
                }
            }
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            PickerRoute::Create => "picker.sessions.create",
            PickerRoute::Get(_) => "picker.sessions.get",
            PickerRoute::Delete(_) => "picker.sessions.delete",
            PickerRoute::List => "picker.mediaItems.list",
            PickerRoute::Page(_) => "picker.page",
        }
    }
}

pub(crate) fn dispatch(inner: &Inner, req: &Req, route: &PickerRoute) -> Reply {
    let result = match route {
        PickerRoute::Create => create(inner, req),
        PickerRoute::Get(id) => get(inner, req, id),
        PickerRoute::Delete(id) => delete(inner, req, id),
        PickerRoute::List => list(inner, req),
        PickerRoute::Page(id) => Ok(page(inner, req, id)),
    };
    result.unwrap_or_else(|e| e)
}

fn new_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-";
    let mut rng = rand::rng();
    (0..36)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A `google.protobuf.Duration` in its JSON form: seconds with up to nine decimals and `s`.
fn duration_json(d: chrono::Duration) -> String {
    let d = d.max(chrono::Duration::zero());
    let secs = d.num_seconds();
    let nanos = (d - chrono::Duration::seconds(secs))
        .num_nanoseconds()
        .unwrap_or(0);
    if nanos == 0 {
        format!("{secs}s")
    } else {
        let frac = format!("{nanos:09}");
        format!("{secs}.{}s", frac.trim_end_matches('0'))
    }
}

fn session_json(inner: &Inner, base: &str, s: &Session) -> Value {
    let now = inner.clock.now();
    let poll = chrono::Duration::from_std(inner.opts.picker_poll_interval)
        .unwrap_or(chrono::Duration::seconds(5));
    let timeout_at = (s.created + POLL_TIMEOUT).min(s.expire_time);
    let mut m = Map::new();
    m.insert("id".into(), json!(s.id));
    m.insert(
        "pickerUri".into(),
        json!(format!("{base}{PICKER_PREFIX}/pick/{}", s.id)),
    );
    m.insert(
        "pollingConfig".into(),
        json!({
            "pollInterval": duration_json(poll),
            "timeoutIn": duration_json(timeout_at - now),
        }),
    );
    m.insert(
        "expireTime".into(),
        json!(s.expire_time.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
    );
    m.insert(
        "pickingConfig".into(),
        json!({"maxItemCount": s.max_items.to_string()}),
    );
    // proto3 JSON omits a false bool: a client must read a missing field as false.
    if s.picked.is_some() {
        m.insert("mediaItemsSet".into(), json!(true));
    }
    Value::Object(m)
}

/// The live session `id`: expired and deleted sessions are unknown, as at Google.
fn live_session(inner: &Inner, id: &str) -> Result<Session, Reply> {
    let now = inner.clock.now();
    let sessions = relock(&inner.picker_sessions);
    match sessions.get(id) {
        Some(s) if s.expire_time > now => Ok(s.clone()),
        _ => Err(Reply::google_error(
            StatusCode::NOT_FOUND,
            NOT_FOUND,
            "NOT_FOUND",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    #[serde(default)]
    picking_config: Option<PickingConfigBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PickingConfigBody {
    #[serde(default)]
    max_item_count: Option<Int32>,
}

/// `POST /v1/sessions` with an optional `{"pickingConfig":{"maxItemCount":"N"}}`.
fn create(inner: &Inner, req: &Req) -> Result<Reply, Reply> {
    authorize_for(&PICKER, inner, req, "CreateSession")?;
    Query::parse(req, &[])?;
    let body: CreateBody = if req.body.iter().all(u8::is_ascii_whitespace) {
        CreateBody {
            picking_config: None,
        }
    } else {
        serde_json::from_slice(&req.body)
            .map_err(|e| Reply::invalid_argument(&format!("Invalid JSON payload received. {e}")))?
    };
    let max_items = match body.picking_config.and_then(|c| c.max_item_count) {
        None => MAX_ITEM_COUNT,
        Some(raw) => match raw.value("picking_config.max_item_count")? {
            0 => MAX_ITEM_COUNT,
            n if (1..=MAX_ITEM_COUNT).contains(&n) => n,
            _ => {
                return Err(Reply::invalid_argument(&format!(
                    "maxItemCount must be between 1 and {MAX_ITEM_COUNT}."
                )));
            }
        },
    };
    let now = inner.clock.now();
    let ttl = chrono::Duration::from_std(inner.opts.picker_session_ttl)
        .unwrap_or(chrono::Duration::hours(1));
    let session = Session {
        id: new_id(),
        created: now,
        expire_time: now + ttl,
        max_items,
        picked: None,
    };
    let mut sessions = relock(&inner.picker_sessions);
    let live = sessions.values().filter(|s| s.expire_time > now).count();
    if live >= inner.opts.picker_session_limit {
        return Err(Reply::google_error(
            StatusCode::TOO_MANY_REQUESTS,
            TOO_MANY_SESSIONS,
            "RESOURCE_EXHAUSTED",
        ));
    }
    let reply = Reply::json(StatusCode::OK, &session_json(inner, &req.base, &session));
    sessions.insert(session.id.clone(), session);
    Ok(reply)
}

/// `GET /v1/sessions/{id}`
fn get(inner: &Inner, req: &Req, id: &str) -> Result<Reply, Reply> {
    authorize_for(&PICKER, inner, req, "GetSession")?;
    Query::parse(req, &[])?;
    let session = live_session(inner, id)?;
    Ok(Reply::json(
        StatusCode::OK,
        &session_json(inner, &req.base, &session),
    ))
}

/// `DELETE /v1/sessions/{id}`: the session and access to its items end now.
fn delete(inner: &Inner, req: &Req, id: &str) -> Result<Reply, Reply> {
    authorize_for(&PICKER, inner, req, "DeleteSession")?;
    Query::parse(req, &[])?;
    live_session(inner, id)?;
    relock(&inner.picker_sessions).remove(id);
    Ok(Reply::json(StatusCode::OK, &json!({})))
}

/// `GET /v1/mediaItems?sessionId=&pageSize=&pageToken=`: the picked items, each with a fresh
/// bearer-only base URL.
fn list(inner: &Inner, req: &Req) -> Result<Reply, Reply> {
    authorize_for(&PICKER, inner, req, "ListMediaItems")?;
    let query = Query::parse(req, &["sessionId", "pageSize", "pageToken"])?;
    let Some(session_id) = query.first("sessionId").filter(|s| !s.is_empty()) else {
        return Err(Reply::invalid_argument("sessionId is required."));
    };
    let size = query_page_size(&query, PAGE_DEFAULT, PAGE_MAX)?;
    let session = live_session(inner, session_id)?;
    let Some(picked) = session.picked else {
        return Err(Reply::google_error(
            StatusCode::BAD_REQUEST,
            NOT_PICKED,
            "FAILED_PRECONDITION",
        ));
    };
    let listing = format!("picker:{session_id}");
    let offset = decode_page_token(inner, &listing, query.first("pageToken"))?;
    let (range, next) = page_range(picked.len(), offset, size);
    let entries = picked[range]
        .iter()
        .filter_map(|id| inner.library.item(id))
        .map(|item| picked_item_json(inner, &req.base, &session.id, item))
        .collect();
    let next = next.map(|n| encode_page_token(inner, &listing, n));
    Ok(Reply::json(
        StatusCode::OK,
        &listing_json("mediaItems", entries, next),
    ))
}

/// A PickedMediaItem. Unlike the Library API's MediaItem, width and height are integers,
/// the creation time is `createTime` at the top, and there is no location of any kind.
fn picked_item_json(inner: &Inner, base: &str, session: &str, item: &FixtureItem) -> Value {
    let h = id_hash(&item.id);
    let (make, model) = CAMERAS[(h % 4) as usize];
    let mut metadata = Map::new();
    metadata.insert("width".into(), json!(item.width));
    metadata.insert("height".into(), json!(item.height));
    metadata.insert("cameraMake".into(), json!(make));
    metadata.insert("cameraModel".into(), json!(model));
    let kind = match item.kind {
        MediaKind::Photo => {
            metadata.insert(
                "photoMetadata".into(),
                json!({
                    "focalLength": ([4.38, 26.0, 50.0, 35.0][((h >> 8) % 4) as usize]),
                    "apertureFNumber": ([1.85, 1.6, 2.8, 4.0][((h >> 16) % 4) as usize]),
                    "isoEquivalent": ([50, 100, 400, 3200][((h >> 24) % 4) as usize]),
                }),
            );
            "PHOTO"
        }
        MediaKind::Video if inner.processing(&item.id) => {
            metadata.insert(
                "videoMetadata".into(),
                json!({"processingStatus": "PROCESSING"}),
            );
            "VIDEO"
        }
        MediaKind::Video => {
            metadata.insert(
                "videoMetadata".into(),
                json!({
                    "fps": ([29.97, 30.0, 59.94, 60.0][((h >> 8) % 4) as usize]),
                    "processingStatus": "READY",
                }),
            );
            "VIDEO"
        }
    };
    let mut file = Map::new();
    file.insert(
        "baseUrl".into(),
        json!(content::mint_picked(inner, base, &item.id, session)),
    );
    file.insert("mimeType".into(), json!(item.mime_type));
    if !item.filename.is_empty() {
        file.insert("filename".into(), json!(item.filename));
    }
    file.insert("mediaFileMetadata".into(), Value::Object(metadata));
    json!({
        "id": item.id,
        "createTime": item.creation_time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "type": kind,
        "mediaFile": Value::Object(file),
    })
}

/// What the user's picking does: marks `ids` as the session's picked items.
pub(crate) fn pick(inner: &Inner, session_id: &str, ids: &[String]) -> Result<usize, String> {
    let now = inner.clock.now();
    let mut sessions = relock(&inner.picker_sessions);
    let session = sessions
        .get_mut(session_id)
        .filter(|s| s.expire_time > now)
        .ok_or_else(|| format!("no live picking session {session_id}"))?;
    if session.picked.is_some() {
        return Err("this session's items were already picked".into());
    }
    if ids.is_empty() {
        return Err("pick at least one item".into());
    }
    if ids.len() as i64 > session.max_items {
        return Err(format!(
            "this session lets you pick at most {} items",
            session.max_items
        ));
    }
    let mut unique: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if inner.library.item(id).is_none() {
            return Err(format!("no item {id} in the library"));
        }
        if !unique.contains(id) {
            unique.push(id.clone());
        }
    }
    let n = unique.len();
    // A video the user recorded moments ago is still being processed (a test's knob).
    for id in &unique {
        if inner
            .library
            .item(id)
            .is_some_and(|i| i.kind == MediaKind::Video)
        {
            inner.start_processing(id, inner.opts.picked_video_processing);
        }
    }
    session.picked = Some(unique);
    Ok(n)
}

/// `GET <pickerUri>[/autoclose][?ids=a,b]`: the stand-in for Google Photos' picking page.
/// With ids (comma separated, or repeated `id=`) it records the pick; without, it shows the
/// library with a form that sends them.
fn page(inner: &Inner, req: &Req, session_id: &str) -> Reply {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(req.query.as_deref().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let ids: Vec<String> = pairs
        .iter()
        .flat_map(|(k, v)| match k.as_str() {
            "ids" => v.split(',').map(str::to_owned).collect(),
            "id" => vec![v.clone()],
            _ => Vec::new(),
        })
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    if ids.is_empty() {
        if live_session(inner, session_id).is_err() {
            return html(StatusCode::NOT_FOUND, "This picking session has ended.");
        }
        let mut body = String::from(
            "<h1>Pick items</h1><form method=get>\n<p><button>Done</button></p>\n<ul>\n",
        );
        for item in &inner.library.items {
            body.push_str(&format!(
                "<li><label><input type=checkbox name=id value=\"{}\"> {} ({}, {})</label></li>\n",
                escape(&item.id),
                escape(if item.filename.is_empty() {
                    &item.id
                } else {
                    &item.filename
                }),
                escape(&item.mime_type),
                item.creation_time.format("%Y-%m-%d"),
            ));
        }
        body.push_str("</ul></form>");
        return html(StatusCode::OK, &body);
    }
    match pick(inner, session_id, &ids) {
        Ok(n) => html(
            StatusCode::OK,
            &format!("<p>Done: you picked {n} item(s). You can close this tab.</p>"),
        ),
        Err(e) => html(StatusCode::BAD_REQUEST, &format!("<p>{}</p>", escape(&e))),
    }
}

fn html(status: StatusCode, body: &str) -> Reply {
    Reply::new(
        status,
        "text/html; charset=UTF-8",
        format!(
            "<!DOCTYPE html>\n<html lang=en><meta charset=utf-8><title>Google Photos \
             (emulated picker)</title>\n{body}\n</html>\n"
        ),
    )
}

/// Whether a request for a picked item's bytes of `session` may be served: a valid access
/// token with the picker scope (401 / 403 otherwise), and a session still alive (404).
pub(crate) fn check_content_access(inner: &Inner, req: &Req, session: &str) -> Result<(), Reply> {
    let now = inner.clock.now();
    let grant = bearer_token(req)
        .and_then(|t| inner.lock_tokens().get(&t).cloned())
        .filter(|t| t.expires_at > now)
        .map(|t| t.grant);
    match grant {
        None => {
            return Err(Reply::html_error(StatusCode::UNAUTHORIZED).with_header(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"https://accounts.google.com/\""),
            ));
        }
        Some(Grant::ApiDisabled) => {}
        Some(g) if !g.has_scope(PICKER_SCOPE) => {
            return Err(Reply::html_error(StatusCode::FORBIDDEN));
        }
        Some(_) => {}
    }
    if live_session(inner, session).is_err() {
        return Err(Reply::html_error(StatusCode::NOT_FOUND));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_protobuf_json() {
        assert_eq!(duration_json(chrono::Duration::seconds(5)), "5s");
        assert_eq!(duration_json(chrono::Duration::milliseconds(20)), "0.02s");
        assert_eq!(duration_json(chrono::Duration::milliseconds(1500)), "1.5s");
        assert_eq!(duration_json(chrono::Duration::seconds(-3)), "0s");
    }

    #[test]
    fn routes() {
        use http::Method;
        assert_eq!(
            PickerRoute::classify(&Method::POST, "/v1/sessions"),
            Some(PickerRoute::Create)
        );
        assert_eq!(
            PickerRoute::classify(&Method::GET, "/v1/sessions/abc"),
            Some(PickerRoute::Get("abc".into()))
        );
        assert_eq!(
            PickerRoute::classify(&Method::DELETE, "/v1/sessions/abc"),
            Some(PickerRoute::Delete("abc".into()))
        );
        assert_eq!(
            PickerRoute::classify(&Method::GET, "/pick/abc/autoclose"),
            Some(PickerRoute::Page("abc".into()))
        );
        assert_eq!(
            PickerRoute::classify(&Method::PUT, "/v1/sessions/abc"),
            None
        );
        assert_eq!(PickerRoute::classify(&Method::GET, "/v1/sessions/"), None);
    }
}
