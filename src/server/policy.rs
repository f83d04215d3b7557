//! How a GET of a file is answered: the `[webdav] policy` (see `docs/policies.md`).
//!
//! - `native_proxy`: the bytes flow through this server.
//! - `302_redirect`: 302 to a fresh Google download URL (`baseUrl=d` / `=dv`); the client
//!   fetches the bytes from Google itself.
//! - `use_proxy_url`: 302 to a signed link on `down_proxy_url`, a byte node that streams the
//!   bytes (see `signed`).
//!
//! Both redirecting policies go through dav-server's `.redirect(true)` and
//! `DavFile::redirect_url`. dav-server answers that 302 before it evaluates the conditional
//! headers, so [`conditional_redirect`] does it afterwards, from the ETag and Last-Modified
//! that dav-server put on the 302: a client revalidating its copy gets 304, not a new URL.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use http::header::{
    CONTENT_LENGTH, ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_UNMODIFIED_SINCE,
    LAST_MODIFIED, LOCATION,
};
use http::{HeaderMap, Method, Response, StatusCode};

use super::config::{ConfigError, Policy, WebdavConfig, check_key_len, check_webdav as check};
use super::signed::{self, SignKey, SignedRoute};
use crate::catalog::{Catalog, CatalogError, FileInfo};
use crate::dav::redirect::Redirect;

/// How long a signed link stays valid unless `[webdav] link_ttl_secs` says otherwise.
pub const DEFAULT_LINK_TTL: Duration = Duration::from_secs(3600);

/// The sign key: `sign_key`, or the content of `sign_key_file` (read now).
pub fn sign_key(w: &WebdavConfig) -> Result<Option<SignKey>, ConfigError> {
    if let Some(key) = &w.sign_key {
        return Ok(Some(key.clone()));
    }
    let Some(path) = &w.sign_key_file else {
        return Ok(None);
    };
    let key = read_key_file(path)?;
    check_key_len(
        &key,
        "webdav.sign_key_file",
        &format!("the key in [webdav] sign_key_file {}", path.display()),
    )?;
    Ok(Some(key))
}

fn read_key_file(path: &PathBuf) -> Result<SignKey, ConfigError> {
    // The error names the file and the reason, never the content.
    std::fs::read(path)
        .map(|bytes| SignKey::from_file_content(&bytes))
        .map_err(|e| {
            ConfigError::invalid(
                "webdav.sign_key_file",
                format!("cannot read [webdav] sign_key_file {}: {e}", path.display()),
            )
        })
}

/// What the HTTP stack needs to carry out the policy: the redirect the tree's files answer
/// GET with (handed to `PhotosFs`), and the signed-link route the router sends `/d/` to.
#[derive(Clone)]
pub struct Delivery {
    pub policy: Policy,
    /// Where files redirect GET and HEAD (None: native_proxy).
    pub redirect: Option<Arc<dyn Redirect>>,
    /// The `/d/` links this instance serves (refused without a key).
    pub signed: SignedRoute,
}

impl Delivery {
    /// Builds the policy from the config, reading `sign_key_file`.
    /// `library` is a family server's mount, which its signed links name.
    pub fn from_config(
        w: &WebdavConfig,
        catalog: &Catalog,
        library: Option<&str>,
    ) -> Result<Delivery, ConfigError> {
        check(w)?;
        let key = sign_key(w)?;
        let redirect: Option<Arc<dyn Redirect>> = match w.policy {
            Policy::NativeProxy => None,
            Policy::Redirect302 => Some(Arc::new(GoogleUrls {
                catalog: catalog.clone(),
            })),
            Policy::UseProxyUrl => Some(Arc::new(SignedLinks {
                base: w
                    .down_proxy_url
                    .clone()
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .to_string(),
                key: key.clone().expect("checked above"),
                ttl: w
                    .link_ttl_secs
                    .map(Duration::from_secs)
                    .unwrap_or(DEFAULT_LINK_TTL),
                catalog: catalog.clone(),
                library: library.map(str::to_string),
            })),
        };
        Ok(Delivery {
            policy: w.policy,
            redirect,
            signed: SignedRoute::new(catalog.clone(), key, &w.prefix, library),
        })
    }
}

