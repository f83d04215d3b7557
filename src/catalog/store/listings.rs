//! The `listings` and `listing_entries` tables: the entries of each folder as last loaded
//! from Google, one row per entry, and the time each folder was fetched.
//!
//! Listing a folder can take many Library API calls (100 items a page) and counts against the
//! daily quota. Keeping the entries here lets a restarted server answer PROPFIND from disk at
//! once; the fetch time tells the catalog the listing is stale, so it revalidates in the
//! background instead of making the client wait. A write that changes a folder (an upload)
//! forgets its listing, so the next load comes from Google.
//!
//! # One row per entry, written incrementally
//! A folder is revalidated every `listing_ttl` (5 minutes), and `/media/all` may hold 100,000
//! items: kept as one value, each revalidation rewrote megabytes that had barely changed. So
//! each entry is a row, and [`Store::put_listing`] compares the listing with the rows the
//! folder has and writes only the difference (rows inserted, updated, deleted) and the
//! folder's fetch time, in one transaction: a revalidation that finds 10 new items writes 11
//! rows ([`ListingWrite`] says what a write did).
//!
//! What counts as a change is the entry's name, its place in the folder and the item's stable
//! fields (type, filename, metadata). Not its download URL: Google signs a new `baseUrl` at
//! every fetch, so comparing URLs would make every row "changed" at every revalidation. A row
//! keeps the URL it was written with and when that URL was fetched (`url_at`), and the
//! catalog trusts it only while it is young (`catalog/urls.rs`): after a restart within
//! `url_max_age_secs` of a load a download costs no call, and an older URL is replaced through
//! batchGet (50 items a call) like any other old URL. A row whose stable fields changed is
//! rewritten whole, its URL and `url_at` included.
//!
//! # Order without renumbering
//! The folder's order is kept in `position`, numbers spaced [`GAP`] apart. New items usually
//! arrive at the front (uploads) or between two entries: they take numbers between their
//! neighbours', so the other rows keep theirs. Only when two neighbours have no number left
//! between them is the folder renumbered (every row whose position moved is written).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use super::Store;
use crate::google::MediaItem;

/// The spacing of `position` values when a folder is (re)numbered: room for up to 2^20 - 1
/// entries arriving at once between two neighbours (about 20 when they arrive one at a time
/// at the same spot, each taking the middle of what is left), and for 2^43 at either end.
pub const GAP: i64 = 1 << 20;

/// One entry of a stored listing, as the catalog hands it over and reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingRow {
    /// What identifies the entry in its folder, across revalidations: the item's id for a
    /// file, the album's id for a subfolder. A listing holding a key twice keeps the first.
    pub key: String,
    /// The name the naming rules chose (stored, so a restart shows the same names).
    pub name: String,
    /// A file: the item's stable fields as JSON (the catalog's business), its download URL
    /// and when that URL was fetched. None: a subfolder (an album).
    pub file: Option<StoredFile>,
}

/// An entry handed to [`Store::put_listing`]: a row, or a file whose row is made on the
/// store's thread at the moment it is compared. A `/media/all` of 100,000 items would
/// otherwise be 100,000 items' JSON texts (tens of MiB) built at once on the request path
/// and held until the write is done; here each text lives for one comparison.
#[derive(Debug, Clone)]
pub enum PendingRow {
    /// A row made already (an album folder): boxed, so that the files, which a listing of
    /// 100,000 has as many of, take 48 bytes each in the `Vec` handed over, not 104.
    Row(Box<ListingRow>),
    /// A file, its row written with `url` when given: the freshest download URL of an item
    /// whose shared copy holds an older one (see `catalog/urls.rs`).
    File {
        name: String,
        item: Arc<MediaItem>,
        url: Option<Arc<str>>,
    },
}

impl From<ListingRow> for PendingRow {
    fn from(row: ListingRow) -> Self {
        PendingRow::Row(Box::new(row))
    }
}

