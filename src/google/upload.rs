//! Uploading bytes to Google: `POST /v1/uploads`, raw or resumable, from a file on disk.
//!
//! Google's upload is two steps. This module does the first one (bytes → upload token);
//! [`super::LibraryClient::batch_create`] does the second (tokens → media items).
//!
//! The bytes are always read from a file (the write path spools a PUT body to disk while it
//! hashes and checks it), so nothing is held in memory and every retry can start again from
//! the file. Small files go in one raw request; files of `resumable_threshold` bytes or more
//! use Google's resumable protocol, in chunks that are multiples of Google's 256 KiB
//! granularity: a broken chunk is followed by a `query`, and the upload continues from the
//! `X-Goog-Upload-Size-Received` Google reports instead of starting over (what makes a
//! 20 GB video upload survivable).

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

/// Google's chunk granularity for resumable uploads.
pub const CHUNK_GRANULARITY: u64 = 256 * 1024;

/// How uploads are sent.
#[derive(Debug, Clone)]
pub struct UploadTuning {
    /// Files of at least this many bytes use the resumable protocol.
    pub resumable_threshold: u64,
    /// Bytes per resumable chunk (rounded down to a multiple of 256 KiB, at least one).
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

    /// One raw upload attempt, streaming the file.
    async fn raw_once(&self, file: &Path, size: u64, mime: &str) -> Result<String, GoogleError> {
        let token = self.tokens.access_token().await?;
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| GoogleError::Transport(format!("reading the spooled upload: {e}")))?;
        let body = reqwest::Body::wrap_stream(ReaderStream::new(f.take(size)));
        self.quota.count(Bucket::Api);
        let resp = super::counted(
            "uploads",
            self.http
                .post(self.url())
                .bearer_auth(token.secret())
                .header("Content-Type", "application/octet-stream")
                .header("Content-Length", size)
                .header("X-Goog-Upload-Protocol", "raw")
                .header("X-Goog-Upload-Content-Type", mime)
                .body(body)
                .send()
                .await,
        )
        .map_err(GoogleError::transport)?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            self.tokens.invalidate(&token).await;
        }
        token_from(resp).await
    }

    /// The resumable protocol: start, then chunks, resuming from what Google received.
    async fn resumable(&self, file: &Path, size: u64, mime: &str) -> Result<String, GoogleError> {
        let session = self
            .retry
            .run("uploads.start", || self.start(size, mime))
            .await?;
        let chunk = (self.tuning.chunk_size / CHUNK_GRANULARITY).max(1) * CHUNK_GRANULARITY;
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
                        || (!received.is_multiple_of(CHUNK_GRANULARITY) && received != size)
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

    async fn start(&self, size: u64, mime: &str) -> Result<String, GoogleError> {
        let token = self.tokens.access_token().await?;
        self.quota.count(Bucket::Api);
        let resp = super::counted(
            "uploads.start",
            self.http
                .post(self.url())
                .bearer_auth(token.secret())
                .header("Content-Length", 0)
                .header("X-Goog-Upload-Command", "start")
                .header("X-Goog-Upload-Content-Type", mime)
                .header("X-Goog-Upload-Protocol", "resumable")
                .header("X-Goog-Upload-Raw-Size", size)
                .send()
                .await,
        )
        .map_err(GoogleError::transport)?;
        if !resp.status().is_success() {
            if resp.status() == StatusCode::UNAUTHORIZED {
                self.tokens.invalidate(&token).await;
            }
            return Err(error_of(resp).await);
        }
        resp.headers()
            .get("X-Goog-Upload-URL")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| GoogleError::Protocol("resumable upload without a session URL".into()))
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
