//! The content cache: the bytes of items read before, kept on disk so that reading them again
//! asks Google nothing (issue #16).
//!
//! Finder, Explorer and Nautilus read every file of a folder to draw thumbnails, and again when
//! the folder is opened again; a video player seeks back and forth. Without a cache each of
//! those reads is a request against the 75,000 media requests a day, and a wait on the network.
//!
//! # Design
//! An item's bytes are cut in fixed blocks of [`BLOCK`] bytes (the last one shorter). A block
//! is kept once it was received whole: a seek to the end of a 4 GB video keeps the end, not
//! 4 GB (a read that stops inside a block has that one block finished, `flight.rs`).
//! - `blocks.rs`: each entry is one sparse file `<content_dir>/<entry>`, block `i` written at
//!   byte `i * BLOCK` once complete, and checked against its length and CRC-32 before it is
//!   served (a block exists only through its index entry, added after its write);
//! - `index.rs`: which blocks exist (their length, checksum, when stored and last read), in
//!   memory, and in the metadata store's `content_blocks` table so it survives a restart (the
//!   rows of a request's blocks written in batches, not one transaction per block);
//! - `read.rs`: a read from any offset: cached blocks from disk, each contiguous run of missing
//!   blocks with ONE ranged request to Google (`Range: bytes=a-b`), its blocks written as they
//!   complete while the bytes stream on to the client;
//! - `flight.rs`: each such request is a task of its own, shared by every reader of its blocks
//!   meanwhile, writing its complete blocks behind the bytes (a writer thread per request, 64
//!   MiB of blocks waiting at most for the whole cache), and finishing the block its reader
//!   left in the middle.
//!
//! An entry is keyed by item id, variant (`d`, `dv`, or a size variant such as `w256-h256-c`,
//! kept whole: see `catalog::variants`) and the size the item had: an answer from Google that states another size drops the item's entries, and a block
//! is served for at most `content_max_age` (an edit in Google Photos that keeps the size is
//! seen after that at the latest). The least recently read blocks are evicted to stay under
//! `content_max`. The cache never fails a request: a block it cannot write is only not kept
//! (one warning), one it cannot read or that fails its checksum is fetched again.

mod blocks;
mod flight;
mod index;
pub(in crate::catalog) mod read;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::Clock;
use super::store::{Store, StoredBlock};
use index::{BlockMeta, Index};

/// Bytes per block. Small enough that a thumbnailer's read of a photo's first few hundred KiB
/// keeps something and a reader holds little memory; large enough that a 4 GB video is 16,384
/// files and rows, not millions.
pub const BLOCK: u64 = 256 * 1024;

/// Writes of a block's last read go to the store at most this often (milliseconds): eviction
/// order needs no finer grain, and a read must not cost a disk write.
const TOUCH_EVERY_MS: u64 = 60_000;

/// Blocks written by one `pwritev` at most (1 MiB). A writer that fell behind takes every
/// block waiting at once; written as one call of tens of MiB, such a run now and then cost
/// the kernel ten times its usual CPU on this machine's Linux 6.18 (`dd` of 256 MiB into a new
/// file on the same ext4: 0.12-0.14 s of system time in 256 KiB and 1 MiB writes, every time;
/// in 4 MiB and 32 MiB writes 0.11-0.20 s, and 0.40, 0.42, 0.57 and 0.92 s in 4 runs of 16),
/// and fills that met it took 0.7-0.9 s instead of 0.4 (`copy_folio_from_iter_atomic`, the
/// page-cache copy, 24 times its usual share of a `perf` profile).
const WRITE_RUN: usize = 4;

/// Where the cache lives and how much it may keep (`[cache] content_*`).
#[derive(Debug, Clone)]
pub struct ContentOptions {
    pub dir: PathBuf,
    /// The bound on the bytes kept.
    pub max_bytes: u64,
    /// How long a block is served after it was stored.
    pub max_age: Duration,
}

/// Which bytes of an item an entry holds: item id, variant (`d` for a photo's original
/// bytes, `dv` for a video's) and the item's size then. Bytes are never served for another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub item_id: String,
    pub variant: String,
    pub size: u64,
}

impl Key {
    pub fn new(item_id: &str, variant: &str, size: u64) -> Key {
        Key {
            item_id: item_id.to_string(),
            variant: variant.to_string(),
            size,
        }
    }

