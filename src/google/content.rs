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

use std::sync::Arc;

use futures::Stream;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, HeaderMap, RANGE};

use super::download_http::DownloadHttp;
use super::error::GoogleError;
use super::quota::{Bucket, QuotaGate};
use super::retry::RetryPolicy;

#[derive(Clone)]
pub struct ContentClient {
    /// Size probes.
    http: reqwest::Client,
    /// Downloads (a client whose read buffer is bounded; see `download_http`).
    downloads: DownloadHttp,
    retry: RetryPolicy,
    /// Every request to a download URL counts against the daily media quota, and none is sent
    /// while the media gate is closed.
    quota: Arc<QuotaGate>,
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
    pub fn new(
        http: reqwest::Client,
        downloads: DownloadHttp,
        retry: RetryPolicy,
        quota: Arc<QuotaGate>,
    ) -> Self {
        ContentClient {
            http,
            downloads,
            retry,
            quota,
        }
    }

    /// The size in bytes of what `url` serves (transient failures retried).
    pub async fn probe_size(&self, url: &str) -> Result<u64, GoogleError> {
        self.probe_size_with(url, None).await
    }

    /// Starts a download at byte `start` (transient failures to connect retried).
    pub async fn download(&self, url: &str, start: u64) -> Result<Download, GoogleError> {
        self.download_with(url, start, None).await
    }

    /// [`ContentClient::probe_size`] for a URL that needs the OAuth access token (Picker API
    /// items). A refused token is [`GoogleError::Unauthenticated`].
    pub async fn probe_size_bearer(&self, url: &str, token: &str) -> Result<u64, GoogleError> {
        self.probe_size_with(url, Some(token)).await
    }

    /// [`ContentClient::download`] for a URL that needs the OAuth access token.
    pub async fn download_bearer(
        &self,
        url: &str,
        start: u64,
        token: &str,
    ) -> Result<Download, GoogleError> {
        self.download_with(url, start, Some(token)).await
    }

    async fn probe_size_with(&self, url: &str, token: Option<&str>) -> Result<u64, GoogleError> {
        // Each attempt owns its data: futures that borrow through a retried closure defeat
        // the compiler's Send inference (rust-lang/rust#64552).
        let (this, url, token) = (self.clone(), url.to_owned(), token.map(str::to_owned));
        self.retry
            .run("content.probe", move || {
                Self::probe_once(this.clone(), url.clone(), token.clone())
            })
            .await
    }

    async fn download_with(
        &self,
        url: &str,
        start: u64,
        token: Option<&str>,
    ) -> Result<Download, GoogleError> {
        let (this, url, token) = (self.clone(), url.to_owned(), token.map(str::to_owned));
        self.retry
            .run("content.download", move || {
                Self::download_once(this.clone(), url.clone(), start, token.clone())
            })
            .await
    }

    /// A request to the content host, with the bearer token when the URL needs one,
    /// counted in the metrics as `kind`. Redirects are followed here, not by reqwest (whose
    /// client follows none): reqwest keeps the Authorization header across a redirect that
    /// changes only the scheme, and the token must stay with its origin (see
    /// `download_http`, whose rule this is).
    async fn send(
        &self,
        kind: &str,
        method: reqwest::Method,
        url: &str,
        token: Option<&str>,
        range: Option<&str>,
    ) -> Result<reqwest::Response, GoogleError> {
        let mut url = url::Url::parse(url).map_err(|e| {
            GoogleError::Protocol(format!("a download URL that does not parse: {e}"))
        })?;
        let mut token = token;
        for _ in 0..=super::download_http::MAX_REDIRECTS {
            let mut request = self.http.request(method.clone(), url.clone());
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            if let Some(r) = range {
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

    async fn probe_once(self, url: String, token: Option<String>) -> Result<u64, GoogleError> {
        let (url, token) = (url.as_str(), token.as_deref());
        let bucket = bucket_of(token);
        self.quota.check_bucket(bucket)?;
        self.quota.count(bucket);
        let resp = self
            .send("content.head", reqwest::Method::HEAD, url, token, None)
            .await?;
        self.check(bucket, resp.status(), resp.headers())?;
        if resp.status() == StatusCode::OK
            && let Some(len) = header_u64(resp.headers(), CONTENT_LENGTH)
        {
            return Ok(len);
        }
        // No usable length from HEAD: ask for the first byte and read the total.
        self.quota.check_bucket(bucket)?;
        self.quota.count(bucket);
        let resp = self
            .send(
                "content.probe",
                reqwest::Method::GET,
                url,
                token,
                Some("bytes=0-0"),
            )
            .await?;
        self.check(bucket, resp.status(), resp.headers())?;
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

    async fn download_once(
        self,
        url: String,
        start: u64,
        token: Option<String>,
    ) -> Result<Download, GoogleError> {
        let (url, token) = (url.as_str(), token.as_deref());
        let bucket = bucket_of(token);
        self.quota.check_bucket(bucket)?;
        self.quota.count(bucket);
        let answer = self
            .downloads
            .get(url, &format!("bytes={start}-"), token)
            .await;
        crate::metrics::get().upstream(
            "content.download",
            answer.as_ref().ok().map(|a| a.status.as_u16()),
        );
        let answer = answer?;
        self.check(bucket, answer.status, &answer.headers)?;
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

impl ContentClient {
    /// The error for an answer of the content host, if it is one. A 429 closes the gate of
    /// `bucket` (and is therefore not retried); a success lets the next 429's pause start
    /// short again.
    fn check(
        &self,
        bucket: Bucket,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Result<(), GoogleError> {
        match status {
            s if s.is_success() || s == StatusCode::RANGE_NOT_SATISFIABLE => {
                self.quota.succeeded(bucket);
                Ok(())
            }
            StatusCode::TOO_MANY_REQUESTS => Err(self
                .quota
                .throttled(bucket, super::error::retry_after(headers))),
            s => Err(status_error(s)),
        }
    }
}

/// The quota a request for media bytes counts against. Only Picker items' URLs need the
/// bearer token, and Google counts their bytes in the Picker API's own quota (1,000,000 media
/// requests a minute), not in the Library API's 75,000 a day: a 429 on a picked item must not
/// stop the library's downloads, nor the reverse.
fn bucket_of(token: Option<&str>) -> Bucket {
    if token.is_some() {
        Bucket::Picker
    } else {
        Bucket::Media
    }
}

/// The error for a failed status other than 429.
fn status_error(status: StatusCode) -> GoogleError {
    match status {
        StatusCode::FORBIDDEN => GoogleError::UrlExpired,
        // Only URLs that need the bearer token answer this: the token was refused.
        StatusCode::UNAUTHORIZED => GoogleError::Unauthenticated,
        StatusCode::NOT_FOUND => GoogleError::NotFound("the item's bytes".into()),
        s => GoogleError::Content(s.as_u16()),
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
