//! The persistent metadata store: one SQLite file that remembers what Google told us, so a
//! restarted server does not ask again.
//!
//! What it keeps, one file per table:
//! - `items` (items.rs): per media item id, its size in bytes (the API never tells it;
//!   learning it costs a probe of the content host), mime type, filename, creation time and
//!   dimensions;
//! - `listings` and `listing_entries` (listings.rs): the entries of each folder loaded from
//!   Google, one row each, with the time the folder was fetched, so a restart answers PROPFIND
//!   from disk and revalidates in the background; a revalidation writes only the rows that
//!   changed;
//! - `quota` (quota.rs): API calls, download-URL requests and Picker calls per Pacific-time
//!   day (the days Google counts), and whether a daily quota was used up that day (`exhausted`
//!   for the Library API, `media_exhausted` for download URLs: rows of the same table, no new
//!   schema);
//! - `uploads` (uploads.rs), `picked_sets` (picked_sets.rs) (with `imports`): what this
//!   server uploaded and what the user picked;
//! - `content_blocks` (content.rs): the index of the content cache (`catalog/cache`): which
//!   blocks of which item's bytes are on disk, with their checksums and ages.
//!
//! This file holds what they share: the [`Store`] handle, the thread that owns the connection,
//! and opening a file (schema migrations, moving an unusable file aside). The schema itself
//! stays here, in [`MIGRATIONS`], because its versions span tables: one migration may touch
//! several.
//!
//! # Never in the way
//! One thread owns the connection; everyone else sends it jobs. Writes are fire-and-forget
//! ([`Store::submit`]): a request never waits for a disk write. Reads that replace a Google call
//! (a stored listing) are awaited, which is still far cheaper than the call.
//!
//! # Never fatal
//! A store that is missing, corrupt, written by something else, written by a newer version, or
//! that belongs to another Google account/endpoint is moved aside (renamed, never deleted: it
//! could be someone's file) and rebuilt, with a warning. If even that fails the store lives in
//! memory for this run. The worst outcome is a cold cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension};

mod content;
mod items;
mod listings;
mod picked_sets;
mod quota;
mod uploads;

pub use content::StoredBlock;
pub use items::ItemMeta;
pub use listings::{ListingRow, ListingWrite, PendingRow, StoredFile, StoredListing};
pub use picked_sets::PickedSet;
pub use quota::DayUsage;
pub use uploads::Upload;

/// `PRAGMA application_id` of our files ("gPDV"): tells our store from any other SQLite file.
const APPLICATION_ID: i32 = 0x6750_4456;

