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
//! sending once more (the call path, [`super::call::Caller::request`]); a freshly minted token refused again
//! with code 16 lacks the scope, and the upload fails with
//! [`GoogleError::InsufficientScopes`] (the fix: authorize again), after two attempts and
//! without a retry.

use std::io::SeekFrom;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::call::{Auth, Call, Caller, transient};
use super::error::GoogleError;

/// Google's chunk granularity for resumable uploads when the start answer does not
/// announce one (`X-Goog-Upload-Chunk-Granularity`; Google announces 256 KiB).
pub const CHUNK_GRANULARITY: u64 = 256 * 1024;

/// How uploads are sent (`[upload]` in the configuration): when the resumable protocol pays
/// off, and how big its chunks are.
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

/// The bytes half of an upload (file → upload token), kept apart from the Library client
/// because the uploads endpoint has its own protocol, errors and timeouts. Every request goes
/// through the shared [`Caller`], counted in the Library API's quota.
#[derive(Clone)]
pub struct UploadClient {
    http: reqwest::Client,
    /// Base URL without `/v1`.
    api_base: String,
    caller: Caller,
    tuning: UploadTuning,
}

/// The outcome of one chunk sent.
enum Sent {
    /// Google has the bytes up to here; more chunks follow.
    Upto(u64),
    /// The last chunk: the upload token.
    Done(String),
}

impl UploadClient {
    pub fn new(
        http: reqwest::Client,
        api_base: &str,
        caller: Caller,
        tuning: UploadTuning,
    ) -> Self {
        UploadClient {
            http,
            api_base: api_base.trim_end_matches('/').to_string(),
            caller,
            tuning,
        }
    }

