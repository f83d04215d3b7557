//! Download URLs: the freshest `baseUrl` of each item, how old it is, and getting a new one.
//!
//! Google documents that a baseUrl serves bytes for 60 minutes, but in the field URLs have
//! been refused after 30 to 40 minutes. So a URL is trusted only up to an age, [`UrlAge`]
//! (`[google] url_max_age_secs`, default 25 minutes), and:
//! - a URL older than that is refreshed *before* it is used (a download, a size probe);
//! - a 302 hands a client only URLs [`REDIRECT_HEADROOM`] younger than that, so the client
//!   has that long to follow it;
//! - a URL the content host refuses (403) is refreshed once and the request retried (see
//!   `Catalog::download` and `probe`), and when it was refused younger than the age trusted,
//!   Google ended it early: the age trusted shortens to the refused URL's age less
//!   [`REFUSAL_MARGIN`] (never below [`URL_MIN_AGE`]), so the next URLs are replaced in time.
//!
//! Every refresh goes through mediaItems.batchGet. Refreshes coalesce: the ids asked for while
//! a call is being prepared or is in flight all go into the next call (up to 50 per call), and
//! concurrent refreshes of one id share one answer. A call with room left is filled with the
//! items that came in the same listing right after the one asked for (their URLs are exactly as
//! old): a client walking a folder one file at a time (rclone, a file manager's copy) then
//! costs one batchGet per 50 files, not one per file, and the quota cost of a call is the same
//! whether it carries 1 id or 50. A byte node serving signed links
//! (`use_proxy_url`) looks items up the same way, by id, without listing any folder.

use parking_lot::{Mutex, MutexGuard};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};

use hashbrown::{HashTable, hash_table};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{Catalog, CatalogError, FileInfo};
use crate::google::library::BATCH_GET_MAX;
use crate::google::{GoogleError, MediaItem};

/// The age after which a URL is refreshed before use, unless `[google] url_max_age_secs` says
/// otherwise: Google promises 60 minutes, the field has seen 30 to 40.
pub const DEFAULT_URL_MAX_AGE: Duration = Duration::from_secs(25 * 60);
/// The shortest age trusted, however early Google ends URLs: below it the refreshes would cost
/// more calls than the refusals they avoid (a refused URL is refreshed and retried anyway).
pub const URL_MIN_AGE: Duration = Duration::from_secs(10 * 60);
/// The longest age accepted in the configuration: Google's documented lifetime.
pub const URL_MAX_AGE_LIMIT: Duration = Duration::from_secs(60 * 60);
/// How much younger than the age trusted a URL handed to a client by a 302 is: the time the
/// client has to follow the redirect (and start its download) before the URL is as old as
/// anything this server still uses itself.
pub const REDIRECT_HEADROOM: Duration = Duration::from_secs(5 * 60);
/// A URL refused at age T says only that Google ended it at some time before T; the age trusted
/// becomes T less this, so URLs issued alike are replaced before they die.
pub const REFUSAL_MARGIN: Duration = Duration::from_secs(5 * 60);

/// How old a download URL may be before it is replaced: the configured age, shortened while
/// the server runs each time Google refuses a URL younger than that (see the module doc).
/// Shared by the Library items (`urls`), the picked items (`picked`) and `pick --import`.
#[derive(Debug)]
pub struct UrlAge {
    secs: AtomicU64,
}

impl Default for UrlAge {
    fn default() -> Self {
        UrlAge::new(DEFAULT_URL_MAX_AGE)
    }
}

impl UrlAge {
    /// Starts at `max` (clamped to [`URL_MIN_AGE`]..=[`URL_MAX_AGE_LIMIT`]; the configuration
    /// refuses values outside).
    pub fn new(max: Duration) -> Self {
        let max = max.clamp(URL_MIN_AGE, URL_MAX_AGE_LIMIT);
        UrlAge {
            secs: AtomicU64::new(max.as_secs()),
        }
    }

    /// URLs this old or older are replaced before this server uses them.
    pub fn max(&self) -> Duration {
        Duration::from_secs(self.secs.load(Ordering::Relaxed))
    }

