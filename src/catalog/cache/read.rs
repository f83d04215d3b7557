//! A read through the cache: from any offset to the end of the item, as `PhotoFile` reads.
//!
//! The reader walks the item block by block from the block holding the offset. A cached block
//! comes from disk (checked first). A block another reader's request is about to bring is
//! waited for (`flight.rs`). At any other missing block it asks Google, in ONE ranged request
//! (a flight), for the whole run of missing blocks up to the next cached one (every request
//! counts against the day's quota, so not one per block); the bytes stream on to the client
//! as they arrive, and each block of the run is written to the cache as soon as it is
//! complete. A read that stops inside a block (the client had its range, or hung up) keeps
//! the blocks completed before it and, finished in the background, the block it stopped in.
//! Pieces are handed out never across a block boundary, so where a read stopped is where its
//! client stopped.
//!
//! What the reader yields is what `PhotoFile` expects of a download: the bytes from the offset,
//! an error when the upstream broke (it resumes from the last byte delivered by asking the
//! catalog again, which consults the cache again), and the total length Google stated, which
//! `PhotoFile` checks against the size it announced.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::flight::{Flight, Following, Joined, Piece, Waited};
use super::{BLOCK, ContentCache, Key};
use crate::catalog::{Catalog, CatalogError, FileInfo};
use crate::google::GoogleError;
use crate::google::content::Download;

/// The variant of an item's bytes a download asks for (`=d` or `=dv`, as
/// `MediaItem::download_url` chooses).
pub(in crate::catalog) fn variant(info: &FileInfo) -> &'static str {
    if info.mime_type.starts_with("video/") {
        "dv"
    } else {
        "d"
    }
}

/// The request a read of bytes `start..=last` (to the end when `last` is None) makes when
/// none of the item is cached: whole blocks, from the block holding `start` to the one holding
/// `last`. What `Catalog::stat_reading` asks for when it must learn a size on the way, so
/// that the flight of [`Catalog::read_opened`] can take its download over as its own.
pub(in crate::catalog) fn block_span(start: u64, last: Option<u64>) -> (u64, Option<u64>) {
    (
        start / BLOCK * BLOCK,
        last.map(|l| (l / BLOCK + 1) * BLOCK - 1),
    )
}

/// One read of one item through the cache (see the module doc).
struct Reader {
    catalog: Catalog,
    cache: ContentCache,
    key: Key,
    entry: String,
    /// The next byte to hand out.
    pos: u64,
    /// The block after the last one the client asked for: requests stop there.
    limit: u64,
    /// The flight this reader started, while it receives its bytes.
    fill: Option<Fill>,
    /// Another reader's flight this one follows, while it still brings blocks ahead.
    following: Option<Following>,
}

/// The receiving end of a flight this reader started.
struct Fill {
    flight: Arc<Flight>,
    pieces: mpsc::Receiver<Piece>,
    /// Received chunks not handed out yet, contiguous, starting at `pending_at`.
    pending: VecDeque<Bytes>,
    pending_at: u64,
}

impl Drop for Reader {
    fn drop(&mut self) {
        // Before `pieces` is dropped: the flight reads this once it sees the channel closed.
        if let Some(fill) = &self.fill {
            fill.flight.primary_left(self.pos);
        }
    }
}

/// What a read's first block costs before any byte: nothing, or another size Google states.
enum First {
    Ready,
    OtherSize(u64),
}

impl Catalog {
    /// How many reads wait for a block another read's request is bringing (0 without the
    /// content cache): what tests watch to know their readers share one request.
    pub fn content_waiting(&self) -> usize {
        self.inner.content.as_ref().map_or(0, |c| c.waiting())
    }

    /// How many requests of the content cache are still receiving (and storing) blocks (0
    /// without the cache): tests wait for 0 before they look at the cache's files.
    pub fn content_in_flight(&self) -> usize {
        self.inner.content.as_ref().map_or(0, |c| c.in_flight())
    }

    /// Complete blocks waiting for their writers now (0 without the cache, or once every fill
    /// has written or given up its blocks): tests check that the write-behind room is given
    /// back, whatever became of the writes.
    pub fn content_write_backlog(&self) -> usize {
        self.inner.content.as_ref().map_or(0, |c| c.write_backlog())
    }