impl PendingRow {
    /// The entry's key in its folder (see [`ListingRow::key`]), without making its row.
    fn key(&self) -> &str {
        match self {
            PendingRow::Row(row) => &row.key,
            PendingRow::File { item, .. } => &item.id,
        }
    }

    fn into_row(self) -> Result<ListingRow, serde_json::Error> {
        match self {
            PendingRow::Row(row) => Ok(*row),
            PendingRow::File { name, item, url } => {
                let mut row = ListingRow::file(&name, &item)?;
                if let (Some(url), Some(file)) = (url, row.file.as_mut()) {
                    file.base_url = url.to_string();
                }
                Ok(row)
            }
        }
    }
}

/// A file's part of a [`ListingRow`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// The item as Google described it, without its id (the row's key) or its download URL
    /// (below): what is compared to tell a changed item.
    pub item: String,
    /// The download URL the row was written with.
    pub base_url: String,
    /// When `base_url` was fetched (Unix seconds). On a write it is ignored: a row written
    /// now gets the listing's fetch time.
    pub url_at: u64,
}

/// A folder's stored listing: its entries in order and when it was fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredListing {
    pub fetched_at: u64,
    pub rows: Vec<ListingRow>,
}

/// What one [`Store::put_listing`] wrote: entry rows inserted, updated and deleted, and the
/// rows SQLite reports changed in its transaction (the entry rows plus the folder's own row),
/// so tests and benchmarks can check that a write is as small as the change it records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListingWrite {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    /// `Connection::total_changes` over the write's transaction.
    pub changes: u64,
}

impl ListingWrite {
    /// Entry rows written (inserted, updated or deleted).
    pub fn entry_rows(&self) -> u64 {
        self.inserted + self.updated + self.deleted
    }
}

impl ListingRow {
    /// A file of a listing as a row: keyed by the item's id, the item as Google described it
    /// less its id and its download URL as JSON (what is compared to tell whether the item
    /// changed; the URL changes at every fetch), and the URL beside it.
    ///
    /// The JSON is the serde form of [`MediaItem`], the shape Google sends, fields in their
    /// declared order: the order the bodies of earlier releases had, which migration 5 keeps,
    /// so the first revalidation after an upgrade finds the unchanged items unchanged. It is
    /// the format on disk: a field renamed in [`MediaItem`] makes stored listings unreadable
    /// after an upgrade (the folder is then loaded from Google again; tests/upgrade.rs opens a
    /// store an earlier release wrote).
    pub fn file(name: &str, item: &MediaItem) -> Result<ListingRow, serde_json::Error> {
        let whole = serde_json::to_string(item)?;
        // `{"id":..,"baseUrl":..,` leads, as declared: cut off the text, no second pass.
        let lead = format!(
            "{{\"id\":{},\"baseUrl\":{},",
            serde_json::to_string(&item.id)?,
            serde_json::to_string(&item.base_url)?
        );
        let stable = match whole.strip_prefix(&lead) {
            Some(rest) => format!("{{{rest}"),
            None => {
                let mut fields: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(&whole)?;
                fields.remove("id");
                fields.remove("baseUrl");
                serde_json::Value::Object(fields).to_string()
            }
        };
        Ok(ListingRow {
            key: item.id.clone(),
            name: name.to_string(),
            file: Some(StoredFile {
                item: stable,
                base_url: item.base_url.clone(),
                url_at: 0,
            }),
        })
    }

    /// A subfolder of a listing (an album) as a row.
    pub fn album(name: &str, id: &str) -> ListingRow {
        ListingRow {
            key: id.to_string(),
            name: name.to_string(),
            file: None,
        }
    }
}