/// `302_redirect`: the item's own download URL, refreshed when it is old.
struct GoogleUrls {
    catalog: Catalog,
}

impl Redirect for GoogleUrls {
    fn location<'a>(
        &'a self,
        file: &'a FileInfo,
    ) -> BoxFuture<'a, Result<Option<String>, CatalogError>> {
        Box::pin(async move {
            // The URL is a capability for an hour: it is never logged.
            tracing::debug!(item = %file.id, "redirecting to a Google download URL");
            Ok(Some(self.catalog.download_url(&file.id).await?))
        })
    }
}

/// `use_proxy_url`: a signed link on the byte node.
struct SignedLinks {
    base: String,
    key: SignKey,
    ttl: Duration,
    catalog: Catalog,
    /// The library the links name (a family server's mount).
    library: Option<String>,
}

impl Redirect for SignedLinks {
    fn location<'a>(
        &'a self,
        file: &'a FileInfo,
    ) -> BoxFuture<'a, Result<Option<String>, CatalogError>> {
        Box::pin(async move {
            let exp = self.catalog.clock().unix_now() + self.ttl.as_secs();
            tracing::debug!(item = %file.id, exp, "redirecting to a signed download link");
            Ok(Some(signed::link(
                &self.base,
                &self.key,
                self.library.as_deref(),
                &file.id,
                &file.name,
                exp,
            )))
        })
    }
}

/// Applies the conditional headers of a GET or HEAD (`request`) to the 302 dav-server gave for
/// a file: 304 when the client's copy is current (If-None-Match, else If-Modified-Since), 412
/// when a precondition fails (If-Match, else If-Unmodified-Since), as RFC 9110 §13.2.2 orders
/// them. Other responses (a folder's slash redirect has no ETag) pass unchanged. If-Range needs
/// nothing here: it only qualifies a Range, which the client sends to the new location.
pub fn conditional_redirect<B: Default>(
    method: &Method,
    request: &HeaderMap,
    mut response: Response<B>,
) -> Response<B> {
    if response.status() != StatusCode::FOUND || (method != Method::GET && method != Method::HEAD) {
        return response;
    }
    let Some(etag) = response
        .headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return response;
    };
    let modified = response
        .headers()
        .get(LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    let date = |name| {
        request
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
    };
    let list = |name| {
        request
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
    };
    let status = if let Some(tags) = list(IF_MATCH) {
        (!etag_list_matches(tags, &etag, true)).then_some(StatusCode::PRECONDITION_FAILED)
    } else if let Some(since) = date(IF_UNMODIFIED_SINCE) {
        modified
            .is_none_or(|m| m > since)
            .then_some(StatusCode::PRECONDITION_FAILED)
    } else {
        None
    }
    .or_else(|| {
        if let Some(tags) = list(IF_NONE_MATCH) {
            etag_list_matches(tags, &etag, false).then_some(StatusCode::NOT_MODIFIED)
        } else if let Some(since) = date(IF_MODIFIED_SINCE) {
            modified
                .is_some_and(|m| m <= since)
                .then_some(StatusCode::NOT_MODIFIED)
        } else {
            None
        }
    });
    if let Some(status) = status {
        *response.status_mut() = status;
        response.headers_mut().remove(LOCATION);
        // A 304's Content-Length would have to be the file's; none is simpler and valid.
        response.headers_mut().remove(CONTENT_LENGTH);
        if status == StatusCode::PRECONDITION_FAILED {
            response.headers_mut().remove(ETAG);
            response.headers_mut().remove(LAST_MODIFIED);
        }
        *response.body_mut() = B::default();
    }
    response
}