    /// Reads item `info` from byte `start` through the content cache when there is one, else
    /// straight from Google. A download refused before any byte (a closed gate while the
    /// bytes are not cached, a video in processing, an item gone) is an error here, so the
    /// client gets a status rather than a cut body.
    ///
    /// `end`, when known, is where the client's range ends (exclusive): requests to Google
    /// ask for no byte beyond it (every byte asked for is sent, read or not). It is a bound on
    /// requests, not on the read: reading on past it costs one more request, never a wrong
    /// byte.
    pub async fn read(
        &self,
        info: &FileInfo,
        start: u64,
        end: Option<u64>,
    ) -> Result<Download, CatalogError> {
        self.read_opened(info, start, end, None).await
    }

    /// [`Catalog::read`] that may start on `opened`, the download a stat opened for this read
    /// to learn the item's size (`Catalog::stat_reading`), instead of asking Google again: as
    /// it is without the cache, or as the cache's request for the first missing run, which it
    /// asked for exactly ([`block_span`]). One that does not start where needed is dropped.
    pub async fn read_opened(
        &self,
        info: &FileInfo,
        start: u64,
        end: Option<u64>,
        opened: Option<Download>,
    ) -> Result<Download, CatalogError> {
        let Some(cache) = self.inner.content.clone() else {
            if let Some(opened) = opened.filter(|d| d.start == start || d.start == 0) {
                return Ok(opened);
            }
            let last = end.filter(|&e| e > start && e < info.size).map(|e| e - 1);
            return self.download_range(&info.id, start, last).await;
        };
        let key = Key::new(&info.id, variant(info), info.size);
        let entry = key.entry();
        let mut reader = Reader {
            catalog: self.clone(),
            cache,
            key,
            entry,
            pos: start,
            limit: end.map_or(u64::MAX, |e| e.div_ceil(BLOCK)),
            fill: None,
            following: None,
        };
        let mut total = Some(info.size);
        if start < info.size {
            match reader.first(start / BLOCK, opened).await? {
                First::Ready => {}
                // `PhotoFile` answers it (and forgets the size).
                First::OtherSize(other) => total = Some(other),
            }
        }
        let body = futures::stream::unfold(reader, |mut r| async move {
            r.next().await.map(|item| (item, r))
        });
        Ok(Download {
            start,
            total,
            body: Box::pin(body),
        })
    }
}

impl Reader {
    /// Before the first byte: when block `block` is not cached, joins the flight bringing it
    /// or starts one, and waits for the request's answer, so a refusal is an error before
    /// any byte (the client gets a status).
    /// `opened`: a download already asked for (see [`Catalog::read_opened`]).
    async fn first(&mut self, block: u64, opened: Option<Download>) -> Result<First, CatalogError> {
        if self.cache.has(&self.key, &self.entry, block) {
            return Ok(First::Ready);
        }
        match self.cache.join_or_start(
            &self.catalog,
            &self.key,
            &self.entry,
            block,
            self.limit,
            opened,
        ) {
            Joined::Cached => Ok(First::Ready),
            Joined::Tail(flight) => match flight.opened().await? {
                Some(total) => Ok(First::OtherSize(total)),
                None => Ok(First::Ready),
            },
            Joined::Primary(started) => {
                self.fill = Some(Fill {
                    flight: started.flight,
                    pieces: started.pieces,
                    pending: VecDeque::new(),
                    pending_at: self.pos,
                });
                let opened = started.opened.await.unwrap_or_else(|_| {
                    Err(CatalogError::Google(GoogleError::Protocol(
                        "the request for the item's bytes ended early".into(),
                    )))
                });
                match opened {
                    Ok(None) => Ok(First::Ready),
                    Ok(Some(total)) => {
                        self.fill = None;
                        Ok(First::OtherSize(total))
                    }
                    Err(e) => {
                        self.fill = None;
                        Err(e)
                    }
                }
            }
        }
    }

