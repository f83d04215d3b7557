//! The content host (`lh3.googleusercontent.com` in production): serves bytes behind the
//! short-lived base URLs the Library API hands out.
//!
//! Base URLs are capabilities: no Authorization header is needed, an unknown one is 404 and
//! one older than the base-URL lifetime is 403, which is how a client learns it must fetch
//! the item again for a fresh URL. `=dv` of a video Google is still processing is 404
//! (unverified; thumbnails of it are served).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, HeaderValue,
    RANGE,
};
use http::{Method, StatusCode};
use rand::Rng;
use sha2::{Digest, Sha256};

use super::fixtures::{FixtureItem, MediaKind, id_hash, render_jpeg};
use super::generated::GeneratedRange;
use super::reply::Reply;
use super::{Inner, Req};

/// Longest side of any generated video thumbnail: Google's can be full-size frames, but
/// encoding 4K JPEGs in unoptimised test builds is too slow.
const VIDEO_THUMB_MAX: u32 = 1024;
/// Longest side served for a bare base URL without size options, and for `=d` on a video.
const DEFAULT_THUMB: u32 = 512;

/// One minted base URL.
#[derive(Clone, Debug)]
pub(crate) struct BaseUrlEntry {
    item_id: String,
    issued_at: DateTime<Utc>,
    /// The picking session of a Picker API URL (served under `/pk/`, bearer token required);
    /// None for a Library API URL (served under `/lh/`, no token needed).
    session: Option<String>,
}

/// Bytes one base URL plus options resolves to, with the validator served for them.
#[derive(Clone, Debug)]
pub(crate) struct Rendition {
    bytes: Bytes,
    mime_type: String,
    etag: String,
}

/// Mints a fresh base URL for `item_id`, remembered with the emulator's current time.
pub(crate) fn mint(inner: &Inner, base: &str, item_id: &str) -> String {
    format!("{base}/lh/{}", mint_token(inner, item_id, None))
}

/// Mints a fresh base URL for an item picked in `session`: it serves bytes only with the
/// bearer token, while the session lives, for the base-URL lifetime.
pub(crate) fn mint_picked(inner: &Inner, base: &str, item_id: &str, session: &str) -> String {
    format!(
        "{base}/pk/{}",
        mint_token(inner, item_id, Some(session.to_owned()))
    )
}

fn mint_token(inner: &Inner, item_id: &str, session: Option<String>) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut rng = rand::rng();
    let token: String = (0..96)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    inner.lock_base_urls().insert(
        token.clone(),
        BaseUrlEntry {
            item_id: item_id.to_owned(),
            issued_at: inner.clock.now(),
            session,
        },
    );
    token
}

/// When the base URL `url` (`.../lh/<token>` or `.../pk/<token>`, options allowed) was
/// issued.
pub(crate) fn issued_at(inner: &Inner, url: &str) -> Option<DateTime<Utc>> {
    let (_, rest) = url
        .rsplit_once("/lh/")
        .or_else(|| url.rsplit_once("/pk/"))?;
    let token = rest.split_once('=').map_or(rest, |(token, _)| token);
    inner.lock_base_urls().get(token).map(|e| e.issued_at)
}

/// The `=...` options of a content URL, e.g. `=d`, `=dv`, `=w200-h100-c`.
#[derive(Debug, Default)]
struct Options {
    download: bool,
    video: bool,
    crop: bool,
    width: Option<u32>,
    height: Option<u32>,
}

impl Options {
    fn parse(raw: &str) -> Option<Options> {
        let mut options = Options::default();
        for part in raw.split('-').filter(|p| !p.is_empty()) {
            let number = |prefix: char| -> Option<Option<u32>> {
                let digits = part.strip_prefix(prefix)?;
                Some(digits.parse::<u32>().ok().filter(|n| *n > 0))
            };
            match part {
                "d" => options.download = true,
                "dv" => options.video = true,
                "c" => options.crop = true,
                _ if part.len() > 1 && part[1..].bytes().all(|b| b.is_ascii_digit()) => {
                    match part.chars().next() {
                        Some('w') => options.width = Some(number('w')??),
                        Some('h') => options.height = Some(number('h')??),
                        Some('s') => {
                            let size = number('s')??;
                            options.width = Some(size);
                            options.height = Some(size);
                        }
                        // Other numeric options (rotation, quality, ...) change nothing here.
                        _ => {}
                    }
                }
                // Other flags Google knows (`no`, `k`, `rj`, ...) are accepted and ignored.
                _ if part.bytes().all(|b| b.is_ascii_alphanumeric()) => {}
                _ => return None,
            }
        }
        Some(options)
    }

