//! `DavFile` for one photo or video: streams its bytes from the content host, through the
//! catalog's content cache when it is on (`Catalog::read`).
//!
//! dav-server reads a file by `seek` and then `read_bytes` in small pieces; it never tells us
//! where a range ends, and it pads an empty read with zero bytes. So this file:
//! - contacts nobody in `open` or `metadata` (HEAD and redirects use them too);
//! - with a [`Redirect`], gives dav-server a location for 302 instead (`redirect_url`), except
//!   for items whose bytes need the bearer token;
//! - opens one upstream request (`Range: bytes=POS-`) at the first read and reuses it while
//!   reads are contiguous; a seek elsewhere starts a new one at the next read;
//! - checks the total length the host states against the size we announced, and aborts the
//!   response (and forgets the size) if they differ;
//! - skips to the offset itself when the host ignores Range and answers 200;
//! - resumes from the last byte delivered when the upstream body ends early or breaks, a few
//!   times in a row at most, and otherwise fails: an error, never a padded or short file.

use std::io::SeekFrom;
use std::sync::Arc;

use bytes::Bytes;
use dav_server::fs::{DavFile, DavMetaData, FsError, FsFuture};
use futures::StreamExt;
use sync_wrapper::SyncWrapper;

use super::failure;
use super::meta::Meta;
use super::redirect::Redirect;
use crate::catalog::{Catalog, CatalogError, FileInfo};
use crate::google::GoogleError;
use crate::google::content::Download;

/// How many times in a row a broken upstream body is resumed before the response fails.
const MAX_RESUMES: u32 = 3;

/// One open file of the tree: the bytes of one Google item, streamed from Google as dav-server
/// reads them. It exists so that Range, resumption after a broken upstream body and the
/// length checks live in one place for every route that serves an item (the tree and signed
/// links alike).
pub struct PhotoFile {
    catalog: Catalog,
    info: FileInfo,
    /// Where the next `read_bytes` starts.
    pos: u64,
    /// `SyncWrapper`: dav-server wants files `Sync`, the body stream is only `Send`; the
    /// wrapper grants `Sync` by allowing access through `&mut` only.
    upstream: Option<SyncWrapper<Upstream>>,
    /// Upstream failures since bytes last arrived.
    failures: u32,
    /// Where GET and HEAD send the client instead (policies other than native_proxy).
    redirect: Option<Arc<dyn Redirect>>,
    /// Where the client's range ends (exclusive), when known ([`PhotoFile::into_stream`]):
    /// upstream requests ask for nothing beyond it.
    end: Option<u64>,
    /// The download the request's stat opened to learn the item's size
    /// (`Catalog::stat_reading`), handed to the first read instead of asking again.
    kept: Option<SyncWrapper<Download>>,
}

struct Upstream {
    /// Counts this download in `gphotos_dav_active_streams` while it is open.
    _active: crate::metrics::StreamGuard,
    download: Download,
    /// File offset of the next byte `download.body` yields.
    next: u64,
    /// File offset of the next byte this upstream hands out (what `read` wants next).
    cursor: u64,
    /// Bytes received but not handed out yet; they start at `cursor`.
    pending: Bytes,
}

impl std::fmt::Debug for PhotoFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhotoFile")
            .field("id", &self.info.id)
            .field("size", &self.info.size)
            .field("pos", &self.pos)
            .finish()
    }
}

impl PhotoFile {
    pub fn new(catalog: Catalog, info: FileInfo) -> Self {
        PhotoFile {
            catalog,
            info,
            pos: 0,
            upstream: None,
            failures: 0,
            redirect: None,
            end: None,
            kept: None,
        }
    }

    /// A file opened for a request: also noted in the request's scope (`failure::opened`),
    /// as a twin that has read nothing, for the handler's lean path ([`PhotoFile::into_stream`]).
    ///
    /// When the stat before it opened the item's download to learn its size
    /// (`failure::keep_download`), the twin starts on that download: the bytes it streams are
    /// the ones whose answer told the size, and no second request is made.
    pub fn opened(catalog: Catalog, info: FileInfo) -> Self {
        let mut twin = PhotoFile::new(catalog.clone(), info.clone());
        twin.kept = super::failure::take_download(&info.id).map(SyncWrapper::new);
        super::failure::opened(twin);
        PhotoFile::new(catalog, info)
    }