    /// URLs this old or older are replaced before a 302 hands them to a client.
    pub fn max_for_redirect(&self) -> Duration {
        self.max().saturating_sub(REDIRECT_HEADROOM)
    }

    /// The content host refused (403) a URL that was `age` old. When that is younger than the
    /// age trusted, Google ended the URL early: the age trusted becomes `age` less
    /// [`REFUSAL_MARGIN`], at least [`URL_MIN_AGE`], logged once per change. Returns the new
    /// age when it changed.
    ///
    /// A URL refused at or past the age trusted (it was handed out, or in use, before an
    /// earlier shortening) teaches nothing new, and one refused younger than [`URL_MIN_AGE`]
    /// was not ended by its age (a replaced item, a revoked grant): neither changes anything.
    pub fn refused_at(&self, age: Duration) -> Option<Duration> {
        if age < URL_MIN_AGE {
            tracing::debug!(
                age_secs = age.as_secs(),
                "a download URL was refused younger than any lifetime Google uses; the URL age \
                 trusted stays as it is"
            );
            return None;
        }
        let wanted = age
            .saturating_sub(REFUSAL_MARGIN)
            .max(URL_MIN_AGE)
            .as_secs();
        let mut current = self.secs.load(Ordering::Relaxed);
        loop {
            if age.as_secs() >= current || wanted >= current {
                return None;
            }
            match self
                .secs
                .compare_exchange(current, wanted, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        tracing::warn!(
            refused_at_secs = age.as_secs(),
            was_secs = current,
            now_secs = wanted,
            "Google refused a download URL after {} s, earlier than the {} s this server \
             trusted URLs for: from now on URLs are replaced once {} s old (lower [google] \
             url_max_age_secs to start there next time)",
            age.as_secs(),
            current,
            wanted
        );
        Some(Duration::from_secs(wanted))
    }
}

type Outcome = Result<Arc<MediaItem>, CatalogError>;

/// The per-catalog state of this module: the freshest copy of each item, and the batchGet
/// being filled, so URL refreshes coalesce across requests.
#[derive(Default)]
pub(super) struct Urls {
    known: Mutex<KnownItems>,
    batch: Mutex<Batch>,
    next_seq: std::sync::atomic::AtomicU64,
}

/// The freshest copy of an item seen, and when it was fetched (catalog clock).
///
/// The item is the copy the listings share: when Google sends an item again unchanged but for
/// its download URL (an album lists items `/media/all` holds already, a revalidation lists
/// them all again), only the new URL is kept here, in `url`, and the listing built from that
/// answer takes `item` instead of its own copy ([`Catalog::intake`]). So an item of
/// `/media/all` and of two albums is in memory once, with one URL beside it per fetch that is
/// still the freshest, not three times.
struct Known {
    item: Arc<MediaItem>,
    /// The download URL fetched `fetched`, when it is not `item.base_url`.
    url: Option<Arc<str>>,
    fetched: Instant,
    /// Order of arrival: items of one listing have consecutive numbers, in listing order.
    seq: u64,
}

impl Known {
    /// The freshest download URL.
    fn url(&self) -> &str {
        self.url.as_deref().unwrap_or(&self.item.base_url)
    }

    /// The item with its freshest download URL (a copy only when that is not the shared
    /// item's own).
    fn fresh(&self) -> Arc<MediaItem> {
        match &self.url {
            None => self.item.clone(),
            Some(url) => Arc::new(MediaItem {
                base_url: url.to_string(),
                ..(*self.item).clone()
            }),
        }
    }
}

/// The freshest copy of every item seen, found by id: one per item of the library once
/// `/media/all` was listed, so keyed by the id the item itself holds (a table of the items,
/// hashed on their ids) rather than by a copy of the id.
#[derive(Default)]
struct KnownItems {
    table: HashTable<Known>,
    hasher: RandomState,
}

impl KnownItems {
    fn get(&self, id: &str) -> Option<&Known> {
        self.table
            .find(self.hasher.hash_one(id), |k| k.item.id == id)
    }

    /// Adds `known`, replacing the copy of the same item.
    fn insert(&mut self, known: Known) {
        let hasher = &self.hasher;
        let id = known.item.id.as_str();
        match self.table.entry(
            hasher.hash_one(id),
            |k| k.item.id == id,
            |k| hasher.hash_one(k.item.id.as_str()),
        ) {
            hash_table::Entry::Occupied(mut o) => *o.get_mut() = known,
            hash_table::Entry::Vacant(v) => {
                v.insert(known);
            }
        }
    }

    /// Sets a fresher download URL for the known copy of `id`.
    fn set_url(&mut self, id: &str, url: Arc<str>, fetched: Instant, seq: u64) {
        if let Some(k) = self
            .table
            .find_mut(self.hasher.hash_one(id), |k| k.item.id == id)
        {
            k.url = (*url != k.item.base_url).then_some(url);
            k.fetched = fetched;
            k.seq = seq;
        }
    }

    /// Every item, with its id.
    fn iter(&self) -> impl Iterator<Item = (&String, &Known)> {
        self.table.iter().map(|k| (&k.item.id, k))
    }
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
    fn known(&self) -> MutexGuard<'_, KnownItems> {
        self.known.lock()
    }

    fn batch(&self) -> MutexGuard<'_, Batch> {
        self.batch.lock()
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

    /// A download URL for item `id` (`baseUrl=d` for a photo, `=dv` for a video) to hand to
    /// a client: at least [`REDIRECT_HEADROOM`] younger than the age this server still uses
    /// URLs at, so the client has that long to follow it.
    pub async fn download_url(&self, id: &str) -> Result<String, CatalogError> {
        let max = self.inner.url_age.max_for_redirect();
        let item = self.item_younger_than(id, max).await?;
        // Never a redirect to `=dv` of a video Google is still processing.
        Ok(self.ready(id, item).await?.download_url())
    }

    /// How old download URLs may get before they are replaced (`[google] url_max_age_secs`,
    /// shortened when Google ends URLs earlier).
    pub fn url_age(&self) -> &UrlAge {
        &self.inner.url_age
    }

    /// Remembers items just fetched (a listing) as the freshest copies, fetched `at`. An item
    /// whose URL is already known keeps the time that URL was first seen (views built from
    /// another listing pass the same items again).
    ///
    /// A URL fetched before the one already known is not taken (a listing read back from
    /// the store is older than the same items just listed). An item unchanged but for its
    /// URL keeps the copy already known, the new URL beside it.
    pub(super) fn remember(&self, items: &[Arc<MediaItem>], at: Instant) {
        let mut known = self.inner.urls.known();
        for item in items {
            let mut url = None;
            if let Some(k) = known.get(&item.id) {
                // The shared copy itself (a date view, a listing built with `intake`) brings
                // no URL of its own: its `base_url` may be older than the one known.
                if Arc::ptr_eq(&k.item, item) || k.url() == item.base_url || k.fetched > at {
                    continue;
                }
                if k.item.same_apart_from_url(item) {
                    url = Some(Arc::<str>::from(item.base_url.as_str()));
                }
            }
            let seq = self.inner.urls.next_seq.fetch_add(1, Ordering::Relaxed);
            match url {
                Some(url) => known.set_url(&item.id, url, at, seq),
                None => known.insert(Known {
                    item: item.clone(),
                    url: None,
                    fetched: at,
                    seq,
                }),
            }
        }
    }

    /// An item of a listing as its page arrives, fetched `at`: the copy already known when
    /// Google sent it unchanged but for its URL (the new URL is remembered beside it, and the
    /// item just parsed is freed at once), else the item itself, shared. An album of 20,000
    /// items `/media/all` holds already, or a revalidation of `/media/all`, then never holds
    /// its items twice, not even while it loads.
    pub(super) fn intake(&self, item: MediaItem, at: Instant) -> Arc<MediaItem> {
        let mut known = self.inner.urls.known();
        let Some(k) = known.get(&item.id) else {
            return Arc::new(item);
        };
        if !k.item.same_apart_from_url(&item) {
            return Arc::new(item);
        }
        let shared = k.item.clone();
        if k.url() != item.base_url && k.fetched <= at {
            let seq = self.inner.urls.next_seq.fetch_add(1, Ordering::Relaxed);
            known.set_url(&item.id, Arc::from(item.base_url), at, seq);
        }
        shared
    }

    /// The freshest download URL of `item` when it is not the item's own (it shares a copy
    /// listed earlier): what a listing's row is written with.
    pub(super) fn fresher_url(&self, item: &Arc<MediaItem>) -> Option<Arc<str>> {
        let known = self.inner.urls.known();
        known
            .get(&item.id)
            .filter(|k| Arc::ptr_eq(&k.item, item))
            .and_then(|k| k.url.clone())
    }

    /// The freshest copy of an item whose URL is younger than the age trusted
    /// ([`UrlAge::max`]); fetched (batchGet) when unknown or older.
    pub(super) async fn fresh_item(&self, id: &str) -> Outcome {
        self.item_younger_than(id, self.inner.url_age.max()).await
    }

    /// The freshest copy of an item whose URL is younger than `max`; fetched when unknown or
    /// older.
    async fn item_younger_than(&self, id: &str, max: Duration) -> Outcome {
        let young = |known: &Known| self.inner.clock.since(known.fetched) < max;
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
    /// that another request already replaced is not fetched again. The refused URL's age
    /// tells [`UrlAge`] whether Google ended it early.
    pub(super) async fn refresh_refused(&self, id: &str, refused: &MediaItem) -> Outcome {
        let refused_age = self
            .inner
            .urls
            .known()
            .get(id)
            .filter(|k| k.url() == refused.base_url)
            .map(|k| self.inner.clock.since(k.fetched));
        if let Some(age) = refused_age {
            self.inner.url_age.refused_at(age);
        }
        let replaced = |known: &Known| {
            known.url() != refused.base_url
                && self.inner.clock.since(known.fetched) < self.inner.url_age.max()
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
        known.get(id).filter(|k| usable(k)).map(Known::fresh)
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
    /// first, then the ones before, when the first is old enough that they soon need it too. Nobody waits for them; they are simply fresh when asked for.
    fn companions(&self, ids: &[String], batch: &Batch, room: usize) -> Vec<String> {
        let known = self.inner.urls.known();
        let Some(anchor) = ids.first().and_then(|id| known.get(id)) else {
            return Vec::new();
        };
        // An anchor younger than this was refreshed for another reason than its age (its
        // URL was refused early): its siblings are not due yet.
        let due = self.inner.url_age.max_for_redirect();
        if room == 0 || self.inner.clock.since(anchor.fetched) < due {
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

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn the_age_shortens_on_early_refusals_and_never_below_the_floor() {
        let age = UrlAge::new(MIN * 50);
        assert_eq!(age.max(), MIN * 50);
        assert_eq!(age.max_for_redirect(), MIN * 45);
        // Refused at 36 minutes: URLs are replaced 5 minutes before that from now on.
        assert_eq!(age.refused_at(MIN * 36), Some(MIN * 31));
        assert_eq!(age.max(), MIN * 31);
        assert_eq!(age.max_for_redirect(), MIN * 26);
        // URLs as old as the one refused, or older, were in use before: nothing new.
        assert_eq!(age.refused_at(MIN * 36), None);
        assert_eq!(age.refused_at(MIN * 31), None);
        assert_eq!(age.max(), MIN * 31);
        // Younger refusals shorten it again, but never below 10 minutes.
        assert_eq!(age.refused_at(MIN * 20), Some(MIN * 15));
        assert_eq!(age.refused_at(MIN * 12), Some(MIN * 10));
        assert_eq!(age.max(), URL_MIN_AGE);
        assert_eq!(age.refused_at(MIN * 10), None);
        // A URL refused younger than any lifetime was not ended by its age.
        assert_eq!(age.refused_at(MIN * 2), None);
        assert_eq!(age.max(), URL_MIN_AGE);
        assert_eq!(age.max_for_redirect(), MIN * 5);
    }

    #[test]
    fn the_configured_age_is_kept_within_googles_range() {
        assert_eq!(UrlAge::default().max(), MIN * 25);
        assert_eq!(UrlAge::new(MIN).max(), URL_MIN_AGE);
        assert_eq!(UrlAge::new(MIN * 600).max(), URL_MAX_AGE_LIMIT);
        // At the floor, no refusal shortens it further.
        let age = UrlAge::new(URL_MIN_AGE);
        assert_eq!(age.refused_at(MIN * 11), None);
    }
}
