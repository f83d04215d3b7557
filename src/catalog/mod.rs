//! The tree model: which folders exist, what they hold, and what each file is.
//!
//! ```text
//! /                                         root
//! /album/<title>/<file>                     an album's items (mediaItems.search by albumId)
//! /shared-album/<title>/<file>              shared albums (Google answers 403 since 2025)
//! /feature/favorites/<file>                 favorites (search with featureFilter)
//! /media/all/<file>                         every item (mediaItems.list)
//! /media/by-year/YYYY/<file>                the library index, bucketed by the local
//! /media/by-month/YYYY/YYYY-MM/<file>       date of each item's creation time in the
//! /media/by-day/YYYY/YYYY-MM-DD/<file>      configured time zone; only dates that hold items
//! /picked/<set>/<file>                      items picked with the Picker API (see `picked`)
//! /upload/<file>                            items uploaded with no album (writable servers)
//! ```
//!
//! With `root_folder_id` set to an album id, `/` is that album's folder instead.
//!
//! A folder's *listing* (names → items) is fetched once and kept for `listing_ttl`; loads of the
//! same folder are coalesced. Sizes are not in the API, so they are probed on the content host
//! (bounded concurrency) and remembered per item. Listings and sizes are also written to the
//! metadata store ([`store`]), so a restarted server answers from disk and probes nothing. Any
//! failure while loading a folder is an error for the whole folder: a folder that failed to
//! load must never look empty or shorter, or a sync client deletes the user's local copies.
//!
//! # Names
//! One name per concept. A folder's child and what a path points to each exist in stages: the
//! plain name is what a client is shown (exact sizes included), `Cached…` is what the listing
//! cache holds (Google's item, no size yet: sizes are probed only when a folder is shown), and
//! `Stored…` is what the metadata store keeps.
//!
//! - [`FolderKey`]: which folder, independent of its name: the key of the listing cache and of
//!   the store, so a renamed album keeps its cached listing.
//! - [`DateView`] / [`DateBucket`]: the three date views, and one year, month or day of them.
//! - `Listing`: a folder's contents as cached, its children found by name, NFC name or `{ID}`:
//!   loaded once per TTL, so walking a path and listing a folder cost no call.
//! - `CachedEntry`: one child in a `Listing`: a subfolder's key, or a file's Google item, under
//!   the name the naming rules chose.
//! - [`store::ListingRow`]: a `CachedEntry` as the store keeps it, one row per entry (an item's
//!   stable fields as JSON, its download URL beside them), so a revalidation writes only the
//!   entries that changed: the format on disk, which a new release must keep reading
//!   (tests/upgrade.rs).
//! - [`Entry`]: one child as a client is shown it: a subfolder, or a file ([`FileInfo`]) with
//!   its exact size. What [`Catalog::list`] answers.
//! - [`Entries`]: a folder's `Entry`s made one at a time, from its `Listing` and one size per
//!   child: what [`Catalog::entries_at`] answers, and a PROPFIND streams.
//! - `CachedNode`: what a path points to according to the cached listings (a folder's key, or
//!   a file's name and item), found without probing any size.
//! - [`Node`]: what a path points to as a client is shown it, exact size included. What
//!   [`Catalog::stat`] answers.
//! - [`FileInfo`]: a file as the tree shows it: id, name, type, time, exact size.
//! - [`UploadDir`]: where a new file goes (an album, or no album).
//! - [`store::ItemMeta`]: what the store remembers of an item (its size above all), and
//!   [`picked::StoredItem`]: a picked item as its set stores it.
//!
//! # Files
//! - `mod.rs`: [`Catalog`], its options and errors, and walking a path (`stat`, `list`).
//! - `tree.rs`: the folder keys and date buckets, the fixed folders, and what each folder
//!   holds (loading it from Google).
//! - `listings.rs`: the listing cache: coalesced loads, the TTL and revalidation, the store as
//!   a second tier, forgetting listings a write changed.
//! - `sizes.rs`: sizes: remembered across restarts, probed with bounded concurrency, shared.
//! - `content.rs`: reaching an item's bytes: the media gate, videos still processing, one URL
//!   refresh on a refusal.
//! - `cache/`: the content cache: the bytes read before, as checked blocks on disk, indexed
//!   in the store; a read asks Google only for the runs of blocks it misses.
//! - `variants.rs`: size variants (`=w256-h256-c`), what the gallery shows: fetched whole
//!   from Google and kept in the content cache.
//! - `urls.rs` (download URLs and their age), `processing.rs` (videos Google still
//!   processes), `picked.rs` (`/picked`), `naming.rs` (titles → names), `clock.rs`, and
//!   `store/` (the metadata store, one file per table).

