//! Videos Google is still processing.
//!
//! Google transcodes a newly uploaded video before it serves it: for seconds to minutes its
//! `mediaMetadata.video.status` is `PROCESSING` (Picker: `videoMetadata.processingStatus`) and
//! its `=dv` URL serves nothing. Hiding such a video until it is READY would make a file vanish
//! right after its PUT answered 201 (rclone reports "object not found", Finder and Explorer
//! show the copied file disappear), so the tree shows it at once and says "not yet" only where
//! the bytes are asked for:
//! - a listing shows a processing video with the size this server uploaded (the store records
//!   every upload with its size and item id). One whose size is not known (uploaded by another
//!   installation minutes ago, or picked) is left out of listings, with one log line: a file
//!   without a size, or with 0 bytes, would be read as empty. A request for it by name still
//!   finds it, and is answered as below;
//! - a GET answers 503 with `Retry-After` ([`RETRY_AFTER`]) and the reason, without asking the
//!   content host for anything; HEAD and PROPFIND answer normally with the uploaded size;
//! - whenever a request meets processing videos (a GET or stat of one, a listing holding
//!   them), their status is asked again with mediaItems.batchGet: every processing video whose
//!   status is due goes into one call per 50 ids, and nothing is called when none is due, so
//!   a client polling a processing file costs one call per interval, not one per request.
//!   The interval is [`RECHECK_INTERVAL`] at first and grows with the time the video has been
//!   processing (a sixth of it, at most [`RECHECK_MAX`]): a video stuck in processing for
//!   days, which happens, costs about a hundred calls a day however often a client lists its
//!   folder, not a day's quota. Once Google says READY the item is served like any other:
//!   its fresh URL is remembered, its size is probed on `=dv` (a transcode: another size than
//!   the upload), and every listing that holds it shows that size at once, without waiting
//!   for the listing to expire. Picked items are not known to batchGet: their set's session is
//!   listed again instead (see `picked`).

use parking_lot::{Mutex, MutexGuard};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::picked::split_picked_id;
use super::{Catalog, CatalogError};
use crate::google::library::BATCH_GET_MAX;
use crate::google::{MediaItem, VideoState};

/// A processing video's status is asked for again at most this often (per video; all the
/// videos due share one batchGet call per 50).
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(10);

/// The longest interval between two questions about one video, however long it processes.
pub const RECHECK_MAX: Duration = Duration::from_secs(15 * 60);

/// The least a GET of a processing video is told to wait (`Retry-After`): longer than
/// [`RECHECK_INTERVAL`], so that the retry finds the status asked for again. A video that has
/// been processing for long is told the time until its status is asked for again.
pub const RETRY_AFTER: Duration = Duration::from_secs(15);

/// What is known of one video that was not READY when seen.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// The last state Google stated.
    state: VideoState,
    /// When Google stated it (or when asking last failed).
    at: Instant,
    /// When the video was first seen processing.
    since: Instant,
}

impl Seen {
    /// When its status is to be asked for again.
    fn due_at(&self) -> Instant {
        let processing = self.at.saturating_duration_since(self.since);
        self.at + (processing / 6).clamp(RECHECK_INTERVAL, RECHECK_MAX)
    }

    fn is_due(&self, now: Instant) -> bool {
        self.state == VideoState::Processing && now >= self.due_at()
    }
}

/// The per-catalog state of this module: what Google said of each video and when, so a status
/// is asked again only when due, and the sizes of uploads to show meanwhile.
#[derive(Default)]
pub(super) struct ProcessingState {
    /// Videos seen not READY, by id: the last state Google stated and when (catalog clock).
    /// Entries stay once READY, so an older copy of the item (a listing fetched before) cannot
    /// make the video look processing again.
    seen: Mutex<HashMap<String, Seen>>,
    /// One status check at a time: requests arriving meanwhile wait for its answer.
    check: tokio::sync::Mutex<()>,
    /// The size of each item this server uploaded, by item id.
    uploaded: Mutex<HashMap<String, u64>>,
    /// Items whose absence from listings was logged (once per item and process).
    logged: Mutex<HashSet<String>>,
}

impl ProcessingState {
    fn seen(&self) -> MutexGuard<'_, HashMap<String, Seen>> {
        self.seen.lock()
    }
}