    fn sized(&self) -> bool {
        self.width.is_some() || self.height.is_some()
    }
}

/// What a request resolves to, before the bytes are produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// The item's own bytes (photo for `=d`, video for `=dv`).
    Original,
    /// A generated JPEG of this size.
    Jpeg(u32, u32),
}

/// Scales `(w, h)` to fit in the box (either side may be unbounded), never enlarging.
fn fit(w: u32, h: u32, box_w: Option<u32>, box_h: Option<u32>) -> (u32, u32) {
    let scale_w = box_w.map_or(1.0, |b| f64::from(b) / f64::from(w));
    let scale_h = box_h.map_or(1.0, |b| f64::from(b) / f64::from(h));
    let scale = scale_w.min(scale_h).min(1.0);
    let scaled = |v: u32| ((f64::from(v) * scale).round() as u32).max(1);
    (scaled(w), scaled(h))
}

fn variant(item: &FixtureItem, options: &Options) -> Option<Variant> {
    let is_video = item.kind == MediaKind::Video;
    if options.video {
        return is_video.then_some(Variant::Original);
    }
    let (w, h) = if options.sized() {
        if options.crop {
            (
                options.width.unwrap_or(item.width).min(item.width),
                options.height.unwrap_or(item.height).min(item.height),
            )
        } else {
            fit(item.width, item.height, options.width, options.height)
        }
    } else if options.download && !is_video {
        (item.width, item.height)
    } else {
        // A bare base URL, or `=d` on a video (its poster frame): a small JPEG.
        fit(
            item.width,
            item.height,
            Some(DEFAULT_THUMB),
            Some(DEFAULT_THUMB),
        )
    };
    if is_video {
        let (w, h) = fit(w, h, Some(VIDEO_THUMB_MAX), Some(VIDEO_THUMB_MAX));
        Some(Variant::Jpeg(w, h))
    } else if (w, h) == (item.width, item.height) {
        // "May be the photo itself": a thumbnail no smaller than the photo is the photo.
        Some(Variant::Original)
    } else {
        Some(Variant::Jpeg(w, h))
    }
}

fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", &hex::encode(Sha256::digest(bytes))[..32])
}

/// Makes `bytes` the original rendition of item `id` from now on (tests: re-encoded items).
pub(crate) fn replace_original(inner: &Inner, id: &str, bytes: Bytes) {
    let mime_type = inner
        .current()
        .item(id)
        .map(|i| i.mime_type.clone())
        .unwrap_or_else(|| "application/octet-stream".into());
    inner.lock_renditions().insert(
        format!("{id}|original"),
        Rendition {
            etag: etag_of(&bytes),
            bytes,
            mime_type,
        },
    );
}

/// The bytes for `variant`, generated once per emulator and then cached.
fn rendition(inner: &Inner, item: &FixtureItem, variant: Variant) -> Result<Rendition, Reply> {
    let key = match variant {
        Variant::Original => format!("{}|original", item.id),
        Variant::Jpeg(w, h) => format!("{}|{w}x{h}", item.id),
    };
    if let Some(found) = inner.lock_renditions().get(&key) {
        return Ok(found.clone());
    }
    let made = match variant {
        Variant::Original => Rendition {
            etag: etag_of(&item.bytes),
            bytes: item.bytes.clone(),
            mime_type: item.mime_type.clone(),
        },
        Variant::Jpeg(w, h) => {
            let seed = id_hash(&item.id);
            let bytes = render_jpeg(
                w,
                h,
                seed,
                8,
                seed ^ (u64::from(w) << 32 | u64::from(h)),
                85,
            )
            .map_err(|e| {
                tracing::error!(error = %e, "emulator could not render a thumbnail");
                Reply::html_error(StatusCode::INTERNAL_SERVER_ERROR)
            })?;
            Rendition {
                etag: etag_of(&bytes),
                bytes,
                mime_type: "image/jpeg".to_owned(),
            }
        }
    };
    inner.lock_renditions().insert(key, made.clone());
    Ok(made)
}

