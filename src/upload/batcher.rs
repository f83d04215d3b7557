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
//!
//! The collecting itself ([`Collector`]) knows nothing of batchCreate: the album changes of
//! `organise` (batchAddMediaItems, batchRemoveMediaItems) are batched by the same code.

use std::collections::BTreeMap;
use std::future::Future;
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
    collector: Collector<Option<String>, NewItem, Result<MediaItem, CreateError>>,
}

impl Batcher {
    /// Starts the batching task on the current runtime.
    pub fn start(library: LibraryClient, policy: BatchPolicy) -> Batcher {
        let policy = BatchPolicy {
            max_items: policy.max_items.clamp(1, BATCH_CREATE_MAX),
            ..policy
        };
        let collector = Collector::start(policy, move |album: Option<String>, items| {
            let library = library.clone();
            async move { create_group(&library, album, items).await }
        });
        Batcher { collector }
    }

    /// Announces an upload that may produce an item; hold the ticket until [`Batcher::create`]
    /// (or drop it when the upload fails).
    pub fn ticket(&self) -> Ticket {
        self.collector.ticket()
    }

    /// Creates `item` (in `album`, if given) in the next batch and waits for its result.
    pub async fn create(
        &self,
        ticket: Ticket,
        album: Option<String>,
        item: NewItem,
    ) -> Result<MediaItem, CreateError> {
        self.collector
            .submit(ticket, album, item)
            .await
            .unwrap_or(Err(CreateError::Stopped))
    }
}

/// One batchCreate (at most 50 items, which the collector guarantees) and each item's result.
async fn create_group(
    library: &LibraryClient,
    album: Option<String>,
    items: Vec<NewItem>,
) -> Vec<Result<MediaItem, CreateError>> {
    tracing::info!(
        items = items.len(),
        album = album.as_deref().unwrap_or("-"),
        "creating uploaded items (one batchCreate)"
    );
    match library.batch_create(album.as_deref(), &items).await {
        Ok(results) => results
            .into_iter()
            .map(|result| {
                result.map_err(|s| CreateError::Item {
                    code: s.code,
                    message: s.message,
                })
            })
            .collect(),
        Err(e) => items
            .iter()
            .map(|_| Err(CreateError::Call(e.clone())))
            .collect(),
    }
}

/// One request's part of a batch: its group (an album), its item, where its result goes.
struct Job<K, I, R> {
    key: K,
    item: I,
    reply: oneshot::Sender<R>,
}

/// The collecting half every batched write shares (item creation here, album additions and
/// removals in `organise`): requests hand in an item under a key (the album), one task
/// gathers them for up to the policy's window, closing early once no ticket is outstanding
/// (see the module docs), and sends each key's items in calls of at most `max_items`,
/// handing every request the result for its own item. Written once, so that every kind of
/// batch waits, closes and answers the same way.
pub(crate) struct Collector<K, I, R> {
    tx: mpsc::UnboundedSender<Job<K, I, R>>,
    coming: Arc<Coming>,
}

impl<K, I, R> Clone for Collector<K, I, R> {
    fn clone(&self) -> Self {
        Collector {
            tx: self.tx.clone(),
            coming: self.coming.clone(),
        }
    }
}

impl<K, I, R> Collector<K, I, R>
where
    K: Ord + Clone + Send + 'static,
    I: Send + 'static,
    R: Send + 'static,
{
    /// Starts the collecting task on the current runtime. `send` makes one call of a group's
    /// items (at most `policy.max_items` of one key) and answers one result per item, in
    /// their order.
    pub(crate) fn start<F, Fut>(policy: BatchPolicy, send: F) -> Self
    where
        F: Fn(K, Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<R>> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let coming = Arc::new(Coming::default());
        tokio::spawn(run(rx, coming.clone(), policy, send));
        Collector { tx, coming }
    }

    /// Announces a request that may hand in an item soon (see [`Ticket`]).
    pub(crate) fn ticket(&self) -> Ticket {
        self.coming.count.fetch_add(1, Ordering::SeqCst);
        Ticket {
            coming: self.coming.clone(),
        }
    }

    /// Hands in `item` under `key` and waits for its result (None: the task is gone, the
    /// server is shutting down).
    pub(crate) async fn submit(&self, ticket: Ticket, key: K, item: I) -> Option<R> {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(Job { key, item, reply });
        // Only now: the batch must not close between the ticket's end and the job's arrival.
        drop(ticket);
        sent.ok()?;
        rx.await.ok()
    }
}

async fn run<K, I, R, F, Fut>(
    mut rx: mpsc::UnboundedReceiver<Job<K, I, R>>,
    coming: Arc<Coming>,
    policy: BatchPolicy,
    send: F,
) where
    K: Ord + Clone,
    F: Fn(K, Vec<I>) -> Fut,
    Fut: Future<Output = Vec<R>>,
{
    let max_items = policy.max_items.max(1);
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
        // One call per key, in arrival order, in chunks of at most `max_items`.
        let mut groups: BTreeMap<K, Vec<Job<K, I, R>>> = BTreeMap::new();
        for job in jobs {
            groups.entry(job.key.clone()).or_default().push(job);
        }
        for (key, mut group) in groups {
            while !group.is_empty() {
                let rest = group.split_off(group.len().min(max_items));
                let (items, replies): (Vec<I>, Vec<oneshot::Sender<R>>) =
                    group.into_iter().map(|j| (j.item, j.reply)).unzip();
                let results = send(key.clone(), items).await;
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
                group = rest;
            }
        }
    }
}
