//! Uploading bytes to Google: `POST /v1/uploads`, raw or resumable, from a file on disk.
//!
//! Google's upload is two steps. This module does the first one (bytes → upload token);
//! [`super::LibraryClient::batch_create`] does the second (tokens → media items).
//!
//! The bytes are always read from a file (the write path spools a PUT body to disk while it
//! hashes and checks it), so nothing is held in memory and every retry can start again from
//! the file. Small files go in one raw request; files of `resumable_threshold` bytes or more
//! use Google's resumable protocol, in chunks that are multiples of the granularity Google
//! announces when the session starts (`X-Goog-Upload-Chunk-Granularity`; 256 KiB when it
//! says nothing): a broken chunk is followed by a `query`, and the upload continues from the
//! `X-Goog-Upload-Size-Received` Google reports instead of starting over (what makes a
//! 20 GB video upload survivable).
//!
//! The uploads endpoint is not the Library API's front end and fails differently: its errors
//! are a bare `{"code","message"}`, and a token without `photoslibrary.appendonly` gets
//! `401 {"code":16,"message":"Authentication session is not defined."}`: the status of an
//! expired token, not the 403 "insufficient authentication scopes" of the Library API.
//! Whether an *expired* token gets that same body is not documented, so the code-16 answer
//! alone cannot tell the two apart. What can: a 401 is answered by refreshing the token and
//! sending once more ([`UploadClient::with_token`]); a freshly minted token refused again
//! with code 16 lacks the scope, and the upload fails with
//! [`GoogleError::InsufficientScopes`] (the fix: authorize again), after two attempts and
//! without a retry.

use std::io::SeekFrom;
use std::path::Path;
use std::sync::Arc;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::auth::TokenSource;
use super::error::GoogleError;
use super::quota::{Bucket, QuotaGate};
use super::retry::RetryPolicy;

/// Google's chunk granularity for resumable uploads when the start answer does not
/// announce one (`X-Goog-Upload-Chunk-Granularity`; Google announces 256 KiB).
pub const CHUNK_GRANULARITY: u64 = 256 * 1024;

/// The gRPC code (UNAUTHENTICATED) of the uploads endpoint's bare 401 body.
const CODE_UNAUTHENTICATED: i64 = 16;

/// How uploads are sent.
#[derive(Debug, Clone)]
pub struct UploadTuning {
    /// Files of at least this many bytes use the resumable protocol.
    pub resumable_threshold: u64,
    /// Bytes per resumable chunk (rounded down to a multiple of the granularity Google
    /// announces, at least one).
    pub chunk_size: u64,
}

impl Default for UploadTuning {
    fn default() -> Self {
        UploadTuning {
            resumable_threshold: 32 * 1024 * 1024,
            chunk_size: 16 * 1024 * 1024,
        }
    }
}

#[derive(Clone)]
pub struct UploadClient {
    http: reqwest::Client,
    /// Base URL without `/v1`.
    api_base: String,
    tokens: Arc<TokenSource>,
    retry: RetryPolicy,
    tuning: UploadTuning,
    /// Upload requests count against the daily API quota like any other call.
    quota: Arc<QuotaGate>,
}

/// How many times in a row a resumable upload queries and resumes without progress.
const MAX_STALLS: u32 = 5;

impl UploadClient {
    pub fn new(
        http: reqwest::Client,
        api_base: &str,
        tokens: Arc<TokenSource>,
        retry: RetryPolicy,
        tuning: UploadTuning,
        quota: Arc<QuotaGate>,
    ) -> Self {
        UploadClient {
            http,
            api_base: api_base.trim_end_matches('/').to_string(),
            tokens,
            retry,
            tuning,
            quota,
        }
    }

    pub fn with_tuning(mut self, tuning: UploadTuning) -> Self {
        self.tuning = tuning;
        self
    }

    fn url(&self) -> String {
        format!("{}/v1/uploads", self.api_base)
    }

    /// Uploads the `size` bytes of `file` (declared as `mime`) and returns the upload token.
    pub async fn upload_file(
        &self,
        file: &Path,
        size: u64,
        mime: &str,
    ) -> Result<String, GoogleError> {
        self.quota.check()?;
        if size >= self.tuning.resumable_threshold {
            self.resumable(file, size, mime).await
        } else {
            self.retry
                .run("uploads", || self.raw_once(file, size, mime))
                .await
        }
    }