/// A parsed `Range` header, as far as the content host honours it.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// No usable single range: answer 200 with the whole body. This covers a missing or
    /// malformed header (RFC 9110 says to ignore those) and multiple ranges.
    Whole,
    /// Inclusive byte positions.
    Single(u64, u64),
    Unsatisfiable,
}

fn parse_range(header: &str, total: u64) -> RangeRequest {
    let Some(spec) = header
        .trim()
        .strip_prefix("bytes=")
        .or_else(|| header.trim().strip_prefix("Bytes="))
    else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let parse = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // bytes=-n: the last n bytes.
        (true, false) => match parse(last) {
            None => RangeRequest::Whole,
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if total == 0 => RangeRequest::Unsatisfiable,
            Some(n) => RangeRequest::Single(total.saturating_sub(n), total - 1),
        },
        // bytes=a-
        (false, true) => match parse(first) {
            None => RangeRequest::Whole,
            Some(a) if a >= total => RangeRequest::Unsatisfiable,
            Some(a) => RangeRequest::Single(a, total - 1),
        },
        // bytes=a-b
        (false, false) => match (parse(first), parse(last)) {
            (Some(a), Some(b)) if a <= b => {
                if a >= total {
                    RangeRequest::Unsatisfiable
                } else {
                    RangeRequest::Single(a, b.min(total - 1))
                }
            }
            _ => RangeRequest::Whole,
        },
        (true, true) => RangeRequest::Whole,
    }
}

