//! Sizes: the API never says how big an item's bytes are, yet a WebDAV client wants
//! `getcontentlength` for every file it lists. So each size is probed on the content host
//! (bounded concurrency; one probe per item however many requests wait for it), remembered
//! per item, and written to the store's `items` table, whose sizes are loaded at start: a
//! restarted server lists what it listed before without probing again.

use std::sync::Arc;

use futures::StreamExt;

use super::{CachedNode, Catalog, CatalogError, FolderKey, Node, picked, store};
use crate::google::content::Download;
use crate::google::{GoogleError, MediaItem, VideoState};

/// What a GET or HEAD is about to read of the file it names, as far as the request alone tells
/// (see [`Catalog::stat_reading`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSpan {
    /// The first byte read.
    pub start: u64,
    /// The last byte read; None: to the end.
    pub last: Option<u64>,
    /// Whether the bytes are streamed to the client (a GET), or only the size wanted (a HEAD,
    /// which asks for the first byte).
    pub streams: bool,
}

/// How many probed sizes are written to the store in one transaction.
const STORE_BATCH: usize = 1_000;

/// A size probe in flight, shared by everyone who needs the same item's size meanwhile.
pub(super) type SharedProbe =
    futures::future::Shared<futures::future::BoxFuture<'static, Result<u64, CatalogError>>>;

impl Catalog {
    /// Loads the sizes the store remembers, so items listed before a restart are not probed
    /// again, and the sizes of the uploads it recorded. Called once at start.
    pub async fn load_remembered(&self) {
        let items = self.inner.opts.store.items().await;
        let count = items.len();
        {
            let mut sizes = self.inner.sizes.lock();
            for item in items {
                sizes.entry(item.id.into_boxed_str()).or_insert(item.size);
            }
        }
        // What a video uploaded before the restart shows while Google still processes it.
        for upload in self.inner.opts.store.uploads().await {
            self.note_upload(&upload.item_id, upload.size);
        }
        tracing::info!(
            store = self.inner.opts.store.location(),
            "metadata store: {count} item sizes remembered"
        );
        if let Some(cache) = &self.inner.content {
            cache.load().await;
        }
    }

    /// The total size of every item whose size is known so far: the whole library once
    /// `/media/all` has been listed, less before (sizes are learned as folders are listed).
    pub fn known_bytes(&self) -> u64 {
        self.inner.sizes.lock().values().sum()
    }

    /// Drops a remembered size that turned out wrong, so the next listing probes it again.
    pub fn forget_size(&self, id: &str) {
        self.inner.sizes.lock().remove(id);
        self.inner.opts.store.forget_item(id);
        if let Some(cache) = &self.inner.content {
            cache.forget_item(id, None);
        }
        // Listings embed sizes only when they are read, so nothing else holds the stale value.
    }

    /// The size a file shows: the probed size of what Google serves; while Google still
    /// processes a video, the size it was uploaded with through this server (unknown: the
    /// file can only be answered [`CatalogError::Processing`]). See `processing`.
    pub(super) async fn shown_size(&self, item: &Arc<MediaItem>) -> Result<u64, CatalogError> {
        match self.current_state(item).await {
            VideoState::Ready => self.size_of(item).await,
            VideoState::Processing => self
                .uploaded_size(&item.id)
                .ok_or_else(|| self.not_yet_for(&item.id)),
            VideoState::Failed => Err(CatalogError::NotFound),
        }
    }

    /// The size of one item, probed if unknown.
    async fn size_of(&self, item: &Arc<MediaItem>) -> Result<u64, CatalogError> {
        Ok(self.sizes_of(&[item]).await?[0])
    }

    /// [`Catalog::stat`] for a request about to read `span` of the file at `segments`: when
    /// that file's size is not known yet, the download is opened first and its answer
    /// (`Content-Range`'s total, or a 200's `Content-Length`) is the size, remembered as a
    /// probe's would be. For a read that streams, the download is handed back, for
    /// [`Catalog::read_opened`] to use: a GET of an unsized file costs one request, not a
    /// probe and a download, and spends no probe budget (it is a download: it counts in the
    /// media quota). With the content cache on, the request asks for whole blocks, as the
    /// cache's own request for that read would, so that it can fill the cache. Where the
    /// answer cannot tell the size (a range past the end, no total), the size is probed as by
    /// `stat`.
    pub async fn stat_reading(
        &self,
        segments: &[String],
        span: ReadSpan,
    ) -> Result<(Node, Option<Download>), CatalogError> {
        let (name, item) = match self.resolve(segments).await? {
            CachedNode::File(name, item) => (name, item),
            dir => return Ok((self.node(dir).await?, None)),
        };
        // Where the size is known or cannot be had from the bytes, as `stat` (no second walk
        // of the path).
        let probed =
            |name, item| async move { Ok((self.node(CachedNode::File(name, item)).await?, None)) };
        let known = self.inner.sizes.lock().contains_key(item.id.as_str());
        if known || self.current_state(&item).await != VideoState::Ready {
            return probed(name, item).await;
        }
        let (start, last) = match &self.inner.content {
            Some(_) if span.streams => super::cache::read::block_span(span.start, span.last),
            _ => (span.start, span.last),
        };
        let download = match self.download_range(&item.id, start, last).await {
            Ok(download) => download,
            Err(CatalogError::Google(GoogleError::Content(416))) => {
                return probed(name, item).await;
            }
            Err(e) => return Err(e),
        };
        let Some(size) = download.total else {
            return probed(name, item).await;
        };
        tracing::debug!(item = %item.id, size, "size learned from the download's answer");
        self.learned_size(&item, size);
        let info = self.file_info(name, &item, size);
        Ok((Node::File(info), span.streams.then_some(download)))
    }