impl StoredFile {
    /// The item this row of key `id` holds: [`ListingRow::file`] the other way round.
    pub fn to_item(&self, id: &str) -> Result<MediaItem, serde_json::Error> {
        let rest = self.item.trim_start().strip_prefix('{').ok_or_else(|| {
            serde::de::Error::custom(format!("a stored item is not an object: {}", self.item))
        })?;
        let comma = if rest.trim_start().starts_with('}') {
            ""
        } else {
            ","
        };
        serde_json::from_str(&format!(
            "{{\"id\":{},\"baseUrl\":{}{comma}{rest}",
            serde_json::to_string(id)?,
            serde_json::to_string(&self.base_url)?
        ))
    }
}

impl Store {
    /// A folder's stored listing, its entries in order. None when not stored or unreadable.
    pub async fn listing(&self, folder: &str) -> Option<StoredListing> {
        let folder = folder.to_string();
        self.call(move |conn| read_listing(conn, &folder))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!("{e}; loading the folder from Google");
                None
            })
    }

    /// Stores a folder's listing fetched at `fetched_at` (Unix seconds), without waiting:
    /// only the rows that differ from what the folder has are written (see the module doc).
    pub fn put_listing<R: Into<PendingRow>>(&self, folder: String, rows: Vec<R>, fetched_at: u64) {
        let rows: Vec<PendingRow> = rows.into_iter().map(Into::into).collect();
        let writes = self.inner.listing_writes.clone();
        self.submit("store a listing", move |conn| {
            let done = write_listing(conn, &folder, rows, fetched_at)?;
            tracing::debug!(
                folder,
                inserted = done.inserted,
                updated = done.updated,
                deleted = done.deleted,
                "listing stored"
            );
            writes.lock().insert(folder, done);
            Ok(())
        });
    }

    /// What the last [`Store::put_listing`] of `folder` that reached the disk wrote (this
    /// run); None before any. Waits for the writes submitted before it.
    pub async fn last_listing_write(&self, folder: &str) -> Option<ListingWrite> {
        self.flush().await;
        self.inner.listing_writes.lock().get(folder).copied()
    }

    /// Forgets a folder's stored listing and its rows, without waiting (an upload changed the
    /// folder, so the next load must come from Google). Later calls see it gone: the store's
    /// thread runs them in order.
    pub fn forget_listing(&self, folder: String) {
        self.submit("forget a listing", move |conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM listing_entries WHERE folder = ?1", [&folder])?;
            tx.execute("DELETE FROM listings WHERE folder = ?1", [&folder])?;
            tx.commit()
        });
    }
}