    /// The same client sending with other tuning (the `[upload]` configuration).
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
        if size >= self.tuning.resumable_threshold {
            self.resumable(file, size, mime).await
        } else {
            let call = Call::uploads("uploads");
            self.caller
                .run(call, transient, || async {
                    let resp = self
                        .caller
                        .request(call, call.what, Auth::Token, || self.raw(file, size, mime))
                        .await?;
                    token_from(resp).await
                })
                .await
        }
    }

    /// The request of a raw upload, streaming the file.
    async fn raw(
        &self,
        file: &Path,
        size: u64,
        mime: &str,
    ) -> Result<reqwest::RequestBuilder, GoogleError> {
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| GoogleError::Transport(format!("reading the spooled upload: {e}")))?;
        let body = reqwest::Body::wrap_stream(ReaderStream::new(f.take(size)));
        Ok(self
            .http
            .post(self.url())
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", size)
            .header("X-Goog-Upload-Protocol", "raw")
            .header("X-Goog-Upload-Content-Type", mime)
            .body(body))
    }

    /// The resumable protocol: start, then chunks, resuming from what Google received.
    ///
    /// Each chunk is one call through the call path: a chunk that fails (a lost answer, a
    /// 5xx, or Google's 400 naming another offset) is retried by the policy like any call,
    /// but a retry first asks Google how much it has (`query`) and sends the chunk from
    /// there, so a broken chunk costs one query and the bytes Google lacks, not the upload.
    /// Every chunk has the policy's attempts and waits to itself.
    async fn resumable(&self, file: &Path, size: u64, mime: &str) -> Result<String, GoogleError> {
        let start = Call::uploads("uploads.start");
        let session = self
            .caller
            .run(start, transient, || self.start(start, size, mime))
            .await?;
        let chunk = chunk_size(self.tuning.chunk_size, session.granularity);
        let file = tokio::sync::Mutex::new(
            tokio::fs::File::open(file)
                .await
                .map_err(|e| GoogleError::Transport(format!("reading the spooled upload: {e}")))?,
        );
        // Why the previous attempt of the current chunk failed: the next one resumes.
        let failed: parking_lot::Mutex<Option<String>> = parking_lot::Mutex::new(None);
        let call = Call::uploads("uploads.chunk");
        let mut offset = 0u64;
        loop {
            let sent = self
                .caller
                .run(
                    call,
                    |e| e.is_transient() || matches!(e, GoogleError::Api { code: 400, .. }),
                    || async {
                        let sent = self
                            .chunk_attempt(&session, &file, &failed, size, chunk, offset)
                            .await;
                        if let Err(e) = &sent {
                            *failed.lock() = Some(e.to_string());
                        }
                        sent
                    },
                )
                .await?;
            match sent {
                Sent::Done(token) => return Ok(token),
                Sent::Upto(next) => offset = next,
            }
        }
    }

    /// One attempt at the chunk at `offset`: after a failed attempt (`failed`), from where
    /// Google says it is instead.
    async fn chunk_attempt(
        &self,
        session: &ResumableSession,
        file: &tokio::sync::Mutex<tokio::fs::File>,
        failed: &parking_lot::Mutex<Option<String>>,
        size: u64,
        chunk: u64,
        mut offset: u64,
    ) -> Result<Sent, GoogleError> {
        let why = failed.lock().take();
        if let Some(why) = why {
            tracing::info!(
                offset,
                "upload chunk failed, asking Google where to resume: {why}"
            );
            let received = self.query(&session.url).await?;
            if received > size
                || (!received.is_multiple_of(session.granularity) && received != size)
            {
                return Err(GoogleError::Protocol(format!(
                    "Google reports {received} bytes received of {size}"
                )));
            }
            offset = received;
        }
        let len = chunk.min(size - offset);
        let last = offset + len >= size;
        let mut buf = vec![0u8; len as usize];
        {
            let mut f = file.lock().await;
            f.seek(SeekFrom::Start(offset))
                .await
                .map_err(|e| GoogleError::Transport(format!("reading the spooled upload: {e}")))?;
            f.read_exact(&mut buf)
                .await
                .map_err(|e| GoogleError::Transport(format!("reading the spooled upload: {e}")))?;
        }
        // Shared, not copied, by each send of the request (a 16 MiB chunk stays one buffer).
        let buf = bytes::Bytes::from(buf);
        let command = if last { "upload, finalize" } else { "upload" };
        let resp = self
            .caller
            .request(
                Call::uploads("uploads.chunk"),
                "uploads.chunk",
                Auth::None,
                || {
                    std::future::ready(Ok(self
                        .http
                        .post(&session.url)
                        .header("Content-Length", buf.len())
                        .header("X-Goog-Upload-Command", command)
                        .header("X-Goog-Upload-Offset", offset)
                        .body(buf.clone())))
                },
            )
            .await?;
        if last {
            token_from(resp).await.map(Sent::Done)
        } else {
            Ok(Sent::Upto(offset + len))
        }
    }

    /// Starts a resumable session: its URL and the chunk granularity Google announced.
    async fn start(
        &self,
        call: Call,
        size: u64,
        mime: &str,
    ) -> Result<ResumableSession, GoogleError> {
        let resp = self
            .caller
            .request(call, call.what, Auth::Token, || {
                std::future::ready(Ok(self
                    .http
                    .post(self.url())
                    .header("Content-Length", 0)
                    .header("X-Goog-Upload-Command", "start")
                    .header("X-Goog-Upload-Content-Type", mime)
                    .header("X-Goog-Upload-Protocol", "resumable")
                    .header("X-Goog-Upload-Raw-Size", size)))
            })
            .await?;
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

    /// How many bytes of the session Google has. One request: it is part of a chunk's
    /// attempt, which the policy retries as a whole.
    async fn query(&self, session: &str) -> Result<u64, GoogleError> {
        let resp = self
            .caller
            .request(
                Call::uploads("uploads.query"),
                "uploads.query",
                Auth::None,
                || {
                    std::future::ready(Ok(self
                        .http
                        .post(session)
                        .header("Content-Length", 0)
                        .header("X-Goog-Upload-Command", "query")))
                },
            )
            .await?;
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

/// The upload token of a successful answer (plain text).
async fn token_from(resp: reqwest::Response) -> Result<String, GoogleError> {
    let body = resp.text().await.map_err(GoogleError::transport)?;
    let token = body.trim().to_string();
    if token.is_empty() {
        return Err(GoogleError::Protocol("empty upload token".into()));
    }
    Ok(token)
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
}