    /// Remembers `size` for `item`, learned from a download's answer: in memory and in the
    /// store, as a probe's; cached bytes kept for another size are dropped.
    fn learned_size(&self, item: &MediaItem, size: u64) {
        self.inner.opts.store.put_items(vec![item_meta(item, size)]);
        self.inner
            .sizes
            .lock()
            .insert(item.id.as_str().into(), size);
        if let Some(cache) = &self.inner.content {
            cache.forget_item(&item.id, Some(size));
        }
    }

    /// Sizes of `items`, in their order, probing the unknown ones with bounded concurrency.
    /// Fails as a whole if any probe fails (the sizes probed until then are kept); when
    /// today's probe budget is spent, with [`CatalogError::ProbeBudgetSpent`] naming how many
    /// are still unknown. The answer is one number per item, not a map of copied ids: a
    /// listing of 100,000 items asks for 100,000 sizes.
    pub(super) async fn sizes_of(
        &self,
        items: &[&Arc<MediaItem>],
    ) -> Result<Vec<u64>, CatalogError> {
        let mut sizes: Vec<Option<u64>> = Vec::with_capacity(items.len());
        let mut missing = Vec::new();
        {
            let known = self.inner.sizes.lock();
            for (i, item) in items.iter().enumerate() {
                let size = known.get(item.id.as_str()).copied();
                if size.is_none() {
                    missing.push(i);
                }
                sizes.push(size);
            }
        }
        let metrics = crate::metrics::get();
        let hits = (items.len() - missing.len()) as u64;
        metrics.cache("size", "hit", hits, self.library());
        metrics.cache("size", "miss", missing.len() as u64, self.library());
        // The futures are built before they enter the stream: a closure inside the stream's
        // type would make the compiler's Send inference fail (rust-lang/rust#64552). Each
        // starts (or joins) its probe only when the stream polls it: a probe is a task of its
        // own, so starting them all here would send every probe at once, past
        // `probe_concurrency`, and past a quota gate that the first answers close.
        let probes: Vec<_> = missing
            .into_iter()
            .map(|i| {
                let this = self.clone();
                let id = items[i].id.clone();
                async move {
                    let size = this.shared_probe(&id).await?;
                    Ok::<_, CatalogError>((i, size))
                }
            })
            .collect();
        let mut stream = futures::stream::iter(probes)
            .buffer_unordered(self.inner.opts.probe_concurrency.max(1));
        let mut probed: Vec<(usize, u64)> = Vec::new();
        // Sizes go to the store as they come, a batch at a time: a listing of 100,000 items
        // never holds 100,000 store records at once, and what a long listing probed is kept
        // even if the server stops before it ends.
        let mut stored = 0;
        let mut failure = None;
        while let Some(result) = stream.next().await {
            match result {
                Ok(found) => {
                    probed.push(found);
                    if probed.len() - stored >= STORE_BATCH {
                        self.store_sizes(items, &probed[stored..]);
                        stored = probed.len();
                    }
                }
                // The budget spent: the probes still to start fail at once, those in flight
                // (which took their request from the budget) are awaited, so that every size
                // the day paid for is kept and the count of what is missing is exact.
                Err(e @ CatalogError::Google(GoogleError::ProbeBudgetSpent { .. })) => {
                    failure.get_or_insert(e);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(stream);
        // What was probed is kept, in memory and in the store, whatever failed after it: a
        // listing refused for the probe budget continues where it stopped the next day.
        self.store_sizes(items, &probed[stored..]);
        let mut known = self.inner.sizes.lock();
        for (i, size) in probed {
            known.insert(items[i].id.as_str().into(), size);
            sizes[i] = Some(size);
        }
        match failure {
            None => Ok(sizes
                .into_iter()
                .map(|s| s.expect("every size known or probed"))
                .collect()),
            Some(CatalogError::Google(GoogleError::ProbeBudgetSpent { retry_after })) => {
                let missing = items
                    .iter()
                    .filter(|i| !known.contains_key(i.id.as_str()))
                    .count();
                Err(CatalogError::ProbeBudgetSpent {
                    missing,
                    retry_after,
                })
            }
            Some(e) => Err(e),
        }
    }

    /// Writes the sizes `probed` (indexes into `items`) to the store.
    fn store_sizes(&self, items: &[&Arc<MediaItem>], probed: &[(usize, u64)]) {
        self.inner.opts.store.put_items(
            probed
                .iter()
                .map(|&(i, size)| item_meta(items[i], size))
                .collect(),
        );
    }

    /// The probe of `id`'s size: the one already in flight, or a new one. Concurrent
    /// listings of a folder and stats of its files so cost one probe per item, not one each.
    fn shared_probe(&self, id: &str) -> SharedProbe {
        use futures::FutureExt;
        let mut probes = self.inner.probes.lock();
        if let Some(p) = probes.get(id) {
            return p.clone();
        }
        // A probe may have finished since the caller looked for the size: it records the size
        // before it leaves `probes`, so under this lock the size is either in flight or known.
        if let Some(size) = self.inner.sizes.lock().get(id).copied() {
            return futures::future::ready(Ok(size)).boxed().shared();
        }
        // The probe runs in a task of its own. A shared future only advances while someone
        // polls it: if every request waiting on it hung up, it would sit suspended wherever it
        // was, holding what it held there (the access-token refresh's lock, a picked set's
        // refresh lock) until some later request needed this very size. It leaves `probes`
        // when the task ends however it ends (a panic included), so a later request starts
        // a new probe instead of joining a dead one. It cannot leave before it is inserted
        // below: removing takes the lock held here.
        let (this, key) = (self.clone(), id.to_string());
        let task = tokio::spawn(async move {
            let _leave = scopeguard::guard((), |()| {
                let mut probes = this.inner.probes.lock();
                probes.remove(&key);
            });
            let result = this.probe(&key).await;
            if let Ok(size) = result {
                this.inner.sizes.lock().insert(key.as_str().into(), size);
                // Bytes kept for another size belong to an older version of the item.
                if let Some(cache) = &this.inner.content {
                    cache.forget_item(&key, Some(size));
                }
            }
            result
        });
        let probe = async move {
            task.await.unwrap_or_else(|e| {
                Err(CatalogError::Google(GoogleError::Protocol(format!(
                    "a size probe ended early: {e}"
                ))))
            })
        }
        .boxed()
        .shared();
        probes.insert(id.to_string(), probe.clone());
        probe
    }

    /// Asks the content host how big item `id`'s bytes are (one HEAD, or a ranged GET where
    /// HEAD says nothing), on a young enough URL; picked items with the bearer token.
    async fn probe(&self, id: &str) -> Result<u64, CatalogError> {
        if let Some((set, item)) = picked::split_picked_id(id) {
            return self.picked_probe(set, item).await;
        }
        self.media_gate()?;
        // Never `=dv` of a video Google processes: what the host answers then is unverified.
        self.ensure_ready(id).await?;
        let content = &self.inner.google.content;
        self.with_url(
            id,
            None,
            |url| async move { content.probe_size(&url).await },
        )
        .await
    }
}

/// The folders refused for the probe budget, in the order clients asked for them, and the
/// Pacific day they were refused on.
#[derive(Debug, Default)]
pub(super) struct Refused {
    day: Option<chrono::NaiveDate>,
    folders: Vec<FolderKey>,
}

impl Catalog {
    /// Remembers that listing `key` was refused today for the probe budget, so that the next
    /// day probes it before the folders nobody asked for yet.
    pub(super) fn note_refused(&self, key: &FolderKey) {
        let today = self.inner.google.quota.today();
        let mut refused = self.inner.refused.lock();
        refused.day = Some(today);
        if !refused.folders.contains(key) {
            refused.folders.push(key.clone());
        }
    }

    /// On the first listing of a Pacific day after some were refused for the probe budget,
    /// probes the refused folders' missing sizes in the background, one folder after the
    /// other in the order clients asked for them (`asking`, the folder being listed now,
    /// probes its own in the request). There is no timer: "first thing the next day" is the
    /// first listing request of that day.
    pub(super) fn resume_refused(&self, asking: &FolderKey) {
        let folders = {
            let mut refused = self.inner.refused.lock();
            match refused.day {
                Some(day) if day < self.inner.google.quota.today() => {
                    refused.day = None;
                    std::mem::take(&mut refused.folders)
                }
                _ => return,
            }
        };
        let folders: Vec<FolderKey> = folders.into_iter().filter(|k| k != asking).collect();
        if folders.is_empty() {
            return;
        }
        tracing::info!(
            folders = folders.len(),
            "a new Pacific day: probing the sizes of the folders refused yesterday for the probe \
             budget"
        );
        let this = self.clone();
        let job: futures::future::BoxFuture<'static, ()> = Box::pin(async move {
            for key in folders {
                // A refusal again (the new budget spent too) is remembered by `entries`.
                if let Err(e) = this.entries(&key).await {
                    tracing::info!(folder = ?key, "folder refused for the probe budget not completed: {e}");
                }
            }
        });
        tokio::spawn(job);
    }
}

/// What the store remembers of an item.
fn item_meta(item: &MediaItem, size: u64) -> store::ItemMeta {
    store::ItemMeta {
        id: item.id.clone(),
        size,
        mime_type: item.mime_type.clone(),
        filename: item.filename.clone(),
        creation_time: item.media_metadata.creation_time,
        width: item.media_metadata.width.map(u64::from),
        height: item.media_metadata.height.map(u64::from),
    }
}
