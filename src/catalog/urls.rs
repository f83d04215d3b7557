//! Download URLs: the freshest `baseUrl` of each item, how old it is, and getting a new one.
//!
//! A baseUrl serves bytes for 60 minutes (sometimes less). So:
//! - a URL older than [`URL_MAX_AGE`] is refreshed *before* it is used (a download, a size
//!   probe, or a 302 that hands it to a client);
//! - a URL the content host refuses (403) is refreshed once and the request retried (see
//!   `Catalog::download` and `probe`).
//!
//! Every refresh goes through mediaItems.batchGet. Refreshes coalesce: the ids asked for while
//! a call is being prepared or is in flight all go into the next call (up to 50 per call), and
//! concurrent refreshes of one id share one answer. A call with room left is filled with the
//! items that came in the same listing right after the one asked for (their URLs are exactly as
//! old): a client walking a folder one file at a time (rclone, a file manager's copy) then
//! costs one batchGet per 50 files, not one per file, and the quota cost of a call is the same
//! whether it carries 1 id or 50. A byte node serving signed links
//! (`use_proxy_url`) looks items up the same way, by id, without listing any folder.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{Catalog, CatalogError, FileInfo};
use crate::google::library::BATCH_GET_MAX;
use crate::google::{GoogleError, MediaItem};

/// A baseUrl older than this is refreshed before use (Google's lifetime: 60 minutes).
pub const URL_MAX_AGE: Duration = Duration::from_secs(50 * 60);

type Outcome = Result<Arc<MediaItem>, CatalogError>;

/// The per-catalog state of this module.
#[derive(Default)]
pub(super) struct Urls {
    known: Mutex<HashMap<String, Known>>,
    batch: Mutex<Batch>,
    next_seq: std::sync::atomic::AtomicU64,
}

/// The freshest copy of an item seen, and when it was fetched (catalog clock).
struct Known {
    item: Arc<MediaItem>,
    fetched: Instant,
    /// Order of arrival: items of one listing have consecutive numbers, in listing order.
    seq: u64,
}

/// Refreshes waiting for, or riding on, a batchGet call.
#[derive(Default)]
struct Batch {
    /// Ids for the next call, in the order asked.
    queued: Vec<String>,
    /// Ids of the call under way.
    in_flight: HashSet<String>,
    /// Who waits for which id (queued or in flight).
    waiting: HashMap<String, Vec<oneshot::Sender<Outcome>>>,
    /// Whether a task is running calls.
    running: bool,
}

impl Urls {
    fn known(&self) -> MutexGuard<'_, HashMap<String, Known>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn batch(&self) -> MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Catalog {
    /// The bytes of `id` and what the tree shows for it, found by id alone (no folder listing):
    /// what a byte node serving signed links needs. `name` is the name to show.
    pub async fn file_by_id(&self, id: &str, name: &str) -> Result<FileInfo, CatalogError> {
        let item = self.fresh_item(id).await?;
        let size = self.shown_size(&item).await?;
        Ok(self.file_info(name.to_string(), &item, size))
    }

    /// A download URL for item `id` (`baseUrl=d` for a photo, `=dv` for a video) that has at
    /// least ten minutes to live, to hand to a client.
    pub async fn download_url(&self, id: &str) -> Result<String, CatalogError> {
        Ok(self.ensure_ready(id).await?.download_url())
    }

    /// Remembers items just fetched (a listing) as the freshest copies, fetched `at`. An item
    /// whose URL is already known keeps the time that URL was first seen (views built from
    /// another listing pass the same items again).
    pub(super) fn remember(&self, items: &[Arc<MediaItem>], at: Instant) {
        let mut known = self.inner.urls.known();
        for item in items {
            if known
                .get(&item.id)
                .is_some_and(|k| k.item.base_url == item.base_url)
            {
                continue;
            }
            let seq = self
                .inner
                .urls
                .next_seq
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            known.insert(
                item.id.clone(),
                Known {
                    item: item.clone(),
                    fetched: at,
                    seq,
                },
            );
        }
    }

    /// The freshest copy of an item whose URL has at least `60 - URL_MAX_AGE` minutes to
    /// live; fetched (batchGet) when unknown or older.
    pub(super) async fn fresh_item(&self, id: &str) -> Outcome {
        let young = |known: &Known| self.inner.clock.since(known.fetched) < URL_MAX_AGE;
        if let Some(item) = self.known_if(id, &young) {
            return Ok(item);
        }
        tracing::debug!(
            item = id,
            "download URL unknown or old; fetching a fresh one"
        );
        self.refresh(id, &young).await
    }

    /// A fresh copy of an item after the content host refused `refused`'s URL (403). A URL
    /// that another request already replaced is not fetched again.
    pub(super) async fn refresh_refused(&self, id: &str, refused: &MediaItem) -> Outcome {
        let replaced = |known: &Known| {
            known.item.base_url != refused.base_url
                && self.inner.clock.since(known.fetched) < URL_MAX_AGE
        };
        if let Some(item) = self.known_if(id, &replaced) {
            return Ok(item);
        }
        tracing::debug!(
            item = id,
            "download URL refused (expired); fetching a fresh one"
        );
        self.refresh(id, &replaced).await
    }

    /// The remembered copy of `id`, if `usable` accepts it.
    fn known_if(
        &self,
        id: &str,
        usable: &(dyn Fn(&Known) -> bool + Sync),
    ) -> Option<Arc<MediaItem>> {
        let known = self.inner.urls.known();
        known.get(id).filter(|k| usable(k)).map(|k| k.item.clone())
    }

