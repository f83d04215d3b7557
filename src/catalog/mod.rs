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
//! metadata store ([`store`]), so a restarted server answers from disk and probes nothing. Any failure while loading a folder is an error
//! for the whole folder: a folder that failed to load must never look empty or shorter, or a sync
//! client deletes the user's local copies.

pub mod clock;
pub mod naming;
pub mod picked;
pub mod processing;
pub mod store;
pub mod urls;

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use clock::Clock;
pub use store::Store;

use futures::{StreamExt, TryStreamExt};

use crate::google::content::Download;
use crate::google::{Album, Google, GoogleError, MediaItem, VideoState};

/// What can go wrong when resolving a path.
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
}

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
        }
    }
}

/// Names no folder at the tree's root may take: the server answers `/d/<id>/<name>` itself
/// (signed download links, `server::signed`), so a root folder `d` would be unreachable. Root
/// folders are fixed names (`album`, `media`, ...); a test checks none of them is reserved.
pub const RESERVED_ROOT_NAMES: &[&str] = &["d"];

/// Whether the "shared albums are gone" warning was logged (once per process).
static SHARED_ALBUMS_WARNED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// A folder of the tree, identified independently of its (possibly renamed) path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FolderKey {
    Root,
    Albums,
    Album(String),
    SharedAlbums,
    SharedAlbum(String),
    Feature,
    Favorites,
    Media,
    MediaAll,
    /// `/upload`: the items uploaded there (recorded in the store), which are in no album.
    Uploads,
    /// `/media/by-year`, `/media/by-month`, `/media/by-day`: one folder per year.
    Years(DateView),
    /// `/media/by-month/YYYY`, `/media/by-day/YYYY`: one folder per month or day of a year.
    YearBuckets(DateView, i32),
    /// The items of one year, month or day.
    Dated(DateBucket),
    /// `/picked`: the picked sets that have not expired.
    Picked,
    /// The items of one picked set, by the set's name.
    PickedSet(String),
}

/// The three date views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DateView {
    Year,
    Month,
    Day,
}

/// A calendar year, month or day in the configured time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DateBucket {
    Year(i32),
    Month(i32, u32),
    Day(i32, u32, u32),
}

impl DateBucket {
    fn of(view: DateView, date: chrono::NaiveDate) -> Self {
        use chrono::Datelike;
        match view {
            DateView::Year => DateBucket::Year(date.year()),
            DateView::Month => DateBucket::Month(date.year(), date.month()),
            DateView::Day => DateBucket::Day(date.year(), date.month(), date.day()),
        }
    }

    fn year(&self) -> i32 {
        match *self {
            DateBucket::Year(y) | DateBucket::Month(y, _) | DateBucket::Day(y, _, _) => y,
        }
    }

    /// The folder name: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    fn name(&self) -> String {
        match *self {
            DateBucket::Year(y) => format!("{y:04}"),
            DateBucket::Month(y, m) => format!("{y:04}-{m:02}"),
            DateBucket::Day(y, m, d) => format!("{y:04}-{m:02}-{d:02}"),
        }
    }
}

/// A file as the tree shows it.
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

/// One entry of a folder.
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
    pub fn name(&self) -> &str {
        match self {
            Entry::Dir { name, .. } => name,
            Entry::File(f) => &f.name,
        }
    }
}

/// What a path points to.
#[derive(Debug, Clone)]
pub enum Node {
    Dir {
        key: FolderKey,
        modified: SystemTime,
    },
    File(FileInfo),
}

/// A folder's listing before sizes are known.
#[derive(Debug)]
struct Listing {
    entries: Vec<Listed>,
    by_name: HashMap<String, usize>,
    /// NFC form of each name, for clients (macOS) that send names in NFD.
    by_nfc: HashMap<String, usize>,
    by_id: HashMap<String, usize>,
}

#[derive(Debug)]
enum Listed {
    Dir { name: String, key: FolderKey },
    File { name: String, item: Arc<MediaItem> },
}

