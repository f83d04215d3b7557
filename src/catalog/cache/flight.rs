//! Requests in flight: one ranged request to Google for a run of missing blocks, shared by
//! every reader that needs those blocks meanwhile, and finishing the block its reader left.
//!
//! Each request is a task of its own (a [`Flight`]), not a part of the read that started it:
//! - the reader that started it (the *primary*) gets the bytes as they arrive, through a
//!   channel a few blocks deep ([`PRIMARY_QUEUE`]), so its client's pace is the request's pace,
//!   as without the cache, while the flight's work on each block (keeping it for tails,
//!   handing it to the writer) runs beside the primary's sending, on the other core;
//! - complete blocks go to a writer thread of the flight's own, through a queue bounded for
//!   the whole cache ([`WRITE_BEHIND`]), so the bytes keep flowing while blocks are written;
//! - a second reader of a block the flight is about to receive (a *tail*: N clients opening the
//!   same file, a thumbnailer beside a preview) waits for that block to complete instead of
//!   asking Google again, then takes it from the flight (or the cache) and waits for the next;
//! - the primary hanging up does not stop it while a tail waits: a shared request that ended
//!   with its first reader would fail, or strand, the others (the same reason sizes' shared
//!   probes are tasks, `catalog/sizes.rs`);
//! - with nobody left, it stops, but first finishes the block its primary left in the middle
//!   (at most that one block per request): a thumbnailer reading the first 64 KiB of each
//!   photo then keeps the first block, and the next read of that start asks Google nothing;
//! - a request refused before any byte gives every tail the same typed error; one that breaks
//!   later ends, and each tail asks Google itself for what it still misses (as a resume does).
//!
//! A tail never gets a byte that is not from a completed block of the same key: bytes are
//! handed over only as whole blocks, checked for their length when stored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};

use super::{BLOCK, ContentCache, Key, Parts};
use crate::catalog::{Catalog, CatalogError};
use crate::google::GoogleError;
use crate::google::content::Download;

/// How far ahead of a flight's current block a reader still waits for it (blocks). A reader
/// further on (a video player's seek) would wait for every block before its own: it asks
/// Google for its own run instead.
const TAIL_AHEAD: u64 = 4;

/// Hand-offs (each the chunks the body had ready, at most a block) the request may be ahead
/// of its primary reader: at most 4 MiB read ahead of the client (rclone reads 16 MiB ahead of
/// each open file by default, `--buffer-size`). One hand-off, as before, coupled the two
/// stages so that each waited for the other at every block: at loopback speed a fill reached
/// 0.73 of a cache-off read against 0.86 with 16 (`cargo bench --bench content_cache -- fill`,
/// docs/performance.md). What a flight reads ahead is kept as blocks like the rest; a run
/// never goes past the client's range, and a client that hangs up stops the flight where it
/// is (unless a tail wants more, or the flight is still inside the block the client left in,
/// which it finishes).
const PRIMARY_QUEUE: usize = 16;

/// Complete blocks the whole cache may hold waiting for their writers (64 MiB). Deep enough
/// that a writer off its core for a moment never stalls its request (a queue of 4 blocks per
/// request did, and then its client); bounded for the whole cache, not per request, so a
/// hundred fills on a slow disk hold 64 MiB, not a hundred queues. Past it a request waits
/// for its writer, and its client for the disk.
pub(super) const WRITE_BEHIND: usize = 256;

/// Index rows a flight's writer sends to the store in one transaction at most (64 blocks,
/// 16 MiB): few commits, and a row never far behind its block (a block without its row is
/// lost in a crash: punched out at the next start, fetched again when read).
const ROWS_BATCH: usize = 64;

/// How long a written block's row may wait for more rows before its batch goes to the store
/// (checked when a block is written, and the flight's end sends the rest).
const ROWS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// `left_at` while the primary reader still reads.
const READING: u64 = u64::MAX;

