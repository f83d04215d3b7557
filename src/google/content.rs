//! The content host: where an item's bytes live, behind its expiring `baseUrl`.
//!
//! The API never says how big a file is, so sizes are learned here: a HEAD on the download URL,
//! or when that gives no length, a one-byte ranged GET whose `Content-Range` names the total.
//! Downloads ask for `bytes=START-` and report what the host really answered (206 with a range,
//! or 200 with everything, since whether Google honours Range is unverified), so the caller can
//! check the total length and skip to its offset itself.
//!
//! Every request counts in the media bucket and passes its gate first (see `quota`). The
//! host's 429 carries no structured error (an HTML page; whether it sends `Retry-After` is
//! unverified), so it is never retried here: it closes the media gate, for the day when our
//! count is near `[google] daily_media_quota`, else for a growing pause, and the caller answers
//! 503 with `Retry-After` meanwhile.

use futures::Stream;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, HeaderMap, RANGE};

use super::call::{Auth, Call, Caller, Outgoing, transient};
use super::download_http::{Answer, DownloadHttp};
use super::error::GoogleError;
use super::quota::Bucket;

/// The content host's client: sizes and bytes of items behind their `baseUrl`s, the one
/// place that knows how the host answers ranges, redirects and rate limits. Every request
/// goes through the shared [`Caller`], counted in the media (or Picker) bucket.
#[derive(Clone)]
pub struct ContentClient {
    /// Size probes.
    http: reqwest::Client,
    /// Downloads (a client whose read buffer is bounded; see `download_http`).
    downloads: DownloadHttp,
    /// Every request to a download URL counts against the daily media quota, and none is sent
    /// while the media gate is closed.
    caller: Caller,
}

/// An open download: the body stream and where it starts.
pub struct Download {
    /// Offset in the file of the first byte of `body`.
    pub start: u64,
    /// Total size of the file as the host stated it (Content-Range total, or Content-Length of
    /// a 200), if it said.
    pub total: Option<u64>,
    pub body: std::pin::Pin<Box<dyn Stream<Item = Result<bytes::Bytes, GoogleError>> + Send>>,
}

impl ContentClient {
    pub fn new(http: reqwest::Client, downloads: DownloadHttp, caller: Caller) -> Self {
        ContentClient {
            http,
            downloads,
            caller,
        }
    }

    /// The size in bytes of what `url` serves (transient failures retried).
    pub async fn probe_size(&self, url: &str) -> Result<u64, GoogleError> {
        self.probe_size_with(url, false).await
    }

    /// Starts a download at byte `start` (transient failures to connect retried).
    pub async fn download(&self, url: &str, start: u64) -> Result<Download, GoogleError> {
        self.download_with(url, start, None, false).await
    }

    /// Starts a download of bytes `start..=last` (`Range: bytes=START-LAST`), or to the end
    /// when `last` is `None`: the content cache asks for exactly the blocks it misses.
    pub async fn download_range(
        &self,
        url: &str,
        start: u64,
        last: Option<u64>,
    ) -> Result<Download, GoogleError> {
        self.download_with(url, start, last, false).await
    }

    /// [`ContentClient::probe_size`] for a URL that needs the OAuth access token (Picker API
    /// items): the call path's token, refreshed once when the host refuses it (401); refused
    /// again, [`GoogleError::Unauthenticated`].
    pub async fn probe_size_bearer(&self, url: &str) -> Result<u64, GoogleError> {
        self.probe_size_with(url, true).await
    }

    /// [`ContentClient::download`] for a URL that needs the OAuth access token (as
    /// [`ContentClient::probe_size_bearer`]).
    pub async fn download_bearer(&self, url: &str, start: u64) -> Result<Download, GoogleError> {
        self.download_with(url, start, None, true).await
    }

    /// [`ContentClient::download_range`] with the access token (as
    /// [`ContentClient::download_bearer`]).
    pub async fn download_range_bearer(
        &self,
        url: &str,
        start: u64,
        last: Option<u64>,
    ) -> Result<Download, GoogleError> {
        self.download_with(url, start, last, true).await
    }

    async fn probe_size_with(&self, url: &str, bearer: bool) -> Result<u64, GoogleError> {
        // Each attempt owns its data: futures that borrow through a retried closure defeat
        // the compiler's Send inference (rust-lang/rust#64552).
        let (this, url) = (self.clone(), url.to_owned());
        let call = Call::probe("content.probe", bucket_of(bearer));
        self.caller
            .run(call, transient, move || {
                Self::probe_once(this.clone(), call, url.clone(), bearer)
            })
            .await
    }

    async fn download_with(
        &self,
        url: &str,
        start: u64,
        last: Option<u64>,
        bearer: bool,
    ) -> Result<Download, GoogleError> {
        let (this, url) = (self.clone(), url.to_owned());
        let call = Call::content("content.download", bucket_of(bearer));
        self.caller
            .run(call, transient, move || {
                Self::download_once(this.clone(), call, url.clone(), start, last, bearer)
            })
            .await
    }