impl Listing {
    fn new(entries: Vec<Listed>) -> Self {
        let mut by_name = HashMap::new();
        let mut by_nfc = HashMap::new();
        let mut by_id = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            let name = match e {
                Listed::Dir { name, key } => {
                    if let FolderKey::Album(id) = key {
                        by_id.insert(id.clone(), i);
                    }
                    name
                }
                Listed::File { name, item } => {
                    by_id.insert(picked::naming_id(&item.id).to_string(), i);
                    name
                }
            };
            by_name.insert(name.clone(), i);
            by_nfc.entry(naming::nfc(name)).or_insert(i);
        }
        Listing {
            entries,
            by_name,
            by_nfc,
            by_id,
        }
    }

    /// Finds an entry by its exact name, else by its NFC form (exact matches win, so names
    /// that differ only by normalisation both stay reachable), else by the `{ID}` it carries.
    fn lookup(&self, name: &str) -> Option<&Listed> {
        let idx = self
            .by_name
            .get(name)
            .or_else(|| self.by_nfc.get(&naming::nfc(name)))
            .or_else(|| naming::id_from_name(name).and_then(|id| self.by_id.get(id)))?;
        self.entries.get(*idx)
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<(Instant, Arc<Listing>)>>>;
type SharedProbe =
    futures::future::Shared<futures::future::BoxFuture<'static, Result<u64, CatalogError>>>;

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
    /// Sizes learned from the content host, per item id.
    sizes: Mutex<HashMap<String, u64>>,
    folders: Mutex<HashMap<FolderKey, Slot>>,
    /// Folders whose stale listing is being fetched again in the background.
    revalidating: Mutex<std::collections::HashSet<FolderKey>>,
    /// Size probes in flight, shared by everyone who needs the same item's size meanwhile.
    probes: Mutex<HashMap<String, SharedProbe>>,
    /// Picked sets: expiry logged, URL refreshes (see `picked`).
    picked: picked::PickedState,
    /// Videos Google is still processing, and the sizes of uploads (see `processing`).
    processing: processing::ProcessingState,
}

/// The tree over a Google Photos library. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

