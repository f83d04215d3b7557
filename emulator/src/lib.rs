//! An in-process emulator of the Google endpoints the client talks to: the OAuth token
//! endpoint, the Photos Library API and the content host behind base URLs.
//!
//! It exists so that integration tests and the `demo` command exercise the real client
//! unchanged, with only base URLs pointed here; every shape therefore follows Google's
//! documented (and observed) behaviour, including the awkward parts a lenient fake would
//! hide: omitted default-valued fields, expiring base URLs, opaque page tokens, duplicate
//! titles and filenames.
//!
//! One server answers all three hosts: `/token`, `/v1/...` and `/lh/...`.
//!
//! Every request flows through `Emulator::handle`: route → count → (fault injection, to
//! come) → handler → log → response. Handlers return a `Reply`, a plain value, so faults
//! can be layered on in that one function.
//!
//! # Why a crate of its own
//!
//! The emulator is not part of the product: it is Google as a test sees it. Keeping it in its
//! own crate (`gphotos-dav-emulator`) makes that boundary one the compiler holds. It imports
//! nothing from `gphotos-dav`, so it cannot drift towards what the client expects instead of
//! what Google does; the product's library never links it, so no product code path can reach
//! it; and the product's binary carries it only behind the default-on `emulator` feature (the
//! `demo` and `emulator` commands), so `cargo install --no-default-features` gives a gateway
//! with no emulator (and no JPEG encoder) in it. Tests get it as a dev-dependency.

mod albums;
mod api;
mod clock;
mod content;
mod fixtures;
mod generated;
mod oauth;
mod pacing;
mod picker;
mod reply;
mod search;
#[cfg(test)]
mod tests;
mod upload;
mod videos;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rand::Rng;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

pub use clock::{Clock, Counters};
pub use fixtures::{
    BIG_ALBUM_TITLE, BIG_ITEM_ALBUM, BIG_ITEM_FILENAME, BigItem, FixtureAlbum, FixtureItem,
    HOSTILE_ALBUMS, HOSTILE_LONG_FILENAME, HOSTILE_LONG_TITLE, LIBRARY_ALBUM_PREFIX,
    LIBRARY_ALBUM_SIZE, LIBRARY_START, LIBRARY_YEARS, Library, MANY_ALBUMS_PREFIX, MediaKind,
};

pub use upload::{jpeg_with_gps, strip_gps, transcode};

use content::{BaseUrlEntry, Rendition};
use oauth::AccessToken;
use reply::{Body, Reply};

/// The OAuth client id the token endpoint accepts.
pub const CLIENT_ID: &str = "emulator-client.apps.googleusercontent.com";
/// The matching client secret.
pub const CLIENT_SECRET: &str = "emulator-client-secret";
/// A refresh token granted every scope the project asks for.
pub const REFRESH_TOKEN: &str = "emulator-refresh-token";
/// Its access tokens lack the photoslibrary read scope: Library calls answer 403
/// "Request had insufficient authentication scopes.".
pub const REFRESH_TOKEN_NO_SCOPE: &str = "emulator-refresh-no-scope";
/// Its access tokens belong to a project with the Photos Library API disabled: Library
/// calls answer 403 "Photos Library API has not been used in project ...".
pub const REFRESH_TOKEN_API_DISABLED: &str = "emulator-refresh-api-disabled";
/// Granted every scope but `photoslibrary.edit.appcreateddata` (what the project asked for
/// before it renamed albums): albums.patch answers 403 insufficient scopes.
pub const REFRESH_TOKEN_NO_EDIT: &str = "emulator-refresh-no-edit";
/// Granted every scope but `photoslibrary.appendonly`: the uploads endpoint answers `401
/// {"code":16,"message":"Authentication session is not defined."}`, as Google does.
pub const REFRESH_TOKEN_NO_APPEND: &str = "emulator-refresh-no-append";
/// Answered with `invalid_grant`, like every unknown refresh token.
pub const REFRESH_TOKEN_REVOKED: &str = "emulator-refresh-revoked";