/// What a flight has done so far, as its tails see it.
#[derive(Clone)]
pub(super) enum State {
    /// The request is being sent.
    Opening,
    /// Blocks before `next` are complete; `last` is the most recent one (a tail takes it from
    /// here, also when the cache could not keep it).
    Running {
        next: u64,
        last: Option<(u64, Parts)>,
    },
    /// Google states another total length: the item changed (its entries were dropped).
    OtherSize(u64),
    /// The request was refused before any byte (a closed gate, an item gone, ...).
    Refused(CatalogError),
    /// No more blocks will come (the run is done, the body broke, or nobody listens).
    Ended,
}

/// One ranged request for blocks `first..end` of entry `entry` (see the module doc).
pub(super) struct Flight {
    entry: String,
    first: u64,
    end: u64,
    state: watch::Sender<State>,
    /// The primary reader's position when it left ([`READING`] before).
    left_at: AtomicU64,
    /// Readers following the flight (a [`Following`] each), waiting or between two blocks.
    tails: AtomicUsize,
    /// Complete blocks handed to the flight's writer and not in the index yet: a tail takes
    /// them from here, and a reader missing one of them joins this flight instead of asking
    /// Google again (`find`).
    pending: parking_lot::Mutex<BTreeMap<u64, Parts>>,
}

/// A reader following a flight: while one exists, the flight goes on without its primary.
/// A tail serving one block to its client waits for no block, yet still wants the next.
pub(super) struct Following(pub Arc<Flight>);

impl Following {
    pub fn new(flight: Arc<Flight>) -> Following {
        flight.tails.fetch_add(1, Ordering::AcqRel);
        Following(flight)
    }