impl Catalog {
    pub fn new(google: Google, opts: CatalogOptions) -> Self {
        let url_age = urls::UrlAge::new(opts.url_max_age);
        let clock = google.clock.clone();
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
                picked: picked::PickedState::default(),
                processing: processing::ProcessingState::default(),
            }),
        }
    }

    /// The Google clients.
    pub fn google(&self) -> &Google {
        &self.inner.google
    }

    /// Where a file created in the folder `dir` goes: `Ok(Some(UploadDir))` for an album
    /// folder or `/upload`, `Ok(None)` for folders that cannot take new files (views, the
    /// root), `Err(NotFound)` for a folder that does not exist.
    pub async fn upload_dir(&self, dir: &[String]) -> Result<Option<UploadDir>, CatalogError> {
        if let FolderKey::Album(id) = self.root() {
            return Ok(dir.is_empty().then_some(UploadDir::Album(id)));
        }
        match self.resolve(dir).await? {
            Resolved::Dir(FolderKey::Album(id)) => Ok(Some(UploadDir::Album(id))),
            Resolved::Dir(FolderKey::Uploads) => Ok(Some(UploadDir::NoAlbum)),
            Resolved::Dir(_) => Ok(None),
            Resolved::File(..) => Err(CatalogError::NotFound),
        }
    }

    /// Whether `segments` names a file (a Google item) in the tree.
    pub async fn is_file(&self, segments: &[String]) -> Result<bool, CatalogError> {
        match self.resolve(segments).await {
            Ok(Resolved::File(..)) => Ok(true),
            Ok(Resolved::Dir(_)) | Err(CatalogError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Forgets the listings an upload into `album` (None: `/upload`) changed, in memory and
    /// in the store, so the next request lists the new item, with the size Google serves for
    /// it probed afresh.
    pub fn forget_uploaded(&self, album: Option<&str>) {
        self.forget_folders(|key| match key {
            FolderKey::Album(id) => Some(id.as_str()) == album,
            FolderKey::MediaAll
            | FolderKey::Uploads
            | FolderKey::Years(_)
            | FolderKey::YearBuckets(..)
            | FolderKey::Dated(_) => true,
            _ => false,
        });
        let mut stored = vec![FolderKey::MediaAll];
        stored.extend(album.map(|id| FolderKey::Album(id.to_string())));
        for key in stored.iter().filter_map(store_key) {
            self.inner.opts.store.forget_listing(key);
        }
    }

    /// Forgets the album list (after an album was created).
    pub fn forget_albums(&self) {
        self.forget_folders(|key| *key == FolderKey::Albums);
        if let Some(key) = store_key(&FolderKey::Albums) {
            self.inner.opts.store.forget_listing(key);
        }
    }

    fn forget_folders(&self, changed: impl Fn(&FolderKey) -> bool) {
        self.inner.folders.lock().retain(|key, _| !changed(key));
    }

    /// What `segments` (decoded path segments) point to. A folder is loaded completely,
    /// sizes included, so that any upstream failure surfaces here, before a status is sent.
    pub async fn stat(&self, segments: &[String]) -> Result<Node, CatalogError> {
        match self.resolve(segments).await? {
            Resolved::Dir(key) => {
                self.entries(&key).await?;
                Ok(Node::Dir {
                    key,
                    modified: self.inner.started,
                })
            }
            Resolved::File(name, item) => {
                let size = self.shown_size(&item).await?;
                Ok(Node::File(self.file_info(name, &item, size)))
            }
        }
    }

    /// The size a file shows: the probed size of what Google serves; while Google still
    /// processes a video, the size it was uploaded with through this server (unknown: the
    /// file can only be answered [`CatalogError::Processing`]). See `processing`.
    async fn shown_size(&self, item: &Arc<MediaItem>) -> Result<u64, CatalogError> {
        match self.current_state(item).await {
            VideoState::Ready => self.size_of(item).await,
            VideoState::Processing => self
                .uploaded_size(&item.id)
                .ok_or_else(|| self.not_yet_for(&item.id)),
            VideoState::Failed => Err(CatalogError::NotFound),
        }
    }

    /// Fails with [`CatalogError::Processing`] while Google processes item `id` (after asking
    /// again when due), and with NotFound when it failed to: the bytes are not asked for then.
    async fn ensure_ready(&self, id: &str) -> Result<Arc<MediaItem>, CatalogError> {
        let item = self.fresh_item(id).await?;
        self.ready(id, item).await
    }

    /// `item` when Google serves its bytes; a video Google is still processing is
    /// [`CatalogError::Processing`], a failed one is not found.
    async fn ready(&self, id: &str, item: Arc<MediaItem>) -> Result<Arc<MediaItem>, CatalogError> {
        match self.current_state(&item).await {
            VideoState::Ready => Ok(item),
            VideoState::Processing => Err(self.not_yet_for(id)),
            VideoState::Failed => Err(CatalogError::NotFound),
        }
    }

    /// Whether `segments` names a folder (loading only the listings on the way).
    pub async fn is_dir(&self, segments: &[String]) -> Result<bool, CatalogError> {
        Ok(matches!(self.resolve(segments).await?, Resolved::Dir(_)))
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
                Some(Listed::Dir { key: child, .. }) => key = child.clone(),
                Some(Listed::File { .. }) => return i + 1 == segments.len(),
                None => return false,
            }
        }
        true
    }

    /// The total size of every item whose size is known so far: the whole library once
    /// `/media/all` has been listed, less before (sizes are learned as folders are listed).
    pub fn known_bytes(&self) -> u64 {
        self.inner.sizes.lock().values().sum()
    }

    /// The entries of the folder at `segments`, with exact sizes.
    pub async fn list(&self, segments: &[String]) -> Result<Vec<Entry>, CatalogError> {
        match self.resolve(segments).await? {
            Resolved::Dir(key) => self.entries(&key).await,
            Resolved::File(..) => Err(CatalogError::NotFound),
        }
    }

    /// The clock that ages listings and download URLs (tests move it).
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Starts downloading item `id` at byte `start`. An old download URL is refreshed first;
    /// one the content host refuses (expired) is refreshed and tried once more.
    pub async fn download(&self, id: &str, start: u64) -> Result<Download, CatalogError> {
        if let Some((set, item)) = picked::split_picked_id(id) {
            return self.picked_download(set, item, start).await;
        }
        self.media_gate()?;
        self.ensure_ready(id).await?;
        let content = &self.inner.google.content;
        self.with_url(id, |url| async move { content.download(&url, start).await })
            .await
    }

    /// Fails while the media gate is closed (the day's media requests spent, or a pause after
    /// the content host's 429): the bytes cannot come, so no API call is spent refreshing
    /// the item's URL or status first.
    fn media_gate(&self) -> Result<(), CatalogError> {
        Ok(self
            .inner
            .google
            .quota
            .check_bucket(crate::google::quota::Bucket::Media)?)
    }

    /// Runs `op` on item `id`'s download URL (refreshed first when old) and, when the content
    /// host refuses that URL as expired, once more on a fresh one.
    async fn with_url<T, F, Fut>(&self, id: &str, op: F) -> Result<T, CatalogError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, GoogleError>>,
    {
        let item = self.fresh_item(id).await?;
        match op(item.download_url()).await {
            Err(GoogleError::UrlExpired) => {
                let item = self.refresh_refused(id, &item).await?;
                self.refused_while_processing(&item)?;
                Ok(op(item.download_url()).await?)
            }
            // The content host refuses `=dv` of a video Google processes (how is unverified:
            // 403 above, or 404 here): ask Google once whether that is why.
            Err(GoogleError::NotFound(message)) if item.is_video() => {
                let item = self.refresh_refused(id, &item).await?;
                self.refused_while_processing(&item)?;
                Err(GoogleError::NotFound(message).into())
            }
            other => Ok(other?),
        }
    }

    /// After the content host refused a video's URL: [`CatalogError::Processing`] if a fresh
    /// copy of the item says Google is processing it (followed from now on).
    fn refused_while_processing(&self, fresh: &Arc<MediaItem>) -> Result<(), CatalogError> {
        if fresh.video_state() == VideoState::Processing {
            self.note_states(std::slice::from_ref(fresh), self.inner.clock.now());
            return Err(self.not_yet_for(&fresh.id));
        }
        Ok(())
    }

    /// Drops a remembered size that turned out wrong, so the next listing probes it again.
    pub fn forget_size(&self, id: &str) {
        self.inner.sizes.lock().remove(id);
        self.inner.opts.store.forget_item(id);
        // Listings embed sizes only when they are read, so nothing else holds the stale value.
    }

    /// The metadata store behind this catalog.
    pub fn store(&self) -> &Store {
        &self.inner.opts.store
    }

    /// Loads the sizes the store remembers, so items listed before a restart are not probed
    /// again, and the sizes of the uploads it recorded. Called once at start.
    pub async fn load_remembered(&self) {
        let items = self.inner.opts.store.items().await;
        let count = items.len();
        {
            let mut sizes = self.inner.sizes.lock();
            for item in items {
                sizes.entry(item.id).or_insert(item.size);
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
    }

    /// A folder's listing as the store keeps it, with the catalog-clock instant it was
    /// fetched at. None when not stored, unreadable, or older than the process can express.
    async fn stored_listing(&self, key: &FolderKey) -> Option<(Listing, Instant)> {
        let name = store_key(key)?;
        let (body, fetched_at) = self.inner.opts.store.listing(&name).await?;
        let entries: Vec<StoredEntry> = match serde_json::from_str(&body) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(folder = %name, "ignoring a stored listing that does not parse: {e}");
                return None;
            }
        };
        let age = Duration::from_secs(self.inner.clock.unix_now().saturating_sub(fetched_at));
        let at = self.inner.clock.now().checked_sub(age)?;
        let mut items = Vec::new();
        let listed = entries
            .into_iter()
            .map(|e| match e {
                StoredEntry::File { name, item } => {
                    let item = Arc::new(item);
                    items.push(item.clone());
                    Listed::File { name, item }
                }
                StoredEntry::Dir { name, album } => Listed::Dir {
                    name,
                    key: match key {
                        FolderKey::SharedAlbums => FolderKey::SharedAlbum(album),
                        _ => FolderKey::Album(album),
                    },
                },
            })
            .collect();
        self.remember(&items, at);
        self.note_states(&items, at);
        tracing::debug!(folder = %name, age_secs = age.as_secs(), "listing loaded from the store");
        Some((Listing::new(listed), at))
    }

    /// Writes a listing just fetched from Google to the store (in the background).
    fn store_listing(&self, key: &FolderKey, listing: &Listing) {
        let Some(name) = store_key(key) else {
            return;
        };
        let entries: Vec<StoredEntry> = listing
            .entries
            .iter()
            .map(|e| match e {
                Listed::File { name, item } => StoredEntry::File {
                    name: name.clone(),
                    item: (**item).clone(),
                },
                Listed::Dir { name, key } => StoredEntry::Dir {
                    name: name.clone(),
                    album: match key {
                        FolderKey::Album(id) | FolderKey::SharedAlbum(id) => id.clone(),
                        _ => String::new(),
                    },
                },
            })
            .collect();
        match serde_json::to_string(&entries) {
            Ok(body) => self
                .inner
                .opts
                .store
                .put_listing(name, body, self.inner.clock.unix_now()),
            Err(e) => tracing::warn!("cannot store a listing: {e}"),
        }
    }

    async fn entries(&self, key: &FolderKey) -> Result<Vec<Entry>, CatalogError> {
        let listing = self.listing(key).await?;
        let items: Vec<&Arc<MediaItem>> = listing
            .entries
            .iter()
            .filter_map(|e| match e {
                Listed::File { item, .. } => Some(item),
                Listed::Dir { .. } => None,
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
        let mut ready = Vec::with_capacity(items.len());
        let mut uploaded = HashMap::new();
        for item in items {
            match self.state_of(item) {
                VideoState::Ready => ready.push(item),
                VideoState::Processing => match self.uploaded_size(&item.id) {
                    Some(size) => {
                        uploaded.insert(item.id.clone(), size);
                    }
                    None => self.log_unlisted(item),
                },
                VideoState::Failed => {}
            }
        }
        let mut sizes = self.sizes_of(&ready).await?;
        sizes.extend(uploaded);
        Ok(listing
            .entries
            .iter()
            .filter_map(|e| match e {
                Listed::Dir { name, key } => Some(Entry::Dir {
                    name: name.clone(),
                    key: key.clone(),
                    modified: self.inner.started,
                }),
                // Not listed: a video that failed, or one in processing of unknown size.
                Listed::File { name, item } => sizes
                    .get(&item.id)
                    .map(|size| Entry::File(self.file_info(name.clone(), item, *size))),
            })
            .collect())
    }

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

    /// The folder shown at `/`.
    fn root(&self) -> FolderKey {
        match &self.inner.opts.root_album {
            Some(id) => FolderKey::Album(id.clone()),
            None => FolderKey::Root,
        }
    }

    async fn resolve(&self, segments: &[String]) -> Result<Resolved, CatalogError> {
        let mut key = self.root();
        for (i, seg) in segments.iter().enumerate() {
            let listing = self.listing(&key).await?;
            match listing.lookup(seg) {
                Some(Listed::Dir { key: child, .. }) => key = child.clone(),
                Some(Listed::File { name, item }) if i + 1 == segments.len() => {
                    return Ok(Resolved::File(name.clone(), item.clone()));
                }
                _ => return Err(CatalogError::NotFound),
            }
        }
        Ok(Resolved::Dir(key))
    }

    /// The listing of a folder, from the cache while fresh. Concurrent loads of one folder
    /// wait for each other instead of all calling Google.
    ///
    /// Boxed with an explicit `Send` because loading a date folder loads `/media/all`
    /// through this same function.
    fn listing<'a>(
        &'a self,
        key: &'a FolderKey,
    ) -> futures::future::BoxFuture<'a, Result<Arc<Listing>, CatalogError>> {
        Box::pin(async move {
            if matches!(key, FolderKey::Picked | FolderKey::PickedSet(_)) {
                // Read from the store every time: `pick` may add a set while we run, and a
                // set must vanish the moment it expires.
                return Ok(Arc::new(self.load(key).await?));
            }
            let slot = self
                .inner
                .folders
                .lock()
                .entry(key.clone())
                .or_default()
                .clone();
            let mut guard = slot.lock().await;
            if let Some((at, listing)) = guard.as_ref() {
                if self.inner.clock.since(*at) >= self.inner.opts.listing_ttl {
                    // Stale: answer from the cache now, fetch again in the background.
                    crate::metrics::get().cache("listing", "stale");
                    self.revalidate(key.clone(), slot.clone());
                } else {
                    crate::metrics::get().cache("listing", "hit");
                }
                return Ok(listing.clone());
            }
            if let Some((listing, at)) = self.stored_listing(key).await {
                let listing = Arc::new(listing);
                *guard = Some((at, listing.clone()));
                if self.inner.clock.since(at) >= self.inner.opts.listing_ttl {
                    crate::metrics::get().cache("listing", "stored-stale");
                    self.revalidate(key.clone(), slot.clone());
                } else {
                    crate::metrics::get().cache("listing", "stored");
                }
                return Ok(listing);
            }
            crate::metrics::get().cache("listing", "miss");
            let listing = Arc::new(self.load(key).await?);
            let now = self.inner.clock.now();
            self.store_listing(key, &listing);
            *guard = Some((now, listing.clone()));
            Ok(listing)
        })
    }

    /// Reloads a stale listing in a task of its own (one at a time per folder). Until it is
    /// done, and forever if Google keeps failing, requests get the cached listing: a warm
    /// folder never waits on Google, and an outage never empties a folder.
    fn revalidate(&self, key: FolderKey, slot: Slot) {
        if !self.inner.revalidating.lock().insert(key.clone()) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            // Cleared however the task ends (a panic included): a folder left marked would
            // never be revalidated again.
            let _unmark = scopeguard::guard(key.clone(), |key| {
                let mut marked = this.inner.revalidating.lock();
                marked.remove(&key);
            });
            let result = this.load(&key).await;
            match result {
                Ok(listing) => {
                    this.store_listing(&key, &listing);
                    let mut guard = slot.lock().await;
                    *guard = Some((this.inner.clock.now(), Arc::new(listing)));
                    tracing::debug!(folder = ?key, "listing revalidated");
                }
                Err(e) => {
                    tracing::warn!(folder = ?key, "could not refresh a listing, serving the cached one: {e}");
                }
            }
        });
    }

    /// A folder's listing if it is static or cached, fresh and not locked by a reload.
    fn listing_in_memory(&self, key: &FolderKey) -> Option<Arc<Listing>> {
        if let Some(listing) = self.static_listing(key) {
            return Some(Arc::new(listing));
        }
        let slot = self.inner.folders.lock().get(key)?.clone();
        let guard = slot.try_lock().ok()?;
        let (at, listing) = guard.as_ref()?;
        (self.inner.clock.since(*at) < self.inner.opts.listing_ttl).then(|| listing.clone())
    }

    async fn load(&self, key: &FolderKey) -> Result<Listing, CatalogError> {
        let lib = &self.inner.google.library;
        Ok(match key {
            FolderKey::Root | FolderKey::Media | FolderKey::Feature => {
                self.static_listing(key).expect("a static folder")
            }
            FolderKey::Uploads => {
                let mut ids: Vec<(chrono::DateTime<chrono::Utc>, String)> = self
                    .inner
                    .opts
                    .store
                    .uploads()
                    .await
                    .into_iter()
                    .filter(|u| u.path.starts_with("/upload/"))
                    .map(|u| (u.uploaded_at, u.item_id))
                    .collect();
                ids.sort();
                let ids: Vec<String> = ids.into_iter().map(|(_, id)| id).collect();
                let mut items = Vec::new();
                if !ids.is_empty() {
                    for found in lib.batch_get(&ids).await? {
                        match found {
                            Ok(item) => items.push(item),
                            // Deleted in the Google Photos app since.
                            Err(status) => {
                                tracing::debug!("an uploaded item is gone: {}", status.message)
                            }
                        }
                    }
                }
                self.files(items)
            }
            FolderKey::Favorites => self.files(
                lib.search(serde_json::json!({
                    "filters": {"featureFilter": {"includedFeatures": ["FAVORITES"]}}
                }))
                .await?,
            ),
            FolderKey::SharedAlbums => match lib.list_shared_albums().await {
                Ok(albums) => self.album_dirs(albums, FolderKey::SharedAlbum),
                // No grantable scope allows this call since 2025: Google answers 403,
                // "insufficient authentication scopes" or plain PERMISSION_DENIED.
                Err(GoogleError::PermissionDenied(_) | GoogleError::InsufficientScopes) => {
                    if !SHARED_ALBUMS_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        tracing::warn!(
                            "Google no longer lets apps list shared albums (sharedAlbums.list \
                             answers 403 since the March 2025 Photos API change), so \
                             /shared-album stays empty. Shared photos can be reached by \
                             picking them with the Picker API."
                        );
                    }
                    Listing::new(Vec::new())
                }
                Err(e) => return Err(e.into()),
            },
            FolderKey::SharedAlbum(id) => self.files(lib.album_items(id).await?),
            FolderKey::Years(view) => {
                let buckets = self.date_buckets(*view).await?;
                let mut years: Vec<i32> = buckets.keys().map(DateBucket::year).collect();
                years.dedup();
                Listing::new(
                    years
                        .into_iter()
                        .map(|y| {
                            let key = match view {
                                DateView::Year => FolderKey::Dated(DateBucket::Year(y)),
                                _ => FolderKey::YearBuckets(*view, y),
                            };
                            Listed::Dir {
                                name: format!("{y:04}"),
                                key,
                            }
                        })
                        .collect(),
                )
            }
            FolderKey::YearBuckets(view, year) => {
                let buckets = self.date_buckets(*view).await?;
                Listing::new(
                    buckets
                        .keys()
                        .filter(|b| b.year() == *year)
                        .map(|b| Listed::Dir {
                            name: b.name(),
                            key: FolderKey::Dated(*b),
                        })
                        .collect(),
                )
            }
            FolderKey::Dated(bucket) => {
                let view = match bucket {
                    DateBucket::Year(_) => DateView::Year,
                    DateBucket::Month(..) => DateView::Month,
                    DateBucket::Day(..) => DateView::Day,
                };
                let mut buckets = self.date_buckets(view).await?;
                let items = buckets.remove(bucket).unwrap_or_default();
                self.listing_of(items)
            }
            FolderKey::Albums => self.album_dirs(lib.list_albums().await?, FolderKey::Album),
            FolderKey::Album(id) => self.files(lib.album_items(id).await?),
            FolderKey::MediaAll => self.files(lib.list_media_items().await?),
            FolderKey::Picked => self.picked_root_listing().await,
            FolderKey::PickedSet(set) => self.picked_set_listing(set).await?,
        })
    }

    /// One folder per album, named by the naming rules.
    fn album_dirs(&self, albums: Vec<Album>, key: fn(String) -> FolderKey) -> Listing {
        let named: Vec<naming::Named> = albums
            .iter()
            .map(|a| naming::Named {
                id: &a.id,
                name: &a.title,
                mime: None,
            })
            .collect();
        let names = naming::folder_names(&named);
        Listing::new(
            albums
                .into_iter()
                .zip(names)
                .map(|(a, name)| Listed::Dir {
                    name,
                    key: key(a.id),
                })
                .collect(),
        )
    }

    /// The whole library (the `/media/all` listing) grouped by calendar date in the
    /// configured time zone. Items without a creation time are in no date folder.
    async fn date_buckets(
        &self,
        view: DateView,
    ) -> Result<std::collections::BTreeMap<DateBucket, Vec<Arc<MediaItem>>>, CatalogError> {
        let all = self.listing(&FolderKey::MediaAll).await?;
        let tz = self.inner.opts.timezone;
        let mut buckets: std::collections::BTreeMap<DateBucket, Vec<Arc<MediaItem>>> =
            Default::default();
        for entry in &all.entries {
            if let Listed::File { item, .. } = entry
                && let Some(created) = item.media_metadata.creation_time
            {
                let local = created.with_timezone(&tz).date_naive();
                buckets
                    .entry(DateBucket::of(view, local))
                    .or_default()
                    .push(item.clone());
            }
        }
        Ok(buckets)
    }

    /// Builds a listing of files, remembering each item as the freshest copy seen.
    fn files(&self, items: Vec<MediaItem>) -> Listing {
        self.listing_of(items.into_iter().map(Arc::new).collect())
    }

    fn listing_of(&self, items: Vec<Arc<MediaItem>>) -> Listing {
        self.listing_fetched_at(items, self.inner.clock.now())
    }

    /// A listing of `items` whose URLs were fetched `at` (catalog clock).
    fn listing_fetched_at(&self, items: Vec<Arc<MediaItem>>, at: Instant) -> Listing {
        let items: Vec<Arc<MediaItem>> = items
            .into_iter()
            .filter(|item| {
                let failed = item.video_state() == VideoState::Failed;
                if failed {
                    tracing::debug!(item = %item.id, "skipping a video Google failed to process");
                }
                !failed
            })
            .collect();
        self.remember(&items, at);
        self.note_states(&items, at);
        let named: Vec<naming::Named> = items
            .iter()
            .map(|i| naming::Named {
                id: &i.id,
                name: &i.filename,
                mime: Some(&i.mime_type),
            })
            .collect();
        let names = naming::folder_names(&named);
        Listing::new(
            items
                .into_iter()
                .zip(names)
                .map(|(item, name)| Listed::File { name, item })
                .collect(),
        )
    }

    async fn size_of(&self, item: &Arc<MediaItem>) -> Result<u64, CatalogError> {
        Ok(self.sizes_of(&[item]).await?[&item.id])
    }

    /// Sizes of `items`, probing the unknown ones with bounded concurrency. Fails as a whole
    /// if any probe fails.
    async fn sizes_of(
        &self,
        items: &[&Arc<MediaItem>],
    ) -> Result<HashMap<String, u64>, CatalogError> {
        let mut sizes = HashMap::with_capacity(items.len());
        let mut missing = Vec::new();
        {
            let known = self.inner.sizes.lock();
            for item in items {
                match known.get(&item.id) {
                    Some(size) => {
                        sizes.insert(item.id.clone(), *size);
                    }
                    None => missing.push(item.id.clone()),
                }
            }
        }
        let metrics = crate::metrics::get();
        metrics
            .cache
            .get_or_create(&crate::metrics::CacheLabels {
                cache: "size".into(),
                result: "hit".into(),
            })
            .inc_by(sizes.len() as u64);
        metrics
            .cache
            .get_or_create(&crate::metrics::CacheLabels {
                cache: "size".into(),
                result: "miss".into(),
            })
            .inc_by(missing.len() as u64);
        // The futures are built before they enter the stream: a closure inside the stream's
        // type would make the compiler's Send inference fail (rust-lang/rust#64552). Each
        // starts (or joins) its probe only when the stream polls it: a probe is a task of its
        // own, so starting them all here would send every probe at once, past
        // `probe_concurrency`, and past a quota gate that the first answers close.
        let probes: Vec<_> = missing
            .into_iter()
            .map(|id| {
                let this = self.clone();
                async move {
                    let size = this.shared_probe(&id).await?;
                    Ok::<_, CatalogError>((id, size))
                }
            })
            .collect();
        let probed: Vec<(String, u64)> = futures::stream::iter(probes)
            .buffer_unordered(self.inner.opts.probe_concurrency.max(1))
            .try_collect()
            .await?;
        let by_id: HashMap<&str, &Arc<MediaItem>> =
            items.iter().map(|i| (i.id.as_str(), *i)).collect();
        self.inner.opts.store.put_items(
            probed
                .iter()
                .filter_map(|(id, size)| by_id.get(id.as_str()).map(|i| item_meta(i, *size)))
                .collect(),
        );
        let mut known = self.inner.sizes.lock();
        for (id, size) in probed {
            known.insert(id.clone(), size);
            sizes.insert(id, size);
        }
        Ok(sizes)
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
                this.inner.sizes.lock().insert(key.clone(), size);
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

    async fn probe(&self, id: &str) -> Result<u64, CatalogError> {
        if let Some((set, item)) = picked::split_picked_id(id) {
            return self.picked_probe(set, item).await;
        }
        self.media_gate()?;
        // Never `=dv` of a video Google processes: what the host answers then is unverified.
        self.ensure_ready(id).await?;
        let content = &self.inner.google.content;
        self.with_url(id, |url| async move { content.probe_size(&url).await })
            .await
    }
}

