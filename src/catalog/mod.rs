//! The tree model: which folders exist, what they hold, and what each file is.
//!
//! ```text
//! /                       root
//! /album/                 one folder per album (albums.list)
//! /album/<title>/<file>   the album's items (mediaItems.search by albumId)
//! /media/                 views of the whole library
//! /media/all/<file>       every item (mediaItems.list)
//! ```
//!
//! A folder's *listing* (names → items) is fetched once and kept for `listing_ttl`; loads of the
//! same folder are coalesced. Sizes are not in the API, so they are probed on the content host
//! (bounded concurrency) and remembered per item. Any failure while loading a folder is an error
//! for the whole folder: a folder that failed to load must never look empty or shorter, or a sync
//! client deletes the user's local copies.

pub mod clock;
pub mod naming;
pub mod urls;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub use clock::Clock;

use futures::{StreamExt, TryStreamExt};

use crate::google::content::Download;
use crate::google::{Google, GoogleError, MediaItem};

/// What can go wrong when resolving a path.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    #[error("no such file or folder")]
    NotFound,
    #[error(transparent)]
    Google(#[from] GoogleError),
}

#[derive(Debug, Clone)]
pub struct CatalogOptions {
    /// How long a folder listing is reused before it is fetched again.
    pub listing_ttl: Duration,
    /// How many size probes run at once.
    pub probe_concurrency: usize,
}

impl Default for CatalogOptions {
    fn default() -> Self {
        CatalogOptions {
            listing_ttl: Duration::from_secs(60),
            probe_concurrency: 8,
        }
    }
}

/// Names no folder at the tree's root may take: the server answers `/d/<id>/<name>` itself
/// (signed download links, `server::signed`), so a root folder `d` would be unreachable. Root
/// folders are fixed names (`album`, `media`, ...); a test checks none of them is reserved.
pub const RESERVED_ROOT_NAMES: &[&str] = &["d"];

/// A folder of the tree, identified independently of its (possibly renamed) path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FolderKey {
    Root,
    Albums,
    Album(String),
    Media,
    MediaAll,
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
                    by_id.insert(item.id.clone(), i);
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

struct Inner {
    google: Google,
    opts: CatalogOptions,
    /// Times for folders: the API has no dates for albums, and virtual folders have none at all.
    started: SystemTime,
    /// Ages of listings and download URLs are measured on this clock.
    clock: Clock,
    /// The freshest copy of each item seen, for its baseUrl (see `urls`).
    urls: urls::Urls,
    /// Sizes learned from the content host, per item id.
    sizes: Mutex<HashMap<String, u64>>,
    folders: Mutex<HashMap<FolderKey, Slot>>,
}

/// The tree over a Google Photos library. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