    /// Sends a request that carries the access token (a raw upload, a resumable start),
    /// built by `send` for a token. A 401 invalidates the token and sends once more with a
    /// fresh one; a second 401 ends it: with the code-16 body it means the scope is missing
    /// (see the module docs), otherwise the token is refused for another reason.
    async fn with_token<F, Fut>(&self, send: F) -> Result<reqwest::Response, GoogleError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<reqwest::Response, GoogleError>>,
    {
        let mut refreshed = false;
        loop {
            let token = self.tokens.access_token().await?;
            let resp = send(token.secret().to_owned()).await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let body = resp.bytes().await.unwrap_or_default();
            if !refreshed {
                tracing::debug!(
                    "the uploads endpoint refused the access token (401); refreshing once"
                );
                self.tokens.invalidate(&token).await;
                refreshed = true;
                continue;
            }
            return Err(if is_code_16(&body) {
                tracing::warn!(
                    "the uploads endpoint refused a fresh access token with code 16 \
                     (\"Authentication session is not defined.\"): the photoslibrary.appendonly \
                     scope is missing"
                );
                GoogleError::InsufficientScopes
            } else {
                GoogleError::Unauthenticated
            });
        }
    }

    /// One raw upload attempt, streaming the file.
    async fn raw_once(&self, file: &Path, size: u64, mime: &str) -> Result<String, GoogleError> {
        let resp = self
            .with_token(|token| async move {
                let f = tokio::fs::File::open(file).await.map_err(|e| {
                    GoogleError::Transport(format!("reading the spooled upload: {e}"))
                })?;
                let body = reqwest::Body::wrap_stream(ReaderStream::new(f.take(size)));
                self.quota.count(Bucket::Api);
                super::counted(
                    "uploads",
                    self.http
                        .post(self.url())
                        .bearer_auth(token)
                        .header("Content-Type", "application/octet-stream")
                        .header("Content-Length", size)
                        .header("X-Goog-Upload-Protocol", "raw")
                        .header("X-Goog-Upload-Content-Type", mime)
                        .body(body)
                        .send()
                        .await,
                )
                .map_err(GoogleError::transport)
            })
            .await?;
        token_from(resp).await
    }