    /// The next piece of the read, `None` at the item's end.
    async fn next(&mut self) -> Option<Result<Bytes, GoogleError>> {
        let size = self.key.size;
        loop {
            if self.pos >= size {
                return None;
            }
            if let Some(fill) = self.fill.as_mut() {
                if let Some(out) = fill.take(self.pos) {
                    self.pos += out.len() as u64;
                    crate::metrics::get().content_bytes(
                        "google",
                        out.len() as u64,
                        self.catalog.library(),
                    );
                    return Some(Ok(out));
                }
                match fill.pieces.recv().await {
                    Some(Ok((at, chunks))) => {
                        fill.pending = chunks.into();
                        fill.pending_at = at;
                    }
                    Some(Err(e)) => {
                        self.fill = None;
                        return Some(Err(e));
                    }
                    // The run is done: on with the cache, or another request.
                    None => self.fill = None,
                }
                continue;
            }
            let block = self.pos / BLOCK;
            if self.following.as_ref().is_some_and(|f| !f.covers(block)) {
                self.following = None;
            }
            if let Some(bytes) = self.cache.read(&self.key, &self.entry, block).await {
                crate::metrics::get().cache("content", "hit", 1, self.catalog.library());
                return Some(Ok(self.serve(block, bytes, "cache")));
            }
            let flight = match self.cache.join_or_start(
                &self.catalog,
                &self.key,
                &self.entry,
                block,
                self.limit,
                None,
            ) {
                Joined::Cached => continue,
                Joined::Tail(flight) => {
                    if !self
                        .following
                        .as_ref()
                        .is_some_and(|f| Arc::ptr_eq(&f.0, &flight))
                    {
                        self.following = Some(Following::new(flight.clone()));
                    }
                    flight
                }
                Joined::Primary(started) => {
                    self.following = None;
                    self.fill = Some(Fill {
                        flight: started.flight,
                        pieces: started.pieces,
                        pending: VecDeque::new(),
                        pending_at: self.pos,
                    });
                    match started.opened.await {
                        Ok(Ok(None)) => continue,
                        Ok(Ok(Some(total))) => {
                            self.fill = None;
                            return Some(Err(size_changed(size, total)));
                        }
                        Ok(Err(e)) => {
                            self.fill = None;
                            return Some(Err(google_error(e)));
                        }
                        Err(_) => {
                            self.fill = None;
                            return Some(Err(GoogleError::Transport(
                                "the request for the item's bytes ended early".into(),
                            )));
                        }
                    }
                }
            };
            match flight.wait(block).await {
                Waited::Block(bytes) => {
                    crate::metrics::get().cache("content", "shared", 1, self.catalog.library());
                    return Some(Ok(self.serve(block, bytes, "shared")));
                }
                // Complete: the cache has it (else the next turn asks Google).
                Waited::Passed => {}
                Waited::Gone => self.following = None,
                Waited::OtherSize(total) => return Some(Err(size_changed(size, total))),
                Waited::Refused(e) => return Some(Err(google_error(e))),
            }
        }
    }

    /// Hands out block `block`'s bytes from the reader's position on.
    fn serve(&mut self, block: u64, bytes: Bytes, source: &str) -> Bytes {
        let skip = (self.pos - block * BLOCK) as usize;
        let out = bytes.slice(skip..);
        self.pos += out.len() as u64;
        crate::metrics::get().content_bytes(source, out.len() as u64, self.catalog.library());
        out
    }
}

impl Fill {
    /// What the pending chunks hold from `pos` on, up to the end of `pos`'s block (never across
    /// it: where the read stops tells the flight which block its client left in).
    fn take(&mut self, pos: u64) -> Option<Bytes> {
        while let Some(front) = self.pending.front_mut() {
            let end = self.pending_at + front.len() as u64;
            if pos < self.pending_at {
                self.pending.clear();
                return None;
            }
            if pos >= end {
                self.pending.pop_front();
                self.pending_at = end;
                continue;
            }
            let block_end = (pos / BLOCK + 1) * BLOCK;
            let from = (pos - self.pending_at) as usize;
            let to = (end.min(block_end) - self.pending_at) as usize;
            let out = front.slice(from..to);
            if to == front.len() {
                self.pending.pop_front();
            } else {
                *front = front.slice(to..);
            }
            self.pending_at += to as u64;
            return Some(out);
        }
        None
    }
}

/// The error a read that met another size mid-way ends with: the entries are forgotten, so
/// the resume's listing-free path (`PhotoFile` asks again) sees the new total and answers
/// for it.
fn size_changed(size: u64, total: u64) -> GoogleError {
    GoogleError::Protocol(format!(
        "the item's size changed in Google Photos ({size} bytes were announced, Google now \
         serves {total})"
    ))
}

fn google_error(e: CatalogError) -> GoogleError {
    match e {
        CatalogError::Google(e) => e,
        e => GoogleError::Transport(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_span_covers_whole_blocks_around_the_range() {
        assert_eq!(block_span(0, None), (0, None));
        assert_eq!(block_span(10, Some(99)), (0, Some(BLOCK - 1)));
        assert_eq!(block_span(BLOCK, Some(BLOCK)), (BLOCK, Some(2 * BLOCK - 1)));
        assert_eq!(block_span(BLOCK - 1, Some(BLOCK)), (0, Some(2 * BLOCK - 1)));
        assert_eq!(block_span(3 * BLOCK + 7, None), (3 * BLOCK, None));
    }
}