pub mod cache;
pub mod clock;
mod content;
mod listings;
pub mod naming;
pub mod picked;
pub mod processing;
mod sizes;
pub mod store;
mod tree;
pub mod urls;
pub mod variants;

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use clock::Clock;
pub use sizes::ReadSpan;
pub use store::Store;
pub use tree::{DateBucket, DateView, FolderKey, RESERVED_ROOT_NAMES};

use crate::google::library::RangeLoading;
use crate::google::{Google, GoogleError, MediaItem, VideoState};
use listings::{CachedEntry, Slot};
use sizes::SharedProbe;

/// What can go wrong when resolving a path or reaching a file's bytes: one type for every
/// catalog call, so the WebDAV side maps each case to one HTTP status (404, Google's own
/// status, 503 with Retry-After).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    #[error("no such file or folder")]
    NotFound,
    #[error(transparent)]
    Google(#[from] GoogleError),
    /// A video Google is still processing: its bytes cannot be downloaded yet.
    #[error(
        "Google is still processing this video (a recent upload) and serves its bytes once \
         it has finished, usually within seconds to minutes; try again in {} s",
        retry_after.as_secs()
    )]
    Processing { retry_after: Duration },
    /// Today's probe budget (`[cache] probe_budget`) is spent and `missing` items of the
    /// request still need a size: no size is ever guessed or left out (a client reads a
    /// missing length as 0), so the request waits for the next Pacific midnight, when the
    /// budget begins again; what was probed is kept.
    #[error(
        "{missing} items still need a size, and today's size-probe budget ([cache] probe_budget) \
         is spent; sizes probed so far are kept and the rest are probed after midnight Pacific \
         time (in {} min). Try again then, or raise [cache] probe_budget (at most [google] \
         daily_media_quota)",
        retry_after.as_secs().div_ceil(60)
    )]
    ProbeBudgetSpent {
        missing: usize,
        retry_after: Duration,
    },
}

/// How the catalog behaves, from the configuration (`[cache]`, `[google]`, `[server]`): kept
/// apart from the config types so the catalog does not depend on the server layer above it.
#[derive(Debug, Clone)]
pub struct CatalogOptions {
    /// How long a folder listing is fresh; after that it is still answered from the cache
    /// while it is fetched again in the background.
    pub listing_ttl: Duration,
    /// How many size probes run at once. A cold listing waits for one probe per file, so at
    /// a latency of L it takes about N x L / probe_concurrency: 64 probes 1,000 files in
    /// about 0.3 s at 20 ms (benches/cold_listing.rs). Probes are HEADs on the
    /// content host, which cost no API quota, and over HTTP/2 they share one connection.
    pub probe_concurrency: usize,
    /// The time zone whose calendar dates bucket the date views.
    pub timezone: chrono_tz::Tz,
    /// Show only this album at `/` (None: the whole tree).
    pub root_album: Option<String>,
    /// Where sizes and listings are remembered across restarts.
    pub store: Store,
    /// Writes are allowed: the tree has `/upload`, where items uploaded without an album go.
    pub uploads: bool,
    /// Download URLs this old are replaced before use (`[google] url_max_age_secs`; see
    /// [`urls::UrlAge`]).
    pub url_max_age: Duration,
    /// The content cache (`[cache] content_*`); `None`: every read goes to Google.
    pub content: Option<cache::ContentOptions>,
    /// How `/media/all` is loaded: one chain of pages, or concurrent date-range searches for
    /// a library longer than a few pages (`[google] list_chain_pages`, `list_concurrency`).
    pub media_all: RangeLoading,
}

