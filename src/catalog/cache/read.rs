//! A read through the cache: from any offset to the end of the item, as `PhotoFile` reads.
//!
//! The reader walks the item block by block from the block holding the offset. A cached block
//! comes from disk (checked first). At a missing block it asks Google, in ONE ranged request,
//! for the whole run of missing blocks up to the next cached one (every request counts against
//! the day's quota, so not one per block); the bytes stream on to the client as they arrive,
//! and each block of the run is written to the cache as soon as it is complete. A read that
//! stops inside a block (the client had its range, or hung up) keeps the blocks completed
//! before it.
//!
//! What the reader yields is what `PhotoFile` expects of a download: the bytes from the offset,
//! an error when the upstream broke (it resumes from the last byte delivered by asking the
//! catalog again, which consults the cache again), and the total length Google stated, which
//! `PhotoFile` checks against the size it announced.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use super::{BLOCK, ContentCache, Key};
use crate::catalog::{Catalog, CatalogError, FileInfo};
use crate::google::GoogleError;
use crate::google::content::Download;

type Body = std::pin::Pin<Box<dyn futures::Stream<Item = Result<Bytes, GoogleError>> + Send>>;

/// The variant of an item's bytes a download asks for (`=d` or `=dv`, as
/// `MediaItem::download_url` chooses).
pub(in crate::catalog) fn variant(info: &FileInfo) -> &'static str {
    if info.mime_type.starts_with("video/") {
        "dv"
    } else {
        "d"
    }
}

/// One read of one item through the cache (see the module doc).
struct Reader {
    catalog: Catalog,
    cache: ContentCache,
    key: Key,
    entry: String,
    /// The next byte to hand out.
    pos: u64,
    /// The ranged request for a run of missing blocks, while one is open.
    fill: Option<Fill>,
}

/// An open request for the missing blocks `[start, end)` (byte offsets, block aligned but
/// for the item's end).
struct Fill {
    body: Body,
    /// Offset of the next byte the body yields (0 when the host ignored Range and sent all).
    next: u64,
    end: u64,
    /// Bytes of the block being received; it starts at `block_start`.
    block: BytesMut,
    block_start: u64,
}

/// What opening a run found.
enum Opened {
    Fill(Fill),
    /// Google states another total length: the item changed (its entries are dropped).
    OtherSize(u64),
}

