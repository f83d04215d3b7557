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
//!
//! Waiting out the window only helps when other uploads are on their way. Every PUT holds a
//! [`Ticket`] from the moment it starts receiving its body until it hands its item over (or
//! fails), so with `close_early` a batch is created as soon as no ticket is outstanding: a
//! client copying one file at a time (Finder) never waits for the window, while the parallel
//! transfers of `rclone copy` still share calls. The window bounds the wait for a slow one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

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

/// Uploads on their way to the batcher.
#[derive(Default)]
struct Coming {
    count: AtomicUsize,
    changed: Notify,
}

/// Held by a PUT while it may still produce an item (see the module docs).
pub struct Ticket {
    coming: Arc<Coming>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.coming.count.fetch_sub(1, Ordering::SeqCst);
        self.coming.changed.notify_one();
    }
}

/// How batches are formed.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    /// The longest a batch waits for more items after its first.
    pub window: Duration,
    /// A batch closes with this many items (capped at Google's 50).
    pub max_items: usize,
    /// Close a batch as soon as no other upload is on its way.
    pub close_early: bool,
}

/// Hands finished uploads to the batching task. Cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::UnboundedSender<Job>,
    coming: Arc<Coming>,
}

impl Batcher {
    /// Starts the batching task on the current runtime.
    pub fn start(library: LibraryClient, policy: BatchPolicy) -> Batcher {
        let (tx, rx) = mpsc::unbounded_channel();
        let coming = Arc::new(Coming::default());
        tokio::spawn(run(library, rx, coming.clone(), policy));
        Batcher { tx, coming }
    }

    /// Announces an upload that may produce an item; hold the ticket until [`Batcher::create`]
    /// (or drop it when the upload fails).
    pub fn ticket(&self) -> Ticket {
        self.coming.count.fetch_add(1, Ordering::SeqCst);
        Ticket {
            coming: self.coming.clone(),
        }
    }

    /// Creates `item` (in `album`, if given) in the next batch and waits for its result.
    pub async fn create(
        &self,
        ticket: Ticket,
        album: Option<String>,
        item: NewItem,
    ) -> Result<MediaItem, CreateError> {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(Job { album, item, reply });
        // Only now: the batch must not close between the ticket's end and the job's arrival.
        drop(ticket);
        sent.map_err(|_| CreateError::Stopped)?;
        rx.await.unwrap_or(Err(CreateError::Stopped))
    }
}

async fn run(
    library: LibraryClient,
    mut rx: mpsc::UnboundedReceiver<Job>,
    coming: Arc<Coming>,
    policy: BatchPolicy,
) {
    let max_items = policy.max_items.clamp(1, BATCH_CREATE_MAX);
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let deadline = tokio::time::Instant::now() + policy.window;
        while jobs.len() < max_items {
            if let Ok(job) = rx.try_recv() {
                jobs.push(job);
                continue;
            }
            if policy.close_early && coming.count.load(Ordering::SeqCst) == 0 {
                break;
            }
            tokio::select! {
                job = rx.recv() => match job {
                    Some(job) => jobs.push(job),
                    None => break,
                },
                _ = coming.changed.notified() => {}
                _ = tokio::time::sleep_until(deadline) => break,
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