/// Largest request body read; big enough for the uploads a later issue adds.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// How an emulator is set up.
#[derive(Clone, Debug)]
pub struct EmulatorOptions {
    /// Picks the fixture library: same seed, same ids, names, dates and bytes.
    pub seed: u64,
    /// How long a base URL serves bytes before answering 403 (Google documents 60 minutes;
    /// in the field URLs have died after 30 to 40). [`Emulator::set_url_lifetime`] changes
    /// it while the emulator runs.
    pub baseurl_ttl: Duration,
    /// Lifetime of minted access tokens, also reported as `expires_in`.
    pub access_token_ttl: Duration,
    /// Adds albums and items whose titles and names no file system accepts as they are
    /// (see [`fixtures::HOSTILE_ALBUMS`]).
    pub hostile_names: bool,
    /// Adds one album, titled [`BIG_ALBUM_TITLE`], of this many tiny photos (0: none), to
    /// measure listings of the size real libraries reach.
    pub big_album: usize,
    /// Adds this many photos in no album (0: none), created at even steps over
    /// [`LIBRARY_YEARS`] years from [`LIBRARY_START`] and named `LIB_0000001.jpg`, ...: a
    /// big library for `/media/all` and date filters (a million start in seconds, and a page
    /// costs what the page holds: [`Emulator::items_examined`]).
    pub library_size: usize,
    /// Groups the first of the `library_size` items into this many albums of
    /// [`LIBRARY_ALBUM_SIZE`] each (Google's maximum), titled [`LIBRARY_ALBUM_PREFIX`] and a
    /// number (0: none): big albums over the same items as `/media/all`.
    pub library_albums: usize,
    /// Adds this many empty albums (0: none), titled [`MANY_ALBUMS_PREFIX`] and a number,
    /// after the seeded ones: more than one albums.list page (50) needs more than 50.
    pub many_albums: usize,
    /// Adds a video of this many bytes (0: none), alone in the album [`BIG_ITEM_ALBUM`],
    /// whose bytes are generated while they are sent (see [`BigItem`]): benchmarks download
    /// hundreds of MiB without the emulator holding them.
    pub big_item: u64,
    /// The content host's total upload rate in bytes per second, shared by all downloads
    /// (None: as fast as connections drain). Real time: for benchmarks only.
    pub content_rate: Option<u64>,
    /// Every Library API and content host request is answered this much later (real time:
    /// for benchmarks only; tests inject [`Fault::Latency`] on chosen calls instead).
    pub latency: Duration,
    /// The `pollInterval` picking sessions tell clients to wait between polls (Google: 5 s;
    /// tests make it tiny so no test waits long).
    pub picker_poll_interval: Duration,
    /// How long a picking session lives (its `expireTime`) after it is created.
    pub picker_session_ttl: Duration,
    /// How many live (not expired, not deleted) picking sessions the user may hold; one more
    /// `sessions.create` answers 429 RESOURCE_EXHAUSTED. Google documents the limit but not
    /// its number: the default here is a guess, tests set a small one.
    pub picker_session_limit: usize,
    /// The `X-Goog-Upload-Chunk-Granularity` a resumable upload's start announces; every
    /// chunk but the last must be a multiple of it (Google: 262144).
    pub upload_chunk_granularity: usize,
    /// The project's daily quota of Library API requests, counted per Pacific day on the
    /// emulator's clock: past it every call answers Google's structured daily 429 until
    /// midnight Pacific time (None: unlimited).
    pub daily_quota: Option<u64>,
    /// The project's daily quota of requests to Library API download URLs (`/lh/`): past it
    /// the content host answers 429 (an HTML page, as for every content host error) until
    /// midnight Pacific time (None: unlimited). Google's is 75,000.
    pub daily_media_quota: Option<u64>,
    /// How long Google processes a newly uploaded video (emulator clock): until then its
    /// `mediaMetadata.video` is `{"status":"PROCESSING"}` and its `=dv` URL serves nothing
    /// (see `content`). Google: seconds to minutes; zero makes uploads READY at once.
    pub video_processing: Duration,
    /// How long a video picked with the Picker API is still processing after the pick (its
    /// `processingStatus` is `PROCESSING`, its `=dv` serves nothing), as for a video the
    /// user recorded minutes ago. Zero (the default): the library's videos are long READY.
    pub picked_video_processing: Duration,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            seed: 1,
            baseurl_ttl: Duration::from_secs(3600),
            access_token_ttl: Duration::from_secs(3599),
            hostile_names: false,
            big_album: 0,
            library_size: 0,
            library_albums: 0,
            many_albums: 0,
            big_item: 0,
            content_rate: None,
            latency: Duration::ZERO,
            picker_poll_interval: Duration::from_secs(5),
            picker_session_ttl: Duration::from_secs(3600),
            picker_session_limit: 100,
            upload_chunk_granularity: upload::CHUNK_GRANULARITY,
            daily_quota: None,
            daily_media_quota: None,
            video_processing: DEFAULT_VIDEO_PROCESSING,
            picked_video_processing: Duration::ZERO,
        }
    }
}

/// How long an uploaded video stays PROCESSING unless the options say otherwise: long enough
/// that a client reading its upload back meets it, short enough for `demo`.
pub const DEFAULT_VIDEO_PROCESSING: Duration = Duration::from_secs(30);

/// A failure the emulator can inject (see [`Emulator::inject`]).
///
/// The 429s of the APIs carry Google's structured error (an ErrorInfo in `details` naming the
/// quota limit); the content host's are an HTML page, as all its errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 RESOURCE_EXHAUSTED for a per-minute limit, with `Retry-After`.
    RateLimited { retry_after_secs: u64 },
    /// 429 for the per-day quota: retrying before Pacific midnight is pointless.
    DailyQuota,
    /// 429 RESOURCE_EXHAUSTED of the per-minute *write* limit, as users of batchCreate and
    /// albums.create meet it ("Write requests per minute per user"), without `Retry-After`
    /// and with the structured ErrorInfo (`reason` RATE_LIMIT_EXCEEDED, `metadata.quota_limit`
    /// `WritesPerMinutePerUser`) that tells it apart from a daily quota. Google created
    /// nothing: the client may retry.
    WriteRateLimited,
    /// A 429 of the given text: with an ErrorInfo naming `quota_limit` when set (e.g.
    /// `WritesPerMinutePerUser`), without `details` when None (the bare shape older answers
    /// show); `Retry-After` when set.
    Throttled {
        message: String,
        quota_limit: Option<String>,
        retry_after_secs: Option<u64>,
    },
    /// An error status: 500, 502, 503, 504, ...
    Status(u16),
    /// The connection is closed without an answer.
    Reset,
    /// Half the body is sent, then the connection breaks.
    CutBody,
    /// The answer comes after this delay (real time: for load tests and benchmarks).
    Latency(Duration),
}

struct FaultRule {
    kind: String,
    fault: Fault,
    every: u32,
    seen: u32,
    remaining: Option<u32>,
}

const RATE_MESSAGE: &str = "Quota exceeded for quota metric 'All requests' and limit 'All \
    requests per minute per user' of service 'photoslibrary.googleapis.com' for consumer \
    'project_number:123456789012'.";
const DAILY_MESSAGE: &str = "Quota exceeded for quota metric 'All requests' and limit 'All \
    requests per day' of service 'photoslibrary.googleapis.com' for consumer \
    'project_number:123456789012'.";

const WRITE_RATE_MESSAGE: &str = "Quota exceeded for quota metric 'Write requests' and limit \
    'Write requests per minute per user' of service 'photoslibrary.googleapis.com' for \
    consumer 'project_number:123456789012'.";

