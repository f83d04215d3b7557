//! Reaching an item's bytes on the content host, for a download or a size probe: refused at
//! once while the media gate is closed or Google still processes the video, on a download
//! URL young enough, and retried once on a fresh URL when the content host refuses one.

use std::sync::Arc;

use super::{Catalog, CatalogError, picked};
use crate::google::content::Download;
use crate::google::{GoogleError, MediaItem, VideoState};

impl Catalog {
    /// Starts downloading item `id` at byte `start`. An old download URL is refreshed first;
    /// one the content host refuses (expired) is refreshed and tried once more.
    pub async fn download(&self, id: &str, start: u64) -> Result<Download, CatalogError> {
        self.download_range(id, start, None).await
    }

    /// Downloads bytes `start..=last` of item `id` (to the end when `last` is `None`), as
    /// [`Catalog::download`]: the content cache's requests for the blocks it misses.
    pub(super) async fn download_range(
        &self,
        id: &str,
        start: u64,
        last: Option<u64>,
    ) -> Result<Download, CatalogError> {
        if let Some((set, item)) = picked::split_picked_id(id) {
            return self.picked_download(set, item, start, last).await;
        }
        self.media_gate()?;
        self.ensure_ready(id).await?;
        let content = &self.inner.google.content;
        self.with_url(id, None, |url| async move {
            content.download_range(&url, start, last).await
        })
        .await
    }

    /// Fails while the media gate is closed (the day's media requests spent, or a pause after
    /// the content host's 429): the bytes cannot come, so no API call is spent refreshing
    /// the item's URL or status first.
    pub(super) fn media_gate(&self) -> Result<(), CatalogError> {
        Ok(self
            .inner
            .google
            .quota
            .check_bucket(crate::google::quota::Bucket::Media)?)
    }

    /// Fails with [`CatalogError::Processing`] while Google processes item `id` (after asking
    /// again when due), and with NotFound when it failed to: the bytes are not asked for then.
    pub(super) async fn ensure_ready(&self, id: &str) -> Result<Arc<MediaItem>, CatalogError> {
        let item = self.fresh_item(id).await?;
        self.ready(id, item).await
    }

    /// `item` when Google serves its bytes; a video Google is still processing is
    /// [`CatalogError::Processing`], a failed one is not found.
    pub(super) async fn ready(
        &self,
        id: &str,
        item: Arc<MediaItem>,
    ) -> Result<Arc<MediaItem>, CatalogError> {
        match self.current_state(&item).await {
            VideoState::Ready => Ok(item),
            VideoState::Processing => Err(self.not_yet_for(id)),
            VideoState::Failed => Err(CatalogError::NotFound),
        }
    }

    /// Runs `op` on item `id`'s download URL (refreshed first when old) and, when the content
    /// host refuses that URL as expired, once more on a fresh one. `variant` (`w256-h256-c`)
    /// asks for a size variant instead of the item's own bytes (see `variants`).
    pub(super) async fn with_url<T, F, Fut>(
        &self,
        id: &str,
        variant: Option<&str>,
        op: F,
    ) -> Result<T, CatalogError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, GoogleError>>,
    {
        let item = self.fresh_item(id).await?;
        match op(content_url(&item.base_url, item.download_url(), variant)).await {
            Err(GoogleError::UrlExpired) => {
                let item = self.refresh_refused(id, &item).await?;
                self.refused_while_processing(&item)?;
                Ok(op(content_url(&item.base_url, item.download_url(), variant)).await?)
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
}

/// The URL of an item's bytes: its `download` URL (`=d`, `=dv`), or with a size `variant`
/// its base URL and `=variant`.
pub(super) fn content_url(base_url: &str, download: String, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{base_url}={v}"),
        None => download,
    }
}