/// Whether an If-Match / If-None-Match list names `etag` (`*` names any). If-Match compares
/// strongly (a weak tag never matches), If-None-Match weakly (`W/` ignored).
fn etag_list_matches(list: &str, etag: &str, strong: bool) -> bool {
    let list = list.trim();
    if list == "*" {
        return true;
    }
    let ours = etag.strip_prefix("W/").unwrap_or(etag);
    let ours_weak = etag.starts_with("W/");
    list.split(',').map(str::trim).any(|tag| {
        let weak = tag.starts_with("W/");
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        if strong && (weak || ours_weak) {
            return false;
        }
        tag == ours
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect_response() -> Response<String> {
        Response::builder()
            .status(StatusCode::FOUND)
            .header(LOCATION, "https://example/x=d")
            .header(ETAG, "\"abc-10\"")
            .header(LAST_MODIFIED, "Tue, 04 Jul 2023 10:11:12 GMT")
            .body(String::new())
            .unwrap()
    }

    fn run(headers: &[(&str, &str)]) -> Response<String> {
        let mut req = HeaderMap::new();
        for (k, v) in headers {
            req.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        conditional_redirect(&Method::GET, &req, redirect_response())
    }

    #[test]
    fn conditionals_on_a_redirect() {
        assert_eq!(run(&[]).status(), StatusCode::FOUND);
        let r = run(&[("if-none-match", "\"abc-10\"")]);
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert!(r.headers().get(LOCATION).is_none());
        assert_eq!(r.headers()[ETAG], "\"abc-10\"");
        assert_eq!(
            run(&[("if-none-match", "\"x\", W/\"abc-10\"")]).status(),
            StatusCode::NOT_MODIFIED
        );
        assert_eq!(
            run(&[("if-none-match", "*")]).status(),
            StatusCode::NOT_MODIFIED
        );
        assert_eq!(
            run(&[("if-none-match", "\"other\"")]).status(),
            StatusCode::FOUND
        );
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(
            run(&[
                ("if-none-match", "\"other\""),
                ("if-modified-since", "Wed, 05 Jul 2023 00:00:00 GMT")
            ])
            .status(),
            StatusCode::FOUND
        );
        assert_eq!(
            run(&[("if-modified-since", "Tue, 04 Jul 2023 10:11:12 GMT")]).status(),
            StatusCode::NOT_MODIFIED
        );
        assert_eq!(
            run(&[("if-modified-since", "Tue, 04 Jul 2023 10:11:11 GMT")]).status(),
            StatusCode::FOUND
        );
        assert_eq!(
            run(&[("if-match", "\"other\"")]).status(),
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(
            run(&[("if-match", "\"abc-10\"")]).status(),
            StatusCode::FOUND
        );
        assert_eq!(
            run(&[("if-match", "W/\"abc-10\"")]).status(),
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(
            run(&[("if-unmodified-since", "Mon, 03 Jul 2023 00:00:00 GMT")]).status(),
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(
            run(&[("if-unmodified-since", "Tue, 04 Jul 2023 10:11:12 GMT")]).status(),
            StatusCode::FOUND
        );
        // A folder's slash redirect carries no ETag and is left alone.
        let dir = Response::builder()
            .status(StatusCode::FOUND)
            .header(LOCATION, "/album/")
            .body(String::new())
            .unwrap();
        let mut req = HeaderMap::new();
        req.insert(IF_NONE_MATCH, "*".parse().unwrap());
        assert_eq!(
            conditional_redirect(&Method::GET, &req, dir).status(),
            StatusCode::FOUND
        );
    }

    use crate::server::Config;

    const CREDS: &str =
        "[google]\nclient_id = \"id\"\nclient_secret = \"s\"\nrefresh_token = \"r\"\n";
    const KEY: &str = "k3y-0123456789-0123456789-0123456789";

    fn config(webdav: &str) -> Result<Config, String> {
        let c = Config::parse(&format!("{CREDS}[webdav]\n{webdav}"))?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn policy_keys_are_checked_and_named() {
        assert_eq!(
            config("policy = \"302_redirect\"\n").unwrap().webdav.policy,
            Policy::Redirect302
        );
        let err = config("policy = \"use_proxy_url\"\n").unwrap_err();
        assert!(err.contains("down_proxy_url"), "{err}");
        let err = config("policy = \"use_proxy_url\"\ndown_proxy_url = \"https://b.example\"\n")
            .unwrap_err();
        assert!(
            err.contains("sign_key") && err.contains("sign_key_file"),
            "{err}"
        );
        let ok = config(&format!(
            "policy = \"use_proxy_url\"\ndown_proxy_url = \"https://b.example/x/\"\n\
             sign_key = \"{KEY}\"\nlink_ttl_secs = 600\n"
        ))
        .unwrap();
        assert_eq!(ok.webdav.link_ttl_secs, Some(600));
        assert_eq!(sign_key(&ok.webdav).unwrap(), Some(SignKey::new(KEY)));
        let text = format!("{ok:?}");
        assert!(!text.contains(KEY), "the key never shows: {text}");

        let err = config("sign_key = \"short\"\n").unwrap_err();
        assert!(
            err.contains("sign_key") && err.contains("too short"),
            "{err}"
        );
        assert!(!err.contains("short\""), "the key never shows: {err}");
        let err = config(&format!("sign_key = \"{KEY}\"\nsign_key_file = \"/k\"\n")).unwrap_err();
        assert!(err.contains("both"), "{err}");
        for bad in ["ftp://x", "https://x/?a=b", "nowhere"] {
            let err = config(&format!("down_proxy_url = \"{bad}\"\n")).unwrap_err();
            assert!(err.contains("down_proxy_url"), "{bad}: {err}");
        }
        let err = config("link_ttl_secs = 0\n").unwrap_err();
        assert!(err.contains("link_ttl_secs"), "{err}");
        let err = Config::parse("[webdav]\nlink_ttl = 5\n").unwrap_err();
        assert!(err.contains("link_ttl_secs"), "{err}");
    }

    #[test]
    fn the_key_file_is_read_and_its_errors_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sign.key");
        std::fs::write(&path, format!("{KEY}\n")).unwrap();
        let c = config(&format!(
            "policy = \"use_proxy_url\"\ndown_proxy_url = \"http://b:1\"\n\
             sign_key_file = \"{}\"\n",
            path.display()
        ))
        .unwrap();
        assert_eq!(sign_key(&c.webdav).unwrap(), Some(SignKey::new(KEY)));

        std::fs::write(&path, "tiny\n").unwrap();
        let err = sign_key(&c.webdav).unwrap_err().to_string();
        assert!(
            err.contains("sign_key_file") && err.contains("too short"),
            "{err}"
        );
        assert!(!err.contains("tiny"), "{err}");

        let mut missing = c.webdav.clone();
        missing.sign_key_file = Some(dir.path().join("nope.key"));
        let err = sign_key(&missing).unwrap_err().to_string();
        assert!(
            err.contains("sign_key_file") && err.contains("nope.key"),
            "{err}"
        );
    }

    #[test]
    fn the_example_documents_real_keys() {
        // Uncommenting the example's optional [webdav] keys gives a valid use_proxy_url setup.
        let example = include_str!("../../webdav.toml.example");
        let webdav = &example[example.find("[webdav]").unwrap()..];
        let mut text = example.replace(webdav, "");
        for line in webdav.lines() {
            let line = line
                .strip_prefix("# ")
                .filter(|l| l.contains(" = ") && !l.starts_with("sign_key_file"))
                .unwrap_or(line);
            text.push_str(&line.replace("\"native_proxy\"", "\"use_proxy_url\""));
            text.push('\n');
        }
        let c = Config::parse(&text).unwrap();
        check(&c.webdav).unwrap();
        assert_eq!(c.webdav.policy, Policy::UseProxyUrl);
        assert!(c.webdav.down_proxy_url.is_some() && c.webdav.sign_key.is_some());
        assert_eq!(c.webdav.link_ttl_secs, Some(3600));
    }

    #[test]
    fn policy_names() {
        for p in Policy::ALL {
            assert_eq!(p.as_str().parse::<Policy>().unwrap(), p);
        }
        let err = "teleport".parse::<Policy>().unwrap_err();
        assert!(
            err.contains("302_redirect") && err.contains("use_proxy_url"),
            "{err}"
        );
    }
}