impl Default for CatalogOptions {
    fn default() -> Self {
        CatalogOptions {
            listing_ttl: Duration::from_secs(300),
            probe_concurrency: 64,
            timezone: chrono_tz::UTC,
            root_album: None,
            store: Store::in_memory(),
            uploads: false,
            url_max_age: urls::DEFAULT_URL_MAX_AGE,
            content: None,
            media_all: RangeLoading {
                chain_pages: 0,
                ..RangeLoading::default()
            },
        }
    }
}

/// A file as the tree shows it: what the WebDAV side needs to answer for it (properties, the
/// id to download it by), without Google's item behind it.
#[derive(Debug, Clone)]
pub struct FileInfo {
    pub id: String,
    pub name: String,
    pub mime_type: String,
    pub created: SystemTime,
    pub size: u64,
    /// The bytes need the OAuth bearer token (Picker API items): they can only be streamed
    /// through this server, never handed to a client by a redirect.
    pub bearer_only: bool,
}

/// One child of a folder as a client is shown it: a subfolder, or a file with its exact size.
/// What [`Catalog::list`] answers (a PROPFIND's Depth 1); the cache holds `CachedEntry`s,
/// which become these once the sizes are known.
#[derive(Debug, Clone)]
pub enum Entry {
    Dir {
        name: String,
        key: FolderKey,
        modified: SystemTime,
    },
    File(FileInfo),
}

impl Entry {
    /// The name it is shown under in its folder.
    pub fn name(&self) -> &str {
        match self {
            Entry::Dir { name, .. } => name,
            Entry::File(f) => &f.name,
        }
    }
}

/// A folder's children as a client is shown them (what [`Catalog::entries_at`] answers),
/// each [`Entry`] made only when it is read: the folder's cached listing and one size per
/// child, rather than a copy of every name, id and type. A PROPFIND of `/media/all` streams
/// its 100,000 entries from this one at a time.
pub struct Entries {
    catalog: Catalog,
    listing: Arc<listings::Listing>,
    /// Per entry of the listing, in its order: the size a file is shown with, or None for a
    /// folder and for a file not shown.
    sizes: Vec<Option<u64>>,
}

impl Entries {
    /// The child at `i` of the listing, if it is shown.
    fn get(&self, i: usize) -> Option<Entry> {
        Some(match &self.listing.entries[i] {
            CachedEntry::Dir { name, key } => Entry::Dir {
                name: name.to_string(),
                key: (**key).clone(),
                modified: self.catalog.inner.started,
            },
            CachedEntry::File { name, item } => Entry::File(self.catalog.file_info(
                name.to_string(),
                item,
                self.sizes[i]?,
            )),
        })
    }

    /// The names of the children shown, without making their entries.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.listing
            .entries
            .iter()
            .zip(&self.sizes)
            .filter(|(e, size)| size.is_some() || matches!(e, CachedEntry::Dir { .. }))
            .map(|(e, _)| e.name())
    }
}

impl IntoIterator for Entries {
    type Item = Entry;
    type IntoIter = EntriesIter;

    fn into_iter(self) -> EntriesIter {
        EntriesIter {
            entries: self,
            next: 0,
        }
    }
}

/// The children of an [`Entries`], made one at a time.
pub struct EntriesIter {
    entries: Entries,
    next: usize,
}

impl Iterator for EntriesIter {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        while self.next < self.entries.sizes.len() {
            let i = self.next;
            self.next += 1;
            if let Some(entry) = self.entries.get(i) {
                return Some(entry);
            }
        }
        None
    }
}

/// What a path points to as a client is shown it, a file with its exact size: what
/// [`Catalog::stat`] answers (a PROPFIND's Depth 0, the metadata before a GET).
#[derive(Debug, Clone)]
pub enum Node {
    Dir {
        key: FolderKey,
        modified: SystemTime,
    },
    File(FileInfo),
}

/// Where a new file goes (see [`Catalog::upload_dir`]): the write path needs only this of the
/// tree, not the folder keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadDir {
    Album(String),
    NoAlbum,
}

