//! `/picked/<set>/<file>`: the items the user picked with the Picker API (`gphotos-dav pick`).
//!
//! The picked sets live in the metadata store (written by the `pick` command, possibly while
//! the server runs), so these folders are read from the store on every access instead of being
//! cached: a new set shows up at once and an expired one disappears at once. A set is shown
//! while its session's `expireTime` is in the future (catalog clock); an expired set vanishes
//! from the tree with one log line, and stays in the store for `pick --list` to report.
//!
//! Picked items differ from Library items in three ways that matter here:
//! - their bytes need the OAuth bearer token, so [`FileInfo::bearer_only`] is set and every
//!   policy streams them through this server (a redirect cannot carry the token);
//! - `mediaItems.batchGet` does not know them: a base URL older than the age trusted
//!   ([`UrlAge`], the same as for Library items, and shortened the same way when Google ends
//!   a URL early), or one the content host refused, is replaced by listing the session's items
//!   again, and the new URLs are written back to the store (one listing per set at a time);
//! - they belong to a set: the catalog identifies a picked file as `picked/<set>/<item id>`
//!   ([`picked_id`]), so its size, its ETag and its downloads never mix with a Library item
//!   that has the same id;
//! - a picked video may still be processing (`videoMetadata.processingStatus`): it is left
//!   out of the listing (its size is unknown until Google serves it), a download of it is
//!   answered 503 with Retry-After, and the session is listed again when the set is read and
//!   its status is older than `processing::RECHECK_INTERVAL` (see `processing`).
//!
//! [`FileInfo::bearer_only`]: super::FileInfo::bearer_only
//! [`UrlAge`]: super::urls::UrlAge

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::listings::{CachedEntry, Listing};
use super::processing::{RECHECK_INTERVAL, not_yet};
use super::store::PickedSet;
use super::{Catalog, CatalogError, FolderKey, naming};
use crate::google::content::Download;
use crate::google::picker::PickedMediaItem;
use crate::google::types::{MediaMetadata, VideoMetadata};
use crate::google::{GoogleError, MediaItem, VideoState};

/// The name of the root folder that holds the picked sets.
pub const PICKED_ROOT: &str = "picked";
/// Longest set name accepted by `pick --name`.
pub const MAX_SET_NAME: usize = 100;
const ID_PREFIX: &str = "picked/";

/// A picked item as a set's `items_json` stores it: Google's item, and when its base URL was
/// fetched (it serves bytes for 60 minutes from then).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoredItem {
    #[serde(flatten)]
    pub item: PickedMediaItem,
    pub url_fetched_at: DateTime<Utc>,
}

/// The `items_json` of a set whose items were all listed at `fetched_at`.
pub fn encode_items(items: &[PickedMediaItem], fetched_at: DateTime<Utc>) -> String {
    let stored: Vec<StoredItem> = items
        .iter()
        .map(|item| StoredItem {
            item: item.clone(),
            url_fetched_at: fetched_at,
        })
        .collect();
    serde_json::to_string(&stored).unwrap_or_else(|_| "[]".into())
}

/// The items of a set's `items_json`.
pub fn decode_items(json: &str) -> Result<Vec<StoredItem>, serde_json::Error> {
    serde_json::from_str(json)
}

/// Why a set name is refused, if it is: it becomes a folder name and part of file ids.
pub fn check_set_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("a picked set needs a name".into());
    }
    if name.chars().count() > MAX_SET_NAME {
        return Err(format!(
            "a picked set's name has at most {MAX_SET_NAME} characters"
        ));
    }
    if name == "." || name == ".." || name.contains('/') || name.chars().any(char::is_control) {
        return Err(format!(
            "{name:?} cannot name a folder: use no '/', no control characters, not . or .."
        ));
    }
    Ok(())
}

/// How the catalog identifies item `id` of picked set `set`.
pub fn picked_id(set: &str, id: &str) -> String {
    format!("{ID_PREFIX}{set}/{id}")
}

/// The set and item id of a [`picked_id`].
pub fn split_picked_id(id: &str) -> Option<(&str, &str)> {
    id.strip_prefix(ID_PREFIX)?.rsplit_once('/')
}

/// The id a file's name carries as `{ID}`: Google's item id, also for picked files.
pub(super) fn naming_id(id: &str) -> &str {
    split_picked_id(id).map_or(id, |(_, item)| item)
}

