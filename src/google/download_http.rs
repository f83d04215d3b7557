//! The HTTP client that carries downloads from the content host.
//!
//! API calls and size probes use reqwest. Downloads do not: a proxied download reads from
//! Google as fast as Google sends and hands each chunk to the WebDAV client as it can take it,
//! and reqwest's HTTP/1 connection then grows its read buffer to hyper's default ceiling
//! (~400 KiB) and keeps the chunks it handed out alive inside it; reqwest has no setting to
//! bound that. With 100 concurrent downloads the proxy peaked at 127-132 MiB
//! (`cargo bench --bench concurrent_rss`, docs/performance.md). hyper-util's client exposes
//! `http1_max_buf_size`. Measured with the same benchmark: a 64 KiB ceiling gave 46 MiB, 128 KiB
//! 65 MiB, 256 KiB 110 MiB; the unlimited-throughput ratio of `proxy_throughput` went the other
//! way (0.50, 0.72, 0.65 in runs on a shared machine), so 128 KiB it is.
//!
//! What reqwest did for us is done here: TLS (rustls with ring, webpki roots), at most five
//! redirects, a connect timeout, a timeout for the response headers, and a read timeout
//! between body chunks.
//!
//! Redirects and the bearer token: Picker item URLs need `Authorization: Bearer`, and the
//! token must never reach another origin. So it is sent only until a redirect changes the
//! scheme, the host or the port ([`same_origin`]), and never again after that hop, even if a
//! later one comes back. The size probes in `content` follow redirects by the same rule.

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use http::{HeaderMap, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use super::error::GoogleError;

/// Read buffer ceiling per download connection.
const MAX_BUF: usize = 128 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// For the response headers, and between two chunks of a body.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Redirects followed per request (downloads here, size probes in `content`).
pub(crate) const MAX_REDIRECTS: usize = 5;

type Body = http_body_util::Empty<Bytes>;

/// A body as a stream of chunks.
pub type ByteStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, GoogleError>> + Send>>;

/// The downloads' HTTP client: hyper-util with a bounded read buffer, since reqwest cannot
/// bound it and 100 proxied downloads would hold twice the memory (see the module docs).
#[derive(Clone)]
pub struct DownloadHttp {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    user_agent: &'static str,
}

/// An answer: status, headers and the body still to be read, so the caller can judge the
/// head (status, `Content-Range`) before a byte of the body is read.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: ByteStream,
}

impl super::call::Answer for Answer {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    async fn bytes(self) -> Result<Bytes, GoogleError> {
        let chunks: Vec<Bytes> = self.body.try_collect().await?;
        Ok(chunks.concat().into())
    }
}

impl DownloadHttp {
    pub fn new(user_agent: &'static str) -> Result<Self, GoogleError> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| GoogleError::Transport(format!("TLS setup: {e}")))?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .http1_max_buf_size(MAX_BUF)
            .build(https);
        Ok(DownloadHttp { client, user_agent })
    }

    /// GET `url` with a `Range` header (and the bearer token when given), following
    /// redirects.
    pub async fn get(
        &self,
        url: &str,
        range: &str,
        token: Option<&str>,
    ) -> Result<Answer, GoogleError> {
        let mut url = url::Url::parse(url).map_err(|e| {
            GoogleError::Protocol(format!("a download URL that does not parse: {e}"))
        })?;
        let mut token = token;
        for _ in 0..=MAX_REDIRECTS {
            let mut req = Request::get(url.as_str())
                .header(http::header::RANGE, range)
                .header(http::header::USER_AGENT, self.user_agent);
            if let Some(t) = token {
                req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
            }
            let req = req
                .body(Body::new())
                .map_err(|e| GoogleError::Protocol(format!("building a download request: {e}")))?;
            let resp = tokio::time::timeout(READ_TIMEOUT, self.client.request(req))
                .await
                .map_err(|_| {
                    GoogleError::Transport("the content host sent no answer for 60 s".into())
                })?
                .map_err(|e| GoogleError::Transport(transport_text(&e)))?;
            if let Some(next) = redirect_target(&url, resp.status(), resp.headers())? {
                if !same_origin(&url, &next) {
                    token = None;
                }
                url = next;
                continue;
            }
            let (parts, body) = resp.into_parts();
            return Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body: with_read_timeout(body),
            });
        }
        Err(GoogleError::Protocol(format!(
            "the content host redirected more than {MAX_REDIRECTS} times"
        )))
    }
}