    /// Fetches `id` in the next batchGet call and waits for the answer, unless a call that
    /// finished since the caller looked brought a copy `usable` accepts.
    async fn refresh(&self, id: &str, usable: &(dyn Fn(&Known) -> bool + Sync)) -> Outcome {
        let answer = {
            let mut batch = self.inner.urls.batch();
            // A call remembers its items before it leaves `in_flight` (and this lock is held
            // while it does), so an id neither in flight nor usable here really needs a call.
            if !batch.in_flight.contains(id)
                && let Some(item) = self.known_if(id, usable)
            {
                return Ok(item);
            }
            let (tx, rx) = oneshot::channel();
            batch.waiting.entry(id.to_string()).or_default().push(tx);
            if !batch.in_flight.contains(id) && !batch.queued.iter().any(|q| q == id) {
                batch.queued.push(id.to_string());
            }
            if !batch.running {
                batch.running = true;
                // A task of its own, so a client that hangs up cannot strand the others.
                tokio::spawn(self.clone().run_batches());
            }
            rx
        };
        answer.await.unwrap_or_else(|_| {
            Err(CatalogError::Google(GoogleError::Protocol(
                "the download URL refresh was interrupted".into(),
            )))
        })
    }

    /// Sends batchGet calls until no id is queued.
    async fn run_batches(self) {
        let mut guard = Running {
            catalog: &self,
            finished: false,
        };
        // Let the refreshes asked for in the same instant join the first call.
        tokio::task::yield_now().await;
        loop {
            let ids: Vec<String> = {
                let mut batch = self.inner.urls.batch();
                if batch.queued.is_empty() {
                    batch.running = false;
                    guard.finished = true;
                    return;
                }
                let n = batch.queued.len().min(BATCH_GET_MAX);
                let mut ids: Vec<String> = batch.queued.drain(..n).collect();
                let companions = self.companions(&ids, &batch, BATCH_GET_MAX - ids.len());
                ids.extend(companions);
                batch.in_flight.extend(ids.iter().cloned());
                ids
            };
            tracing::debug!(
                count = ids.len(),
                "fetching fresh download URLs (mediaItems.batchGet)"
            );
            let sent = self.inner.clock.now();
            let outcomes: Vec<Outcome> = match self.inner.google.library.batch_get(&ids).await {
                Ok(results) => results
                    .into_iter()
                    .map(|r| match r {
                        Ok(item) => Ok(Arc::new(item)),
                        // 3 INVALID_ARGUMENT (not an id of this app) and 5 NOT_FOUND.
                        Err(status) if status.code == 3 || status.code == 5 => {
                            Err(CatalogError::NotFound)
                        }
                        Err(status) => Err(CatalogError::Google(GoogleError::Protocol(format!(
                            "batchGet refused an item: {} (code {})",
                            status.message, status.code
                        )))),
                    })
                    .collect(),
                Err(e) => ids
                    .iter()
                    .map(|_| Err(CatalogError::Google(e.clone())))
                    .collect(),
            };
            let fresh: Vec<Arc<MediaItem>> =
                outcomes.iter().filter_map(|o| o.clone().ok()).collect();
            self.remember(&fresh, sent);
            let mut batch = self.inner.urls.batch();
            for (id, outcome) in ids.iter().zip(outcomes) {
                batch.in_flight.remove(id);
                for tx in batch.waiting.remove(id).unwrap_or_default() {
                    let _ = tx.send(outcome.clone());
                }
            }
        }
    }
}

impl Catalog {
    /// Up to `room` items to refresh along with `ids`: those remembered from the same listing
    /// fetch as the first of `ids` (so their URLs are exactly as old), next in listing order
    /// first, then the ones before. Nobody waits for them; they are simply fresh when asked for.
    fn companions(&self, ids: &[String], batch: &Batch, room: usize) -> Vec<String> {
        let known = self.inner.urls.known();
        let Some(anchor) = ids.first().and_then(|id| known.get(id)) else {
            return Vec::new();
        };
        if room == 0 || self.inner.clock.since(anchor.fetched) < URL_MAX_AGE {
            return Vec::new();
        }
        let (fetched, seq) = (anchor.fetched, anchor.seq);
        let mut siblings: Vec<(u64, &String)> = known
            .iter()
            .filter(|(id, k)| {
                k.fetched == fetched
                    && !ids.contains(id)
                    && !batch.in_flight.contains(*id)
                    && !batch.queued.contains(id)
            })
            .map(|(id, k)| (k.seq, id))
            .collect();
        // After the anchor first (ascending), then before it (nearest first).
        siblings.sort_by_key(|(s, _)| {
            if *s > seq {
                (0, *s)
            } else {
                (1, u64::MAX - *s)
            }
        });
        siblings
            .into_iter()
            .take(room)
            .map(|(_, id)| id.clone())
            .collect()
    }
}

/// Clears the refresh state if the task running calls ends early (runtime shut down, panic),
/// so waiting requests get an error instead of waiting forever and the next refresh starts
/// a new task.
struct Running<'a> {
    catalog: &'a Catalog,
    finished: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let mut batch = self.catalog.inner.urls.batch();
            batch.queued.clear();
            batch.in_flight.clear();
            batch.waiting.clear();
            batch.running = false;
        }
    }
}