/// The answer for the bytes of a video Google is still processing, when nothing tells how
/// long it has been processing (picked items).
pub(super) fn not_yet() -> CatalogError {
    CatalogError::Processing {
        retry_after: RETRY_AFTER,
    }
}

impl Catalog {
    /// Remembers that this server uploaded `size` bytes as item `id`: what listings show for
    /// it while Google processes it.
    pub fn note_upload(&self, id: &str, size: u64) {
        self.inner
            .processing
            .uploaded
            .lock()
            .insert(id.to_string(), size);
    }

    /// The size this server uploaded item `id` with, if it did.
    pub(super) fn uploaded_size(&self, id: &str) -> Option<u64> {
        self.inner.processing.uploaded.lock().get(id).copied()
    }

    /// Notes the states of `items` as Google stated them at `at` (a listing's fetch time):
    /// the videos not READY are followed; a later statement replaces an earlier one, except
    /// that nothing goes back to PROCESSING (a view built from an older listing passes old
    /// copies again, and Google never goes back either).
    pub(super) fn note_states(&self, items: &[Arc<MediaItem>], at: Instant) {
        let mut seen = self.inner.processing.seen();
        for item in items {
            let state = item.video_state();
            match seen.get_mut(&item.id) {
                Some(known) => {
                    let regress =
                        known.state != VideoState::Processing && state == VideoState::Processing;
                    if known.at <= at && !regress {
                        known.state = state;
                        known.at = at;
                    }
                }
                None if state != VideoState::Ready => {
                    seen.insert(
                        item.id.clone(),
                        Seen {
                            state,
                            at,
                            since: at,
                        },
                    );
                }
                None => {}
            }
        }
    }

    /// The answer for the bytes of item `id` while Google processes it: come back when its
    /// status is asked for again, and not sooner than [`RETRY_AFTER`].
    pub(super) fn not_yet_for(&self, id: &str) -> CatalogError {
        let now = self.inner.clock.now();
        let wait = self
            .inner
            .processing
            .seen()
            .get(id)
            .map_or(RETRY_AFTER, |known| {
                known
                    .due_at()
                    .saturating_duration_since(now)
                    .max(RETRY_AFTER)
            });
        CatalogError::Processing {
            retry_after: Duration::from_secs(wait.as_secs_f64().ceil() as u64),
        }
    }

    /// The state of `item` as last stated by Google: the freshest statement seen, else what
    /// the copy at hand says (picked items: always the copy, read from the store).
    pub(super) fn state_of(&self, item: &MediaItem) -> VideoState {
        self.inner
            .processing
            .seen()
            .get(&item.id)
            .map_or_else(|| item.video_state(), |known| known.state)
    }

    /// The state of `item` after asking Google again if it was processing and its status is
    /// due (see [`Self::recheck`]).
    pub(super) async fn current_state(&self, item: &Arc<MediaItem>) -> VideoState {
        if split_picked_id(&item.id).is_some() {
            return item.video_state();
        }
        let state = self.state_of(item);
        if state != VideoState::Processing {
            return state;
        }
        // A copy fetched by id (a byte node) was never noted: follow it from now on.
        self.note_if_unseen(item);
        self.recheck(&[item.id.as_str()]).await;
        self.state_of(item)
    }

    fn note_if_unseen(&self, item: &MediaItem) {
        let now = self.inner.clock.now();
        self.inner
            .processing
            .seen()
            .entry(item.id.clone())
            .or_insert(Seen {
                state: item.video_state(),
                at: now,
                since: now,
            });
    }