/// The answer of [`Fault::WriteRateLimited`]: Google's error envelope with the ErrorInfo its
/// quota errors carry (the quota metric and limit names are the ones users reported).
fn write_rate_limited(content: bool) -> Reply {
    if content {
        return Reply::html_error(StatusCode::TOO_MANY_REQUESTS);
    }
    Reply::google_error_with_details(
        StatusCode::TOO_MANY_REQUESTS,
        WRITE_RATE_MESSAGE,
        "RESOURCE_EXHAUSTED",
        serde_json::json!([{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": {
                "consumer": "projects/123456789012",
                "quota_limit": "WritesPerMinutePerUser",
                "quota_metric": "photoslibrary.googleapis.com/write_requests",
                "service": "photoslibrary.googleapis.com",
            },
        }]),
    )
}
/// The quota limits the injected and counted 429s name, as Google's errors spell them.
const DAILY_LIMIT: &str = "ApiCallsPerProjectPerDay";
const MINUTE_LIMIT: &str = "ApiCallsPerMinutePerUser";

/// An injected error in the style of the endpoint: HTML for the content host, Google's JSON
/// error for the APIs.
fn fault_reply(content: bool, status: StatusCode, message: &str, rpc: &str) -> Reply {
    if content {
        Reply::html_error(status)
    } else {
        Reply::google_error(status, message, rpc)
    }
}

/// A 429 in the style of the endpoint: the content host's HTML page, or Google's JSON error
/// whose `details` hold an ErrorInfo naming the limit (`quota_limit` None: no details).
fn throttled_reply(content: bool, kind: &str, message: &str, quota_limit: Option<&str>) -> Reply {
    let status = StatusCode::TOO_MANY_REQUESTS;
    if content {
        return Reply::html_error(status);
    }
    let Some(limit) = quota_limit else {
        return Reply::google_error(status, message, "RESOURCE_EXHAUSTED");
    };
    let (service, metric) = if kind.starts_with("picker.") {
        (
            "photospicker.googleapis.com",
            "photospicker.googleapis.com/all_requests",
        )
    } else {
        (
            "photoslibrary.googleapis.com",
            "photoslibrary.googleapis.com/all_requests",
        )
    };
    let mut metadata = serde_json::json!({
        "consumer": "projects/123456789012",
        "service": service,
        "quota_metric": metric,
        "quota_limit": limit,
    });
    if limit == DAILY_LIMIT {
        metadata["quota_limit_value"] = "10000".into();
    }
    Reply::google_error_with_details(
        status,
        message,
        "RESOURCE_EXHAUSTED",
        serde_json::json!([{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": metadata,
        }]),
    )
}

/// The emulator's own count of the project's daily quotas (see
/// [`EmulatorOptions::daily_quota`]).
#[derive(Debug)]
struct DailyCount {
    day: chrono::NaiveDate,
    api: u64,
    media: u64,
    api_limit: Option<u64>,
    media_limit: Option<u64>,
}