/// The schema, one migration per version: `MIGRATIONS[v]` takes a store from version `v` to
/// `v + 1`. Released migrations are never edited; a change is a new entry.
const MIGRATIONS: &[&str] = &[
    // 1: what Google told us.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE items (
         id TEXT PRIMARY KEY,
         size INTEGER NOT NULL,
         mime_type TEXT NOT NULL,
         filename TEXT NOT NULL,
         creation_time TEXT,
         width INTEGER,
         height INTEGER
     );
     CREATE TABLE listings (
         folder TEXT PRIMARY KEY,
         fetched_at INTEGER NOT NULL,
         body TEXT NOT NULL
     );
     CREATE TABLE quota (
         day TEXT NOT NULL,
         bucket TEXT NOT NULL,
         used INTEGER NOT NULL,
         PRIMARY KEY (day, bucket)
     );",
    // 2: what this server wrote: uploads, picked sets and their imported copies.
    "CREATE TABLE uploads (
         path TEXT PRIMARY KEY,
         sha256 TEXT NOT NULL,
         size INTEGER NOT NULL,
         item_id TEXT NOT NULL,
         uploaded_at TEXT NOT NULL
     );
     CREATE TABLE picked_sets (
         name TEXT PRIMARY KEY,
         session_id TEXT NOT NULL,
         expire_time TEXT NOT NULL,
         items_json TEXT NOT NULL,
         picked_at TEXT NOT NULL
     );
     CREATE TABLE imports (
         picked_id TEXT PRIMARY KEY,
         item_id TEXT NOT NULL
     );",
    // 3: the index of the content cache (catalog/cache): which blocks of which item's bytes
    // are on disk, their checksums and when they were stored and last read.
    "CREATE TABLE content_blocks (
         entry TEXT NOT NULL,
         item_id TEXT NOT NULL,
         variant TEXT NOT NULL,
         size INTEGER NOT NULL,
         block INTEGER NOT NULL,
         len INTEGER NOT NULL,
         crc32 INTEGER NOT NULL,
         stored_at INTEGER NOT NULL,
         used_at INTEGER NOT NULL,
         PRIMARY KEY (entry, block)
     );",
    // 4: the content cache keeps an entry's blocks in one sparse file (`<content_dir>/<entry>`)
    // instead of a file per block: the rows of the per-block layout name files that are no
    // more read, so that cache starts empty (its directories are removed at start).
    "DELETE FROM content_blocks;",
    // 5: listings as rows, one per entry (listings.rs), so a revalidation writes only what
    // changed. The JSON bodies an earlier release wrote (an array of the catalog's entries:
    // `{"File":{"name":..,"item":{MediaItem}}}` or `{"Dir":{"name":..,"album":id}}`) become
    // rows here, in place, and the column goes: a restart after the upgrade is as warm as
    // before it. A body that does not read as such a listing is dropped with its folder (the
    // earlier release ignored it too: the folder is loaded from Google). The URLs' time is
    // the listing's fetch time, when they were fetched. A table with rowids, not WITHOUT
    // ROWID: its rows are large (an item's JSON and URL), and a WITHOUT ROWID table keeps
    // whole rows in its interior pages too (a /media/all of 100,000 items took 2.2 times the
    // bytes of the JSON body); here rows are packed in insertion order and the primary key's
    // index holds only (folder, key). An item's `mediaMetadata.photo` (camera make, model,
    // exposure: never read) is not kept since this release either, so it goes here too: the
    // first revalidation then finds the migrated rows unchanged.
    "CREATE TABLE listing_entries (
         folder TEXT NOT NULL,
         key TEXT NOT NULL,
         position INTEGER NOT NULL,
         name TEXT NOT NULL,
         item TEXT,
         base_url TEXT,
         url_at INTEGER,
         PRIMARY KEY (folder, key)
     );
     DELETE FROM listings WHERE CASE
         WHEN json_valid(body) AND json_type(body) = 'array' THEN EXISTS (
             SELECT 1 FROM json_each(listings.body) e
             WHERE coalesce(json_extract(e.value, '$.File.item.id'),
                            json_extract(e.value, '$.Dir.album')) IS NULL
                OR coalesce(json_extract(e.value, '$.File.name'),
                            json_extract(e.value, '$.Dir.name')) IS NULL)
         ELSE 1 END;
     INSERT OR IGNORE INTO listing_entries
         (folder, key, position, name, item, base_url, url_at)
     SELECT l.folder,
            coalesce(json_extract(e.value, '$.File.item.id'), json_extract(e.value, '$.Dir.album')),
            e.key * 1048576,
            coalesce(json_extract(e.value, '$.File.name'), json_extract(e.value, '$.Dir.name')),
            json_remove(json_extract(e.value, '$.File.item'), '$.id', '$.baseUrl',
                        '$.mediaMetadata.photo'),
            json_extract(e.value, '$.File.item.baseUrl'),
            CASE WHEN json_type(e.value, '$.File') IS NOT NULL THEN l.fetched_at END
     FROM listings l, json_each(l.body) e
     ORDER BY l.folder, e.key;
     ALTER TABLE listings DROP COLUMN body;",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// A store operation that failed (the disk, SQLite, or the store's thread is gone): for the