    /// The resumable protocol: start, then chunks, resuming from what Google received.
    async fn resumable(&self, file: &Path, size: u64, mime: &str) -> Result<String, GoogleError> {
        let session = self
            .retry
            .run("uploads.start", || self.start(size, mime))
            .await?;
        let granularity = session.granularity;
        let session = session.url;
        let chunk = chunk_size(self.tuning.chunk_size, granularity);
        let mut f = tokio::fs::File::open(file)
            .await
            .map_err(|e| GoogleError::Transport(format!("reading the spooled upload: {e}")))?;
        let mut offset = 0u64;
        let mut stalls = 0u32;
        loop {
            let len = chunk.min(size - offset);
            let last = offset + len >= size;
            f.seek(SeekFrom::Start(offset))
                .await
                .map_err(|e| GoogleError::Transport(format!("reading the spooled upload: {e}")))?;
            let mut buf = vec![0u8; len as usize];
            f.read_exact(&mut buf)
                .await
                .map_err(|e| GoogleError::Transport(format!("reading the spooled upload: {e}")))?;
            match self.send_chunk(&session, offset, buf, last).await {
                Ok(Some(token)) => return Ok(token),
                Ok(None) => {
                    offset += len;
                    stalls = 0;
                }
                Err(e) if e.is_transient() || matches!(e, GoogleError::Api { code: 400, .. }) => {
                    stalls += 1;
                    if stalls > MAX_STALLS {
                        return Err(e);
                    }
                    tracing::info!(
                        offset,
                        "upload chunk failed, asking Google where to resume: {e}"
                    );
                    tokio::time::sleep(self.retry.min_delay * stalls).await;
                    let received = self
                        .retry
                        .run("uploads.query", || self.query(&session))
                        .await?;
                    if received > size
                        || (!received.is_multiple_of(granularity) && received != size)
                    {
                        return Err(GoogleError::Protocol(format!(
                            "Google reports {received} bytes received of {size}"
                        )));
                    }
                    offset = received;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts a resumable session: its URL and the chunk granularity Google announced.
    async fn start(&self, size: u64, mime: &str) -> Result<ResumableSession, GoogleError> {
        let resp = self
            .with_token(|token| async move {
                self.quota.count(Bucket::Api);
                super::counted(
                    "uploads.start",
                    self.http
                        .post(self.url())
                        .bearer_auth(token)
                        .header("Content-Length", 0)
                        .header("X-Goog-Upload-Command", "start")
                        .header("X-Goog-Upload-Content-Type", mime)
                        .header("X-Goog-Upload-Protocol", "resumable")
                        .header("X-Goog-Upload-Raw-Size", size)
                        .send()
                        .await,
                )
                .map_err(GoogleError::transport)
            })
            .await?;
        if !resp.status().is_success() {
            return Err(error_of(resp).await);
        }
        let url = resp
            .headers()
            .get("X-Goog-Upload-URL")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| {
                GoogleError::Protocol("resumable upload without a session URL".into())
            })?;
        let granularity = match resp.headers().get("X-Goog-Upload-Chunk-Granularity") {
            None => CHUNK_GRANULARITY,
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|g| *g > 0)
                .ok_or_else(|| {
                    GoogleError::Protocol(format!(
                        "resumable upload with an unreadable chunk granularity {v:?}"
                    ))
                })?,
        };
        Ok(ResumableSession { url, granularity })
    }

    /// Sends one chunk; the token when it was the last.
    async fn send_chunk(
        &self,
        session: &str,
        offset: u64,
        buf: Vec<u8>,
        last: bool,
    ) -> Result<Option<String>, GoogleError> {
        let command = if last { "upload, finalize" } else { "upload" };
        self.quota.count(Bucket::Api);
        let resp = super::counted(
            "uploads.chunk",
            self.http
                .post(session)
                .header("Content-Length", buf.len())
                .header("X-Goog-Upload-Command", command)
                .header("X-Goog-Upload-Offset", offset)
                .body(buf)
                .send()
                .await,
        )
        .map_err(GoogleError::transport)?;
        if last {
            token_from(resp).await.map(Some)
        } else if resp.status().is_success() {
            Ok(None)
        } else {
            Err(error_of(resp).await)
        }
    }

    /// How many bytes of the session Google has.
    async fn query(&self, session: &str) -> Result<u64, GoogleError> {
        self.quota.count(Bucket::Api);
        let resp = super::counted(
            "uploads.query",
            self.http
                .post(session)
                .header("Content-Length", 0)
                .header("X-Goog-Upload-Command", "query")
                .send()
                .await,
        )
        .map_err(GoogleError::transport)?;
        if !resp.status().is_success() {
            return Err(error_of(resp).await);
        }
        resp.headers()
            .get("X-Goog-Upload-Size-Received")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| GoogleError::Protocol("query answer without a received size".into()))
    }
}

/// A resumable upload session, as its start answered it.
struct ResumableSession {
    /// Where chunks, queries and the finalize go (`X-Goog-Upload-URL`).
    url: String,
    /// Every chunk but the last is a multiple of this (`X-Goog-Upload-Chunk-Granularity`).
    granularity: u64,
}

/// The chunk size actually sent: `wanted` rounded down to a multiple of `granularity`
/// (unchanged when it already is one), and at least one granularity.
fn chunk_size(wanted: u64, granularity: u64) -> u64 {
    (wanted / granularity).max(1) * granularity
}

/// Whether an uploads-endpoint error body is the bare code-16 (UNAUTHENTICATED) answer.
fn is_code_16(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("code").and_then(serde_json::Value::as_i64))
        == Some(CODE_UNAUTHENTICATED)
}

/// The upload token of a successful answer (plain text), or the error.
async fn token_from(resp: reqwest::Response) -> Result<String, GoogleError> {
    if !resp.status().is_success() {
        return Err(error_of(resp).await);
    }
    let body = resp.text().await.map_err(GoogleError::transport)?;
    let token = body.trim().to_string();
    if token.is_empty() {
        return Err(GoogleError::Protocol("empty upload token".into()));
    }
    Ok(token)
}

async fn error_of(resp: reqwest::Response) -> GoogleError {
    let status = resp.status().as_u16();
    let retry_after = super::error::retry_after(resp.headers());
    let body = resp.bytes().await.unwrap_or_default();
    GoogleError::from_api_response(status, &body, retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_follow_the_announced_granularity() {
        const KIB: u64 = 1024;
        // Already a multiple: kept.
        assert_eq!(chunk_size(16 * 1024 * KIB, 256 * KIB), 16 * 1024 * KIB);
        assert_eq!(chunk_size(768 * KIB, 768 * KIB), 768 * KIB);
        // Not a multiple: rounded down, never below one granularity.
        assert_eq!(chunk_size(1024 * KIB, 768 * KIB), 768 * KIB);
        assert_eq!(chunk_size(256 * KIB, 768 * KIB), 768 * KIB);
        assert_eq!(chunk_size(16 * 1024 * KIB, 3 * 256 * KIB), 21 * 768 * KIB);
    }

    #[test]
    fn the_code_16_answer_is_recognised() {
        assert!(is_code_16(
            br#"{"code":16,"message":"Authentication session is not defined."}"#
        ));
        assert!(!is_code_16(
            br#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#
        ));
        assert!(!is_code_16(b"<html>401</html>"));
    }
}