impl Catalog {
    /// The listings of the folders whose content never changes and costs no Google call.
    fn static_listing(&self, key: &FolderKey) -> Option<Listing> {
        let mut listing = static_listing(key)?;
        if *key == FolderKey::Root && self.inner.opts.uploads {
            let mut entries = std::mem::take(&mut listing.entries);
            entries.push(Listed::Dir {
                name: "upload".to_string(),
                key: FolderKey::Uploads,
            });
            listing = Listing::new(entries);
        }
        Some(listing)
    }
}

/// Where a new file goes (see [`Catalog::upload_dir`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadDir {
    Album(String),
    NoAlbum,
}

/// What the store remembers of an item.
fn item_meta(item: &MediaItem, size: u64) -> store::ItemMeta {
    let dim = |v: &Option<String>| v.as_deref().and_then(|v| v.parse().ok());
    store::ItemMeta {
        id: item.id.clone(),
        size,
        mime_type: item.mime_type.clone(),
        filename: item.filename.clone(),
        creation_time: item.media_metadata.creation_time,
        width: dim(&item.media_metadata.width),
        height: dim(&item.media_metadata.height),
    }
}

/// A listing as the store keeps it: the names already chosen, and each item as Google sent it
/// (its download URL included, which stays usable while it is young).
#[derive(serde::Serialize, serde::Deserialize)]
enum StoredEntry {
    File { name: String, item: MediaItem },
    Dir { name: String, album: String },
}