    /// The entry's directory name: 32 hex digits of the SHA-256 of the key (ids are long
    /// and hold `/` for picked items).
    fn entry(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.item_id.as_bytes());
        h.update([0]);
        h.update(self.variant.as_bytes());
        h.update([0]);
        h.update(self.size.to_le_bytes());
        hex::encode(&h.finalize()[..16])
    }

    /// Blocks in the item.
    fn blocks(&self) -> u64 {
        self.size.div_ceil(BLOCK)
    }

    /// Length of block `block`.
    fn block_len(&self, block: u64) -> u64 {
        BLOCK.min(self.size - block * BLOCK)
    }
}

/// A complete block as it came from Google: the chunks it arrived in, in order, never copied
/// together on the way to the disk (copying every byte into a block buffer was a cost of every
/// fill: the writer writes each chunk at its offset). Cheap to clone.
#[derive(Clone, Debug)]
pub(super) struct Parts(Arc<[Bytes]>);

impl Parts {
    pub fn new(parts: Vec<Bytes>) -> Parts {
        Parts(parts.into())
    }

    /// Bytes in the block.
    pub fn len(&self) -> u64 {
        self.0.iter().map(|b| b.len() as u64).sum()
    }

    pub fn chunks(&self) -> &[Bytes] {
        &self.0
    }

    /// The block in one piece (a copy unless it came in one chunk): what a reader following
    /// another's request is handed, not the path of the request's own reader.
    pub fn contiguous(&self) -> Bytes {
        match &*self.0 {
            [one] => one.clone(),
            many => many.concat().into(),
        }
    }

    fn crc32(&self) -> u32 {
        let mut h = crc32fast::Hasher::new();
        for chunk in self.0.iter() {
            h.update(chunk);
        }
        h.finalize()
    }
}

/// The content cache (see the module doc). Cheap to clone.
#[derive(Clone)]
pub struct ContentCache {
    inner: Arc<Shared>,
}

struct Shared {
    opts: ContentOptions,
    store: Store,
    clock: Arc<Clock>,
    index: Mutex<Index>,
    /// The requests for runs of missing blocks in flight, per entry (`flight.rs`).
    flights: Mutex<HashMap<String, Vec<Arc<flight::Flight>>>>,
    /// The one warning about a cache that cannot write was given.
    warned: AtomicBool,
    /// Room for complete blocks waiting for their writers, in blocks ([`flight::WRITE_BEHIND`]).
    write_behind: Arc<tokio::sync::Semaphore>,
}

impl ContentCache {
    pub fn new(opts: ContentOptions, store: Store, clock: Arc<Clock>) -> ContentCache {
        ContentCache {
            inner: Arc::new(Shared {
                opts,
                store,
                clock,
                index: Mutex::new(Index::default()),
                flights: Mutex::new(HashMap::new()),
                warned: AtomicBool::new(false),
                write_behind: Arc::new(tokio::sync::Semaphore::new(flight::WRITE_BEHIND)),
            }),
        }
    }

    /// Loads the index from the store, drops what expired, sweeps files nobody indexes and
    /// evicts down to the bound (which may have shrunk since the last run).
    pub async fn load(&self) {
        let rows = self.inner.store.content_blocks().await;
        let now = self.now_ms();
        let mut expired = Vec::new();
        {
            let mut index = self.inner.index.lock();
            for row in rows {
                if self.expired(row.stored_at, now) {
                    expired.push((row.entry, row.block));
                    continue;
                }
                let key = Key::new(&row.item_id, &row.variant, row.size);
                if key.entry() != row.entry || row.block >= key.blocks() {
                    expired.push((row.entry, row.block));
                    continue;
                }
                index.insert(
                    &row.entry,
                    &key,
                    row.block,
                    BlockMeta {
                        len: row.len,
                        crc32: row.crc32,
                        stored_at: row.stored_at,
                        used_at: row.used_at,
                        persisted_used_at: row.used_at,
                    },
                );
            }
        }
        self.inner.store.forget_content_blocks(expired);
        let known = self.inner.index.lock().blocks_by_entry();
        match blocks::sweep(&self.inner.opts.dir, known).await {
            Ok(s) if s == blocks::Swept::default() => {}
            Ok(s) => tracing::info!(dir = %self.inner.opts.dir.display(),
                "content cache: removed {} files and {} runs of bytes no index row names (an \
                 interrupted write, expired blocks, or the per-block layout of an older \
                 release)", s.files, s.holes),
            Err(e) => self.warn_once(&e),
        }
        self.make_room(0).await;
        let bytes = self.inner.index.lock().bytes();
        crate::metrics::get().content_disk_bytes.set(bytes as i64);
        tracing::info!(dir = %self.inner.opts.dir.display(), bytes,
            max = self.inner.opts.max_bytes, "content cache ready");
    }

