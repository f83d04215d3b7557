//! What keeps the gallery's pages and API to our own origin (issue #17, item 5).
//!
//! - A Content-Security-Policy on every answer of the gallery: scripts, styles, images, media
//!   and the API's requests from this origin only, no inline script, no framing by another
//!   site. The page's thumbnails, photos and videos all come through same-origin routes
//!   (`/_/thumb/`, the file's own path), whatever `[webdav] policy` says: the redirect
//!   policies are for WebDAV clients.
//! - State-changing API calls (POST, DELETE) must say where they come from: a browser sends
//!   `Origin` (or at least `Referer`) with them, and another site's page that drives a
//!   logged-in browser cannot make it send ours. Both missing is refused too: only a
//!   non-browser client omits both, and it has WebDAV.

use http::{HeaderMap, HeaderValue, Method};

/// The policy (see the module docs). `data:` images: none of ours, but the browser's own
/// broken-image placeholder; `blob:` media: none either. Kept minimal on purpose.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// Puts the policy and its companions on a gallery answer.
pub fn harden(headers: &mut HeaderMap) {
    headers.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        http::header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// Whether `method` changes something and so must come from our own origin.
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Why a state-changing request was refused, for the log line and the answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Foreign {
    /// Neither `Origin` nor `Referer`.
    Unsaid,
    /// Another origin (as sent).
    Other(String),
    /// No `Host` to compare with.
    NoHost,
}

/// Checks that the request's `Origin` (or, without it, `Referer`) is the origin it was sent
/// to: `Host` with the scheme this server serves (`https` with TLS here, or behind a proxy
/// that says `X-Forwarded-Proto: https`; a browser cannot set that header on another site's
/// behalf, since it is not a header a page may send without the server's consent).
pub fn same_origin(headers: &HeaderMap, tls: bool) -> Result<(), Foreign> {
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or(Foreign::NoHost)?;
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let scheme = if tls || forwarded_https {
        "https"
    } else {
        "http"
    };
    let ours = format!("{scheme}://{host}");
    let claimed = match headers.get(http::header::ORIGIN) {
        Some(origin) => origin.to_str().unwrap_or("").to_string(),
        None => {
            let referer = headers
                .get(http::header::REFERER)
                .and_then(|v| v.to_str().ok())
                .ok_or(Foreign::Unsaid)?;
            origin_of(referer).unwrap_or_default()
        }
    };
    if claimed.eq_ignore_ascii_case(&ours) {
        Ok(())
    } else {
        Err(Foreign::Other(claimed))
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let host = u.host_str()?;
    Some(match u.port() {
        Some(p) => format!("{}://{host}:{p}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn origins() {
        let host = ("host", "photos.local:8080");
        assert_eq!(
            same_origin(
                &headers(&[host, ("origin", "http://photos.local:8080")]),
                false
            ),
            Ok(())
        );
        assert_eq!(
            same_origin(
                &headers(&[host, ("origin", "https://photos.local:8080")]),
                true
            ),
            Ok(())
        );
        assert_eq!(
            same_origin(
                &headers(&[host, ("origin", "http://photos.local:8080")]),
                true
            ),
            Err(Foreign::Other("http://photos.local:8080".into()))
        );
        assert_eq!(
            same_origin(&headers(&[host, ("origin", "http://evil.example")]), false),
            Err(Foreign::Other("http://evil.example".into()))
        );
        assert_eq!(
            same_origin(
                &headers(&[host, ("referer", "http://photos.local:8080/album/x/")]),
                false
            ),
            Ok(())
        );
        assert_eq!(
            same_origin(
                &headers(&[host, ("referer", "http://evil.example/photos.local:8080")]),
                false
            ),
            Err(Foreign::Other("http://evil.example".into()))
        );
        assert_eq!(same_origin(&headers(&[host]), false), Err(Foreign::Unsaid));
        assert_eq!(
            same_origin(&headers(&[("origin", "http://x")]), false),
            Err(Foreign::NoHost)
        );
        assert_eq!(
            same_origin(
                &headers(&[
                    host,
                    ("origin", "https://photos.local:8080"),
                    ("x-forwarded-proto", "https")
                ]),
                false
            ),
            Ok(())
        );
    }
}