/// The store's name for a folder loaded from Google; None for folders built from others
/// (date views) or from nothing (static folders).
fn store_key(key: &FolderKey) -> Option<String> {
    Some(match key {
        FolderKey::Albums => "albums".into(),
        FolderKey::Album(id) => format!("album:{id}"),
        FolderKey::SharedAlbums => "shared-albums".into(),
        FolderKey::SharedAlbum(id) => format!("shared-album:{id}"),
        FolderKey::Favorites => "favorites".into(),
        FolderKey::MediaAll => "media-all".into(),
        _ => return None,
    })
}

/// The fixed folders, the same for every library.
fn static_listing(key: &FolderKey) -> Option<Listing> {
    let dir = |name: &str, key: FolderKey| Listed::Dir {
        name: name.to_string(),
        key,
    };
    Some(match key {
        FolderKey::Root => Listing::new(vec![
            dir("album", FolderKey::Albums),
            dir("feature", FolderKey::Feature),
            dir("media", FolderKey::Media),
            dir(picked::PICKED_ROOT, FolderKey::Picked),
            dir("shared-album", FolderKey::SharedAlbums),
        ]),
        FolderKey::Media => Listing::new(vec![
            dir("all", FolderKey::MediaAll),
            dir("by-day", FolderKey::Years(DateView::Day)),
            dir("by-month", FolderKey::Years(DateView::Month)),
            dir("by-year", FolderKey::Years(DateView::Year)),
        ]),
        FolderKey::Feature => Listing::new(vec![dir("favorites", FolderKey::Favorites)]),
        _ => return None,
    })
}

enum Resolved {
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