    /// Unix milliseconds on the catalog clock (tests move it).
    pub(super) fn now_ms(&self) -> u64 {
        self.inner
            .clock
            .system_now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn expired(&self, stored_at: u64, now: u64) -> bool {
        now.saturating_sub(stored_at) > self.inner.opts.max_age.as_millis() as u64
    }

    /// Whether block `block` of `key` is cached and young enough (an old one is dropped).
    fn has(&self, key: &Key, entry: &str, block: u64) -> bool {
        let meta = self.inner.index.lock().get(entry, block);
        match meta {
            Some(m) if self.expired(m.stored_at, self.now_ms()) => {
                tracing::debug!(item = %key.item_id, block, "cached block too old; dropped");
                self.drop_blocks(vec![(entry.to_string(), block)]);
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    /// The first cached block of `entry` at or after `from` that is young enough (older ones
    /// met on the way are dropped: a run of missing blocks must span them, or an expired
    /// entry would be fetched one block per request).
    fn next_cached(&self, entry: &str, from: u64) -> Option<u64> {
        let now = self.now_ms();
        let mut from = from;
        let mut old = Vec::new();
        let found = {
            let index = self.inner.index.lock();
            loop {
                let block = index.next_cached(entry, from)?;
                let meta = index.get(entry, block)?;
                if !self.expired(meta.stored_at, now) {
                    break Some(block);
                }
                old.push((entry.to_string(), block));
                from = block + 1;
            }
        };
        if !old.is_empty() {
            self.drop_blocks(old);
        }
        found
    }

    /// Block `block` of `key`, read and checked; `None` (and the block dropped) when it is not
    /// there, too old, unreadable or damaged.
    async fn read(&self, key: &Key, entry: &str, block: u64) -> Option<Bytes> {
        if !self.has(key, entry, block) {
            return None;
        }
        let meta = self.inner.index.lock().get(entry, block)?;
        match blocks::read(&self.inner.opts.dir, entry, block, meta.len, meta.crc32).await {
            Ok(bytes) => {
                let now = self.now_ms();
                let touch = {
                    let mut index = self.inner.index.lock();
                    match index.get_mut(entry, block) {
                        Some(m) => {
                            m.used_at = now;
                            let due = now.saturating_sub(m.persisted_used_at) >= TOUCH_EVERY_MS;
                            if due {
                                m.persisted_used_at = now;
                            }
                            due
                        }
                        None => false,
                    }
                };
                if touch {
                    self.inner.store.touch_content_block(entry, block, now);
                }
                Some(bytes)
            }
            Err(bad) => {
                match bad {
                    blocks::Bad::Damaged(why) => tracing::warn!(item = %key.item_id, block,
                        "a cached block is damaged ({why}); fetching it from Google again"),
                    blocks::Bad::Io(e) => tracing::warn!(item = %key.item_id, block,
                        "a cached block cannot be read ({e}); fetching it from Google again"),
                }
                self.drop_blocks(vec![(entry.to_string(), block)]);
                None
            }
        }
    }

    /// Keeps complete blocks read from Google, `(block, bytes, received_at)` in the order
    /// they came, through `file`, the entry's file as a flight's writer holds it, and
    /// returns their index rows, for the caller to write to the store with others
    /// ([`ContentCache::put_rows`]): one transaction per block cost the fill a SQLite commit
    /// every 256 KiB. Contiguous blocks are written together (one `pwritev` per
    /// [`WRITE_RUN`]). Blocking file I/O: called on a blocking thread. Never fails: a block
    /// that cannot be written is not kept (one warning for the whole run) and has no row.
    /// `received_at` (catalog clock, ms) is when the bytes came from Google: a block's age
    /// counts from then, not from when its write got to it.
    fn store_blocks(
        &self,
        key: &Key,
        entry: &str,
        file: &mut blocks::EntryFile,
        batch: Vec<(u64, Parts, u64)>,
    ) -> Vec<StoredBlock> {
        let max = self.inner.opts.max_bytes;
        let mut rows = Vec::new();
        let mut run: Vec<(u64, Parts, u64)> = Vec::new();
        let mut run_bytes = 0;
        for (block, bytes, received_at) in batch {
            let len = bytes.len();
            if len != key.block_len(block) || len > max {
                continue;
            }
            // A run: contiguous blocks whose bytes fit under the bound together, WRITE_RUN at most.
            let next = run.last().map(|(b, ..)| b + 1);
            if next.is_some_and(|n| n != block || run_bytes + len > max || run.len() >= WRITE_RUN) {
                rows.extend(self.store_run(key, entry, file, std::mem::take(&mut run)));
                run_bytes = 0;
            }
            run_bytes += len;
            run.push((block, bytes, received_at));
        }
        rows.extend(self.store_run(key, entry, file, run));
        rows
    }

    /// [`ContentCache::store_blocks`] for one run of contiguous blocks that fits under the
    /// bound.
    fn store_run(
        &self,
        key: &Key,
        entry: &str,
        file: &mut blocks::EntryFile,
        run: Vec<(u64, Parts, u64)>,
    ) -> Vec<StoredBlock> {
        let Some(&(first, ..)) = run.first() else {
            return Vec::new();
        };
        let len: u64 = run.iter().map(|(_, b, _)| b.len()).sum();
        self.make_room_now(len);
        let crcs: Vec<u32> = run.iter().map(|(_, b, _)| b.crc32()).collect();
        {
            let mut index = self.inner.index.lock();
            for (block, ..) in &run {
                index.begin_write(entry, *block);
            }
        }
        // Marked until indexed (or given up), so no release of an older block at this place
        // punches out the new bytes between their write and their index entry, and the
        // entry's file is not removed meanwhile.
        let writing = scopeguard::guard((), |()| {
            let mut index = self.inner.index.lock();
            for (block, ..) in &run {
                index.end_write(entry, *block);
            }
        });
        let parts: Vec<Parts> = run.iter().map(|(_, b, _)| b.clone()).collect();
        if let Err(e) = file.write(first, &parts) {
            self.warn_once(&e);
            return Vec::new();
        }
        let now = self.now_ms();
        let mut rows = Vec::with_capacity(run.len());
        let bytes_now = {
            let mut index = self.inner.index.lock();
            for ((block, bytes, received_at), crc32) in run.iter().zip(crcs) {
                let meta = BlockMeta {
                    len: bytes.len(),
                    crc32,
                    stored_at: (*received_at).min(now),
                    used_at: now,
                    persisted_used_at: now,
                };
                index.insert(entry, key, *block, meta);
                index.end_write(entry, *block);
                rows.push(StoredBlock {
                    entry: entry.to_string(),
                    item_id: key.item_id.clone(),
                    variant: key.variant.clone(),
                    size: key.size,
                    block: *block,
                    len: bytes.len(),
                    crc32,
                    stored_at: (*received_at).min(now),
                    used_at: now,
                });
            }
            index.bytes()
        };
        scopeguard::ScopeGuard::into_inner(writing);
        crate::metrics::get()
            .content_disk_bytes
            .set(bytes_now as i64);
        rows
    }

    /// Writes the index rows of stored blocks to the store, in one transaction, without
    /// waiting. A row is written after its block's bytes, so a crash leaves at worst bytes
    /// without a row (punched out at the next start), never a row without its bytes.
    ///
    /// A block may have left the index since it was stored (evicted by a later block of the
    /// same request, dropped with its item, stored again by another request): its row is
    /// left out, and the rest submitted,
    /// under the index's lock. A removal takes that lock before it submits its deletion, so
    /// the store deletes after it inserts, never before: no row outlives its block.
    fn put_rows(&self, mut rows: Vec<StoredBlock>) {
        let index = self.inner.index.lock();
        rows.retain(|r| {
            index
                .get(&r.entry, r.block)
                .is_some_and(|m| (m.crc32, m.stored_at) == (r.crc32, r.stored_at))
        });
        if !rows.is_empty() {
            self.inner.store.put_content_blocks(rows);
        }
    }

    /// Evicts the least recently read blocks until `incoming` more bytes fit under the bound;
    /// past it, down to nine tenths of it, so that a full cache does not sort its index on
    /// every block stored.
    async fn make_room(&self, incoming: u64) {
        let this = self.clone();
        let _ = tokio::task::spawn_blocking(move || this.make_room_now(incoming)).await;
    }

    /// [`ContentCache::make_room`] on this (blocking) thread.
    fn make_room_now(&self, incoming: u64) {
        let max = self.inner.opts.max_bytes;
        let gone = {
            let mut index = self.inner.index.lock();
            if index.bytes() + incoming <= max {
                return;
            }
            index.evict_to((max / 10 * 9).saturating_sub(incoming))
        };
        crate::metrics::get()
            .content_evictions
            .inc_by(gone.len() as u64);
        tracing::debug!(blocks = gone.len(), "content cache: evicted");
        self.inner.store.forget_content_blocks(gone.clone());
        self.remove_files_now(gone);
        let bytes = self.inner.index.lock().bytes();
        crate::metrics::get().content_disk_bytes.set(bytes as i64);
    }

    /// The whole of item `item_id` in size `variant` (`w256-h256-c`), when every block of it
    /// is cached and young enough: a size variant is read whole, never by range.
    pub(in crate::catalog) async fn whole(&self, item_id: &str, variant: &str) -> Option<Bytes> {
        let (key, entry) = self.inner.index.lock().find(item_id, variant)?;
        let mut out = bytes::BytesMut::with_capacity(key.size as usize);
        for block in 0..key.blocks() {
            out.extend_from_slice(&self.read(&key, &entry, block).await?);
        }
        Some(out.freeze())
    }

    /// Keeps `bytes`, the whole of item `item_id` in size `variant`, as fetched from Google.
    pub(in crate::catalog) async fn keep_whole(&self, item_id: &str, variant: &str, bytes: Bytes) {
        let key = Key::new(item_id, variant, bytes.len() as u64);
        let entry = key.entry();
        let received_at = self.now_ms();
        let batch = (0..key.blocks())
            .map(|block| {
                let start = (block * BLOCK) as usize;
                let end = start + key.block_len(block) as usize;
                let bytes = Parts::new(vec![bytes.slice(start..end)]);
                (block, bytes, received_at)
            })
            .collect();
        let this = self.clone();
        let rows = tokio::task::spawn_blocking(move || {
            let mut file = blocks::EntryFile::new(&this.inner.opts.dir, &entry);
            this.store_blocks(&key, &entry, &mut file, batch)
        })
        .await
        .unwrap_or_default();
        self.put_rows(rows);
    }

    /// Drops every entry of item `id` except the one for `keep_size`: Google stated another
    /// size (a probe, a download), so the bytes kept belong to an older version.
    pub fn forget_item(&self, id: &str, keep_size: Option<u64>) {
        let gone = self.inner.index.lock().remove_item(id, keep_size);
        if !gone.is_empty() {
            tracing::info!(item = %id, blocks = gone.len(),
                "content cache: dropped the item's bytes (Google states another size)");
            self.forget(gone);
        }
    }

    fn drop_blocks(&self, gone: Vec<(String, u64)>) {
        {
            let mut index = self.inner.index.lock();
            for (entry, block) in &gone {
                index.remove(entry, *block);
            }
        }
        self.forget(gone);
    }

    /// Forgets blocks already out of the index: their rows and their files (in the background;
    /// a file without a row is never served).
    fn forget(&self, gone: Vec<(String, u64)>) {
        self.inner.store.forget_content_blocks(gone.clone());
        let this = self.clone();
        tokio::spawn(async move { this.remove_files(gone).await });
        let bytes = self.inner.index.lock().bytes();
        crate::metrics::get().content_disk_bytes.set(bytes as i64);
    }

    /// Gives back the space of blocks that left the index, and removes entry files left
    /// with no block.
    ///
    /// A block may be stored again before this runs (a damaged block is fetched again at
    /// once; an evicted one may be read again), at the same place. So each block is punched
    /// out only if it is neither indexed nor being written, checked and punched under the
    /// index's lock, which a store takes to mark its write and to index it: new bytes are
    /// never punched out, whatever the order the two tasks run in.
    async fn remove_files(&self, gone: Vec<(String, u64)>) {
        if gone.is_empty() {
            return;
        }
        let this = self.clone();
        let _ = tokio::task::spawn_blocking(move || this.remove_files_now(gone)).await;
    }

    /// [`ContentCache::remove_files`] on this (blocking) thread.
    fn remove_files_now(&self, gone: Vec<(String, u64)>) {
        let dir = &self.inner.opts.dir;
        let mut entries = std::collections::HashSet::new();
        for (entry, block) in &gone {
            if entries.insert(entry.clone()) {
                let index = self.inner.index.lock();
                if !index.wants_file(entry) {
                    blocks::remove(dir, entry);
                    continue;
                }
            }
            let index = self.inner.index.lock();
            if !index.wants_block(entry, *block) {
                blocks::release(dir, entry, *block);
            }
        }
    }

    fn warn_once(&self, e: &std::io::Error) {
        if !self.inner.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(dir = %self.inner.opts.dir.display(), error = %e,
                "the content cache cannot write its directory: downloads go on from Google \
                 without being kept. Free some space, or fix [cache] content_dir or its \
                 permissions (this is said once per run)");
        }
    }
}