    /// Whether this follows `flight` and the flight still brings block `block`.
    pub fn covers(&self, block: u64) -> bool {
        block < self.0.end && self.0.next().is_some()
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        self.0.tails.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One item the flight hands its primary: the file offset of a run of contiguous chunks and
/// the chunks (as many as the body had ready, so its task is woken once for them all).
pub(super) type Piece = Result<(u64, Vec<Bytes>), GoogleError>;

/// What the primary gets when it starts a flight.
pub(super) struct Started {
    pub flight: Arc<Flight>,
    /// The request's answer: `Ok(None)` opened, `Ok(Some(total))` another size.
    pub opened: oneshot::Receiver<Result<Option<u64>, CatalogError>>,
    pub pieces: mpsc::Receiver<Piece>,
}

/// Either a flight to wait for, or a new one this reader started, or the block turned out to
/// be cached after all.
pub(super) enum Joined {
    Tail(Arc<Flight>),
    Primary(Started),
    /// Another reader's flight completed the block (and left the registry) between this
    /// reader's look at the cache and its look at the flights: read it from the cache.
    Cached,
}

/// What a tail found when it waited for a block.
pub(super) enum Waited {
    /// The block's bytes.
    Block(Bytes),
    /// The block is complete: in the cache, unless it could not keep it.
    Passed,
    /// The flight ended before the block: the reader fetches it itself.
    Gone,
    OtherSize(u64),
    Refused(CatalogError),
}

impl Flight {
    /// Tells the flight its primary reader left at `pos` (called once, when it goes).
    pub fn primary_left(&self, pos: u64) {
        self.left_at.store(pos, Ordering::Release);
    }

    /// The next block the flight will complete, while it may still complete one.
    fn next(&self) -> Option<u64> {
        match &*self.state.borrow() {
            State::Opening => Some(self.first),
            State::Running { next, .. } => Some(*next),
            _ => None,
        }
    }

    /// Waits until the request was answered: `Err` refused, `Ok(Some(total))` another size.
    pub async fn opened(&self) -> Result<Option<u64>, CatalogError> {
        let mut rx = self.state.subscribe();
        loop {
            match &*rx.borrow_and_update() {
                State::Opening => {}
                State::OtherSize(total) => return Ok(Some(*total)),
                State::Refused(e) => return Err(e.clone()),
                State::Running { .. } | State::Ended => return Ok(None),
            }
            if rx.changed().await.is_err() {
                return Ok(None);
            }
        }
    }

    /// Waits for block `block` (see [`Waited`]).
    pub async fn wait(&self, block: u64) -> Waited {
        let mut rx = self.state.subscribe();
        loop {
            let pending = self.pending.lock().get(&block).cloned();
            if let Some(bytes) = pending {
                return Waited::Block(bytes.contiguous());
            }
            let state = rx.borrow_and_update().clone();
            match &state {
                State::Opening => {}
                State::Running { next, last } => {
                    if *next > block {
                        return match last {
                            Some((b, bytes)) if *b == block => Waited::Block(bytes.contiguous()),
                            _ => Waited::Passed,
                        };
                    }
                }
                State::OtherSize(total) => return Waited::OtherSize(*total),
                State::Refused(e) => return Waited::Refused(e.clone()),
                State::Ended => return Waited::Gone,
            }
            if rx.changed().await.is_err() {
                return Waited::Gone;
            }
        }
    }

    /// Whether the flight should go on without its primary: a tail waits, or the primary left
    /// inside the block being received (finish it, so the next read of that start is a hit).
    fn wanted(&self, receiving: u64) -> bool {
        if self.tails.load(Ordering::Acquire) > 0 || self.state.receiver_count() > 0 {
            return true;
        }
        let left = self.left_at.load(Ordering::Acquire);
        left != READING && !left.is_multiple_of(BLOCK) && left / BLOCK == receiving
    }
}

impl ContentCache {
    /// How many readers wait for a block of another reader's request right now (what a test
    /// watches to know its readers share one request).
    pub fn waiting(&self) -> usize {
        let flights = self.inner.flights.lock();
        flights
            .values()
            .flatten()
            .map(|f| f.state.receiver_count())
            .sum()
    }

    /// Complete blocks waiting for their writers (out of [`WRITE_BEHIND`]).
    pub fn write_backlog(&self) -> usize {
        WRITE_BEHIND - self.inner.write_behind.available_permits()
    }

    /// How many requests for missing blocks are in flight (each stores its blocks before it
    /// ends): what a test waits to reach 0 before it looks at the cache's files.
    pub fn in_flight(&self) -> usize {
        self.inner.flights.lock().values().map(Vec::len).sum()
    }

    /// Where a run of missing blocks from `block` ends: at the next cached block, or at the
    /// first block of a later flight (which will bring those), or the item's end.
    fn run_end(&self, key: &Key, entry: &str, block: u64) -> u64 {
        let cached = self.next_cached(entry, block + 1).unwrap_or(key.blocks());
        let flights = self.inner.flights.lock();
        flights
            .get(entry)
            .into_iter()
            .flatten()
            .filter(|f| f.first > block)
            .map(|f| f.first)
            .fold(cached, u64::min)
    }

    /// Waits for the flight bringing block `block`, or starts the request for the run of
    /// missing blocks from it, up to block `limit` at most (the end of what the reader's
    /// client asked for: a request for more would fetch bytes nobody reads). Checked and
    /// registered under one lock, so two readers missing the same block make one request.
    /// `kept`: the run's request when the reader already made it (`Catalog::read_opened`);
    /// dropped unused when another flight or the cache has the block.
    pub(super) fn join_or_start(
        &self,
        catalog: &Catalog,
        key: &Key,
        entry: &str,
        block: u64,
        limit: u64,
        kept: Option<Download>,
    ) -> Joined {
        let end = self.run_end(key, entry, block).min(limit.max(block + 1));
        let mut flights = self.inner.flights.lock();
        if let Some(f) = find(&flights, entry, block) {
            return Joined::Tail(f);
        }
        // A flight stores a block before it moves past it or leaves the registry (both under
        // this lock or after the store), so with no flight bringing the block, the index now
        // tells whether one brought it since the caller looked: without this second look, two
        // readers of one block on a busy machine could make two requests.
        if self.has(key, entry, block) {
            return Joined::Cached;
        }
        let (state, _) = watch::channel(State::Opening);
        let flight = Arc::new(Flight {
            entry: entry.to_string(),
            first: block,
            end,
            state,
            left_at: AtomicU64::new(READING),
            tails: AtomicUsize::new(0),
            pending: parking_lot::Mutex::new(BTreeMap::new()),
        });
        flights
            .entry(entry.to_string())
            .or_default()
            .push(flight.clone());
        drop(flights);
        let (open_tx, opened) = oneshot::channel();
        let (piece_tx, pieces) = mpsc::channel(PRIMARY_QUEUE);
        let run = Run {
            flight: flight.clone(),
            cache: self.clone(),
            catalog: catalog.clone(),
            key: key.clone(),
            kept,
        };
        tokio::spawn(run.go(open_tx, piece_tx));
        Joined::Primary(Started {
            flight,
            opened,
            pieces,
        })
    }
}

fn find(
    flights: &std::collections::HashMap<String, Vec<Arc<Flight>>>,
    entry: &str,
    block: u64,
) -> Option<Arc<Flight>> {
    flights.get(entry)?.iter().find_map(|f| {
        if f.pending.lock().contains_key(&block) {
            return Some(f.clone());
        }
        let next = f.next()?;
        (block >= next && block < f.end && block < next + TAIL_AHEAD).then(|| f.clone())
    })
}

/// The task of one flight.
struct Run {
    flight: Arc<Flight>,
    cache: ContentCache,
    catalog: Catalog,
    key: Key,
    /// The run's request, when the reader already made it (`Catalog::read_opened`).
    kept: Option<Download>,
}

impl Run {
    async fn go(
        mut self,
        open_tx: oneshot::Sender<Result<Option<u64>, CatalogError>>,
        piece_tx: mpsc::Sender<Piece>,
    ) {
        // Complete blocks go to a writer of their own, so the request's bytes keep
        // flowing while a block is written (awaiting each write here stalled the client for a
        // disk write every 256 KiB: a read that filled the cache ran at a quarter of the
        // speed of one with the cache off). The writer leaves the registry when the flight
        // and its writes are done, however they end (a panic included), so nobody waits for a
        // flight that is gone, and a block is in the index (or given up) before its flight
        // leaves: `join_or_start`'s second look relies on that.
        let (write_tx, mut write_rx) = mpsc::unbounded_channel::<ToWrite>();
        let leave = scopeguard::guard((self.flight.clone(), self.cache.clone()), |(f, c)| {
            let mut flights = c.inner.flights.lock();
            if let Some(list) = flights.get_mut(&f.entry) {
                list.retain(|g| !Arc::ptr_eq(g, &f));
                if list.is_empty() {
                    flights.remove(&f.entry);
                }
            }
            // `Ended` was set by the flight's own guard before its sender closed this writer.
            f.pending.lock().clear();
        });
        let (cache, key) = (self.cache.clone(), self.key.clone());
        // The writer is one thread of the blocking pool for the whole flight (parked while no
        // block comes), holding the entry's file open: handing each block to a writer task
        // that handed it on to the blocking pool cost three wake-ups and an `open` and a
        // `close` per block. It takes every block that waits at once and writes contiguous
        // ones together, and computes their checksums off the runtime's threads. A flight
        // thus holds one of the blocking pool's threads (512 by default) while it lasts: past
        // that many flights at once, a new flight's writer waits for a thread, and the flight
        // (and its reader) for its writer once WRITE_BEHIND blocks wait.
        tokio::task::spawn_blocking(move || {
            let leave = leave;
            let f = &leave.0;
            let mut file = super::blocks::EntryFile::new(&cache.inner.opts.dir, &f.entry);
            // Index rows go to the store in batches: every ROWS_BATCH blocks, or with the
            // first block written ROWS_EVERY after the batch's first, and at the end (before
            // the flight leaves). A commit whenever no block waited (what the writer had before)
            // was a commit per block, as the writer keeps up with loopback.
            let mut rows = Vec::new();
            let mut since = std::time::Instant::now();
            while let Some(first) = write_rx.blocking_recv() {
                let mut batch = vec![first];
                while let Ok(more) = write_rx.try_recv() {
                    batch.push(more);
                }
                let written: Vec<u64> = batch.iter().map(|w| w.block).collect();
                let (blocks, room): (Vec<_>, Vec<_>) = batch
                    .into_iter()
                    .map(|w| ((w.block, w.bytes, w.received_at), w.room))
                    .unzip();
                rows.extend(cache.store_blocks(&key, &f.entry, &mut file, blocks));
                // Their room in WRITE_BEHIND is given back once they are written.
                drop(room);
                {
                    let mut pending = f.pending.lock();
                    for index in written {
                        pending.remove(&index);
                    }
                }
                if rows.len() >= ROWS_BATCH || since.elapsed() >= ROWS_EVERY {
                    cache.put_rows(std::mem::take(&mut rows));
                }
                if rows.is_empty() {
                    since = std::time::Instant::now();
                }
            }
            cache.put_rows(rows);
        });
        // Tails learn at once that no more blocks come (the writes may still be going on).
        let _ended = scopeguard::guard(self.flight.clone(), |f| {
            f.state.send_modify(|s| {
                if matches!(s, State::Opening | State::Running { .. }) {
                    *s = State::Ended;
                }
            });
        });
        let f = &self.flight;
        let size = self.key.size;
        let start = f.first * BLOCK;
        let end = (f.end * BLOCK).min(size);
        // A download opened for this read asked for exactly this run (`block_span`): a
        // 200 from a host that ignored Range starts at 0 and is clipped below.
        let kept = self
            .kept
            .take()
            .filter(|d| d.start == start || d.start == 0);
        let download = match kept {
            Some(d) => Ok(d),
            None => {
                self.catalog
                    .download_range(&self.key.item_id, start, Some(end - 1))
                    .await
            }
        };
        let download = match download {
            Ok(d) => d,
            Err(e) => {
                f.state.send_replace(State::Refused(e.clone()));
                let _ = open_tx.send(Err(e));
                return;
            }
        };
        if let Some(total) = download.total
            && total != size
        {
            self.cache.forget_item(&self.key.item_id, None);
            f.state.send_replace(State::OtherSize(total));
            let _ = open_tx.send(Ok(Some(total)));
            return;
        }
        if download.start != start && download.start != 0 {
            let e = CatalogError::Google(GoogleError::Protocol(format!(
                "the content host answered a range starting at byte {} when asked for byte \
                 {start}",
                download.start
            )));
            f.state.send_replace(State::Refused(e.clone()));
            let _ = open_tx.send(Err(e));
            return;
        }
        crate::metrics::get().cache("content", "miss", 1, self.catalog.library());
        f.state.send_replace(State::Running {
            next: f.first,
            last: None,
        });
        let _ = open_tx.send(Ok(None));

        let mut body = download.body;
        let mut primary = Some(piece_tx);
        // Offset of the next byte the body yields (0 when the host ignored Range), and the
        // block being received, which starts at `block_start`, as the chunks it came in.
        let mut next = download.start;
        let mut block: Vec<Bytes> = Vec::new();
        let mut filled = 0u64;
        let mut block_start = start;
        // Chunks received and not handed to the primary yet: they go together, once the body
        // has no more ready or a block's worth waits, so the primary's task is woken once per
        // batch, not once per chunk (per-chunk hand-offs were a cost of every fill).
        let mut out = Handoff::default();
        while block_start < end {
            if primary.as_ref().is_some_and(|p| p.is_closed()) {
                primary = None;
            }
            if primary.is_none() && !f.wanted(block_start / BLOCK) {
                tracing::debug!(item = %self.key.item_id, block = block_start / BLOCK,
                    "nobody reads on; the request for the run ends here");
                return;
            }
            let item = if out.is_empty() || out.bytes >= BLOCK {
                out.send(&mut primary).await;
                body.next().await
            } else {
                match body.next().now_or_never() {
                    Some(item) => item,
                    None => {
                        out.send(&mut primary).await;
                        continue;
                    }
                }
            };
            match item {
                Some(Ok(chunk)) => {
                    let first = next;
                    next += chunk.len() as u64;
                    // Only what lies in the run: a host that ignored Range sends it all.
                    let lo = first.max(block_start);
                    let hi = next.min(end);
                    if hi <= lo {
                        continue;
                    }
                    let mut part = chunk.slice((lo - first) as usize..(hi - first) as usize);
                    if primary.is_some() {
                        out.push(lo, part.clone());
                    }
                    while !part.is_empty() {
                        let index = block_start / BLOCK;
                        let want = self.key.block_len(index) - filled;
                        let take = (want as usize).min(part.len());
                        block.push(part.split_to(take));
                        filled += take as u64;
                        if filled == self.key.block_len(index) {
                            let bytes = Parts::new(std::mem::take(&mut block));
                            block_start += filled;
                            filled = 0;
                            // Pending before the state moves past it: a tail woken by the
                            // move finds it here or, once written, in the cache.
                            f.pending.lock().insert(index, bytes.clone());
                            f.state.send_replace(State::Running {
                                next: index + 1,
                                last: Some((index, bytes.clone())),
                            });
                            let received_at = self.cache.now_ms();
                            let room = self.cache.inner.write_behind.clone().acquire_owned();
                            let sent = room.await.ok().and_then(|room| {
                                let w = ToWrite {
                                    block: index,
                                    bytes,
                                    received_at,
                                    room,
                                };
                                write_tx.send(w).ok()
                            });
                            if sent.is_none() {
                                f.pending.lock().remove(&index);
                            }
                        }
                    }
                }
                Some(Err(e)) => {
                    out.send(&mut primary).await;
                    if let Some(p) = primary {
                        let _ = p.send(Err(e)).await;
                    }
                    return;
                }
                None => {
                    out.send(&mut primary).await;
                    if let Some(p) = primary {
                        let _ = p
                            .send(Err(GoogleError::Transport(
                                "the body ended before the range asked for".into(),
                            )))
                            .await;
                    }
                    return;
                }
            }
        }
        out.send(&mut primary).await;
    }
}

/// A complete block on its way to its flight's writer, holding its room in [`WRITE_BEHIND`].
struct ToWrite {
    block: u64,
    bytes: Parts,
    /// When its bytes came from Google (catalog clock, ms).
    received_at: u64,
    /// Held until the block is written.
    room: OwnedSemaphorePermit,
}

/// Chunks waiting to go to the primary reader together: contiguous, from `at`.
#[derive(Default)]
struct Handoff {
    at: u64,
    chunks: Vec<Bytes>,
    bytes: u64,
}

impl Handoff {
    fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    fn push(&mut self, at: u64, chunk: Bytes) {
        if self.chunks.is_empty() {
            self.at = at;
        }
        self.bytes += chunk.len() as u64;
        self.chunks.push(chunk);
    }

    /// Hands the chunks to the primary, if it still reads (forgotten when it left).
    async fn send(&mut self, primary: &mut Option<mpsc::Sender<Piece>>) {
        if self.chunks.is_empty() {
            return;
        }
        let chunks = std::mem::take(&mut self.chunks);
        self.bytes = 0;
        if let Some(p) = primary
            && p.send(Ok((self.at, chunks))).await.is_err()
        {
            *primary = None;
        }
    }
}
