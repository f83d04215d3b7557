//! The write dispatch, eighth stage of the tree's stack (writable servers): PUT, MKCOL,
//! DELETE, MOVE and COPY are answered by `upload::Uploader`, not dav-server.
//!
//! Their answers (204 for an identical upload, 409, 413, 415, messages saying why) are beyond
//! what dav-server's `FsError` can express, and an upload must stream to Google rather than
//! through `DavFile` writes. LOCK, UNLOCK and PROPPATCH stay with dav-server, whose lock
//! system the uploader shares. On a read-only server the stage passes everything on (and
//! dav-server, built read-only, refuses writes).

use dav_server::davpath::DavPath;
use http::header::HOST;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};

use super::prefix::{Prefix, Target};
use super::stage::{Inner, Next, Req, Res, Stage};
use crate::dav::segments;
use crate::server::response::text_response;
use crate::upload::{Answer, Uploader};

/// The write stage (see the module docs).
pub struct Writes {
    /// None on read-only servers.
    uploader: Option<Uploader>,
    /// To read a MOVE's `Destination` as a path in the tree.
    prefix: Prefix,
}

impl Writes {
    /// Hands writes to `uploader`; passes everything on when there is none.
    pub fn new(uploader: Option<Uploader>, prefix: Prefix) -> Self {
        Writes { uploader, prefix }
    }

    /// PUT, MKCOL, DELETE, MOVE and COPY (see `upload`).
    async fn write(&self, uploader: &Uploader, req: Req) -> Res {
        let method = req.method().clone();
        let target = Target::of(&req);
        let Ok(dav_path) = DavPath::new(&target.tree) else {
            return text_response(StatusCode::BAD_REQUEST, "gphotos-dav: invalid path\n");
        };
        let Some(segs) = target.segments() else {
            return text_response(StatusCode::NOT_FOUND, "");
        };
        let Target { path, root, .. } = target;
        let answer = match method.as_str() {
            "PUT" => {
                let (parts, body) = req.into_parts();
                uploader.put(&segs, &dav_path, &parts.headers, body).await
            }
            "MKCOL" => uploader.mkcol(&segs).await,
            "DELETE" => match uploader.lock_check(&dav_path, true, req.headers()).await {
                Ok(()) => uploader.delete(&segs).await,
                Err(locked) => locked,
            },
            "MOVE" | "COPY" => {
                let headers = req.headers();
                let Some(destination) = headers.get("Destination") else {
                    return answer_response(
                        &method,
                        &path,
                        Answer::new(
                            StatusCode::BAD_REQUEST,
                            format!("{method} needs a Destination header"),
                        ),
                    );
                };
                // RFC 4918 10.6: Overwrite defaults to T.
                let overwrite = !headers
                    .get("Overwrite")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("F"));
                let to = self.destination(destination, headers, &root);
                // The source of a MOVE and the destination of both may be locked.
                let mut locked = None;
                if method == "MOVE" {
                    locked = uploader.lock_check(&dav_path, true, headers).await.err();
                }
                if locked.is_none()
                    && let Some((to_path, _)) = &to
                {
                    locked = uploader.lock_check(to_path, true, headers).await.err();
                }
                if let Some(locked) = locked {
                    return answer_response(&method, &path, locked);
                }
                let to = to.map(|(_, segs)| segs);
                if method == "MOVE" {
                    uploader.move_to(&segs, to.as_deref(), overwrite).await
                } else {
                    // RFC 4918 9.8.3: a collection's COPY is Depth infinity (the default) or
                    // 0; a file's ignores Depth, which the uploader does.
                    match headers
                        .get("Depth")
                        .and_then(|v| v.to_str().ok())
                        .map(str::trim)
                    {
                        None => uploader.copy(&segs, to.as_deref(), overwrite, true).await,
                        Some(d) if d.eq_ignore_ascii_case("infinity") => {
                            uploader.copy(&segs, to.as_deref(), overwrite, true).await
                        }
                        Some("0") => uploader.copy(&segs, to.as_deref(), overwrite, false).await,
                        Some(_) => Answer::new(
                            StatusCode::BAD_REQUEST,
                            "COPY takes Depth: 0 or infinity (RFC 4918 9.8.3)",
                        ),
                    }
                }
            }
            _ => uploader.refuse_move(),
        };
        answer_response(&method, &path, answer)
    }

    /// The path and decoded tree segments a `Destination` header names (an absolute URL or an
    /// absolute path), or None when it names no place in this tree (403 then): a path outside
    /// this server's prefix, or an absolute URL on another host (RFC 4918 10.3: the
    /// Destination is a URI; a server refuses one it does not serve rather than guess).
    ///
    /// "This host" is the authority the client addressed, as the request says it: `Host`, or
    /// the one a reverse proxy passes on in `X-Forwarded-Host` or `Forwarded: host=` (proxies
    /// often rewrite `Host` to the backend's address but leave `Destination` as the client
    /// wrote it). Trusting those headers gives a client nothing: it chose the Destination too.
    ///
    /// The segments are the catalog's (after `root`, the request's [`Target::root`]); the
    /// path stays the client's, as the lock system knows it.
    fn destination(
        &self,
        header: &HeaderValue,
        request: &HeaderMap,
        root: &[String],
    ) -> Option<(DavPath, Vec<String>)> {
        let raw = header.to_str().ok()?.trim();
        let path = if raw.starts_with('/') {
            raw.split(['?', '#']).next()?.to_string()
        } else {
            let url = url::Url::parse(raw).ok()?;
            if !addressed_authorities(request).any(|a| same_authority(&url, a)) {
                return None;
            }
            url.path().to_string()
        };
        let tree = self.prefix.tree_path(&path)?;
        let dav_path = DavPath::new(tree).ok()?;
        let mut segs = root.to_vec();
        segs.extend(segments(&dav_path).ok()?);
        Some((dav_path, segs))
    }
}