/// The Pacific-time date Google's daily quotas count.
fn pacific_day(now: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDate {
    now.with_timezone(&chrono_tz::America::Los_Angeles)
        .date_naive()
}

/// A handle to one emulator's state; clones share it.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

/// Everything the handlers share.
pub(crate) struct Inner {
    opts: EmulatorOptions,
    library: Arc<Library>,
    /// The seeded library plus everything created through the API since (uploads, albums):
    /// replaced as a whole on each change, so readers always see one consistent snapshot.
    current: Mutex<Arc<Library>>,
    /// Serialises the read-modify-replace of `current`.
    write_lock: Mutex<()>,
    /// Upload tokens and resumable sessions.
    uploads: Mutex<upload::Uploads>,
    clock: Clock,
    counters: Counters,
    ignore_range: AtomicBool,
    /// How many of the next content downloads are cut after half their body.
    cut_downloads: AtomicU32,
    /// Whether listing pages begin with the previous page's last entry.
    repeat_last_entry: AtomicBool,
    /// The UTC offset (seconds east) of the calendar date filters read items' dates in.
    date_filter_offset: std::sync::atomic::AtomicI32,
    /// Items the listing and search handlers looked at (see [`Emulator::items_examined`]).
    items_examined: AtomicU64,
    /// The content host's bandwidth limit and sent-bytes count.
    pacer: Arc<pacing::Pacer>,
    /// Injected faults, checked in order for every request.
    faults: Mutex<Vec<FaultRule>>,
    /// Authorization codes waiting for their exchange.
    auth_codes: Mutex<HashMap<String, oauth::PendingCode>>,
    /// Refresh tokens minted by code exchanges, with what they grant and whose they are.
    refresh_grants: Mutex<HashMap<String, oauth::Minted>>,
    /// The Google account (its `sub`) that signs in on the consent page: random per
    /// emulator (two emulators are two accounts) until [`Emulator::sign_in_as`] changes it.
    signed_in: Mutex<String>,
    tokens: Mutex<HashMap<String, AccessToken>>,
    base_urls: Mutex<HashMap<String, BaseUrlEntry>>,
    /// How long a base URL serves bytes, in milliseconds: `opts.baseurl_ttl` until a test
    /// changes it (every URL, already issued or not, is judged by the current value).
    url_lifetime_ms: AtomicU64,
    renditions: Mutex<HashMap<String, Rendition>>,
    /// Picker API sessions by id.
    picker_sessions: Mutex<HashMap<String, picker::Session>>,
    /// Today's requests against the daily quotas, and those quotas.
    daily: Mutex<DailyCount>,
    /// Videos Google is still processing: item id → when they become READY (emulator clock).
    processing_until: Mutex<HashMap<String, chrono::DateTime<chrono::Utc>>>,
    /// Keys page tokens to this instance so they stay opaque and tamper-evident.
    page_key: [u8; 32],
}

/// A panic in one handler cannot leave these maps half-updated (each update is a single
/// insert), so a poisoned lock is safe to keep using.
fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    fn lock_tokens(&self) -> MutexGuard<'_, HashMap<String, AccessToken>> {
        relock(&self.tokens)
    }

    fn lock_base_urls(&self) -> MutexGuard<'_, HashMap<String, BaseUrlEntry>> {
        relock(&self.base_urls)
    }

    /// How long a base URL serves bytes from its issue.
    fn url_lifetime(&self) -> Duration {
        Duration::from_millis(self.url_lifetime_ms.load(Ordering::SeqCst))
    }

    fn lock_renditions(&self) -> MutexGuard<'_, HashMap<String, Rendition>> {
        relock(&self.renditions)
    }

    /// The library as it is now, uploads included.
    fn current(&self) -> Arc<Library> {
        relock(&self.current).clone()
    }

    fn replace_library(&self, next: Library) {
        *relock(&self.current) = Arc::new(next);
    }

    fn ignore_range(&self) -> bool {
        self.ignore_range.load(Ordering::SeqCst)
    }

    fn repeat_last_entry(&self) -> bool {
        self.repeat_last_entry.load(Ordering::SeqCst)
    }

    /// The calendar date filters read items' dates in (see
    /// [`Emulator::set_date_filter_offset`]).
    fn date_filter_zone(&self) -> chrono::FixedOffset {
        chrono::FixedOffset::east_opt(self.date_filter_offset.load(Ordering::SeqCst))
            .unwrap_or(chrono::FixedOffset::east_opt(0).expect("UTC"))
    }

    /// Counts `n` items a listing or search handler looked at.
    fn examined(&self, n: usize) {
        self.items_examined.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Whether item `id` is a video Google is still processing (at the emulator's now).
    fn processing(&self, id: &str) -> bool {
        let now = self.clock.now();
        relock(&self.processing_until)
            .get(id)
            .is_some_and(|ready| *ready > now)
    }

    /// Item `id` (a video) is processed for `d` from now (a later end already set stays).
    fn start_processing(&self, id: &str, d: Duration) {
        if d.is_zero() {
            return;
        }
        let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        let ready = self
            .clock
            .now()
            .checked_add_signed(d)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        let mut until = relock(&self.processing_until);
        let entry = until.entry(id.to_owned()).or_insert(ready);
        *entry = (*entry).max(ready);
    }
}

/// One request, fully read, as the handlers see it.
pub(crate) struct Req {
    method: Method,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    /// `http://host:port` as the client addressed us; minted base URLs start with it.
    base: String,
}

/// Which endpoint a request is for.
#[derive(Debug)]
enum Route<'a> {
    Token,
    Authorize,
    /// The path after `/lh/`: `{token}[={options}]`.
    Content(&'a str),
    /// The path after `/pk/` (a picked item's bytes): `{token}[={options}]`.
    PickedContent(&'a str),
    /// A Picker API call, or the stand-in picking page (under `/picker`).
    Picker(picker::PickerRoute),
    AlbumsList,
    AlbumsGet(String),
    SharedAlbumsList,
    MediaList,
    MediaSearch,
    MediaGet(String),
    MediaBatchGet,
    MediaBatchCreate,
    AlbumsCreate,
    /// `PATCH /v1/albums/{id}?updateMask=...`
    AlbumsPatch(String),
    /// `POST /v1/albums/{id}:batchAddMediaItems` or `:batchRemoveMediaItems`.
    AlbumsMembership(String, albums::Membership),
    /// `POST /v1/uploads`: raw, resumable start, or a command on a session (`upload_id`).
    Uploads,
    NotFound,
}

impl<'a> Route<'a> {
    /// Routes on the raw (still percent-encoded) path, because Google's custom methods
    /// put a `:` in the last segment (`/v1/mediaItems:search`).
    fn classify(method: &Method, path: &'a str) -> Route<'a> {
        if path == "/token" {
            return Route::Token;
        }
        if path == "/o/oauth2/v2/auth" && method == Method::GET {
            return Route::Authorize;
        }
        if let Some(rest) = path.strip_prefix("/lh/") {
            return Route::Content(rest);
        }
        if let Some(rest) = path.strip_prefix("/pk/") {
            return Route::PickedContent(rest);
        }
        if let Some(rest) = path.strip_prefix(picker::PICKER_PREFIX) {
            return picker::PickerRoute::classify(method, rest)
                .map_or(Route::NotFound, Route::Picker);
        }
        let single_segment = |prefix: &str| -> Option<String> {
            let id = path.strip_prefix(prefix)?;
            (!id.is_empty() && !id.contains('/')).then(|| {
                percent_encoding::percent_decode_str(id)
                    .decode_utf8_lossy()
                    .into_owned()
            })
        };
        match (method, path) {
            (&Method::GET, "/v1/albums") => Route::AlbumsList,
            (&Method::GET, "/v1/sharedAlbums") => Route::SharedAlbumsList,
            (&Method::GET, "/v1/mediaItems") => Route::MediaList,
            (&Method::POST, "/v1/mediaItems:search") => Route::MediaSearch,
            (&Method::GET, "/v1/mediaItems:batchGet") => Route::MediaBatchGet,
            (&Method::POST, "/v1/mediaItems:batchCreate") => Route::MediaBatchCreate,
            (&Method::POST, "/v1/albums") => Route::AlbumsCreate,
            (&Method::POST, "/v1/uploads") => Route::Uploads,
            (&Method::POST, _) => single_segment("/v1/albums/")
                .and_then(|rest| {
                    let (id, call) = rest.rsplit_once(':')?;
                    Some(Route::AlbumsMembership(
                        id.to_owned(),
                        albums::Membership::from_method(call)?,
                    ))
                })
                .unwrap_or(Route::NotFound),
            (&Method::PATCH, _) => {
                single_segment("/v1/albums/").map_or(Route::NotFound, Route::AlbumsPatch)
            }
            (&Method::GET, _) => {
                if let Some(id) = single_segment("/v1/albums/") {
                    Route::AlbumsGet(id)
                } else if let Some(id) = single_segment("/v1/mediaItems/") {
                    Route::MediaGet(id)
                } else {
                    Route::NotFound
                }
            }
            _ => Route::NotFound,
        }
    }

    /// The counter this request increments.
    fn kind(&self, method: &Method) -> &'static str {
        match self {
            Route::Token => "token",
            Route::Authorize => "authorize",
            Route::Content(_) if method == Method::HEAD => "content.head",
            Route::Content(_) if method == Method::GET => "content.get",
            Route::Content(_) => "content.other",
            Route::PickedContent(_) if method == Method::HEAD => "picker.content.head",
            Route::PickedContent(_) if method == Method::GET => "picker.content.get",
            Route::PickedContent(_) => "picker.content.other",
            Route::Picker(route) => route.kind(),
            Route::AlbumsList => "albums.list",
            Route::AlbumsGet(_) => "albums.get",
            Route::SharedAlbumsList => "sharedAlbums.list",
            Route::MediaList => "mediaItems.list",
            Route::MediaSearch => "mediaItems.search",
            Route::MediaGet(_) => "mediaItems.get",
            Route::MediaBatchGet => "mediaItems.batchGet",
            Route::MediaBatchCreate => "mediaItems.batchCreate",
            Route::AlbumsCreate => "albums.create",
            Route::AlbumsPatch(_) => "albums.patch",
            Route::AlbumsMembership(_, call) => call.kind(),
            Route::Uploads => "uploads",
            Route::NotFound => "other",
        }
    }
}

/// The path as logged: base-URL tokens are capabilities, so only a prefix of them is shown.
/// (Access and refresh tokens travel in headers and bodies, which are never logged.)
fn loggable_path(path: &str) -> String {
    let hidden = path
        .strip_prefix("/lh/")
        .map(|rest| ("/lh/", rest))
        .or_else(|| path.strip_prefix("/pk/").map(|rest| ("/pk/", rest)));
    match hidden {
        Some((prefix, rest)) => {
            let (token, options) = rest.split_once('=').unwrap_or((rest, ""));
            let shown: String = token.chars().take(6).collect();
            if options.is_empty() {
                format!("{prefix}{shown}…")
            } else {
                format!("{prefix}{shown}…={options}")
            }
        }
        None => path.to_owned(),
    }
}

/// `http://authority` as the client addressed this server, so minted base URLs work
/// whether the client used 127.0.0.1, localhost or a forwarded port.
fn request_base(parts: &http::request::Parts, local: SocketAddr) -> String {
    let plausible = |a: &str| {
        !a.is_empty()
            && a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:-_[]".contains(&b))
    };
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .filter(|a| plausible(a))
        .unwrap_or_else(|| loopback_if_unspecified(local).to_string());
    format!("http://{authority}")
}

fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

impl Emulator {
    /// Builds an emulator over the deterministic library for `opts.seed` (generated on first
    /// use of that seed in this process, then shared).
    pub fn new(opts: EmulatorOptions) -> Emulator {
        let mut page_key = [0u8; 32];
        rand::rng().fill(&mut page_key);
        let library = fixtures::library_for(
            opts.seed,
            opts.hostile_names,
            opts.big_album,
            opts.many_albums,
            opts.big_item,
            opts.library_size,
            opts.library_albums,
        );
        let url_lifetime_ms = u64::try_from(opts.baseurl_ttl.as_millis()).unwrap_or(u64::MAX);
        let clock = Clock::default();
        let daily = Mutex::new(DailyCount {
            day: pacific_day(clock.now()),
            api: 0,
            media: 0,
            api_limit: opts.daily_quota,
            media_limit: opts.daily_media_quota,
        });
        Emulator {
            inner: Arc::new(Inner {
                daily,
                pacer: Arc::new(pacing::Pacer::new(opts.content_rate)),
                current: Mutex::new(library.clone()),
                write_lock: Mutex::default(),
                uploads: Mutex::default(),
                library,
                opts,
                clock,
                counters: Counters::default(),
                ignore_range: AtomicBool::new(false),
                cut_downloads: AtomicU32::new(0),
                repeat_last_entry: AtomicBool::new(false),
                items_examined: AtomicU64::new(0),
                date_filter_offset: std::sync::atomic::AtomicI32::new(0),
                faults: Mutex::default(),
                auth_codes: Mutex::default(),
                refresh_grants: Mutex::default(),
                signed_in: Mutex::new(oauth::new_account_id()),
                tokens: Mutex::default(),
                base_urls: Mutex::default(),
                url_lifetime_ms: AtomicU64::new(url_lifetime_ms),
                renditions: Mutex::default(),
                picker_sessions: Mutex::default(),
                processing_until: Mutex::default(),
                page_key,
            }),
        }
    }

    /// Accepts connections until this future is dropped or its task aborted; each
    /// connection (HTTP/1.1 or h2, detected per connection) runs in its own task. The
    /// connection tasks are owned by this future, so aborting it also drops open
    /// keep-alive connections, as a real outage would.
    pub async fn serve(&self, listener: TcpListener) -> std::io::Result<()> {
        let local = listener.local_addr()?;
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _peer)) => stream,
                        Err(e) => {
                            // Typically out of file descriptors: back off, keep serving.
                            tracing::warn!(error = %e, "emulator accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let emulator = self.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| {
                            let emulator = emulator.clone();
                            async move { emulator.handle(req, local).await }
                        });
                        let builder = auto::Builder::new(TokioExecutor::new());
                        if let Err(e) = builder.serve_connection(TokioIo::new(stream), service).await {
                            tracing::debug!(error = %e, "emulator connection ended with an error");
                        }
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }

    /// Binds `addr` (port 0 picks a free port), starts serving in a background task and
    /// returns once the port is bound, so requests can be sent right away.
    pub async fn start(
        opts: EmulatorOptions,
        addr: SocketAddr,
    ) -> std::io::Result<RunningEmulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = loopback_if_unspecified(listener.local_addr()?);
        // The first emulator for a seed encodes sixty JPEGs: keep that off the runtime.
        let emulator = tokio::task::spawn_blocking(move || Emulator::new(opts))
            .await
            .map_err(std::io::Error::other)?;
        let server = emulator.clone();
        let handle = tokio::spawn(async move {
            if let Err(e) = server.serve(listener).await {
                tracing::error!(error = %e, "emulator stopped serving");
            }
        });
        Ok(RunningEmulator {
            emulator,
            addr,
            handle,
        })
    }

    /// The emulator's clock; advance it to expire tokens and base URLs.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Requests received, by kind.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// How many items `mediaItems.list` and `mediaItems.search` pages (and album pages) have
    /// looked at so far: every item put on a page, and every item a filtered search checked
    /// and skipped. Work rather than wall time, so a test can show that a page of a million-item
    /// library costs what a page of a small one does, on however busy a machine.
    pub fn items_examined(&self) -> u64 {
        self.inner.items_examined.load(Ordering::Relaxed)
    }

    /// Body bytes the content host has handed to its connections for downloads (GET), in
    /// all: how much a client pulled from "Google".
    pub fn content_bytes_sent(&self) -> u64 {
        self.inner.pacer.sent()
    }

    /// The seeded fixture library this emulator started with.
    pub fn library(&self) -> &Library {
        &self.inner.library
    }

    /// The library as it is now: the seeded one plus the items and albums created through
    /// the API (uploads).
    pub fn current_library(&self) -> Arc<Library> {
        self.inner.current()
    }

    /// From now on, batchCreate answers every new item named `file_name` with a per-item
    /// error status (the call itself succeeds), as Google does for an item it cannot create.
    pub fn reject_uploads_named(&self, file_name: &str) {
        relock(&self.inner.uploads).reject_filename(file_name);
    }

    /// From now on a base URL serves bytes for `lifetime` after it was issued, then answers
    /// 403 (counted as `content.expired`, or `picker.content.expired`), also URLs issued
    /// before the change: Google documents 60 minutes but has ended URLs after 30 to 40.
    pub fn set_url_lifetime(&self, lifetime: Duration) {
        let ms = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
        self.inner.url_lifetime_ms.store(ms, Ordering::SeqCst);
    }

    /// When the base URL that `url` starts with (a Library or Picker download URL, with or
    /// without `=options`) was issued, on the emulator's clock; None for a URL it never issued.
    pub fn url_issued_at(&self, url: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        content::issued_at(&self.inner, url)
    }

    /// Every resumable upload chunk received so far, in order: its length and whether it
    /// was the last of its upload (`finalize`).
    pub fn upload_chunks(&self) -> Vec<(usize, bool)> {
        relock(&self.inner.uploads).chunks()
    }

    /// When on, the content host ignores `Range` and answers 200 with the whole body,
    /// because whether Google's content host honours ranges is unverified and the client
    /// must cope with both.
    pub fn set_ignore_range(&self, on: bool) {
        self.inner.ignore_range.store(on, Ordering::SeqCst);
    }

    /// While on, every page but the first of albums.list, mediaItems.list and
    /// mediaItems.search begins with the last entry of the page before, as Google's pages do
    /// at times (rclone's googlephotos backend drops an id equal to the previous page's last
    /// one, for albums and for items). The repeat takes one of the page's places, so a long
    /// listing needs a few more pages. Page tokens stay valid across a switch.
    pub fn set_repeat_last_entry(&self, on: bool) {
        self.inner.repeat_last_entry.store(on, Ordering::SeqCst);
    }

    /// From now on `mediaItems.search` date filters match an item by its creation date in a
    /// calendar `east_secs` seconds east of UTC (-12 h to +14 h; default 0, UTC). Google does
    /// not document which calendar it uses (the item's local capture date, the account's time
    /// zone?): a client must list every item once whichever it is, also items near midnight.
    pub fn set_date_filter_offset(&self, east_secs: i32) {
        self.inner
            .date_filter_offset
            .store(east_secs.clamp(-12 * 3600, 14 * 3600), Ordering::SeqCst);
    }

    /// The next `n` content downloads (GET with a body) send half their body, then break the
    /// connection: what a dropped connection or a proxy timeout looks like to the client.
    pub fn cut_next_downloads(&self, n: u32) {
        self.inner.cut_downloads.store(n, Ordering::SeqCst);
    }

    /// The user deletes item `id` in the Google Photos app: it leaves the library and every
    /// album; the API no longer knows its id (batchGet, album calls: "invalid media item id").
    /// Listings a client cached before still name it.
    pub fn delete_in_app(&self, id: &str) {
        let _write = relock(&self.inner.write_lock);
        let mut next: Library = (*self.inner.current()).clone();
        next.items.retain(|i| i.id != id);
        for album in &mut next.albums {
            album.item_ids.retain(|i| i != id);
        }
        self.inner.replace_library(next);
    }

    /// From now on the content host serves `bytes` as the original of item `id`, as when
    /// Google re-encodes an item: its size and bytes change under the client's feet.
    pub fn replace_bytes(&self, id: &str, bytes: Bytes) {
        content::replace_original(&self.inner, id, bytes);
    }

    /// From now on, every `every`-th request of `kind` (a counter kind such as
    /// `"mediaItems.search"` or `"content.get"`, or `"*"` for all) suffers `fault`, at most
    /// `times` times (None: forever). Rules are checked in the order they were added.
    pub fn inject(&self, kind: &str, fault: Fault, every: u32, times: Option<u32>) {
        relock(&self.inner.faults).push(FaultRule {
            kind: kind.to_owned(),
            fault,
            every: every.max(1),
            seen: 0,
            remaining: times,
        });
    }

    /// From now on the consent page signs in as the Google account `sub` (what a user does
    /// who picks another account in Google's account chooser): codes issued from now on,
    /// and the refresh tokens they become, belong to it, and their `id_token`s name it.
    /// The library served stays this emulator's.
    pub fn sign_in_as(&self, sub: &str) {
        *relock(&self.inner.signed_in) = sub.to_string();
    }

    /// The account (`sub`) the consent page signs in as.
    pub fn signed_in_account(&self) -> String {
        relock(&self.inner.signed_in).clone()
    }

    /// Every access token issued and every download URL (baseUrl) handed out so far: the
    /// secrets a test checks never reach a log.
    pub fn issued_secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = self.inner.lock_tokens().keys().cloned().collect();
        out.extend(self.inner.lock_base_urls().keys().cloned());
        out
    }

    /// What the user does in Google Photos' picking page: picks `ids` (fixture item ids) for
    /// picking session `session_id`, which sets its `mediaItemsSet`. Returns how many distinct
    /// items were picked, or why the pick was refused (unknown or expired session, already
    /// picked, no ids, more than `maxItemCount`, an id not in the library). The session's
    /// `pickerUri` with `?ids=a,b` does the same over HTTP.
    pub fn pick(&self, session_id: &str, ids: &[String]) -> Result<usize, String> {
        picker::pick(&self.inner, session_id, ids)
    }

    /// Sets the project's daily quotas of Library API requests and of download-URL requests
    /// from now on (None: unlimited); what was counted today stays counted.
    pub fn set_daily_quotas(&self, api: Option<u64>, media: Option<u64>) {
        let mut daily = relock(&self.inner.daily);
        daily.api_limit = api;
        daily.media_limit = media;
    }

    /// Requests counted today (Pacific time, emulator clock) against the daily quotas: Library
    /// API requests, and download-URL requests.
    pub fn daily_counts(&self) -> (u64, u64) {
        let mut daily = relock(&self.inner.daily);
        self.roll_day(&mut daily);
        (daily.api, daily.media)
    }

    fn roll_day(&self, daily: &mut DailyCount) {
        let today = pacific_day(self.inner.clock.now());
        if daily.day != today {
            daily.day = today;
            daily.api = 0;
            daily.media = 0;
        }
    }

    /// Counts a request of `kind` against its daily quota; true when it is over the quota
    /// (Google then answers 429 until Pacific midnight; the refused request still counts).
    fn over_daily_quota(&self, kind: &str) -> bool {
        let library_api = kind.starts_with("albums.")
            || kind.starts_with("mediaItems.")
            || kind == "sharedAlbums.list"
            || kind == "uploads";
        let media = kind.starts_with("content.");
        if !library_api && !media {
            return false;
        }
        let mut daily = relock(&self.inner.daily);
        self.roll_day(&mut daily);
        if library_api {
            daily.api += 1;
            daily.api_limit.is_some_and(|limit| daily.api > limit)
        } else {
            daily.media += 1;
            daily.media_limit.is_some_and(|limit| daily.media > limit)
        }
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        relock(&self.inner.faults).clear();
        self.inner.cut_downloads.store(0, Ordering::SeqCst);
    }

    /// The fault for this request of `kind`, if a rule fires.
    fn next_fault(&self, kind: &str) -> Option<Fault> {
        let mut rules = relock(&self.inner.faults);
        for rule in rules.iter_mut() {
            if rule.kind != "*" && rule.kind != kind {
                continue;
            }
            if rule.remaining == Some(0) {
                continue;
            }
            rule.seen += 1;
            if rule.seen % rule.every == 0 {
                if let Some(n) = rule.remaining.as_mut() {
                    *n -= 1;
                }
                return Some(rule.fault.clone());
            }
        }
        None
    }

    /// Takes one planned download cut, if any is left.
    fn take_cut(&self) -> bool {
        self.inner
            .cut_downloads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// The request pipeline; every request passes through here exactly once.
    async fn handle(
        &self,
        req: Request<Incoming>,
        local: SocketAddr,
    ) -> Result<Response<Body>, std::io::Error> {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_owned();
        let route = Route::classify(&parts.method, &path);
        let kind = route.kind(&parts.method);
        // Counted before anything can fail: a failed call still cost Google quota.
        self.inner.counters.increment(kind);
        let over_quota = self.over_daily_quota(kind);

        let fault = self.next_fault(kind);
        let content = kind.starts_with("content.") || kind.starts_with("picker.content.");
        let delayed = content
            || kind.starts_with("albums.")
            || kind.starts_with("mediaItems.")
            || kind == "sharedAlbums.list";
        if delayed && !self.inner.opts.latency.is_zero() {
            tokio::time::sleep(self.inner.opts.latency).await;
        }
        let injected = match &fault {
            Some(Fault::Latency(delay)) => {
                tokio::time::sleep(*delay).await;
                None
            }
            Some(Fault::Reset) => {
                tracing::debug!(kind, "emulator resets the connection (injected fault)");
                return Err(std::io::Error::other("injected fault: connection reset"));
            }
            Some(Fault::RateLimited { retry_after_secs }) => Some(
                throttled_reply(content, kind, RATE_MESSAGE, Some(MINUTE_LIMIT)).with_header(
                    http::header::RETRY_AFTER,
                    HeaderValue::from(*retry_after_secs),
                ),
            ),
            Some(Fault::WriteRateLimited) => Some(write_rate_limited(content)),
            Some(Fault::DailyQuota) => Some(throttled_reply(
                content,
                kind,
                DAILY_MESSAGE,
                Some(DAILY_LIMIT),
            )),
            Some(Fault::Throttled {
                message,
                quota_limit,
                retry_after_secs,
            }) => {
                let reply = throttled_reply(content, kind, message, quota_limit.as_deref());
                Some(match retry_after_secs {
                    Some(secs) => {
                        reply.with_header(http::header::RETRY_AFTER, HeaderValue::from(*secs))
                    }
                    None => reply,
                })
            }
            Some(Fault::Status(code)) => {
                let status =
                    StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let rpc = match code {
                    503 => "UNAVAILABLE",
                    504 => "DEADLINE_EXCEEDED",
                    _ => "INTERNAL",
                };
                Some(fault_reply(
                    content,
                    status,
                    "Internal error encountered.",
                    rpc,
                ))
            }
            Some(Fault::CutBody) | None if over_quota => {
                tracing::debug!(kind, "emulator: the project's daily quota is used up");
                Some(throttled_reply(
                    content,
                    kind,
                    DAILY_MESSAGE,
                    Some(DAILY_LIMIT),
                ))
            }
            Some(Fault::CutBody) | None => None,
        };
        if let Some(reply) = injected {
            tracing::debug!(
                kind,
                status = reply.status.as_u16(),
                "emulator answers an injected fault"
            );
            return Ok(reply.into_response(parts.method == Method::HEAD));
        }
        let cut = matches!(fault, Some(Fault::CutBody));

        let head = parts.method == Method::HEAD;
        let reply = match Limited::new(body, MAX_BODY).collect().await {
            Ok(collected) => {
                let req = Req {
                    base: request_base(&parts, local),
                    method: parts.method.clone(),
                    query: parts.uri.query().map(str::to_owned),
                    headers: parts.headers.clone(),
                    body: collected.to_bytes(),
                };
                self.dispatch(&route, &req)
            }
            Err(e) => {
                tracing::debug!(error = %e, "emulator could not read a request body");
                Reply::google_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Request body could not be read or is too large.",
                    "INVALID_ARGUMENT",
                )
            }
        };
        tracing::debug!(
            method = %parts.method,
            path = %loggable_path(&path),
            kind,
            status = reply.status.as_u16(),
            "emulator request"
        );
        // (A generated body has an empty `body` and is never cut.)
        let response =
            if !head && reply.body.len() > 1 && (cut || (kind == "content.get" && self.take_cut()))
            {
                tracing::debug!(
                    kind,
                    "emulator cuts this body after half its bytes (injected fault)"
                );
                reply.into_cut_response()
            } else {
                reply.into_response(head)
            };
        if kind == "content.get" {
            let (parts, body) = response.into_parts();
            let body = pacing::paced(body, self.inner.pacer.clone());
            return Ok(Response::from_parts(parts, body));
        }
        Ok(response)
    }

    fn dispatch(&self, route: &Route<'_>, req: &Req) -> Reply {
        let inner = &self.inner;
        match route {
            Route::Token => oauth::token(inner, req),
            Route::Authorize => oauth::authorize(inner, req),
            Route::Content(rest) => content::serve(inner, req, rest, false),
            Route::PickedContent(rest) => content::serve(inner, req, rest, true),
            Route::Picker(route) => picker::dispatch(inner, req, route),
            Route::AlbumsList => api::albums_list(inner, req),
            Route::AlbumsGet(id) => api::albums_get(inner, req, id),
            Route::SharedAlbumsList => api::shared_albums_list(inner, req),
            Route::MediaList => api::media_list(inner, req),
            Route::MediaSearch => search::media_search(inner, req),
            Route::MediaGet(id) => api::media_get(inner, req, id),
            Route::MediaBatchGet => api::media_batch_get(inner, req),
            Route::MediaBatchCreate => upload::batch_create(inner, req),
            Route::AlbumsCreate => upload::albums_create(inner, req),
            Route::AlbumsPatch(id) => upload::albums_patch(inner, req, id),
            Route::AlbumsMembership(id, call) => albums::batch_membership(inner, req, id, *call),
            Route::Uploads => upload::uploads(inner, req),
            Route::NotFound => {
                Reply::google_error(StatusCode::NOT_FOUND, "Method not found.", "NOT_FOUND")
            }
        }
    }
}