/// What every clone of a [`Catalog`] shares.
struct Inner {
    google: Google,
    opts: CatalogOptions,
    /// Times for folders: the API has no dates for albums, and virtual folders have none at all.
    started: SystemTime,
    /// Ages of listings and download URLs are measured on this clock (the Google clients' own,
    /// so moving it also moves their quota gates).
    clock: Arc<Clock>,
    /// The freshest copy of each item seen, for its baseUrl (see `urls`).
    urls: urls::Urls,
    /// How old a download URL may get before it is replaced.
    url_age: urls::UrlAge,
    /// Sizes learned from the content host, per item id (a boxed id: one per item of the
    /// library, and a `String`'s spare capacity is never needed here).
    sizes: Mutex<HashMap<Box<str>, u64>>,
    /// The listing cache: one slot per folder (see `listings`).
    folders: Mutex<HashMap<FolderKey, Slot>>,
    /// Folders whose stale listing is being fetched again in the background.
    revalidating: Mutex<std::collections::HashSet<FolderKey>>,
    /// Size probes in flight, shared by everyone who needs the same item's size meanwhile.
    probes: Mutex<HashMap<String, SharedProbe>>,
    /// Folders refused for the probe budget, in the order clients asked for them, and the
    /// Pacific day of the refusal: the first listing of a later day probes them first (see
    /// `sizes`). In memory only: a restart forgets the order, not the sizes.
    refused: Mutex<sizes::Refused>,
    /// Picked sets: expiry logged, URL refreshes (see `picked`).
    picked: picked::PickedState,
    /// Videos Google is still processing, and the sizes of uploads (see `processing`).
    processing: processing::ProcessingState,
    /// The bytes read before, on disk (see `cache`), when `[cache] content_max` is not 0.
    content: Option<cache::ContentCache>,
}

/// The tree over a Google Photos library: the one place that knows which folders exist, what
/// they hold and how big each file is, so the WebDAV and write paths never call Google to
/// find their way. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

impl Catalog {
    /// A catalog over `google`; nothing is loaded until asked for (see
    /// [`Catalog::load_remembered`] for what a restart brings back).
    pub fn new(google: Google, opts: CatalogOptions) -> Self {
        let url_age = urls::UrlAge::new(opts.url_max_age);
        let clock = google.clock.clone();
        let content = opts
            .content
            .clone()
            .map(|o| cache::ContentCache::new(o, opts.store.clone(), clock.clone()));
        Catalog {
            inner: Arc::new(Inner {
                google,
                opts,
                started: SystemTime::now(),
                clock,
                urls: urls::Urls::default(),
                url_age,
                sizes: Mutex::new(HashMap::new()),
                folders: Mutex::new(HashMap::new()),
                revalidating: Mutex::new(Default::default()),
                probes: Mutex::new(HashMap::new()),
                refused: Mutex::default(),
                picked: picked::PickedState::default(),
                processing: processing::ProcessingState::default(),
                content,
            }),
        }
    }

    /// The Google clients.
    pub fn google(&self) -> &Google {
        &self.inner.google
    }

    /// The library's mount on a family server (the metrics' `library` label).
    pub fn library(&self) -> Option<&str> {
        self.inner.google.library()
    }

    /// The clock that ages listings and download URLs (tests move it).
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The metadata store behind this catalog.
    pub fn store(&self) -> &Store {
        &self.inner.opts.store
    }

    /// Where a file created in the folder `dir` goes: `Ok(Some(UploadDir))` for an album
    /// folder or `/upload`, `Ok(None)` for folders that cannot take new files (views, the
    /// root), `Err(NotFound)` for a folder that does not exist.
    pub async fn upload_dir(&self, dir: &[String]) -> Result<Option<UploadDir>, CatalogError> {
        if let FolderKey::Album(id) = self.root() {
            return Ok(dir.is_empty().then_some(UploadDir::Album(id)));
        }
        match self.resolve(dir).await? {
            CachedNode::Dir(FolderKey::Album(id)) => Ok(Some(UploadDir::Album(id))),
            CachedNode::Dir(FolderKey::Uploads) => Ok(Some(UploadDir::NoAlbum)),
            CachedNode::Dir(_) => Ok(None),
            CachedNode::File(..) => Err(CatalogError::NotFound),
        }
    }