/// calls whose caller must know (an upload or a picked set recorded), since most store
/// failures only log.
#[derive(Debug, Clone, thiserror::Error)]
#[error("metadata store: {0}")]
pub struct StoreError(String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The store: what Google told us, kept across restarts so a restart asks Google nothing it
/// was told before (see the module doc). Cheap to clone; all clones talk to one connection
/// on one thread.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Shared>,
}

struct Shared {
    jobs: mpsc::Sender<Job>,
    /// Where it lives (`:memory:` when in memory), for log lines.
    location: String,
    /// What the last listing write of each folder did (`Store::last_listing_write`).
    listing_writes: Arc<parking_lot::Mutex<std::collections::HashMap<String, ListingWrite>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.inner.location)
            .finish()
    }
}

impl Store {
    /// Opens (or creates) the store at `path` for any account. See [`Store::open_for`].
    pub fn open(path: &Path) -> Store {
        Store::open_for(path, "")
    }

    /// Opens (or creates) the store at `path`, for the Google account/endpoint named by
    /// `identity` (what was learned from one account must not be served for another). Never
    /// fails: see the module documentation.
    pub fn open_for(path: &Path, identity: &str) -> Store {
        if path.as_os_str() == ":memory:" {
            return Store::in_memory();
        }
        match open_file(path, identity) {
            Ok(conn) => Store::spawn(conn, path.display().to_string()),
            Err(e) => {
                tracing::warn!(
                    store = %path.display(),
                    "cannot use the metadata store ({e}); keeping metadata in memory for this \
                     run, so a restart will ask Google again. Fix the path or its permissions \
                     ([cache] path)"
                );
                Store::in_memory()
            }
        }
    }

    /// A store that lives in memory only (the demo; when the file cannot be used).
    pub fn in_memory() -> Store {
        let mut conn = Connection::open_in_memory().expect("SQLite in memory");
        init(&mut conn, "").expect("a new in-memory store");
        Store::spawn(conn, ":memory:".into())
    }

    fn spawn(mut conn: Connection, location: String) -> Store {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("metadata-store".into())
            .spawn(move || {
                // Ends when the last Store clone is dropped.
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
                }
            })
            .expect("spawning the store thread");
        Store {
            inner: Arc::new(Shared {
                jobs,
                location,
                listing_writes: Default::default(),
            }),
        }
    }

    /// Where the store lives, for messages.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// Runs `f` on the store's thread and waits for its answer.
    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner
            .jobs
            .send(Box::new(move |conn| {
                let _ = tx.send(f(conn).map_err(StoreError::from));
            }))
            .map_err(|_| StoreError("the store thread stopped".into()))?;
        rx.await
            .map_err(|_| StoreError("the store thread stopped".into()))?
    }

    /// Runs `f` on the store's thread without waiting; a failure is logged.
    fn submit(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<()> + Send + 'static,
    ) {
        let location = self.inner.location.clone();
        let _ = self.inner.jobs.send(Box::new(move |conn| {
            if let Err(e) = f(conn) {
                tracing::warn!(store = %location, "metadata store: could not {what}: {e}");
            }
        }));
    }

    /// Waits until every write submitted before this call is on disk (tests, shutdown).
    pub async fn flush(&self) {
        let _ = self.call(|_| Ok(())).await;
    }
}

/// Reads an RFC 3339 text column as a time: how `uploads` and `picked_sets` store theirs, so it
/// lives here for both.
fn time_column(r: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text: String = r.get(idx)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e.into())
        })
}

/// Why an existing file cannot be used as it is.
#[derive(Debug)]
enum Unusable {
    Corrupt(String),
    Foreign,
    Newer(usize),
    OtherAccount,
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Corrupt(e) => write!(f, "it is damaged ({e})"),
            Unusable::Foreign => write!(f, "it is not a gphotos-dav metadata store"),
            Unusable::Newer(v) => write!(
                f,
                "it was written by a newer gphotos-dav (schema {v}, this one knows {SCHEMA_VERSION})"
            ),
            Unusable::OtherAccount => {
                write!(f, "it belongs to another Google account or endpoint")
            }
        }
    }
}