    /// Bytes `start..start + count` as a stream of the upstream's own chunks, for a GET that
    /// the handler streams itself: no copy, no fixed-size reads, and a request to Google
    /// that ends where the client's range ends. Resumption after a broken upstream body and
    /// the length checks are those of `read_bytes` (the same code). Ends with an error,
    /// never short and never padded, when the bytes cannot all be had.
    pub fn into_stream(
        mut self,
        start: u64,
        count: u64,
    ) -> impl futures::Stream<Item = Result<Bytes, FsError>> + Send + 'static {
        self.pos = start;
        self.end = Some(start.saturating_add(count));
        self.redirect = None;
        futures::stream::unfold((self, count), |(mut file, left)| async move {
            if left == 0 {
                return None;
            }
            let want = usize::try_from(left).unwrap_or(usize::MAX);
            match file.read(want).await {
                Ok(bytes) if bytes.is_empty() => Some((Err(FsError::GeneralFailure), (file, 0))),
                Ok(bytes) => {
                    let left = left - bytes.len() as u64;
                    Some((Ok(bytes), (file, left)))
                }
                Err(e) => Some((Err(e), (file, 0))),
            }
        })
    }

    /// Answers GET and HEAD with a 302 to where `redirect` says, when dav-server's
    /// `.redirect(true)` is on.
    pub fn with_redirect(mut self, redirect: Option<Arc<dyn Redirect>>) -> Self {
        self.redirect = redirect;
        self
    }

    async fn location(&mut self) -> Result<Option<String>, FsError> {
        let Some(redirect) = self.redirect.clone() else {
            return Ok(None);
        };
        if self.info.bearer_only {
            tracing::debug!(item = %self.info.id,
                "proxying instead of redirecting: the item's bytes need the OAuth bearer token");
            return Ok(None);
        }
        match redirect.location(&self.info).await {
            // dav-server unwraps the conversion to a header value: check it here.
            Ok(Some(url)) if http::HeaderValue::from_str(&url).is_err() => {
                tracing::warn!(item = %self.info.id,
                    "proxying instead of redirecting: the location is not a valid header value");
                Ok(None)
            }
            Ok(location) => Ok(location),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Opens the upstream at `self.pos` and validates what the host answered. Transient
    /// failures to connect count as a broken body and are retried, but never a rate limit:
    /// the content host's 429 closed the media gate, and the retry policy has already spent
    /// its attempts on any other 429, so starting again would only storm Google.
    async fn open_upstream(&mut self) -> Result<Option<Upstream>, FsError> {
        let size = self.info.size;
        let end = self.end.filter(|&e| e > self.pos);
        let kept = self.kept.take().map(SyncWrapper::into_inner);
        let download = match self
            .catalog
            .read_opened(&self.info, self.pos, end, kept)
            .await
        {
            Ok(d) => d,
            Err(CatalogError::Google(e)) if e.is_transient() && !e.is_rate_limit() => {
                // Kept as the reason in case this was the last try before any byte went out.
                failure::record(&CatalogError::Google(e.clone()));
                self.broken(&e.to_string())?;
                return Ok(None);
            }
            Err(e) => return Err(self.fail(e)),
        };
        if let Some(total) = download.total
            && total != size
        {
            tracing::warn!(
                item = %self.info.id,
                announced = size,
                upstream = total,
                "the item's size changed upstream; aborting the download and forgetting the size \
                 (the next listing probes it again)"
            );
            self.catalog.forget_size(&self.info.id);
            // Before any byte went out this becomes the answer's status and body.
            failure::record(&CatalogError::Google(GoogleError::Protocol(format!(
                "the item's size changed in Google Photos ({size} bytes were announced, Google \
                 now serves {total}); the next listing shows the new size: list the folder \
                 again and retry"
            ))));
            return Err(FsError::GeneralFailure);
        }
        if download.start != self.pos && download.start != 0 {
            tracing::warn!(item = %self.info.id, asked = self.pos, got = download.start,
                "the content host answered another range than asked; aborting");
            failure::record(&CatalogError::Google(GoogleError::Protocol(format!(
                "the content host answered a range starting at byte {} when asked for byte {}",
                download.start, self.pos
            ))));
            return Err(FsError::GeneralFailure);
        }
        Ok(Some(Upstream {
            next: download.start,
            cursor: self.pos,
            _active: crate::metrics::StreamGuard::new(),
            download,
            pending: Bytes::new(),
        }))
    }

    fn fail(&self, e: CatalogError) -> FsError {
        if matches!(e, CatalogError::Processing { .. }) {
            tracing::info!(item = %self.info.id, "download refused for now: {e}");
        } else {
            tracing::warn!(item = %self.info.id, error = %e, "download failed");
        }
        failure::record(&e);
        match e {
            CatalogError::NotFound => FsError::NotFound,
            CatalogError::Google(_)
            | CatalogError::Processing { .. }
            | CatalogError::ProbeBudgetSpent { .. } => FsError::IsRemote,
        }
    }

    /// Notes a broken or short upstream body; fails once it happened too often in a row.
    fn broken(&mut self, why: &str) -> Result<(), FsError> {
        self.upstream = None;
        self.failures += 1;
        if self.failures > MAX_RESUMES {
            tracing::warn!(item = %self.info.id, pos = self.pos, reason = why,
                "upstream body broke {} times in a row; aborting the response", self.failures);
            return Err(FsError::GeneralFailure);
        }
        tracing::info!(item = %self.info.id, pos = self.pos, reason = why,
            "upstream body broke; resuming from the last byte delivered");
        Ok(())
    }

    async fn read(&mut self, count: usize) -> Result<Bytes, FsError> {
        let size = self.info.size;
        loop {
            if self.pos >= size || count == 0 {
                return Ok(Bytes::new());
            }
            if self
                .upstream
                .as_mut()
                .is_some_and(|u| u.get_mut().cursor != self.pos)
            {
                self.upstream = None;
            }
            if self.upstream.is_none() {
                self.upstream = self.open_upstream().await?.map(SyncWrapper::new);
                if self.upstream.is_none() {
                    continue;
                }
            }
            let up = self.upstream.as_mut().expect("opened above").get_mut();
            if !up.pending.is_empty() {
                let n = count.min(up.pending.len()).min((size - self.pos) as usize);
                let out = up.pending.split_to(n);
                self.pos += n as u64;
                up.cursor = self.pos;
                crate::metrics::get().proxied(n as u64, self.catalog.library());
                self.failures = 0;
                return Ok(out);
            }
            match up.download.body.next().await {
                Some(Ok(mut chunk)) => {
                    if up.next + chunk.len() as u64 > size {
                        tracing::warn!(item = %self.info.id,
                            "the content host sent more bytes than the item's size; aborting");
                        self.catalog.forget_size(&self.info.id);
                        return Err(FsError::GeneralFailure);
                    }
                    let start = up.next;
                    up.next += chunk.len() as u64;
                    if up.next <= up.cursor {
                        continue; // still before our offset (the host ignored Range)
                    }
                    if start < up.cursor {
                        chunk = chunk.slice((up.cursor - start) as usize..);
                    }
                    up.pending = chunk;
                }
                Some(Err(e)) => {
                    let why = match &e {
                        GoogleError::Transport(t) => t.clone(),
                        other => other.to_string(),
                    };
                    self.broken(&why)?;
                }
                None => {
                    if self.end.is_some_and(|e| up.next >= e) {
                        // The request stopped where the client's range ends, and a read goes
                        // on past it: one more request, not a failure.
                        self.end = None;
                        self.upstream = None;
                    } else if up.next < size {
                        self.broken("the body ended before the item's size")?;
                    } else {
                        // Cannot happen: pos < size == next means pending held the rest.
                        return Err(FsError::GeneralFailure);
                    }
                }
            }
        }
    }
}

impl DavFile for PhotoFile {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = Meta::file(&self.info);
        Box::pin(async move { Ok(Box::new(meta) as Box<dyn DavMetaData>) })
    }

    fn write_buf(&mut self, _buf: Box<dyn bytes::Buf + Send>) -> FsFuture<'_, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }

    fn write_bytes(&mut self, _buf: Bytes) -> FsFuture<'_, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }

    fn read_bytes(&mut self, count: usize) -> FsFuture<'_, Bytes> {
        Box::pin(self.read(count))
    }

    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        let size = self.info.size as i128;
        let target = match pos {
            SeekFrom::Start(n) => n as i128,
            SeekFrom::End(d) => size + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        Box::pin(async move {
            if target < 0 || target > size {
                return Err(FsError::GeneralFailure);
            }
            self.pos = target as u64;
            Ok(self.pos)
        })
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn redirect_url(&mut self) -> FsFuture<'_, Option<String>> {
        Box::pin(self.location())
    }
}