/// Per-catalog state of this module: what must outlive one request (a set's expiry logged
/// once, one URL refresh per set at a time).
#[derive(Default)]
pub(super) struct PickedState {
    /// Sets whose expiry was logged (`name` + session id), so it is logged once.
    expired_logged: Mutex<HashSet<String>>,
    /// One URL refresh (a session listing) at a time per set.
    refreshing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Catalog {
    fn now_utc(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from(self.inner.clock.system_now())
    }

    /// The stored sets whose session has not expired; logs each newly expired one once.
    async fn live_sets(&self) -> Vec<PickedSet> {
        let now = self.now_utc();
        let mut live = Vec::new();
        for set in self.store().picked_sets().await {
            if set.expire_time > now {
                live.push(set);
                continue;
            }
            let key = format!("{}\u{0}{}", set.name, set.session_id);
            if self.inner.picked.expired_logged.lock().insert(key) {
                tracing::info!(
                    set = %set.name,
                    expired = %set.expire_time.to_rfc3339(),
                    "picked set expired: Google no longer serves its items, so /{PICKED_ROOT}/{} \
                     is gone (pick again, or import it next time before it expires)",
                    set.name
                );
            }
        }
        live
    }

    async fn live_set(&self, name: &str) -> Result<PickedSet, CatalogError> {
        self.live_sets()
            .await
            .into_iter()
            .find(|s| s.name == name)
            .ok_or(CatalogError::NotFound)
    }

    /// `/picked`: one folder per live set.
    pub(super) async fn picked_root_listing(&self) -> Listing {
        let sets = self.live_sets().await;
        let named: Vec<naming::Named> = sets
            .iter()
            .map(|s| naming::Named {
                id: &s.session_id,
                name: &s.name,
                mime: None,
            })
            .collect();
        let names = naming::folder_names(&named);
        Listing::new(
            sets.iter()
                .zip(names)
                .map(|(s, name)| CachedEntry::dir(name, FolderKey::PickedSet(s.name.clone())))
                .collect(),
        )
    }

    /// `/picked/<set>`: the set's items, named by the naming rules.
    pub(super) async fn picked_set_listing(&self, set: &str) -> Result<Listing, CatalogError> {
        let mut stored = self.live_set(set).await?;
        let mut items = decode_items(&stored.items_json).map_err(|e| {
            CatalogError::Google(GoogleError::Protocol(format!(
                "the stored picked set {set:?} is unreadable: {e}"
            )))
        })?;
        // A video Google was processing when the session was listed: list it again (one call
        // for the whole set, at most every RECHECK_INTERVAL) to learn whether it is ready.
        if let Some(due) = items.iter().find(|s| self.processing_due(s)) {
            let id = due.item.id.clone();
            match self.picked_item(set, &id, None).await {
                Ok(_) => {
                    stored = self.live_set(set).await?;
                    items = decode_items(&stored.items_json).unwrap_or(items);
                }
                Err(e) => tracing::warn!(
                    set,
                    "could not ask Google whether picked videos are ready; listing the set as stored: {e}"
                ),
            }
        }
        let items: Vec<Arc<MediaItem>> = items
            .iter()
            .map(|s| Arc::new(as_media_item(set, &s.item)))
            .collect();
        let named: Vec<naming::Named> = items
            .iter()
            .map(|i| naming::Named {
                id: naming_id(&i.id),
                name: &i.filename,
                mime: Some(&i.mime_type),
            })
            .collect();
        let names = naming::folder_names(&named);
        Ok(Listing::new(
            items
                .into_iter()
                .zip(names)
                .map(|(item, name)| CachedEntry::file(name, item))
                .collect(),
        ))
    }

    /// The size of picked item `id` of `set`, probed with the bearer token.
    pub(super) async fn picked_probe(&self, set: &str, id: &str) -> Result<u64, CatalogError> {
        let content = &self.inner.google.content;
        self.with_picked_url(set, id, None, |url| async move {
            content.probe_size_bearer(&url).await
        })
        .await
    }

    /// Starts downloading picked item `id` of `set` at byte `start` (to `last`, or the end),
    /// with the bearer token.
    pub(super) async fn picked_download(
        &self,
        set: &str,
        id: &str,
        start: u64,
        last: Option<u64>,
    ) -> Result<Download, CatalogError> {
        let content = &self.inner.google.content;
        self.with_picked_url(set, id, None, |url| async move {
            content.download_range_bearer(&url, start, last).await
        })
        .await
    }

    /// Runs `op` on picked item `id`'s download URL (the content client adds the access
    /// token, refreshed once if refused) and, when the content
    /// host refuses that URL as expired, once more on a fresh one (see [`Self::picked_item`]).
    /// `variant` asks for a size variant instead of the item's own bytes (see `variants`).
    pub(super) async fn with_picked_url<T, F, Fut>(
        &self,
        set: &str,
        id: &str,
        variant: Option<&str>,
        op: F,
    ) -> Result<T, CatalogError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, GoogleError>>,
    {
        let stored = self.picked_item(set, id, None).await?;
        // Never `=dv` of a video Google is processing (the session was just listed again
        // if its status was due).
        match VideoState::of(stored.item.processing_status()) {
            VideoState::Ready => {}
            VideoState::Processing if variant.is_none() => return Err(not_yet()),
            VideoState::Processing => {}
            VideoState::Failed => return Err(CatalogError::NotFound),
        }
        let url = |item: &PickedMediaItem| {
            super::content::content_url(&item.media_file.base_url, item.download_url(), variant)
        };
        match op(url(&stored.item)).await {
            Err(GoogleError::UrlExpired) => {
                self.inner.url_age.refused_at(self.url_age_of(&stored));
                let refused = Some(stored.item.media_file.base_url.as_str());
                let fresh = self.picked_item(set, id, refused).await?;
                Ok(op(url(&fresh.item)).await?)
            }
            other => Ok(other?),
        }
    }

    /// How old a stored item's base URL is (catalog clock).
    fn url_age_of(&self, stored: &StoredItem) -> std::time::Duration {
        (self.now_utc() - stored.url_fetched_at)
            .to_std()
            .unwrap_or_default()
    }

    /// Picked item `id` of `set` with a base URL young enough to use, and when it was fetched:
    /// the stored one, or, when it is older than the age trusted ([`UrlAge::max`]) or was
    /// `refused`, a fresh one from listing the session's items again (batchGet does not know
    /// picked items).
    ///
    /// [`UrlAge::max`]: super::urls::UrlAge::max
    async fn picked_item(
        &self,
        set: &str,
        id: &str,
        refused: Option<&str>,
    ) -> Result<StoredItem, CatalogError> {
        let max_age = self.inner.url_age.max();
        let usable = |stored: &PickedSet| -> Result<Option<StoredItem>, CatalogError> {
            let items = decode_items(&stored.items_json).map_err(|e| {
                CatalogError::Google(GoogleError::Protocol(format!(
                    "the stored picked set {set:?} is unreadable: {e}"
                )))
            })?;
            let found = items
                .into_iter()
                .find(|s| s.item.id == id)
                .ok_or(CatalogError::NotFound)?;
            let fresh = self.url_age_of(&found) < max_age
                && refused.is_none_or(|r| r != found.item.media_file.base_url)
                && !self.processing_due(&found);
            Ok(fresh.then_some(found))
        };
        if let Some(item) = usable(&self.live_set(set).await?)? {
            return Ok(item);
        }
        let lock = self
            .inner
            .picked
            .refreshing
            .lock()
            .entry(set.to_string())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        // Another request may have refreshed the set while this one waited.
        let stored = self.live_set(set).await?;
        if let Some(item) = usable(&stored)? {
            return Ok(item);
        }
        tracing::debug!(
            set,
            "picked download URLs old or refused; listing the session's items again"
        );
        let sent = self.now_utc();
        let items = match self
            .inner
            .google
            .picker
            .list_items(&stored.session_id)
            .await
        {
            Ok(items) => items,
            // The session ended at Google (deleted, or expired early).
            Err(GoogleError::NotFound(_)) => return Err(CatalogError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let found = items
            .iter()
            .find(|i| i.id == id)
            .cloned()
            .ok_or(CatalogError::NotFound)?;
        let updated = PickedSet {
            items_json: encode_items(&items, sent),
            ..stored
        };
        if let Err(e) = self.store().put_picked_set(updated).await {
            tracing::warn!(set, "could not store the picked set's fresh URLs: {e}");
        }
        Ok(StoredItem {
            item: found,
            url_fetched_at: sent,
        })
    }
}

impl Catalog {
    /// Whether `stored` is a video that was processing when its session was listed, longer
    /// than [`RECHECK_INTERVAL`] ago: the session is due to be listed again.
    fn processing_due(&self, stored: &StoredItem) -> bool {
        let age = (self.now_utc() - stored.url_fetched_at)
            .to_std()
            .unwrap_or_default();
        stored.item.is_video()
            && VideoState::of(stored.item.processing_status()) == VideoState::Processing
            && age >= RECHECK_INTERVAL
    }
}

/// A picked item as the tree's listings hold it (id: [`picked_id`]).
fn as_media_item(set: &str, item: &PickedMediaItem) -> MediaItem {
    MediaItem {
        id: picked_id(set, &item.id),
        base_url: item.media_file.base_url.clone(),
        mime_type: item.media_file.mime_type.clone(),
        filename: item.media_file.filename.clone(),
        media_metadata: MediaMetadata {
            creation_time: item.create_time,
            width: None,
            height: None,
            video: item.is_video().then(|| VideoMetadata {
                status: item.processing_status().map(str::to_owned),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_ids_round_trip() {
        let id = picked_id("Summer 2024", "AF1Qxyz");
        assert_eq!(split_picked_id(&id), Some(("Summer 2024", "AF1Qxyz")));
        assert_eq!(naming_id(&id), "AF1Qxyz");
        assert_eq!(naming_id("AF1Qabc"), "AF1Qabc");
        assert_eq!(split_picked_id("AF1Qabc"), None);
    }

    #[test]
    fn set_names() {
        assert!(check_set_name("Summer 2024").is_ok());
        assert!(check_set_name("Été — 東京").is_ok());
        for bad in ["", "  ", ".", "..", "a/b", "tab\there"] {
            assert!(check_set_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_set_name(&"x".repeat(MAX_SET_NAME + 1)).is_err());
    }
}
