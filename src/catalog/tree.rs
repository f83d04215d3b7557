//! The tree and its keys: which folders exist ([`FolderKey`]), the date views' buckets, the
//! fixed folders, and what each folder holds, loaded from Google (or the store's upload
//! records) into a `Listing`. Caching those listings is `listings.rs`'s job.

use std::sync::Arc;

use super::listings::{CachedEntry, Listing};
use super::{Catalog, CatalogError, naming, picked};
use crate::google::{Album, GoogleError, MediaItem};

/// Names no folder at the tree's root may take: the server answers `/d/<id>/<name>` itself
/// (signed download links, `server::signed`) and `/_/...` (the gallery's thumbnails, assets
/// and API, `server::web`), so a root folder `d` or `_` would be unreachable. Root folders are
/// fixed names (`album`, `media`, ...); a test checks none of them is reserved.
pub const RESERVED_ROOT_NAMES: &[&str] = &["d", "_"];

/// Whether the "shared albums are gone" warning was logged (once per process).
static SHARED_ALBUMS_WARNED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// A folder of the tree, identified independently of its (possibly renamed) path: the key of
/// the listing cache and, for folders loaded from Google, of the store's `listings` table, so
/// an album renamed in Google Photos keeps what was learned about it.
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

/// The three date views (`/media/by-year`, `by-month`, `by-day`): one [`FolderKey`] each for
/// the list of years and for a year's months or days, so the views share one bucketing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DateView {
    Year,
    Month,
    Day,
}

/// A calendar year, month or day in the configured time zone: the folder of a date view that
/// holds files. A key of its own so that the items of `/media/all` are bucketed once per view.
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

impl Catalog {
    /// The folder shown at `/`.
    pub(super) fn root(&self) -> FolderKey {
        match &self.inner.opts.root_album {
            Some(id) => FolderKey::Album(id.clone()),
            None => FolderKey::Root,
        }
    }

    /// What the folder `key` holds, loaded now (from Google, the store's upload and picked
    /// records, or nothing for the fixed folders). No cache here: see `listings.rs`.
    pub(super) async fn load(&self, key: &FolderKey) -> Result<Listing, CatalogError> {
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
            FolderKey::SharedAlbum(id) => {
                let at = self.inner.clock.now();
                let items = lib.album_items_into(id, |i| self.intake(i, at)).await?;
                self.listing_fetched_at(items, at)
            }
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
                            CachedEntry::dir(format!("{y:04}"), key)
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
                        .map(|b| CachedEntry::dir(b.name(), FolderKey::Dated(*b)))
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
            FolderKey::Album(id) => {
                let at = self.inner.clock.now();
                let items = lib.album_items_into(id, |i| self.intake(i, at)).await?;
                self.listing_fetched_at(items, at)
            }
            // Concurrent date ranges once the library is longer than a few pages.
            FolderKey::MediaAll => {
                let at = self.inner.clock.now();
                let items = lib
                    .list_library_into(self.inner.opts.media_all, |i| self.intake(i, at))
                    .await?;
                self.listing_fetched_at(items, at)
            }
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
                .map(|(a, name)| CachedEntry::dir(name, key(a.id)))
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
            if let CachedEntry::File { item, .. } = entry
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

    /// The listings of the folders whose content never changes and costs no Google call.
    pub(super) fn static_listing(&self, key: &FolderKey) -> Option<Listing> {
        let mut listing = static_listing(key)?;
        if *key == FolderKey::Root && self.inner.opts.uploads {
            let mut entries = std::mem::take(&mut listing.entries);
            entries.push(CachedEntry::dir("upload".to_string(), FolderKey::Uploads));
            listing = Listing::new(entries);
        }
        Some(listing)
    }
}

/// The fixed folders, the same for every library.
fn static_listing(key: &FolderKey) -> Option<Listing> {
    let dir = |name: &str, key: FolderKey| CachedEntry::dir(name.to_string(), key);
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