impl Catalog {
    /// Reads item `info` from byte `start` through the content cache when there is one, else
    /// straight from Google. A download refused before any byte (a closed gate while the
    /// bytes are not cached, a video in processing, an item gone) is an error here, so the
    /// client gets a status rather than a cut body.
    pub async fn read(&self, info: &FileInfo, start: u64) -> Result<Download, CatalogError> {
        let Some(cache) = self.inner.content.clone() else {
            return self.download(&info.id, start).await;
        };
        let key = Key::new(&info.id, variant(info), info.size);
        let entry = key.entry();
        let mut reader = Reader {
            catalog: self.clone(),
            cache,
            key,
            entry,
            pos: start,
            fill: None,
        };
        let mut total = Some(info.size);
        if start < info.size {
            let block = start / BLOCK;
            if !reader.cache.has(&reader.key, &reader.entry, block) {
                match reader.open(block).await? {
                    Opened::Fill(fill) => reader.fill = Some(fill),
                    // `PhotoFile` answers it (and forgets the size).
                    Opened::OtherSize(other) => total = Some(other),
                }
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
    /// Asks Google for the run of missing blocks from `block` to the next cached one.
    async fn open(&mut self, block: u64) -> Result<Opened, CatalogError> {
        let size = self.key.size;
        let end_block = self
            .cache
            .next_cached(&self.entry, block + 1)
            .unwrap_or(self.key.blocks());
        let start = block * BLOCK;
        let end = (end_block * BLOCK).min(size);
        let download = self
            .catalog
            .download_range(&self.key.item_id, start, Some(end - 1))
            .await?;
        if let Some(total) = download.total
            && total != size
        {
            self.cache.forget_item(&self.key.item_id, None);
            return Ok(Opened::OtherSize(total));
        }
        if download.start != start && download.start != 0 {
            return Err(CatalogError::Google(GoogleError::Protocol(format!(
                "the content host answered a range starting at byte {} when asked for byte \
                 {start}",
                download.start
            ))));
        }
        crate::metrics::get().cache("content", "miss");
        Ok(Opened::Fill(Fill {
            body: download.body,
            next: download.start,
            end,
            block: BytesMut::new(),
            block_start: start,
        }))
    }

    /// The next piece of the read, `None` at the item's end.
    async fn next(&mut self) -> Option<Result<Bytes, GoogleError>> {
        let size = self.key.size;
        loop {
            if self.pos >= size {
                return None;
            }
            let Some(fill) = self.fill.as_mut() else {
                let block = self.pos / BLOCK;
                if let Some(bytes) = self.cache.read(&self.key, &self.entry, block).await {
                    let skip = (self.pos - block * BLOCK) as usize;
                    let out = bytes.slice(skip..);
                    self.pos += out.len() as u64;
                    let m = crate::metrics::get();
                    m.cache("content", "hit");
                    m.content_bytes("cache", out.len() as u64);
                    return Some(Ok(out));
                }
                match self.open(block).await {
                    Ok(Opened::Fill(fill)) => self.fill = Some(fill),
                    Ok(Opened::OtherSize(total)) => {
                        // Forgotten, so the resume's listing-free path (`PhotoFile` asks
                        // again) sees the new total and answers for it.
                        return Some(Err(GoogleError::Protocol(format!(
                            "the item's size changed in Google Photos ({size} bytes were \
                             announced, Google now serves {total})"
                        ))));
                    }
                    Err(CatalogError::Google(e)) => return Some(Err(e)),
                    Err(e) => return Some(Err(GoogleError::Transport(e.to_string()))),
                }
                continue;
            };
            match fill.body.next().await {
                Some(Ok(chunk)) => {
                    let first = fill.next;
                    fill.next += chunk.len() as u64;
                    // Only what lies in the run: a host that ignored Range sends it all.
                    let lo = first.max(fill.block_start);
                    let hi = fill.next.min(fill.end);
                    let done = fill.next >= fill.end;
                    let mut out = None;
                    if hi > lo {
                        let part = chunk.slice((lo - first) as usize..(hi - first) as usize);
                        if hi > self.pos {
                            let from = self.pos.max(lo);
                            out = Some(part.slice((from - lo) as usize..));
                            self.pos = hi;
                        }
                        self.keep(part).await;
                    }
                    if done {
                        self.fill = None;
                    }
                    if let Some(out) = out {
                        crate::metrics::get().content_bytes("google", out.len() as u64);
                        return Some(Ok(out));
                    }
                }
                Some(Err(e)) => {
                    self.fill = None;
                    return Some(Err(e));
                }
                None => {
                    let short = fill.next < fill.end;
                    self.fill = None;
                    if short {
                        return Some(Err(GoogleError::Transport(
                            "the body ended before the range asked for".into(),
                        )));
                    }
                }
            }
        }
    }

    /// Adds bytes of the run (they continue the block being received) and stores each block
    /// they complete.
    async fn keep(&mut self, mut part: Bytes) {
        while !part.is_empty() {
            let Some(fill) = self.fill.as_mut() else {
                return;
            };
            let block = fill.block_start / BLOCK;
            let want = self.key.block_len(block) - fill.block.len() as u64;
            let take = (want as usize).min(part.len());
            fill.block.extend_from_slice(&part.split_to(take));
            if fill.block.len() as u64 == self.key.block_len(block) {
                let bytes = std::mem::take(&mut fill.block).freeze();
                fill.block_start += bytes.len() as u64;
                self.cache.store(&self.key, &self.entry, block, bytes).await;
            }
        }
    }
}
