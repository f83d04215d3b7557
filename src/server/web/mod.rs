//! The gallery in the browser (issue #17): a folder's page for a browser, and the routes
//! under `<prefix>/_/` its page uses.
//!
//! A browser that opens a folder asks with `Accept: text/html`; the gallery stage
//! (`layers::gallery`) answers it with the page ([`page`]); every other client (Finder sends
//! `*/*`, WebDAV clients send nothing or XML) gets what dav-server answers, unchanged. The
//! page's own requests go to the router's `<prefix>/_/` route, here:
//!
//! | path | what |
//! |---|---|
//! | `_/assets/gallery.{js,css}`, `icon.svg` | the script, style and icon, embedded in the binary |
//! | `_/thumb/<path>?s=N` | a square thumbnail: Google's `=wN-hN-c` size variant |
//! | `_/thumb/<path>?w=W&h=H` | a screen-size variant (`=wW-hH`), for the viewer |
//! | `_/api/picks...` | picking sessions and picked sets ([`api`]) |
//!
//! Both sit behind the same Basic authentication as WebDAV (the router puts the
//! authentication stage in front of this route; read-only users get 403 for POST and
//! DELETE there), and every answer carries the Content-Security-Policy of [`security`].
//! Videos play from the file's own path (dav-server's GET, with Range), and the download link
//! is that path too: the original bytes, through whatever `[webdav] policy` says.

pub mod api;
pub mod page;
pub mod security;

use std::sync::Arc;

use bytes::Bytes;
use dav_server::davpath::DavPath;
use http::{HeaderValue, Method, StatusCode};

use crate::catalog::variants::SizeVariant;
use crate::catalog::{Catalog, CatalogError, Node};
use crate::dav::segments;
use crate::server::auth::Identity;
use crate::server::layers::prefix::Prefix;
use crate::server::layers::stage::{Req, Res};
use crate::server::response::{full, text_response, upstream_failure};

/// The sides a square thumbnail may have (`?s=`): a few, so that the content cache keeps one
/// copy per item rather than one per window size.
const THUMB_SIDES: [u32; 3] = [128, 256, 512];

/// The boxes a screen-size variant is rounded up to (`?w=&h=`), for the same reason.
const SCREEN_SIDES: [u32; 5] = [640, 1280, 1920, 2560, 3840];

const GALLERY_JS: &str = include_str!("assets/gallery.js");
const GALLERY_CSS: &str = include_str!("assets/gallery.css");
const ICON_SVG: &str = include_str!("assets/icon.svg");

/// The gallery: the folder pages and the `/_/` routes (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Web {
    inner: Arc<Shared>,
}

struct Shared {
    catalog: Catalog,
    prefix: Prefix,
    /// `[server] read_only` is off: uploads, new albums and imports exist.
    writable: bool,
    /// The server speaks TLS itself (its origin is `https://`).
    tls: bool,
    picks: api::Picks,
}

impl Web {
    pub fn new(catalog: Catalog, prefix: Prefix, writable: bool, tls: bool) -> Web {
        Web {
            inner: Arc::new(Shared {
                picks: api::Picks::default(),
                catalog,
                prefix,
                writable,
                tls,
            }),
        }
    }

    /// Where the `/_/` routes start: `<prefix>/_/`.
    pub fn base(&self) -> String {
        format!("{}/_/", self.inner.prefix.as_str())
    }

    /// The page of the folder at `tree` (a path inside the tree, still escaped) for a GET or
    /// HEAD whose `Accept` names `text/html`; None when `tree` is not a folder (a file's GET
    /// from a browser is its bytes, as for every client).
    pub async fn folder_page(&self, req: &Asked, tree: &str) -> Option<Res> {
        let segs = DavPath::new(tree).ok().and_then(|p| segments(&p).ok())?;
        let catalog = &self.inner.catalog;
        let key = match catalog.stat(&segs).await {
            Ok(Node::Dir { key, .. }) => key,
            Ok(Node::File(_)) | Err(CatalogError::NotFound) => return None,
            Err(e) => return Some(self.harden(upstream_failure(&req.method, tree, &e))),
        };
        let entries = match catalog.list(&segs).await {
            Ok(entries) => entries,
            Err(e) => return Some(self.harden(upstream_failure(&req.method, tree, &e))),
        };
        let writes = req.writes;
        let uploads_here =
            self.inner.writable && writes && matches!(catalog.upload_dir(&segs).await, Ok(Some(_)));
        use crate::catalog::FolderKey;
        let controls = page::Controls {
            upload: uploads_here,
            new_album: self.inner.writable && writes && key == FolderKey::Albums,
            pick: writes && key == FolderKey::Picked,
            import: writes && self.inner.writable && key == FolderKey::Picked,
        };
        let number = req
            .uri
            .query()
            .and_then(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "page")
                    .and_then(|(_, v)| v.parse().ok())
            })
            .unwrap_or(1);
        let html = page::Page {
            prefix: self.inner.prefix.as_str(),
            segments: &segs,
            entries: &entries,
            page: number,
            controls,
        }
        .render();
        let mut resp = bytes_response(
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from(html),
            req.method == Method::HEAD,
        );
        resp.headers_mut().insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        Some(self.harden(resp))
    }

    /// A request under `<prefix>/_/` (after authentication).
    pub async fn handle(&self, req: Req) -> Res {
        let path = req.uri().path().to_string();
        let base = self.base();
        let rest = path.strip_prefix(&base).unwrap_or("");
        let resp = if let Some(api) = rest.strip_prefix("api/") {
            api::handle(self, req, api).await
        } else if let Some(file) = rest.strip_prefix("thumb") {
            let file = file.to_string();
            self.variant(&Asked::of(&req), &file).await
        } else if let Some(asset) = rest.strip_prefix("assets/") {
            asset_response(&req, asset)
        } else {
            text_response(StatusCode::NOT_FOUND, "gphotos-dav: no such page\n")
        };
        self.harden(resp)
    }

    /// `_/thumb/<path>?s=N` or `?w=W&h=H`: a size variant of the file at `<path>`.
    async fn variant(&self, req: &Asked, file: &str) -> Res {
        if req.method != Method::GET && req.method != Method::HEAD {
            return text_response(StatusCode::METHOD_NOT_ALLOWED, "gphotos-dav: GET only\n");
        }
        let Some(variant) = parse_variant(req.uri.query().unwrap_or("")) else {
            return text_response(
                StatusCode::BAD_REQUEST,
                "gphotos-dav: a thumbnail needs ?s=SIDE or ?w=WIDTH&h=HEIGHT\n",
            );
        };
        let Some(segs) = DavPath::new(file).ok().and_then(|p| segments(&p).ok()) else {
            return text_response(StatusCode::BAD_REQUEST, "gphotos-dav: a bad path\n");
        };
        match self.inner.catalog.size_variant(&segs, variant).await {
            Ok(v) => {
                let mut resp = bytes_response(
                    StatusCode::OK,
                    v.mime_type,
                    v.bytes,
                    req.method == Method::HEAD,
                );
                resp.headers_mut().insert(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("private, max-age=3600"),
                );
                resp
            }
            Err(e) => upstream_failure(&req.method, req.uri.path(), &e),
        }
    }

    /// The security headers on `resp` (see [`security`]).
    fn harden(&self, mut resp: Res) -> Res {
        security::harden(resp.headers_mut());
        resp
    }

    pub(crate) fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }
}