fn read_listing(conn: &mut Connection, folder: &str) -> rusqlite::Result<Option<StoredListing>> {
    let tx = conn.transaction()?;
    let Some(fetched_at) = tx
        .query_row(
            "SELECT fetched_at FROM listings WHERE folder = ?1",
            [folder],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
    else {
        return Ok(None);
    };
    let rows = {
        let mut stmt = tx.prepare(
            "SELECT key, name, item, base_url, url_at FROM listing_entries
             WHERE folder = ?1 ORDER BY position",
        )?;
        stmt.query_map([folder], |r| {
            let item: Option<String> = r.get(2)?;
            Ok(ListingRow {
                key: r.get(0)?,
                name: r.get(1)?,
                file: match item {
                    Some(item) => Some(StoredFile {
                        item,
                        base_url: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                        url_at: r.get::<_, Option<i64>>(4)?.unwrap_or(0) as u64,
                    }),
                    None => None,
                },
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
    };
    tx.commit()?;
    Ok(Some(StoredListing {
        fetched_at: fetched_at as u64,
        rows,
    }))
}

/// A row as the folder holds it: what is compared with the listing being written. The
/// item's JSON is held as its hash: a folder of 100,000 rows would otherwise be read whole
/// into memory for the comparison.
struct Held {
    position: i64,
    name: String,
    item: Option<u64>,
}

/// The hash an item's JSON is compared by (within one write, so any hasher will do).
fn text_hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// Writes `rows` as `folder`'s listing: the difference with what it holds, in one transaction.
fn write_listing(
    conn: &mut Connection,
    folder: &str,
    rows: Vec<PendingRow>,
    fetched_at: u64,
) -> rusqlite::Result<ListingWrite> {
    let tx = conn.transaction()?;
    let before = tx.total_changes();
    let mut held: HashMap<String, Held> = {
        let mut stmt =
            tx.prepare("SELECT key, position, name, item FROM listing_entries WHERE folder = ?1")?;
        stmt.query_map([folder], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Held {
                    position: r.get(1)?,
                    name: r.get(2)?,
                    item: r
                        .get_ref(3)?
                        .as_str_or_null()
                        .map_err(|e| {
                            rusqlite::Error::FromSqlConversionFailure(
                                3,
                                rusqlite::types::Type::Text,
                                Box::new(e),
                            )
                        })?
                        .map(text_hash),
                },
            ))
        })?
        .collect::<rusqlite::Result<_>>()?
    };
    // The keys are looked up where they are (no copy of each): which rows come first.
    let first: Vec<bool> = {
        let mut seen = HashSet::with_capacity(rows.len());
        rows.iter()
            .map(|r| {
                let first = seen.insert(r.key());
                if !first {
                    tracing::debug!(folder, key = %r.key(), "an entry listed twice is stored once");
                }
                first
            })
            .collect()
    };
    let mut rows = rows;
    let mut first = first.into_iter();
    rows.retain(|_| first.next().unwrap_or(true));
    let old: Vec<Option<i64>> = rows
        .iter()
        .map(|r| held.get(r.key()).map(|h| h.position))
        .collect();
    let positions = positions(&old);

    let mut done = ListingWrite::default();
    {
        let mut insert = tx.prepare(
            "INSERT INTO listing_entries (folder, key, position, name, item, base_url, url_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut update = tx.prepare(
            "UPDATE listing_entries SET position = ?3, name = ?4, item = ?5, base_url = ?6,
             url_at = ?7 WHERE folder = ?1 AND key = ?2",
        )?;
        for (pending, position) in rows.into_iter().zip(positions) {
            let row = match pending.into_row() {
                Ok(row) => row,
                Err(e) => {
                    // Left out (and so deleted if held): the folder reloads it from Google.
                    tracing::warn!(folder, "cannot store an entry of a listing: {e}");
                    continue;
                }
            };
            let (item, url) = match &row.file {
                Some(f) => (Some(f.item.as_str()), Some(f.base_url.as_str())),
                None => (None, None),
            };
            let url_at = row.file.as_ref().map(|_| fetched_at as i64);
            match held.remove(&row.key) {
                Some(h)
                    if h.position == position
                        && h.name == row.name
                        && h.item == item.map(text_hash) => {}
                Some(_) => {
                    update.execute(params![
                        folder, row.key, position, row.name, item, url, url_at
                    ])?;
                    done.updated += 1;
                }
                None => {
                    insert.execute(params![
                        folder, row.key, position, row.name, item, url, url_at
                    ])?;
                    done.inserted += 1;
                }
            }
        }
        // What is left was not listed this time: gone upstream.
        let mut delete =
            tx.prepare("DELETE FROM listing_entries WHERE folder = ?1 AND key = ?2")?;
        for key in held.keys() {
            delete.execute(params![folder, key])?;
            done.deleted += 1;
        }
    }
    tx.execute(
        "INSERT INTO listings (folder, fetched_at) VALUES (?1, ?2)
         ON CONFLICT (folder) DO UPDATE SET fetched_at = excluded.fetched_at",
        params![folder, fetched_at as i64],
    )?;
    done.changes = tx.total_changes() - before;
    tx.commit()?;
    Ok(done)
}

/// The positions of a listing's entries, given the positions they held (None: new). Entries
/// whose held positions are already in the listing's order keep them (the longest such run,
/// so one moved entry does not move the others); the others take numbers between their
/// neighbours'. When some gap is too narrow, everything is renumbered [`GAP`] apart.
fn positions(old: &[Option<i64>]) -> Vec<i64> {
    let keep = increasing_run(old);
    let mut out: Vec<Option<i64>> = old
        .iter()
        .enumerate()
        .map(|(i, p)| if keep[i] { *p } else { None })
        .collect();
    let mut i = 0;
    while i < out.len() {
        if out[i].is_some() {
            i += 1;
            continue;
        }
        let start = i;
        while i < out.len() && out[i].is_none() {
            i += 1;
        }
        let (lo, hi) = (
            start.checked_sub(1).and_then(|j| out[j]),
            out.get(i).copied().flatten(),
        );
        let n = (i - start) as i64;
        let placed: Option<Vec<i64>> = match (lo, hi) {
            (None, None) => Some((0..n).map(|k| k * GAP).collect()),
            (None, Some(h)) => h
                .checked_sub(n.checked_mul(GAP).unwrap_or(i64::MAX))
                .map(|first| (0..n).map(|k| first + k * GAP).collect()),
            (Some(l), None) => l
                .checked_add(n.checked_mul(GAP).unwrap_or(i64::MAX))
                .map(|_| (1..=n).map(|k| l + k * GAP).collect()),
            (Some(l), Some(h)) => {
                let step = (h - l) / (n + 1);
                (step > 0).then(|| (1..=n).map(|k| l + k * step).collect())
            }
        };
        let Some(placed) = placed else {
            return (0..old.len() as i64).map(|k| k * GAP).collect();
        };
        for (k, p) in placed.into_iter().enumerate() {
            out[start + k] = Some(p);
        }
    }
    out.into_iter().map(|p| p.unwrap_or_default()).collect()
}

/// Which of `old` to keep: a longest strictly increasing subsequence of the held positions
/// (patience sorting, O(n log n): `/media/all` may hold 100,000 entries).
fn increasing_run(old: &[Option<i64>]) -> Vec<bool> {
    // tails[k]: index into `old` of the smallest tail of an increasing run of length k + 1.
    let mut tails: Vec<usize> = Vec::new();
    let mut prev: Vec<Option<usize>> = vec![None; old.len()];
    for (i, p) in old.iter().enumerate() {
        let Some(p) = p else { continue };
        let k = tails.partition_point(|&t| old[t].is_some_and(|q| q < *p));
        prev[i] = k.checked_sub(1).map(|k| tails[k]);
        if k == tails.len() {
            tails.push(i);
        } else {
            tails[k] = i;
        }
    }
    let mut keep = vec![false; old.len()];
    let mut at = tails.last().copied();
    while let Some(i) = at {
        keep[i] = true;
        at = prev[i];
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(key: &str, name: &str, item: &str) -> ListingRow {
        ListingRow {
            key: key.into(),
            name: name.into(),
            file: Some(StoredFile {
                item: item.into(),
                base_url: format!("https://lh3.example/{key}/{item}"),
                url_at: 0,
            }),
        }
    }

    fn files(n: usize) -> Vec<ListingRow> {
        (0..n)
            .map(|i| file(&format!("id{i}"), &format!("f{i}.jpg"), "{}"))
            .collect()
    }

    fn keys(listing: &StoredListing) -> Vec<String> {
        listing.rows.iter().map(|r| r.key.clone()).collect()
    }

    /// Counts the rows the store holds for `folder`, straight from SQLite.
    async fn rows_held(store: &Store, folder: &str) -> i64 {
        let folder = folder.to_string();
        store
            .call(move |c| {
                c.query_row(
                    "SELECT count(*) FROM listing_entries WHERE folder = ?1",
                    [folder],
                    |r| r.get(0),
                )
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn writes_are_as_small_as_the_change() {
        let store = Store::in_memory();
        let mut rows = files(1000);
        store.put_listing("media-all".into(), rows.clone(), 100);
        let w = store.last_listing_write("media-all").await.unwrap();
        assert_eq!((w.inserted, w.updated, w.deleted), (1000, 0, 0));
        assert_eq!(w.changes, 1001, "the rows and the folder's fetch time");

        // The same listing, with new download URLs (Google signs new ones at every fetch):
        // only the fetch time is written.
        for r in &mut rows {
            r.file.as_mut().unwrap().base_url.push_str("?again");
        }
        store.put_listing("media-all".into(), rows.clone(), 400);
        let w = store.last_listing_write("media-all").await.unwrap();
        assert_eq!(w.entry_rows(), 0);
        assert_eq!(w.changes, 1);
        let stored = store.listing("media-all").await.unwrap();
        assert_eq!(stored.fetched_at, 400);
        // The rows keep the URL they were written with, and its time.
        assert_eq!(stored.rows[0].file.as_ref().unwrap().url_at, 100);
        assert!(
            !stored.rows[0]
                .file
                .as_ref()
                .unwrap()
                .base_url
                .ends_with("?again")
        );

        // 10 new items: 5 at the front (uploads), 5 in the middle.
        let mut new = Vec::new();
        for i in 0..5 {
            new.push(file(&format!("new{i}"), &format!("n{i}.jpg"), "{}"));
        }
        new.extend(rows[..500].iter().cloned());
        for i in 5..10 {
            new.push(file(&format!("new{i}"), &format!("n{i}.jpg"), "{}"));
        }
        new.extend(rows[500..].iter().cloned());
        store.put_listing("media-all".into(), new.clone(), 700);
        let w = store.last_listing_write("media-all").await.unwrap();
        assert_eq!((w.inserted, w.updated, w.deleted), (10, 0, 0));
        assert_eq!(w.changes, 11);
        let stored = store.listing("media-all").await.unwrap();
        assert_eq!(
            keys(&stored),
            new.iter().map(|r| r.key.clone()).collect::<Vec<_>>()
        );
        assert_eq!(stored.rows[0].file.as_ref().unwrap().url_at, 700);

        // 3 deleted upstream, 1 renamed, 1 whose metadata changed (a video done processing).
        let mut next = new.clone();
        next.remove(700);
        next.remove(300);
        next.remove(2);
        next[10].name = "renamed.jpg".into();
        next[20].file.as_mut().unwrap().item = r#"{"video":"READY"}"#.into();
        store.put_listing("media-all".into(), next.clone(), 900);
        let w = store.last_listing_write("media-all").await.unwrap();
        assert_eq!((w.inserted, w.updated, w.deleted), (0, 2, 3));
        assert_eq!(w.changes, 6);
        let stored = store.listing("media-all").await.unwrap();
        assert_eq!(stored.rows.len(), 1007);
        assert_eq!(rows_held(&store, "media-all").await, 1007);
        assert_eq!(
            keys(&stored),
            next.iter().map(|r| r.key.clone()).collect::<Vec<_>>()
        );
        assert_eq!(stored.rows[10].name, "renamed.jpg");
        // A changed row is written whole: its URL and its time are the new ones.
        let changed = stored.rows[20].file.as_ref().unwrap();
        assert_eq!(changed.item, r#"{"video":"READY"}"#);
        assert_eq!(changed.url_at, 900);
        assert_eq!(changed.base_url, next[20].file.as_ref().unwrap().base_url);
    }

    #[tokio::test]
    async fn a_moved_entry_is_one_row_and_subfolders_are_rows_too() {
        let store = Store::in_memory();
        let dir = |key: &str, name: &str| ListingRow {
            key: key.into(),
            name: name.into(),
            file: None,
        };
        let albums = vec![dir("a", "Alpha"), dir("b", "Beta"), dir("c", "Gamma")];
        store.put_listing("albums".into(), albums.clone(), 1);
        let moved = vec![albums[2].clone(), albums[0].clone(), albums[1].clone()];
        store.put_listing("albums".into(), moved.clone(), 2);
        let w = store.last_listing_write("albums").await.unwrap();
        assert_eq!((w.inserted, w.updated, w.deleted), (0, 1, 0));
        assert_eq!(store.listing("albums").await.unwrap().rows, moved);
        // Another folder is untouched by this one's writes and forgetting.
        store.put_listing("album:a".into(), files(3), 2);
        store.forget_listing("albums".into());
        assert_eq!(store.listing("albums").await, None);
        assert_eq!(rows_held(&store, "albums").await, 0);
        assert_eq!(store.listing("album:a").await.unwrap().rows.len(), 3);
        // Stored again after being forgotten: all rows new.
        store.put_listing("albums".into(), albums, 3);
        let w = store.last_listing_write("albums").await.unwrap();
        assert_eq!(w.inserted, 3);
    }

    #[tokio::test]
    async fn a_key_listed_twice_is_stored_once() {
        let store = Store::in_memory();
        let rows = vec![file("x", "a.jpg", "{}"), file("x", "b.jpg", "{}")];
        store.put_listing("favorites".into(), rows.clone(), 1);
        assert_eq!(
            store.listing("favorites").await.unwrap().rows,
            vec![ListingRow {
                file: Some(StoredFile {
                    url_at: 1,
                    ..rows[0].file.clone().unwrap()
                }),
                ..rows[0].clone()
            }]
        );
    }

    /// A store schema 3 wrote, listings as JSON bodies, opens with them as rows (migration 5),
    /// and the bodies are gone from the file.
    #[tokio::test]
    async fn json_bodies_of_an_earlier_release_become_rows() {
        use super::super::{APPLICATION_ID, MIGRATIONS};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        let item = |id: &str, file: &str| {
            format!(
                r#"{{"File":{{"name":"{file}","item":{{"id":"{id}","baseUrl":"https://lh3/{id}","mimeType":"image/jpeg","filename":"{file}","mediaMetadata":{{"creationTime":"2021-03-04T05:06:07Z","width":"640","height":"480"}}}}}}}}"#
            )
        };
        let album = format!(
            "[{},{},{}]",
            item("b", "b.jpg"),
            item("a", "a.jpg"),
            item("b", "again.jpg")
        );
        {
            let mut conn = Connection::open(&path).unwrap();
            let tx = conn.transaction().unwrap();
            for m in &MIGRATIONS[..3] {
                tx.execute_batch(m).unwrap();
            }
            tx.pragma_update(None, "user_version", 3).unwrap();
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .unwrap();
            let mut put = tx
                .prepare("INSERT INTO listings (folder, fetched_at, body) VALUES (?1, ?2, ?3)")
                .unwrap();
            put.execute(params!["album:x", 500, album]).unwrap();
            put.execute(params![
                "albums",
                600,
                r#"[{"Dir":{"name":"X","album":"x"}}]"#
            ])
            .unwrap();
            // Unreadable bodies: the earlier release ignored them, so does the migration.
            put.execute(params!["favorites", 700, "[{not json"])
                .unwrap();
            put.execute(params!["media-all", 700, r#"[{"File":{"name":"n"}}]"#])
                .unwrap();
            put.execute(params!["shared-albums", 700, r#"{"Dir":{}}"#])
                .unwrap();
            drop(put);
            tx.commit().unwrap();
        }
        let store = Store::open(&path);
        assert_eq!(store.location(), path.display().to_string());
        let stored = store.listing("album:x").await.unwrap();
        assert_eq!(stored.fetched_at, 500);
        let expected = |id: &str, file: &str| ListingRow {
            key: id.into(),
            name: file.into(),
            file: Some(StoredFile {
                item: format!(
                    r#"{{"mimeType":"image/jpeg","filename":"{file}","mediaMetadata":{{"creationTime":"2021-03-04T05:06:07Z","width":"640","height":"480"}}}}"#
                ),
                base_url: format!("https://lh3/{id}"),
                url_at: 500,
            }),
        };
        // In the body's order; an id listed twice kept once, as a write keeps it.
        assert_eq!(
            stored.rows,
            vec![expected("b", "b.jpg"), expected("a", "a.jpg")]
        );
        assert_eq!(
            store.listing("albums").await.unwrap().rows,
            vec![ListingRow {
                key: "x".into(),
                name: "X".into(),
                file: None
            }]
        );
        for gone in ["favorites", "media-all", "shared-albums"] {
            assert_eq!(store.listing(gone).await, None, "{gone}");
        }
        // Writing the same entries again changes nothing but the fetch time.
        store.put_listing("album:x".into(), stored.rows.clone(), 900);
        assert_eq!(
            store
                .last_listing_write("album:x")
                .await
                .unwrap()
                .entry_rows(),
            0
        );
        drop(store);
        let conn = Connection::open(&path).unwrap();
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('listings')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            columns,
            ["folder", "fetched_at"],
            "the JSON bodies are gone"
        );
    }

    #[test]
    fn an_item_goes_to_a_row_and_back() {
        let json = r#"{"id":"i\"d","baseUrl":"https://lh3/x?a=1","mimeType":"video/mp4",
            "filename":"été.mp4","mediaMetadata":{"creationTime":"2021-03-04T05:06:07Z",
            "width":"640","height":"480","video":{"status":"PROCESSING"}}}"#;
        let item: MediaItem = serde_json::from_str(json).unwrap();
        let row = ListingRow::file("été.mp4", &item).unwrap();
        assert_eq!(row.key, "i\"d");
        let file = row.file.unwrap();
        assert_eq!(file.base_url, "https://lh3/x?a=1");
        assert!(
            !file.item.contains("i\\\"d") && !file.item.contains("lh3"),
            "{}",
            file.item
        );
        assert!(
            file.item
                .starts_with(r#"{"mimeType":"video/mp4","filename":"été.mp4""#)
        );
        let back = file.to_item(&row.key).unwrap();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&item).unwrap()
        );
        // The URL is not part of what is compared: a new one gives the same stable fields.
        let renewed = MediaItem {
            base_url: "https://lh3/y".into(),
            ..item.clone()
        };
        assert_eq!(
            ListingRow::file("été.mp4", &renewed)
                .unwrap()
                .file
                .unwrap()
                .item,
            file.item
        );
        // An item with no other field.
        let bare = StoredFile {
            item: "{}".into(),
            base_url: String::new(),
            url_at: 0,
        };
        assert_eq!(bare.to_item("z").unwrap().id, "z");
    }

    #[test]
    fn positions_keep_what_is_in_order_and_fit_the_rest_between() {
        // Fresh: spaced GAP apart.
        assert_eq!(positions(&[None, None, None]), vec![0, GAP, 2 * GAP]);
        // In front of the first, after the last, between two.
        assert_eq!(
            positions(&[None, None, Some(0), Some(GAP)]),
            vec![-2 * GAP, -GAP, 0, GAP]
        );
        assert_eq!(positions(&[Some(0), None]), vec![0, GAP]);
        assert_eq!(positions(&[Some(0), None, Some(3)]), vec![0, 1, 3]);
        // One entry moved to the front: only it takes a new number.
        assert_eq!(
            positions(&[Some(30), Some(10), Some(20)]),
            vec![10 - GAP, 10, 20]
        );
        // No room left between two neighbours: everything renumbered.
        assert_eq!(positions(&[Some(0), None, Some(1)]), vec![0, GAP, 2 * GAP]);
        // Nor below the smallest number there is.
        assert_eq!(positions(&[None, Some(i64::MIN + 1)]), vec![0, GAP]);
    }

    #[test]
    fn the_longest_run_in_order_is_kept() {
        let old = [Some(5), Some(1), Some(2), None, Some(3), Some(0), Some(4)];
        assert_eq!(
            increasing_run(&old),
            vec![false, true, true, false, true, false, true]
        );
    }
}