/// The authorities (`host[:port]`) a request says its client addressed: `Host`, then every
/// `X-Forwarded-Host` entry and `Forwarded` `host=` parameter (RFC 7239).
fn addressed_authorities(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let host = headers.get_all(HOST).iter();
    let forwarded_host = headers
        .get_all("X-Forwarded-Host")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    let forwarded = headers
        .get_all("Forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("host")
                .then(|| value.trim().trim_matches('"'))
        });
    host.filter_map(|v| v.to_str().ok())
        .chain(forwarded_host)
        .chain(forwarded)
        .map(str::trim)
}

/// Whether `url` is on the authority `addressed` (`host[:port]`, as in a `Host` header):
/// hosts compare without case; an authority without a port matches a URL on its scheme's
/// default port (`url` drops a default port when it parses).
fn same_authority(url: &url::Url, addressed: &str) -> bool {
    let Ok(authority) = addressed.parse::<http::uri::Authority>() else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    if !host.eq_ignore_ascii_case(authority.host()) {
        return false;
    }
    match authority.port_u16() {
        None => url.port().is_none(),
        Some(port) => url.port_or_known_default() == Some(port),
    }
}

impl Stage for Writes {
    async fn handle<S: Inner>(&self, req: Req, next: Next<S>) -> Res {
        match &self.uploader {
            Some(uploader) if is_write(&req) => self.write(uploader, req).await,
            _ => next.run(req).await,
        }
    }
}

/// Whether the uploader answers `req`.
fn is_write<B>(req: &Request<B>) -> bool {
    matches!(
        req.method().as_str(),
        "PUT" | "MKCOL" | "DELETE" | "MOVE" | "COPY"
    )
}

/// The response for a write's [`Answer`]; refusals and failures are logged with the reason.
fn answer_response(method: &Method, path: &str, answer: Answer) -> Res {
    let status = answer.status;
    if status.is_client_error() || status.is_server_error() {
        tracing::info!(%method, path, status = status.as_u16(), "write refused: {}", answer.message);
    }
    let text = if answer.message.is_empty() {
        String::new()
    } else {
        format!("gphotos-dav: {}\n", answer.message)
    };
    let mut resp = if status == StatusCode::NO_CONTENT {
        let mut r = text_response(status, "");
        r.headers_mut().remove("Content-Type");
        r
    } else {
        text_response(status, &text)
    };
    if let Some(secs) = answer.retry_after {
        resp.headers_mut()
            .insert("Retry-After", HeaderValue::from(secs));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    fn on_this_server(destination: &str, pairs: &[(&'static str, &'static str)]) -> bool {
        let url = url::Url::parse(destination).unwrap();
        addressed_authorities(&headers(pairs)).any(|a| same_authority(&url, a))
    }

    #[test]
    fn a_destination_must_name_the_host_the_client_addressed() {
        let host = [("Host", "127.0.0.1:8080")];
        assert!(on_this_server("http://127.0.0.1:8080/album/A/x.jpg", &host));
        assert!(!on_this_server(
            "http://127.0.0.1:8081/album/A/x.jpg",
            &host
        ));
        assert!(!on_this_server("http://elsewhere.invalid:8080/a", &host));
        assert!(!on_this_server("http://127.0.0.1/album/A/x.jpg", &host));
        // Case and default ports.
        let named = [("Host", "Photos.Example")];
        assert!(on_this_server("http://photos.example/a", &named));
        assert!(on_this_server("https://photos.example:443/a", &named));
        assert!(!on_this_server("http://photos.example:8080/a", &named));
        let v6 = [("Host", "[::1]:9000")];
        assert!(on_this_server("http://[::1]:9000/a", &v6));
        assert!(!on_this_server("http://[::2]:9000/a", &v6));
        assert!(!on_this_server("http://x/a", &[]));
    }

    #[test]
    fn a_reverse_proxy_names_the_public_host_in_forwarding_headers() {
        let proxied = [
            ("Host", "127.0.0.1:8080"),
            ("X-Forwarded-Host", "photos.example, inner.lan"),
        ];
        assert!(on_this_server("https://photos.example/a", &proxied));
        assert!(on_this_server("http://inner.lan/a", &proxied));
        assert!(on_this_server("http://127.0.0.1:8080/a", &proxied));
        assert!(!on_this_server("https://evil.example/a", &proxied));
        let forwarded = [
            ("Host", "127.0.0.1:8080"),
            (
                "Forwarded",
                "for=192.0.2.60;proto=https;host=\"photos.example:8443\"",
            ),
        ];
        assert!(on_this_server("https://photos.example:8443/a", &forwarded));
        assert!(!on_this_server("https://photos.example/a", &forwarded));
    }
}