/// What the gallery reads of a request, taken out of it before any wait (a request's body is
/// not `Sync`, so a future holding `&Req` across an await could not move between threads).
pub struct Asked {
    pub method: Method,
    pub uri: http::Uri,
    /// The user may change things (not a read-only user).
    pub writes: bool,
}

impl Asked {
    pub fn of(req: &Req) -> Asked {
        Asked {
            method: req.method().clone(),
            uri: req.uri().clone(),
            writes: !matches!(
                req.extensions().get::<Identity>(),
                Some(Identity::User {
                    read_only: true,
                    ..
                })
            ),
        }
    }
}

/// The size variant a thumbnail URL's query asks for, rounded to the sizes served.
fn parse_variant(query: &str) -> Option<SizeVariant> {
    let mut s = None;
    let mut w = None;
    let mut h = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        let n: u32 = v.parse().ok()?;
        match &*k {
            "s" => s = Some(n),
            "w" => w = Some(n),
            "h" => h = Some(n),
            _ => {}
        }
    }
    let up = |sides: &[u32], n: u32| {
        sides
            .iter()
            .copied()
            .find(|s| *s >= n)
            .unwrap_or(sides[sides.len() - 1])
    };
    match (s, w, h) {
        (Some(s), None, None) if s > 0 => {
            let side = up(&THUMB_SIDES, s);
            Some(SizeVariant {
                width: side,
                height: side,
                crop: true,
            })
        }
        (None, Some(w), Some(h)) if w > 0 && h > 0 => Some(SizeVariant {
            width: up(&SCREEN_SIDES, w),
            height: up(&SCREEN_SIDES, h),
            crop: false,
        }),
        _ => None,
    }
}

/// An embedded asset.
fn asset_response(req: &Req, name: &str) -> Res {
    let (mime, body) = match name {
        "gallery.js" => ("text/javascript; charset=utf-8", GALLERY_JS),
        "gallery.css" => ("text/css; charset=utf-8", GALLERY_CSS),
        "icon.svg" => ("image/svg+xml", ICON_SVG),
        _ => return text_response(StatusCode::NOT_FOUND, "gphotos-dav: no such asset\n"),
    };
    let mut resp = bytes_response(
        StatusCode::OK,
        mime,
        Bytes::from_static(body.as_bytes()),
        req.method() == Method::HEAD,
    );
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    resp
}

/// A whole body with its type and length (`head`: the length only).
fn bytes_response(status: StatusCode, mime: &str, body: Bytes, head: bool) -> Res {
    let len = body.len();
    let body = if head { Bytes::new() } else { body };
    let mut resp = http::Response::new(http_body_util::BodyExt::boxed_unsync(
        http_body_util::BodyExt::map_err(http_body_util::Full::new(body), |n| match n {}),
    ));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime) {
        h.insert(http::header::CONTENT_TYPE, v);
    }
    h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, value: &serde_json::Value) -> Res {
    let mut resp = http::Response::new(full(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_are_rounded_to_the_sizes_served() {
        let v = |q| parse_variant(q).map(|v| v.suffix());
        assert_eq!(v("s=256").as_deref(), Some("w256-h256-c"));
        assert_eq!(v("s=200").as_deref(), Some("w256-h256-c"));
        assert_eq!(v("s=9999").as_deref(), Some("w512-h512-c"));
        assert_eq!(v("w=1000&h=700").as_deref(), Some("w1280-h1280"));
        assert_eq!(v("w=1920&h=1080").as_deref(), Some("w1920-h1280"));
        assert_eq!(v(""), None);
        assert_eq!(v("s=0"), None);
        assert_eq!(v("s=x"), None);
        assert_eq!(v("w=10"), None);
    }
}