    /// One attempt at a size probe: a HEAD, and when that gives no length, a one-byte
    /// ranged GET whose `Content-Range` names the total. Each is a request of its own through
    /// the call path (gate, count, classification); a retry starts again with the HEAD.
    async fn probe_once(self, call: Call, url: String, bearer: bool) -> Result<u64, GoogleError> {
        let auth = if bearer { Auth::Token } else { Auth::None };
        let probe = |method: reqwest::Method, range: Option<&'static str>| {
            let request = ProbeRequest {
                http: self.http.clone(),
                method,
                url: url.clone(),
                token: None,
                range,
            };
            std::future::ready(Ok(request))
        };
        let resp = self
            .caller
            .request(call, "content.head", auth, || {
                probe(reqwest::Method::HEAD, None)
            })
            .await?;
        if resp.status() == StatusCode::OK
            && let Some(len) = header_u64(resp.headers(), CONTENT_LENGTH)
        {
            return Ok(len);
        }
        // No usable length from HEAD: ask for the first byte and read the total.
        let resp = self
            .caller
            .request(call, "content.probe", auth, || {
                probe(reqwest::Method::GET, Some("bytes=0-0"))
            })
            .await?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_content_range)
                .map(|(_, _, total)| total)
                .ok_or_else(|| GoogleError::Protocol("206 without a usable Content-Range".into())),
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(0),
            _ => header_u64(resp.headers(), CONTENT_LENGTH)
                .ok_or_else(|| GoogleError::Protocol("the content host sent no length".into())),
        }
    }

    /// One attempt at a download from byte `start` (to `last`, or the end): the request up
    /// to the answer's head through the call path; the body streams to the caller.
    async fn download_once(
        self,
        call: Call,
        url: String,
        start: u64,
        last: Option<u64>,
        bearer: bool,
    ) -> Result<Download, GoogleError> {
        let auth = if bearer { Auth::Token } else { Auth::None };
        let range = match last {
            Some(last) => format!("bytes={start}-{last}"),
            None => format!("bytes={start}-"),
        };
        let answer = self
            .caller
            .request(call, "content.download", auth, || {
                std::future::ready(Ok(DownloadRequest {
                    http: self.downloads.clone(),
                    url: url.clone(),
                    range: range.clone(),
                    token: None,
                }))
            })
            .await?;
        let (begin, total) = match answer.status {
            StatusCode::PARTIAL_CONTENT => {
                let (first, _last, total) = answer
                    .headers
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_content_range)
                    .ok_or_else(|| {
                        GoogleError::Protocol("206 without a usable Content-Range".into())
                    })?;
                (first, Some(total))
            }
            StatusCode::OK => (0, header_u64(&answer.headers, CONTENT_LENGTH)),
            other => return Err(GoogleError::Content(other.as_u16())),
        };
        Ok(Download {
            start: begin,
            total,
            body: answer.body,
        })
    }
}

/// A size probe's request to the content host, with the bearer token when the URL needs
/// one. Redirects are followed here, not by reqwest (whose client follows none): reqwest
/// keeps the Authorization header across a redirect that changes only the scheme, and the
/// token must stay with its origin (see `download_http`, whose rule this is).
struct ProbeRequest {
    http: reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<String>,
    range: Option<&'static str>,
}

impl Outgoing for ProbeRequest {
    type Answer = reqwest::Response;

    fn bearer(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// Each hop is counted in the metrics as `kind`.
    async fn send(self, kind: &'static str) -> Result<reqwest::Response, GoogleError> {
        let mut url = url::Url::parse(&self.url).map_err(|e| {
            GoogleError::Protocol(format!("a download URL that does not parse: {e}"))
        })?;
        let mut token = self.token.as_deref();
        for _ in 0..=super::download_http::MAX_REDIRECTS {
            let mut request = self.http.request(self.method.clone(), url.clone());
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            if let Some(r) = self.range {
                request = request.header(RANGE, r);
            }
            let resp =
                super::counted(kind, request.send().await).map_err(GoogleError::transport)?;
            match super::download_http::redirect_target(&url, resp.status(), resp.headers())? {
                Some(next) => {
                    if !super::download_http::same_origin(&url, &next) {
                        token = None;
                    }
                    url = next;
                }
                None => return Ok(resp),
            }
        }
        Err(GoogleError::Protocol(format!(
            "the content host redirected more than {} times",
            super::download_http::MAX_REDIRECTS
        )))
    }
}

/// A download's request, sent by the bounded-buffer client of `download_http` (which
/// follows redirects by the same rule).
struct DownloadRequest {
    http: DownloadHttp,
    url: String,
    range: String,
    token: Option<String>,
}

impl Outgoing for DownloadRequest {
    type Answer = Answer;

    fn bearer(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    async fn send(self, kind: &'static str) -> Result<Answer, GoogleError> {
        let answer = self
            .http
            .get(&self.url, &self.range, self.token.as_deref())
            .await;
        crate::metrics::get().upstream(kind, answer.as_ref().ok().map(|a| a.status.as_u16()));
        answer
    }
}

/// The quota a request for media bytes counts against. Only Picker items' URLs need the
/// bearer token, and Google counts their bytes in the Picker API's own quota (1,000,000 media
/// requests a minute), not in the Library API's 75,000 a day: a 429 on a picked item must not
/// stop the library's downloads, nor the reverse.
fn bucket_of(bearer: bool) -> Bucket {
    if bearer {
        Bucket::Picker
    } else {
        Bucket::Media
    }
}

fn header_u64(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<u64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Parses `bytes FIRST-LAST/TOTAL`.
pub fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    Some((
        first.trim().parse().ok()?,
        last.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_range() {
        assert_eq!(parse_content_range("bytes 0-0/1234"), Some((0, 0, 1234)));
        assert_eq!(parse_content_range("bytes 10-19/20"), Some((10, 19, 20)));
        assert_eq!(parse_content_range("bytes */20"), None);
    }
}
