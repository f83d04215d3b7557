//! The listing cache: each folder's `Listing`, loaded once and kept for `listing_ttl`.
//!
//! Concurrent loads of one folder wait for each other instead of all calling Google. A stale
//! listing is answered at once and fetched again in the background (`Catalog::revalidate`),
//! so a warm folder never waits on Google and an outage never empties a folder. Behind the
//! memory tier is the store's listings, one row per entry: a restarted server answers from it
//! and revalidates the same way, and each load or revalidation writes back only the entries
//! that changed (`store/listings.rs`; the rows' item JSON is a format a new release must keep
//! reading). A write that changes folders forgets their listings in both tiers.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::{HashTable, hash_table};

use super::store::{ListingRow, PendingRow};
use super::{Catalog, CatalogError, FolderKey, naming, picked};
use crate::google::{MediaItem, VideoState};

/// A folder's contents as cached: its children before sizes are known, found by name. Kept
/// per folder for `listing_ttl`, so walking a path or listing a folder again costs no call;
/// sizes are added only when a folder is shown (`Catalog::list`), and only there probed.
///
/// A listing of `/media/all` holds every item of the library, and each date view and album
/// another listing over the same items, so what a listing adds per entry is kept small: the
/// entries own their names, and the lookups by name, NFC name and id are tables of indexes
/// into them (hashed on the entry's own strings), not maps holding copies of the strings.
#[derive(Debug)]
pub(super) struct Listing {
    pub(super) entries: Vec<CachedEntry>,
    /// The hasher of the three tables (random per listing, like `HashMap`'s).
    hasher: RandomState,
    by_name: HashTable<u32>,
    /// Entries whose name is not in NFC, by their NFC form, for clients (macOS) that send
    /// names in NFD; a name already in NFC is its own NFC form, found in `by_name`.
    by_nfc: HashTable<u32>,
    /// Files by the `{ID}` a name may carry, album folders by their album id.
    by_id: HashTable<u32>,
}

/// One child in a [`Listing`], under the name the naming rules chose: a subfolder's key, or
/// the Google item of a file (its download URL and status included), from which the file a
/// client is shown ([`super::Entry`]) is made once its size is known.
///
/// Every listing holds one per child, `/media/all` and each date view one per item of the
/// library, so an entry is kept at 32 bytes: names are `Box<str>` (no spare capacity) and a
/// folder's key, rarer and larger, is boxed.
#[derive(Debug)]
pub(super) enum CachedEntry {
    Dir {
        name: Box<str>,
        key: Box<FolderKey>,
    },
    File {
        name: Box<str>,
        item: Arc<MediaItem>,
    },
}

impl CachedEntry {
    /// A subfolder `key` shown as `name`.
    pub(super) fn dir(name: impl Into<Box<str>>, key: FolderKey) -> Self {
        CachedEntry::Dir {
            name: name.into(),
            key: Box::new(key),
        }
    }

    /// A file of `item` shown as `name`.
    pub(super) fn file(name: impl Into<Box<str>>, item: Arc<MediaItem>) -> Self {
        CachedEntry::File {
            name: name.into(),
            item,
        }
    }
}

impl CachedEntry {
    /// The name the entry is shown under.
    pub(super) fn name(&self) -> &str {
        match self {
            CachedEntry::Dir { name, .. } | CachedEntry::File { name, .. } => name,
        }
    }

    /// The id `{ID}` in a name finds the entry by: a file's item id (a picked item's own id),
    /// an album folder's album id.
    fn id(&self) -> Option<&str> {
        match self {
            CachedEntry::Dir { key, .. } => match &**key {
                FolderKey::Album(id) => Some(id),
                _ => None,
            },
            CachedEntry::File { item, .. } => Some(picked::naming_id(&item.id)),
        }
    }
}