/// Opens the file, moving an unusable one aside and starting afresh.
fn open_file(path: &Path, identity: &str) -> Result<Connection, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    match try_open(path, identity) {
        Ok(conn) => return Ok(conn),
        Err(Attempt::Io(e)) => return Err(e),
        Err(Attempt::Unusable(why)) => {
            let aside = aside_path(path);
            tracing::warn!(
                store = %path.display(),
                moved_to = %aside.display(),
                "the metadata store cannot be used: {why}. It was moved aside and a new one \
                 is built; the cache starts cold (sizes are probed again)"
            );
            std::fs::rename(path, &aside)
                .map_err(|e| format!("cannot move {} aside: {e}", path.display()))?;
            for suffix in ["-wal", "-shm"] {
                let side = PathBuf::from(format!("{}{suffix}", path.display()));
                let _ = std::fs::remove_file(side);
            }
        }
    }
    try_open(path, identity).map_err(|e| match e {
        Attempt::Io(e) => e,
        Attempt::Unusable(why) => why.to_string(),
    })
}

enum Attempt {
    /// The file could not even be opened or created (permissions, a directory...).
    Io(String),
    /// It opened but is not ours to use.
    Unusable(Unusable),
}

fn try_open(path: &Path, identity: &str) -> Result<Connection, Attempt> {
    // Created first with mode 0600: it holds download URLs. SQLite gives its -wal and -shm
    // files the same mode.
    create_private_file(path)
        .map_err(|e| Attempt::Io(format!("cannot create {}: {e}", path.display())))?;
    let mut conn = Connection::open(path)
        .map_err(|e| Attempt::Io(format!("cannot open {}: {e}", path.display())))?;
    let corrupt = |e: rusqlite::Error| Attempt::Unusable(Unusable::Corrupt(e.to_string()));
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(corrupt)?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(corrupt)?;
    if check != "ok" {
        return Err(Attempt::Unusable(Unusable::Corrupt(check)));
    }
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(corrupt)?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(corrupt)?;
    if app_id != APPLICATION_ID && !(app_id == 0 && tables == 0) {
        return Err(Attempt::Unusable(Unusable::Foreign));
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(corrupt)?;
    if version as usize > SCHEMA_VERSION {
        return Err(Attempt::Unusable(Unusable::Newer(version as usize)));
    }
    if tables > 0 {
        let owner: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'identity'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(corrupt)?;
        if !identity.is_empty() && owner.as_deref().is_some_and(|o| o != identity) {
            return Err(Attempt::Unusable(Unusable::OtherAccount));
        }
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(corrupt)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(corrupt)?;
    init(&mut conn, identity).map_err(corrupt)?;
    Ok(conn)
}

/// Brings the schema to [`SCHEMA_VERSION`], one migration per transaction, and records whose
/// store it is.
fn init(conn: &mut Connection, identity: &str) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (v, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (v + 1) as i64)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.commit()?;
        if version > 0 {
            tracing::info!("metadata store migrated to schema {}", v + 1);
        }
    }
    if !identity.is_empty() {
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('identity', ?1)",
            [identity],
        )?;
    }
    Ok(())
}