/// Handles `GET`/`HEAD /lh/{token}[={options}]` (Library API URLs, `picked` false) and
/// `/pk/{token}[={options}]` (Picker API URLs, `picked` true: bearer token and live session
/// checked first).
pub(crate) fn serve(inner: &Inner, req: &Req, rest: &str, picked: bool) -> Reply {
    if req.method != Method::GET && req.method != Method::HEAD {
        return Reply::html_error(StatusCode::METHOD_NOT_ALLOWED)
            .with_header(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    let (token, raw_options) = match rest.split_once('=') {
        Some((token, options)) => (token, options),
        None => (rest, ""),
    };
    let entry = inner.lock_base_urls().get(token).cloned();
    let Some(entry) = entry.filter(|e| e.session.is_some() == picked) else {
        return Reply::html_error(StatusCode::NOT_FOUND);
    };
    if let Some(session) = &entry.session
        && let Err(refused) = super::picker::check_content_access(inner, req, session)
    {
        return refused;
    }
    let age = inner.clock.now() - entry.issued_at;
    let ttl = chrono::Duration::from_std(inner.url_lifetime()).unwrap_or(chrono::Duration::MAX);
    if age >= ttl {
        inner.counters.increment(if picked {
            "picker.content.expired"
        } else {
            "content.expired"
        });
        return Reply::html_error(StatusCode::FORBIDDEN);
    }
    let library = inner.current();
    let Some(item) = library.item(&entry.item_id) else {
        return Reply::html_error(StatusCode::NOT_FOUND);
    };
    let Some(options) = Options::parse(raw_options) else {
        return Reply::html_error(StatusCode::BAD_REQUEST);
    };
    let Some(variant) = variant(item, &options) else {
        // `=dv` on a photo.
        return Reply::html_error(StatusCode::NOT_FOUND);
    };
    if variant == Variant::Original && item.kind == MediaKind::Video && inner.processing(&item.id) {
        // The transcode `=dv` serves does not exist yet. What Google answers here is
        // unverified (docs/google-fidelity.md): 404 is a guess, and the client never relies on
        // it, since it does not ask for the bytes of a video it knows is processing.
        return Reply::html_error(StatusCode::NOT_FOUND);
    }
    if variant == Variant::Original
        && let Some(big) = inner.library.big_item.as_ref().filter(|b| b.id == item.id)
        && !inner
            .lock_renditions()
            .contains_key(&format!("{}|original", item.id))
    {
        return respond_generated(inner, req, big, &item.mime_type);
    }
    let mut rendition = match rendition(inner, item, variant) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    if picked && variant == Variant::Original && item.kind == MediaKind::Photo {
        // Google serves picked photos without their location.
        let stripped = super::strip_gps(&rendition.bytes);
        if stripped != rendition.bytes {
            rendition.etag = etag_of(&stripped);
            rendition.bytes = stripped;
        }
    }
    let reply = respond(inner, req, rendition);
    if req.method == Method::GET {
        // What a client pulled, by kind: an item's own bytes, or a size Google rendered
        // (`=w…-h…`; a "thumbnail" no smaller than the photo is the photo, counted as such).
        let what = match (picked, variant) {
            (false, Variant::Original) => "content.original",
            (false, Variant::Jpeg(..)) => "content.sized",
            (true, Variant::Original) => "picker.content.original",
            (true, Variant::Jpeg(..)) => "picker.content.sized",
        };
        inner.counters.add_bytes(what, reply.body.len() as u64);
    }
    reply
}

/// The range a request asks of a body of `total` bytes, as far as the host honours it.
fn requested_range(inner: &Inner, req: &Req, total: u64) -> RangeRequest {
    if inner.ignore_range() {
        RangeRequest::Whole
    } else {
        req.headers
            .get(RANGE)
            .and_then(|v| v.to_str().ok())
            .map_or(RangeRequest::Whole, |v| parse_range(v, total))
    }
}

/// Serves the big item's original: the same headers and range handling as [`respond`], with
/// the body generated while it is sent.
fn respond_generated(
    inner: &Inner,
    req: &Req,
    big: &super::fixtures::BigItem,
    mime_type: &str,
) -> Reply {
    let total = big.size;
    let (status, start, len) = match requested_range(inner, req, total) {
        RangeRequest::Whole => (StatusCode::OK, 0, total),
        RangeRequest::Single(start, end) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        RangeRequest::Unsatisfiable => {
            return Reply::html_error(StatusCode::RANGE_NOT_SATISFIABLE)
                .with_header(CONTENT_RANGE, header_value(format!("bytes */{total}")))
                .with_header(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        }
    };
    let mut reply = Reply::new(status, "video/mp4", Bytes::new());
    reply.generated = Some(GeneratedRange {
        seed: big.seed,
        start,
        len,
    });
    if status == StatusCode::PARTIAL_CONTENT {
        reply.headers.insert(
            CONTENT_RANGE,
            header_value(format!("bytes {start}-{}/{total}", start + len - 1)),
        );
    }
    if let Ok(mime) = HeaderValue::from_str(mime_type) {
        reply.headers.insert(CONTENT_TYPE, mime);
    }
    reply.headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    reply
        .headers
        .insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    reply.headers.insert(
        ETAG,
        header_value(format!("\"generated-{:x}-{total:x}\"", big.seed)),
    );
    reply.headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400, no-transform"),
    );
    reply
}

fn respond(inner: &Inner, req: &Req, rendition: Rendition) -> Reply {
    let total = rendition.bytes.len() as u64;
    let range = requested_range(inner, req, total);
    let mime = HeaderValue::from_str(&rendition.mime_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let etag = HeaderValue::from_str(&rendition.etag).ok();
    let mut reply = match range {
        RangeRequest::Whole => Reply {
            status: StatusCode::OK,
            headers: Default::default(),
            body: rendition.bytes,
            generated: None,
        },
        RangeRequest::Single(start, end) => {
            let slice = rendition.bytes.slice(start as usize..=end as usize);
            Reply {
                status: StatusCode::PARTIAL_CONTENT,
                headers: Default::default(),
                body: slice,
                generated: None,
            }
            .with_header(
                CONTENT_RANGE,
                header_value(format!("bytes {start}-{end}/{total}")),
            )
        }
        RangeRequest::Unsatisfiable => {
            return Reply::html_error(StatusCode::RANGE_NOT_SATISFIABLE)
                .with_header(CONTENT_RANGE, header_value(format!("bytes */{total}")))
                .with_header(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        }
    };
    reply.headers.insert(CONTENT_TYPE, mime);
    reply
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(reply.body.len()));
    reply
        .headers
        .insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(etag) = etag {
        reply.headers.insert(ETAG, etag);
    }
    reply.headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400, no-transform"),
    );
    reply
}

/// Header values built from digits and ASCII punctuation are always valid.
fn header_value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod range_tests {
    use super::{RangeRequest, parse_range};

    #[test]
    fn ranges() {
        use RangeRequest::*;
        assert_eq!(parse_range("bytes=0-9", 100), Single(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Single(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Single(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), Single(0, 99));
        assert_eq!(parse_range("bytes=50-1000", 100), Single(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Whole);
        assert_eq!(parse_range("bytes=9-2", 100), Whole);
        assert_eq!(parse_range("items=0-1", 100), Whole);
        assert_eq!(parse_range("bytes=x-1", 100), Whole);
    }
}