impl Listing {
    pub(super) fn new(entries: Vec<CachedEntry>) -> Self {
        let hasher = RandomState::new();
        let hash = |s: &str| hasher.hash_one(s);
        let mut by_name = HashTable::with_capacity(entries.len());
        let (mut by_nfc, mut by_id) = (HashTable::new(), HashTable::new());
        for (i, e) in entries.iter().enumerate() {
            let at = u32::try_from(i).expect("fewer than 4 billion entries in a folder");
            let name_of = |j: &u32| entries[*j as usize].name();
            // The last entry of a name or id wins, as inserting into a map would.
            let name = e.name();
            match by_name.entry(hash(name), |j| name_of(j) == name, |j| hash(name_of(j))) {
                hash_table::Entry::Occupied(mut o) => *o.get_mut() = at,
                hash_table::Entry::Vacant(v) => {
                    v.insert(at);
                }
            }
            if let Some(id) = e.id() {
                let id_of = |j: &u32| entries[*j as usize].id().unwrap_or_default();
                match by_id.entry(hash(id), |j| id_of(j) == id, |j| hash(id_of(j))) {
                    hash_table::Entry::Occupied(mut o) => *o.get_mut() = at,
                    hash_table::Entry::Vacant(v) => {
                        v.insert(at);
                    }
                }
            }
            // The first entry of an NFC form wins.
            if !naming::is_nfc(name) {
                let nfc = naming::nfc(name);
                let nfc_of = |j: &u32| naming::nfc(name_of(j));
                if by_nfc.find(hash(&nfc), |j| nfc_of(j) == nfc).is_none() {
                    by_nfc.insert_unique(hash(&nfc), at, |j| hash(&nfc_of(j)));
                }
            }
        }
        Listing {
            entries,
            hasher,
            by_name,
            by_nfc,
            by_id,
        }
    }

    /// Finds an entry by its exact name, else by its NFC form (exact matches win, so names
    /// that differ only by normalisation both stay reachable; among the others, the first
    /// entry of that NFC form), else by the `{ID}` it carries.
    pub(super) fn lookup(&self, name: &str) -> Option<&CachedEntry> {
        let hash = |s: &str| self.hasher.hash_one(s);
        let name_of = |j: &u32| self.entries[*j as usize].name();
        let exact = |table: &HashTable<u32>, key: &str| {
            table.find(hash(key), |j| name_of(j) == key).copied()
        };
        let idx = exact(&self.by_name, name)
            .or_else(|| {
                let nfc = naming::nfc(name);
                // An entry whose name is this NFC form, or whose name's NFC form it is.
                let in_nfc = exact(&self.by_name, &nfc);
                let other = self
                    .by_nfc
                    .find(hash(&nfc), |j| naming::nfc(name_of(j)) == nfc)
                    .copied();
                in_nfc.into_iter().chain(other).min()
            })
            .or_else(|| {
                let id = naming::id_from_name(name)?;
                let id_of = |j: &u32| self.entries[*j as usize].id();
                self.by_id.find(hash(id), |j| id_of(j) == Some(id)).copied()
            })?;
        self.entries.get(idx as usize)
    }
}

/// One folder's place in the cache: its listing and when it was fetched (catalog clock), or
/// nothing yet. The lock is held while the folder loads, so concurrent loads wait for it.
pub(super) type Slot = Arc<tokio::sync::Mutex<Option<(Instant, Arc<Listing>)>>>;

impl Catalog {
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

    /// Forgets the listings of `albums` (their members changed: items added or taken out),
    /// in memory and in the store. The library itself did not change, so `/media/all` and
    /// the date views are kept.
    pub fn forget_album_members(&self, albums: &[&str]) {
        self.forget_folders(
            |key| matches!(key, FolderKey::Album(id) if albums.contains(&id.as_str())),
        );
        for id in albums {
            if let Some(key) = store_key(&FolderKey::Album(id.to_string())) {
                self.inner.opts.store.forget_listing(key);
            }
        }
    }

    /// Forgets the album list (after an album was created).
    pub fn forget_albums(&self) {
        self.forget_folders(|key| *key == FolderKey::Albums);
        if let Some(key) = store_key(&FolderKey::Albums) {
            self.inner.opts.store.forget_listing(key);
        }
    }

    /// Drops the cached listings of the folders `changed` picks (memory only).
    fn forget_folders(&self, changed: impl Fn(&FolderKey) -> bool) {
        self.inner.folders.lock().retain(|key, _| !changed(key));
    }