/// `<path>.unusable-<unix seconds>`: where an unusable file is moved.
fn aside_path(path: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PathBuf::from(format!("{}.unusable-{secs}", path.display()))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, size: u64) -> ItemMeta {
        ItemMeta {
            id: id.into(),
            size,
            mime_type: "image/jpeg".into(),
            filename: format!("{id}.jpg"),
            creation_time: Some("2021-03-04T05:06:07Z".parse().unwrap()),
            width: Some(640),
            height: Some(480),
        }
    }

    #[tokio::test]
    async fn items_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/store.sqlite");
        let store = Store::open_for(&path, "acct");
        store.put_items(vec![item("a", 10), item("b", 20)]);
        let rows = vec![ListingRow {
            key: "album-id".into(),
            name: "Holidays".into(),
            file: None,
        }];
        store.put_listing("albums".into(), rows.clone(), 1234);
        store.flush().await;
        drop(store);
        let store = Store::open_for(&path, "acct");
        let mut items = store.items().await;
        items.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(items, vec![item("a", 10), item("b", 20)]);
        assert_eq!(
            store.listing("albums").await,
            Some(StoredListing {
                fetched_at: 1234,
                rows
            })
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[tokio::test]
    async fn a_corrupt_file_is_moved_aside_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let store = Store::open(&path);
        store.put_items(vec![item("a", 1)]);
        assert_eq!(store.items().await, vec![item("a", 1)]);
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("store.sqlite.unusable-"))
            .collect();
        assert_eq!(aside.len(), 1, "the damaged file is kept aside");
        assert_eq!(
            std::fs::read(dir.path().join(&aside[0])).unwrap(),
            vec![0x5a; 8192]
        );
    }

    #[tokio::test]
    async fn a_foreign_database_is_left_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE notes(t TEXT); INSERT INTO notes VALUES ('mine');")
                .unwrap();
        }
        let store = Store::open(&path);
        assert!(store.items().await.is_empty());
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().contains(".unusable-"))
            .expect("the foreign file was moved aside");
        let conn = Connection::open(aside).unwrap();
        let note: String = conn
            .query_row("SELECT t FROM notes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(note, "mine");
    }

    #[tokio::test]
    async fn another_accounts_store_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        let store = Store::open_for(&path, "one");
        store.put_items(vec![item("a", 1)]);
        store.flush().await;
        drop(store);
        assert_eq!(Store::open_for(&path, "one").items().await.len(), 1);
        assert!(Store::open_for(&path, "two").items().await.is_empty());
    }

    #[tokio::test]
    async fn an_older_schema_is_migrated_keeping_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        {
            // A store as schema 1 wrote it.
            let mut conn = Connection::open(&path).unwrap();
            let tx = conn.transaction().unwrap();
            tx.execute_batch(MIGRATIONS[0]).unwrap();
            tx.pragma_update(None, "user_version", 1).unwrap();
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .unwrap();
            tx.execute(
                "INSERT INTO items (id, size, mime_type, filename) VALUES ('old', 7, 'image/png', 'o.png')",
                [],
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let store = Store::open(&path);
        assert_eq!(store.items().await[0].size, 7);
        let up = Upload {
            path: "/upload/a.jpg".into(),
            sha256: "ab".into(),
            size: 3,
            item_id: "x".into(),
            uploaded_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        };
        store.record_upload(up.clone()).await.unwrap();
        assert_eq!(store.upload_at("/upload/a.jpg").await, Some(up));
        drop(store);
        let conn = Connection::open(&path).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, SCHEMA_VERSION);
    }

    #[tokio::test]
    async fn a_newer_schema_is_not_touched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE future(x);").unwrap();
            conn.pragma_update(None, "application_id", APPLICATION_ID)
                .unwrap();
            conn.pragma_update(None, "user_version", 99).unwrap();
        }
        let store = Store::open(&path);
        store.put_items(vec![item("a", 1)]);
        assert_eq!(store.items().await.len(), 1);
        assert!(std::fs::read_dir(dir.path()).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".unusable-")
        }));
    }

    #[tokio::test]
    async fn an_unwritable_place_falls_back_to_memory() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be.
        let path = dir.path().join("store.sqlite");
        std::fs::create_dir(&path).unwrap();
        let store = Store::open(&path);
        assert_eq!(store.location(), ":memory:");
        store.put_items(vec![item("a", 1)]);
        assert_eq!(store.items().await.len(), 1);
    }
}
