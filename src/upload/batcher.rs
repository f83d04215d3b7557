//! Batching item creation: uploads that finish close together share one
//! `mediaItems:batchCreate`.
//!
//! Google's upload quota counts calls, and a folder copy is many PUTs in quick succession:
//! one batchCreate per file would spend the daily quota fifty times faster than needed. So a
//! finished upload (bytes at Google, upload token in hand) is handed to the batcher, which
//! waits up to `window` after the first pending item for more to arrive (or until
//! `max_items` are pending), then creates them with one call per album (at most 50 items a
//! call, Google's limit) and hands every waiting PUT *its own* result: the created item or
//! the reason Google gave for that item. A PUT therefore answers only once its item exists.
//!
//! Items arriving while a batch is being created wait for the next batch.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::google::library::{BATCH_CREATE_MAX, NewItem};
use crate::google::{GoogleError, LibraryClient, MediaItem};

/// Why an item was not created.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CreateError {
    /// Google answered the batch, refusing this item.
    #[error("Google refused to create the item (status {code}): {message}")]
    Item { code: i32, message: String },
    /// The whole call failed.
    #[error(transparent)]
    Call(#[from] GoogleError),
    /// The batcher is gone (the server is shutting down).
    #[error("the server is shutting down")]
    Stopped,
}

struct Job {
    album: Option<String>,
    item: NewItem,
    reply: oneshot::Sender<Result<MediaItem, CreateError>>,
}

/// Hands finished uploads to the batching task. Cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::UnboundedSender<Job>,
}

impl Batcher {
    /// Starts the batching task on the current runtime. `max_items` is capped at Google's 50.
    pub fn start(library: LibraryClient, window: Duration, max_items: usize) -> Batcher {
        let (tx, rx) = mpsc::unbounded_channel();
        let max_items = max_items.clamp(1, BATCH_CREATE_MAX);
        tokio::spawn(run(library, rx, window, max_items));
        Batcher { tx }
    }

    /// Creates `item` (in `album`, if given) in the next batch and waits for its result.
    pub async fn create(
        &self,
        album: Option<String>,
        item: NewItem,
    ) -> Result<MediaItem, CreateError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { album, item, reply })
            .map_err(|_| CreateError::Stopped)?;
        rx.await.unwrap_or(Err(CreateError::Stopped))
    }
}

async fn run(
    library: LibraryClient,
    mut rx: mpsc::UnboundedReceiver<Job>,
    window: Duration,
    max_items: usize,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let deadline = tokio::time::Instant::now() + window;
        while jobs.len() < max_items {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(job)) => jobs.push(job),
                Ok(None) | Err(_) => break,
            }
        }
        // One call per album (and one for items without an album), in arrival order.
        let mut groups: BTreeMap<Option<String>, Vec<Job>> = BTreeMap::new();
        for job in jobs {
            groups.entry(job.album.clone()).or_default().push(job);
        }
        for (album, group) in groups {
            create_group(&library, album, group).await;
        }
    }
}

async fn create_group(library: &LibraryClient, album: Option<String>, group: Vec<Job>) {
    let mut group = group;
    while !group.is_empty() {
        let rest = group.split_off(group.len().min(BATCH_CREATE_MAX));
        let items: Vec<NewItem> = group.iter().map(|j| j.item.clone()).collect();
        tracing::info!(
            items = items.len(),
            album = album.as_deref().unwrap_or("-"),
            "creating uploaded items (one batchCreate)"
        );
        match library.batch_create(album.as_deref(), &items).await {
            Ok(results) => {
                for (job, result) in group.into_iter().zip(results) {
                    let _ = job.reply.send(result.map_err(|s| CreateError::Item {
                        code: s.code,
                        message: s.message,
                    }));
                }
            }
            Err(e) => {
                for job in group {
                    let _ = job.reply.send(Err(CreateError::Call(e.clone())));
                }
            }
        }
        group = rest;
    }
}