impl Catalog {
    pub fn new(google: Google, opts: CatalogOptions) -> Self {
        Catalog {
            inner: Arc::new(Inner {
                google,
                opts,
                started: SystemTime::now(),
                clock: Clock::default(),
                urls: urls::Urls::default(),
                sizes: Mutex::new(HashMap::new()),
                folders: Mutex::new(HashMap::new()),
            }),
        }
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
                let size = self.size_of(&item).await?;
                Ok(Node::File(self.file_info(name, &item, size)))
            }
        }
    }

    /// Whether `segments` names a folder (loading only the listings on the way).
    pub async fn is_dir(&self, segments: &[String]) -> Result<bool, CatalogError> {
        Ok(matches!(self.resolve(segments).await?, Resolved::Dir(_)))
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
        let item = self.fresh_item(id).await?;
        match self
            .inner
            .google
            .content
            .download(&item.download_url(), start)
            .await
        {
            Err(GoogleError::UrlExpired) => {
                let item = self.refresh_refused(id, &item).await?;
                Ok(self
                    .inner
                    .google
                    .content
                    .download(&item.download_url(), start)
                    .await?)
            }
            other => Ok(other?),
        }
    }

    /// Drops a remembered size that turned out wrong, so the next listing probes it again.
    pub fn forget_size(&self, id: &str) {
        self.inner.sizes.lock().unwrap().remove(id);
        // Listings embed sizes only when they are read, so nothing else holds the stale value.
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
        let sizes = self.sizes_of(&items).await?;
        Ok(listing
            .entries
            .iter()
            .map(|e| match e {
                Listed::Dir { name, key } => Entry::Dir {
                    name: name.clone(),
                    key: key.clone(),
                    modified: self.inner.started,
                },
                Listed::File { name, item } => {
                    Entry::File(self.file_info(name.clone(), item, sizes[&item.id]))
                }
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
            bearer_only: false,
        }
    }

    async fn resolve(&self, segments: &[String]) -> Result<Resolved, CatalogError> {
        let mut key = FolderKey::Root;
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
    async fn listing(&self, key: &FolderKey) -> Result<Arc<Listing>, CatalogError> {
        let slot = self
            .inner
            .folders
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default()
            .clone();
        let mut guard = slot.lock().await;
        if let Some((at, listing)) = guard.as_ref()
            && self.inner.clock.since(*at) < self.inner.opts.listing_ttl
        {
            return Ok(listing.clone());
        }
        let listing = Arc::new(self.load(key).await?);
        *guard = Some((self.inner.clock.now(), listing.clone()));
        Ok(listing)
    }

    async fn load(&self, key: &FolderKey) -> Result<Listing, CatalogError> {
        let lib = &self.inner.google.library;
        let dir = |name: &str, key: FolderKey| Listed::Dir {
            name: name.to_string(),
            key,
        };
        Ok(match key {
            FolderKey::Root => Listing::new(vec![
                dir("album", FolderKey::Albums),
                dir("media", FolderKey::Media),
            ]),
            FolderKey::Media => Listing::new(vec![dir("all", FolderKey::MediaAll)]),
            FolderKey::Albums => {
                let albums = lib.list_albums().await?;
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
                        .map(|(a, name)| dir(&name, FolderKey::Album(a.id)))
                        .collect(),
                )
            }
            FolderKey::Album(id) => self.files(lib.album_items(id).await?),
            FolderKey::MediaAll => self.files(lib.list_media_items().await?),
        })
    }

    /// Builds a listing of files, remembering each item as the freshest copy seen.
    fn files(&self, items: Vec<MediaItem>) -> Listing {
        let items: Vec<Arc<MediaItem>> = items
            .into_iter()
            .filter(|item| {
                let ready = item.is_ready();
                if !ready {
                    tracing::debug!(item = %item.id, "skipping a video Google is still processing");
                }
                ready
            })
            .map(Arc::new)
            .collect();
        self.remember(&items, self.inner.clock.now());
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
            let known = self.inner.sizes.lock().unwrap();
            for item in items {
                match known.get(&item.id) {
                    Some(size) => {
                        sizes.insert(item.id.clone(), *size);
                    }
                    None => missing.push(item.id.clone()),
                }
            }
        }
        let probed: Vec<(String, u64)> = futures::stream::iter(missing)
            .map(|id| async move {
                let size = self.probe(&id).await?;
                Ok::<_, CatalogError>((id, size))
            })
            .buffer_unordered(self.inner.opts.probe_concurrency.max(1))
            .try_collect()
            .await?;
        let mut known = self.inner.sizes.lock().unwrap();
        for (id, size) in probed {
            known.insert(id.clone(), size);
            sizes.insert(id, size);
        }
        Ok(sizes)
    }

    async fn probe(&self, id: &str) -> Result<u64, CatalogError> {
        let item = self.fresh_item(id).await?;
        let content = &self.inner.google.content;
        match content.probe_size(&item.download_url()).await {
            Err(GoogleError::UrlExpired) => {
                let item = self.refresh_refused(id, &item).await?;
                Ok(content.probe_size(&item.download_url()).await?)
            }
            other => Ok(other?),
        }
    }
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
            },
            &Endpoints {
                api_base: "http://127.0.0.1:9".into(),
                token_url: "http://127.0.0.1:9/token".into(),
                picker_base: "http://127.0.0.1:9".into(),
            },
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