    /// Asks Google again (mediaItems.batchGet, one call per 50 ids) for the status of every
    /// processing video whose status is due (see [`Seen::due_at`]), if one of `ids` is among
    /// them; otherwise calls nothing. A failed call is logged and the old status kept
    /// (a listing does not fail for it), and the videos are not asked for again before the
    /// interval has passed.
    pub(super) async fn recheck(&self, ids: &[&str]) {
        if !self.any_due(ids) {
            return;
        }
        let _one_at_a_time = self.inner.processing.check.lock().await;
        // The check this one waited for may have answered for these ids already.
        if !self.any_due(ids) {
            return;
        }
        let due: Vec<String> = {
            let now = self.inner.clock.now();
            self.inner
                .processing
                .seen()
                .iter()
                .filter(|(id, known)| known.is_due(now) && split_picked_id(id).is_none())
                .map(|(id, _)| id.clone())
                .collect()
        };
        for chunk in due.chunks(BATCH_GET_MAX) {
            tracing::debug!(
                count = chunk.len(),
                "asking Google whether videos it was processing are ready (mediaItems.batchGet)"
            );
            let sent = self.inner.clock.now();
            match self.inner.google.library.batch_get(chunk).await {
                Ok(results) => {
                    let mut fresh = Vec::new();
                    {
                        let mut seen = self.inner.processing.seen();
                        for (id, result) in chunk.iter().zip(results) {
                            let state = match result {
                                Ok(item) => {
                                    let state = item.video_state();
                                    fresh.push(Arc::new(item));
                                    state
                                }
                                // 3 INVALID_ARGUMENT, 5 NOT_FOUND: deleted in the app since.
                                Err(status) if status.code == 3 || status.code == 5 => {
                                    tracing::info!(item = %id, "a video Google was processing is gone: {}", status.message);
                                    VideoState::Failed
                                }
                                Err(status) => {
                                    tracing::warn!(item = %id, "Google did not say whether a video is ready: {} (code {})", status.message, status.code);
                                    VideoState::Processing
                                }
                            };
                            match state {
                                VideoState::Ready => tracing::info!(item = %id,
                                    "Google finished processing a video: it is served from now on"),
                                VideoState::Failed => tracing::info!(item = %id,
                                    "Google failed to process a video: it will never be served"),
                                VideoState::Processing => {}
                            }
                            if let Some(known) = seen.get_mut(id) {
                                known.state = state;
                                known.at = sent;
                            }
                        }
                    }
                    // New download URLs, exactly as a URL refresh would remember them.
                    self.remember(&fresh, sent);
                }
                Err(e) => {
                    tracing::warn!(
                        count = chunk.len(),
                        "could not ask Google whether videos it was processing are ready \
                         (asking again in {} s): {e}",
                        RECHECK_INTERVAL.as_secs()
                    );
                    let mut seen = self.inner.processing.seen();
                    for id in chunk {
                        if let Some(known) = seen.get_mut(id) {
                            known.at = sent;
                        }
                    }
                }
            }
        }
    }

    fn any_due(&self, ids: &[&str]) -> bool {
        let now = self.inner.clock.now();
        let seen = self.inner.processing.seen();
        ids.iter()
            .any(|id| seen.get(*id).is_some_and(|known| known.is_due(now)))
    }

    /// Logs, once per item, that a processing video of unknown size is left out of listings.
    pub(super) fn log_unlisted(&self, item: &MediaItem) {
        if self.inner.processing.logged.lock().insert(item.id.clone()) {
            tracing::info!(
                item = %item.id,
                filename = %item.filename,
                "not listing a video Google is still processing: its size is unknown until \
                 Google serves it (it was not uploaded through this server); it is listed once \
                 Google has finished, and a download asked for meanwhile is answered 503"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_grows_with_the_time_a_video_has_been_processing() {
        let since = Instant::now();
        let seen = |processing: u64| Seen {
            state: VideoState::Processing,
            at: since + Duration::from_secs(processing),
            since,
        };
        let wait = |s: Seen| s.due_at() - s.at;
        assert_eq!(wait(seen(0)), RECHECK_INTERVAL);
        assert_eq!(wait(seen(20)), RECHECK_INTERVAL);
        assert_eq!(wait(seen(600)), Duration::from_secs(100));
        assert_eq!(wait(seen(86_400)), RECHECK_MAX);
        let s = seen(60);
        assert!(!s.is_due(s.at + Duration::from_secs(9)));
        assert!(s.is_due(s.at + RECHECK_INTERVAL));
        let ready = Seen {
            state: VideoState::Ready,
            ..s
        };
        assert!(!ready.is_due(s.at + RECHECK_MAX));
        // A day stuck in processing, polled all day: 126 questions, not 8,640.
        let mut s = seen(0);
        let mut calls = 0;
        while s.at < since + Duration::from_secs(86_400) {
            s.at = s.due_at();
            calls += 1;
        }
        assert!((110..=140).contains(&calls), "{calls}");
    }
}