    /// Whether `segments` names a file (a Google item) in the tree.
    pub async fn is_file(&self, segments: &[String]) -> Result<bool, CatalogError> {
        match self.resolve(segments).await {
            Ok(CachedNode::File(..)) => Ok(true),
            Ok(CachedNode::Dir(_)) | Err(CatalogError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The file at `segments`: the name its folder shows it under and Google's item (for a
    /// picked item, an id made by `picked::picked_id`), found in the cached listings without
    /// probing a size. `NotFound` for a folder or nothing. What the write path needs to add
    /// an item to an album or take it out.
    pub async fn file_item(
        &self,
        segments: &[String],
    ) -> Result<(String, Arc<MediaItem>), CatalogError> {
        match self.resolve(segments).await? {
            CachedNode::File(name, item) => Ok((name, item)),
            CachedNode::Dir(_) => Err(CatalogError::NotFound),
        }
    }

    /// Whether the folder `dir` holds the item `item_id` under any name (its cached listing,
    /// no size probed): what the write path asks before trusting an upload record, since an
    /// item taken out of an album leaves its record behind.
    pub async fn folder_holds(&self, dir: &[String], item_id: &str) -> Result<bool, CatalogError> {
        match self.resolve(dir).await? {
            CachedNode::Dir(key) => Ok(self
                .listing(&key)
                .await?
                .entries
                .iter()
                .any(|e| matches!(e, CachedEntry::File { item, .. } if item.id == item_id))),
            CachedNode::File(..) => Err(CatalogError::NotFound),
        }
    }

    /// Whether `segments` names a folder (loading only the listings on the way).
    pub async fn is_dir(&self, segments: &[String]) -> Result<bool, CatalogError> {
        Ok(matches!(self.resolve(segments).await?, CachedNode::Dir(_)))
    }

    /// What `segments` (decoded path segments) point to. A folder is loaded completely,
    /// sizes included, so that any upstream failure surfaces here, before a status is sent.
    pub async fn stat(&self, segments: &[String]) -> Result<Node, CatalogError> {
        let node = self.resolve(segments).await?;
        self.node(node).await
    }

    /// The [`Node`] a resolved path shows: a folder loaded completely, or a file with its
    /// exact size (probed if unknown).
    async fn node(&self, node: CachedNode) -> Result<Node, CatalogError> {
        match node {
            CachedNode::Dir(key) => {
                self.entries(&key).await?;
                Ok(Node::Dir {
                    key,
                    modified: self.inner.started,
                })
            }
            CachedNode::File(name, item) => {
                let size = self.shown_size(&item).await?;
                Ok(Node::File(self.file_info(name, &item, size)))
            }
        }
    }

    /// The entries of the folder at `segments`, with exact sizes.
    pub async fn list(&self, segments: &[String]) -> Result<Vec<Entry>, CatalogError> {
        Ok(self.entries_at(segments).await?.into_iter().collect())
    }

    /// The entries of the folder at `segments`, with exact sizes, made one at a time as
    /// they are read: what a PROPFIND streams, so a folder of 100,000 files is never copied
    /// whole into entries (see [`Entries`]).
    pub async fn entries_at(&self, segments: &[String]) -> Result<Entries, CatalogError> {
        match self.resolve(segments).await? {
            CachedNode::Dir(key) => self.entries(&key).await,
            CachedNode::File(..) => Err(CatalogError::NotFound),
        }
    }

    /// Whether `segments` names a file or folder according to the listings already in
    /// memory (static folders, and fresh cached listings not being reloaded right now).
    /// Never calls Google and never waits: false means "not known without asking Google".
    pub fn resolves_from_memory(&self, segments: &[String]) -> bool {
        let mut key = self.root();
        for (i, seg) in segments.iter().enumerate() {
            let Some(listing) = self.listing_in_memory(&key) else {
                return false;
            };
            match listing.lookup(seg) {
                Some(CachedEntry::Dir { key: child, .. }) => key = (**child).clone(),
                Some(CachedEntry::File { .. }) => return i + 1 == segments.len(),
                None => return false,
            }
        }
        true
    }

    /// What `segments` point to according to the listings on the way (loaded if needed), with
    /// no size probed.
    async fn resolve(&self, segments: &[String]) -> Result<CachedNode, CatalogError> {
        let mut key = self.root();
        for (i, seg) in segments.iter().enumerate() {
            let listing = self.listing(&key).await?;
            match listing.lookup(seg) {
                Some(CachedEntry::Dir { key: child, .. }) => key = (**child).clone(),
                Some(CachedEntry::File { name, item }) if i + 1 == segments.len() => {
                    return Ok(CachedNode::File(name.to_string(), item.clone()));
                }
                _ => return Err(CatalogError::NotFound),
            }
        }
        Ok(CachedNode::Dir(key))
    }

    /// The folder `key` as a client is shown it: its cached listing with exact sizes (probed
    /// where unknown). Videos Google still processes show the size uploaded, or are left out.
    async fn entries(&self, key: &FolderKey) -> Result<Entries, CatalogError> {
        let listing = self.listing(key).await?;
        let items: Vec<&Arc<MediaItem>> = listing
            .entries
            .iter()
            .filter_map(|e| match e {
                CachedEntry::File { item, .. } => Some(item),
                CachedEntry::Dir { .. } => None,
            })
            .collect();
        // Videos Google was processing: ask again whether they are ready (when due).
        let processing: Vec<&str> = items
            .iter()
            .filter(|i| self.state_of(i) == VideoState::Processing)
            .map(|i| i.id.as_str())
            .collect();
        if !processing.is_empty() {
            self.recheck(&processing).await;
        }
        // Per item (in listing order), the size it is shown with once known; None: not shown.
        let mut shown: Vec<Option<u64>> = vec![None; items.len()];
        let mut ready = Vec::with_capacity(items.len());
        let mut ready_at = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match self.state_of(item) {
                VideoState::Ready => {
                    ready.push(*item);
                    ready_at.push(i);
                }
                VideoState::Processing => match self.uploaded_size(&item.id) {
                    Some(size) => shown[i] = Some(size),
                    None => self.log_unlisted(item),
                },
                VideoState::Failed => {}
            }
        }
        self.resume_refused(key);
        let sizes = match self.sizes_of(&ready).await {
            Err(e @ CatalogError::ProbeBudgetSpent { .. }) => {
                self.note_refused(key);
                return Err(e);
            }
            other => other?,
        };
        for (i, size) in ready_at.into_iter().zip(sizes) {
            shown[i] = Some(size);
        }
        // Per entry, its size (a file shown) or None (a folder, or a file not listed: a
        // video that failed, or one in processing of unknown size).
        let mut shown = shown.into_iter();
        let sizes = listing
            .entries
            .iter()
            .map(|e| match e {
                CachedEntry::Dir { .. } => None,
                CachedEntry::File { .. } => shown.next().flatten(),
            })
            .collect();
        Ok(Entries {
            catalog: self.clone(),
            listing,
            sizes,
        })
    }

    /// The file shown for `item` under `name`.
    fn file_info(&self, name: String, item: &MediaItem, size: u64) -> FileInfo {
        FileInfo {
            id: item.id.clone(),
            name,
            mime_type: item.mime_type.clone(),
            created: item
                .media_metadata
                .creation_time
                .map(SystemTime::from)
                .unwrap_or(self.inner.started),
            size,
            bearer_only: picked::split_picked_id(&item.id).is_some(),
        }
    }
}

/// What a path points to according to the cached listings: a folder's key, or a file's name
/// and Google item. [`Node`] is made of it once a size is needed.
enum CachedNode {
    Dir(FolderKey),
    File(String, Arc<MediaItem>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::google::{Credentials, Endpoints};

    #[tokio::test]
    async fn the_root_never_uses_a_reserved_name() {
        let google = Google::new(
            &Credentials {
                client_id: "id".into(),
                client_secret: "secret".into(),
                refresh_token: "token".into(),
                persist_to: None,
            },
            &Endpoints {
                api_base: "http://127.0.0.1:9".into(),
                token_url: "http://127.0.0.1:9/token".into(),
                picker_base: "http://127.0.0.1:9".into(),
            },
            crate::google::RetryPolicy::immediate(),
        )
        .unwrap();
        let catalog = Catalog::new(google, CatalogOptions::default());
        let names: Vec<String> = catalog
            .list(&[])
            .await
            .unwrap()
            .iter()
            .map(|e| e.name().to_string())
            .collect();
        assert!(names.contains(&"album".to_string()), "{names:?}");
        for reserved in RESERVED_ROOT_NAMES {
            assert!(!names.iter().any(|n| n == reserved), "{names:?}");
        }
    }
}