    /// The listing of a folder, from the cache while fresh. Concurrent loads of one folder
    /// wait for each other instead of all calling Google.
    ///
    /// Boxed with an explicit `Send` because loading a date folder loads `/media/all`
    /// through this same function.
    pub(super) fn listing<'a>(
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
                    crate::metrics::get().cache("listing", "stale", 1, self.library());
                    self.revalidate(key.clone(), slot.clone());
                } else {
                    crate::metrics::get().cache("listing", "hit", 1, self.library());
                }
                return Ok(listing.clone());
            }
            if let Some((listing, at)) = self.stored_listing(key).await {
                let listing = Arc::new(listing);
                *guard = Some((at, listing.clone()));
                if self.inner.clock.since(at) >= self.inner.opts.listing_ttl {
                    crate::metrics::get().cache("listing", "stored-stale", 1, self.library());
                    self.revalidate(key.clone(), slot.clone());
                } else {
                    crate::metrics::get().cache("listing", "stored", 1, self.library());
                }
                return Ok(listing);
            }
            crate::metrics::get().cache("listing", "miss", 1, self.library());
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
    pub(super) fn listing_in_memory(&self, key: &FolderKey) -> Option<Arc<Listing>> {
        if let Some(listing) = self.static_listing(key) {
            return Some(Arc::new(listing));
        }
        let slot = self.inner.folders.lock().get(key)?.clone();
        let guard = slot.try_lock().ok()?;
        let (at, listing) = guard.as_ref()?;
        (self.inner.clock.since(*at) < self.inner.opts.listing_ttl).then(|| listing.clone())
    }

    /// Builds a listing of files, remembering each item as the freshest copy seen.
    pub(super) fn files(&self, items: Vec<MediaItem>) -> Listing {
        let at = self.inner.clock.now();
        let items = items.into_iter().map(|i| self.intake(i, at)).collect();
        self.listing_fetched_at(items, at)
    }

    /// A listing of `items` fetched just now.
    pub(super) fn listing_of(&self, items: Vec<Arc<MediaItem>>) -> Listing {
        self.listing_fetched_at(items, self.inner.clock.now())
    }

    /// A listing of `items` whose URLs were fetched `at` (catalog clock).
    pub(super) fn listing_fetched_at(&self, items: Vec<Arc<MediaItem>>, at: Instant) -> Listing {
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
                .map(|(item, name)| CachedEntry::file(name, item))
                .collect(),
        )
    }

    /// A folder's listing as the store keeps it, with the catalog-clock instant it was
    /// fetched at. None when not stored or unreadable.
    ///
    /// Each item's download URL is remembered with the time *it* was fetched (the row's
    /// `url_at`), not the listing's: a revalidation does not rewrite an unchanged row, so a
    /// URL may be older than the listing. `catalog/urls.rs` then uses it while it is young (a
    /// restart soon after a load downloads with no call) and replaces it through batchGet once
    /// old, the items of one write going together, 50 a call.
    async fn stored_listing(&self, key: &FolderKey) -> Option<(Listing, Instant)> {
        let name = store_key(key)?;
        let stored = self.inner.opts.store.listing(&name).await?;
        let unix_now = self.inner.clock.unix_now();
        let age = Duration::from_secs(unix_now.saturating_sub(stored.fetched_at));
        // On some platforms (Windows, macOS) an `Instant` cannot go back past the machine's
        // boot, so a listing stored before a reboot may be older than one can express. It is
        // still a listing: serve it as one just past its TTL, revalidated in the background
        // like any stale one, rather than refetched from Google before answering.
        let now = self.inner.clock.now();
        let at = now
            .checked_sub(age)
            .or_else(|| now.checked_sub(self.inner.opts.listing_ttl))?;
        let mut items = Vec::new();
        // The items by the time their URLs were fetched, in listing order.
        let mut by_url_time: std::collections::BTreeMap<u64, Vec<Arc<MediaItem>>> =
            Default::default();
        let mut listed = Vec::with_capacity(stored.rows.len());
        for row in stored.rows {
            match row.file {
                Some(file) => {
                    // Shared with the copy already known when unchanged (see `intake`),
                    // its URL taken only if younger than the one known.
                    let url_at =
                        now.checked_sub(Duration::from_secs(unix_now.saturating_sub(file.url_at)));
                    let item = match file.to_item(&row.key) {
                        Ok(item) => match url_at {
                            Some(url_at) => self.intake(item, url_at),
                            None => Arc::new(item),
                        },
                        Err(e) => {
                            tracing::warn!(folder = %name, item = %row.key, "ignoring a stored listing whose item does not parse: {e}");
                            return None;
                        }
                    };
                    items.push(item.clone());
                    by_url_time
                        .entry(file.url_at)
                        .or_default()
                        .push(item.clone());
                    listed.push(CachedEntry::file(row.name, item));
                }
                None => listed.push(CachedEntry::dir(
                    row.name,
                    match key {
                        FolderKey::SharedAlbums => FolderKey::SharedAlbum(row.key),
                        _ => FolderKey::Album(row.key),
                    },
                )),
            }
        }
        for (url_at, items) in by_url_time {
            let url_age = Duration::from_secs(unix_now.saturating_sub(url_at));
            // A URL older than the clock can express is long dead: left unknown, it is
            // fetched when needed.
            if let Some(fetched) = now.checked_sub(url_age) {
                self.remember(&items, fetched);
            }
        }
        // The items' states were checked against Google's at the listing's fetch.
        self.note_states(&items, at);
        tracing::debug!(folder = %name, age_secs = age.as_secs(), "listing loaded from the store");
        Some((Listing::new(listed), at))
    }

    /// Writes a listing just fetched from Google to the store (in the background): the store
    /// writes only the entries that changed since it last stored this folder.
    fn store_listing(&self, key: &FolderKey, listing: &Listing) {
        let Some(name) = store_key(key) else {
            return;
        };
        // Each file's row is made on the store's thread as it is compared (`PendingRow`):
        // only the names and the items' shared handles are copied here.
        let rows: Vec<PendingRow> = listing
            .entries
            .iter()
            .map(|e| match e {
                CachedEntry::File { name, item } => PendingRow::File {
                    name: name.to_string(),
                    item: item.clone(),
                    url: self.fresher_url(item),
                },
                CachedEntry::Dir { name, key } => PendingRow::from(ListingRow::album(
                    name,
                    match &**key {
                        FolderKey::Album(id) | FolderKey::SharedAlbum(id) => id,
                        _ => "",
                    },
                )),
            })
            .collect();
        self.inner
            .opts
            .store
            .put_listing(name, rows, self.inner.clock.unix_now());
    }
}