/// An emulator serving in a background task; dropping it stops the server.
pub struct RunningEmulator {
    pub emulator: Emulator,
    pub addr: SocketAddr,
    handle: JoinHandle<()>,
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The authorization endpoint (Google: `https://accounts.google.com/o/oauth2/v2/auth`).
    pub fn auth_url(&self) -> String {
        format!("{}/o/oauth2/v2/auth", self.base_url())
    }

    /// The OAuth token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }

    /// The Library API base; the client appends `/v1/albums` etc.
    pub fn api_base(&self) -> String {
        self.base_url()
    }

    /// The Picker API base (Google: `https://photospicker.googleapis.com`); the client
    /// appends `/v1/sessions` etc. The emulator serves it under `/picker`, so that its
    /// `mediaItems` do not collide with the Library API's.
    pub fn picker_base(&self) -> String {
        format!("{}{}", self.base_url(), picker::PICKER_PREFIX)
    }

    /// A `[google]` configuration section pointing gphotos-dav at this emulator (printed by
    /// `gphotos-dav emulator`, written into configs by tests and benchmarks).
    pub fn google_config(&self) -> String {
        format!(
            "[google]\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{}\"\n\
             api_base = \"{}\"\ntoken_url = \"{}\"\npicker_base = \"{}\"\n",
            CLIENT_ID,
            CLIENT_SECRET,
            REFRESH_TOKEN,
            self.api_base(),
            self.token_url(),
            self.picker_base(),
        )
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.handle.abort();
    }
}