/// Whether two URLs have the same origin: scheme, host and port (a missing port is the
/// scheme's default). reqwest 0.12's own redirect rule compares host and port only, so
/// `https://h/` to `http://h:443/` would keep the credentials there.
pub(crate) fn same_origin(a: &url::Url, b: &url::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Where a redirect answer sends the request next: None when `status` is no redirect or it
/// names no usable `Location` (the answer is then the caller's), an error when it sends
/// anywhere but http or https.
pub(crate) fn redirect_target(
    current: &url::Url,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<Option<url::Url>, GoogleError> {
    if !status.is_redirection() {
        return Ok(None);
    }
    let Some(next) = headers
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| current.join(l).ok())
    else {
        return Ok(None);
    };
    match next.scheme() {
        "http" | "https" => Ok(Some(next)),
        other => Err(GoogleError::Protocol(format!(
            "the content host redirected to a {other}: URL"
        ))),
    }
}

/// The body's chunks; a pause longer than [`READ_TIMEOUT`] ends it with an error.
fn with_read_timeout(body: hyper::body::Incoming) -> ByteStream {
    let chunks = http_body_util::BodyDataStream::new(body);
    Box::pin(futures::stream::unfold(Some(chunks), |state| async move {
        let mut chunks = state?;
        match tokio::time::timeout(READ_TIMEOUT, chunks.next()).await {
            Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(chunks))),
            Ok(Some(Err(e))) => Some((Err(GoogleError::Transport(e.to_string())), None)),
            Ok(None) => None,
            Err(_) => Some((
                Err(GoogleError::Transport(
                    "the content host sent nothing for 60 s".into(),
                )),
                None,
            )),
        }
    }))
}

/// An error's text with its causes, never the URL (download URLs are credentials).
fn transport_text(e: &hyper_util::client::legacy::Error) -> String {
    let mut text = String::from("download connection failed");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        let base = u("https://lh3.googleusercontent.com/a");
        assert!(same_origin(
            &base,
            &u("https://lh3.googleusercontent.com/b=d")
        ));
        assert!(same_origin(
            &base,
            &u("https://lh3.googleusercontent.com:443/b")
        ));
        // The scheme alone changes (reqwest's rule would keep the token here).
        assert!(!same_origin(
            &base,
            &u("http://lh3.googleusercontent.com:443/a")
        ));
        assert!(!same_origin(
            &base,
            &u("http://lh3.googleusercontent.com/a")
        ));
        assert!(!same_origin(
            &base,
            &u("https://lh3.googleusercontent.com:8443/a")
        ));
        assert!(!same_origin(
            &base,
            &u("https://lh4.googleusercontent.com/a")
        ));
    }

    #[test]
    fn redirect_targets() {
        let here = url::Url::parse("https://h.example/x/y").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(http::header::LOCATION, "../z?q=1".parse().unwrap());
        let next = redirect_target(&here, StatusCode::FOUND, &headers).unwrap();
        assert_eq!(next.unwrap().as_str(), "https://h.example/z?q=1");
        assert!(
            redirect_target(&here, StatusCode::OK, &headers)
                .unwrap()
                .is_none()
        );
        headers.insert(
            http::header::LOCATION,
            "file:///etc/passwd".parse().unwrap(),
        );
        assert!(redirect_target(&here, StatusCode::FOUND, &headers).is_err());
    }
}