/// The store's name for a folder loaded from Google (the `listings` table's `folder`; on disk
/// too, so never renamed); None for folders built from others
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::google::types::MediaMetadata;

    fn file(name: &str, id: &str) -> CachedEntry {
        CachedEntry::file(
            name,
            Arc::new(MediaItem {
                id: id.to_string(),
                base_url: String::new(),
                mime_type: "image/jpeg".into(),
                filename: name.to_string(),
                media_metadata: MediaMetadata::default(),
            }),
        )
    }

    fn name_of(entry: Option<&CachedEntry>) -> Option<&str> {
        entry.map(CachedEntry::name)
    }

    /// The tables of indexes find what the maps of copied names found: exact names first,
    /// then NFC forms (the first entry of a form), then the `{ID}` a name carries.
    #[test]
    fn lookup_by_name_nfc_form_and_id() {
        let (nfc, nfd) = ("caf\u{e9}.jpg", "cafe\u{301}.jpg");
        let listing = Listing::new(vec![
            file("a.jpg", "ID-A"),
            file(nfd, "ID-NFD"),
            file(nfc, "ID-NFC"),
            // Only in NFD.
            file("zo\u{308}e.jpg", "ID-Z"),
            file("\u{212b}.jpg", "ID-ANGSTROM"),
            file("A\u{30a}.jpg", "ID-A-RING"),
            CachedEntry::dir("Trip", FolderKey::Album("ALBUM-1".into())),
        ]);
        assert_eq!(name_of(listing.lookup("a.jpg")), Some("a.jpg"));
        // Both spellings stay reachable by their exact names.
        assert_eq!(name_of(listing.lookup(nfc)), Some(nfc));
        assert_eq!(name_of(listing.lookup(nfd)), Some(nfd));
        // A name only stored in NFD is found by its NFC form.
        assert_eq!(
            name_of(listing.lookup("z\u{f6}e.jpg")),
            Some("zo\u{308}e.jpg")
        );
        // Two names of one NFC form (U+212B ANGSTROM SIGN and A + ring), neither in NFC:
        // the first entry of the form is found by the NFC spelling.
        assert_eq!(name_of(listing.lookup("\u{c5}.jpg")), Some("\u{212b}.jpg"));
        assert_eq!(name_of(listing.lookup("x {ID-A}.jpg")), Some("a.jpg"));
        assert_eq!(name_of(listing.lookup("x {ALBUM-1}")), Some("Trip"));
        assert_eq!(name_of(listing.lookup("x {NOPE}.jpg")), None);
        assert_eq!(name_of(listing.lookup("b.jpg")), None);
    }
}
