//! Issue #18, item 5: the metadata store keeps listings as rows and a revalidation writes only
//! what changed. A `/media/all` of 100,000 emulator items (listed once from the emulator, named
//! by the catalog's naming rules), stored:
//! - as before (schema 3): one JSON body per folder, rewritten whole at every load and
//!   revalidation (`INSERT OR REPLACE INTO listings (folder, fetched_at, body)`, the statement
//!   the earlier release ran, on a file opened as the store opens it: WAL, synchronous NORMAL);
//! - as now: `Store::put_listing` on a store opened by `Store::open` (rows, incremental).
//!
//! Figures: the file's size (after folding the write-ahead log in), the time to store the
//! listing and to read it back as items, and what a revalidation costs (time, rows, bytes
//! appended to the write-ahead log) when nothing changed and when 10 items are new.
//!
//! `cargo bench --bench store_rows`
//!
//! Target (#18): a revalidation that finds 10 new items writes about 10 rows.

mod support;

use std::path::Path;
use std::time::Instant;

use gphotos_dav::catalog::naming;
use gphotos_dav::catalog::store::{ListingRow, Store};
use gphotos_dav::google::MediaItem;
use gphotos_dav::google::library::RangeLoading;
use gphotos_dav_emulator::EmulatorOptions;
use support::verdict;

const ITEMS: usize = 100_000;
const FOLDER: &str = "media-all";

/// A listing entry as the earlier releases stored it (a body is a JSON array of these).
#[derive(serde::Serialize, serde::Deserialize)]
enum OldEntry {
    File { name: String, item: MediaItem },
    Dir { name: String, album: String },
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn wal(path: &Path) -> std::path::PathBuf {
    format!("{}-wal", path.display()).into()
}

/// Folds the write-ahead log into the file and empties it, so sizes are the file's own.
fn checkpoint(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
}

fn per_1000(bytes: u64, n: usize) -> f64 {
    bytes as f64 * 1000.0 / n as f64 / 1024.0
}

/// The same items with new download URLs, as Google answers each listing.
fn renewed(items: &[MediaItem], round: usize) -> Vec<MediaItem> {
    items
        .iter()
        .map(|i| MediaItem {
            base_url: format!("{}&r={round}", i.base_url),
            ..i.clone()
        })
        .collect()
}

fn named(items: &[MediaItem]) -> Vec<String> {
    let named: Vec<naming::Named> = items
        .iter()
        .map(|i| naming::Named {
            id: &i.id,
            name: &i.filename,
            mime: Some(&i.mime_type),
        })
        .collect();
    naming::folder_names(&named)
}

fn old_body(items: &[MediaItem], names: &[String]) -> String {
    let entries: Vec<OldEntry> = items
        .iter()
        .zip(names)
        .map(|(item, name)| OldEntry::File {
            name: name.clone(),
            item: item.clone(),
        })
        .collect();
    serde_json::to_string(&entries).unwrap()
}

fn rows(items: &[MediaItem], names: &[String]) -> Vec<ListingRow> {
    items
        .iter()
        .zip(names)
        .map(|(item, name)| ListingRow::file(name, item).unwrap())
        .collect()
}

#[tokio::main]
async fn main() {
    support::print_machine();
    println!("issue #18 item 5: a /media/all of {ITEMS} items in the metadata store");
    let emu = support::emulator(EmulatorOptions {
        library_size: ITEMS,
        ..EmulatorOptions::default()
    })
    .await;
    let google = support::google_on(&emu);
    let all = google
        .library
        .list_library(RangeLoading::default())
        .await
        .expect("the library");
    // The 10 "new" items of the revalidation are the listing's first 10, left out at first.
    let (fresh, base) = all.split_at(10);
    let (fresh, base) = (fresh.to_vec(), base.to_vec());
    let n = base.len();
    let id_len = base.iter().map(|i| i.id.len()).sum::<usize>() / n;
    let url_len = base.iter().map(|i| i.base_url.len()).sum::<usize>() / n;
    println!(
        "{n} items listed (+10 new later); average id {id_len} chars, baseUrl {url_len} chars \
         (Google's are about 100 and 150+: real files are larger)"
    );
    let names = named(&base);
    let dir = tempfile::tempdir().unwrap();

    // Before: one JSON body.
    let old = dir.path().join("old.sqlite");
    let conn = rusqlite::Connection::open(&old).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE listings (folder TEXT PRIMARY KEY, fetched_at INTEGER NOT NULL, \
         body TEXT NOT NULL)",
    )
    .unwrap();
    let put_old = |items: &[MediaItem], names: &[String]| {
        let started = Instant::now();
        let body = old_body(items, names);
        conn.execute(
            "INSERT OR REPLACE INTO listings (folder, fetched_at, body) VALUES (?1, 1, ?2)",
            rusqlite::params![FOLDER, body],
        )
        .unwrap();
        started.elapsed().as_secs_f64()
    };
    let old_store = put_old(&base, &names);
    checkpoint(&old);
    let old_bytes = file_size(&old);
    let started = Instant::now();
    let body: String = conn
        .query_row(
            "SELECT body FROM listings WHERE folder = ?1",
            [FOLDER],
            |r| r.get(0),
        )
        .unwrap();
    let entries: Vec<OldEntry> = serde_json::from_str(&body).unwrap();
    let old_load = started.elapsed().as_secs_f64();
    assert_eq!(entries.len(), n);
    let old_same = put_old(&renewed(&base, 1), &names);
    let old_same_wal = file_size(&wal(&old));
    checkpoint(&old);
    let mut grown = fresh.clone();
    grown.extend(renewed(&base, 2));
    let grown_names = named(&grown);
    let old_new = put_old(&grown, &grown_names);
    let old_new_wal = file_size(&wal(&old));
    drop(conn);

    // Now: rows, written incrementally.
    let new = dir.path().join("new.sqlite");
    let store = Store::open(&new);
    let put_new = |items: &[MediaItem], names: &[String], at: u64| {
        // Timed from the rows' making (the catalog's part), as the body's serializing is.
        let started = Instant::now();
        let rows = rows(items, names);
        store.put_listing(FOLDER.into(), rows, at);
        started
    };
    let started = put_new(&base, &names, 1);
    let write = store.last_listing_write(FOLDER).await.unwrap();
    let new_store = started.elapsed().as_secs_f64();
    assert_eq!(write.inserted, n as u64);
    checkpoint(&new);
    let new_bytes = file_size(&new);
    let started = Instant::now();
    let stored = store.listing(FOLDER).await.unwrap();
    let items: Vec<MediaItem> = stored
        .rows
        .iter()
        .map(|r| r.file.as_ref().unwrap().to_item(&r.key).unwrap())
        .collect();
    let new_load = started.elapsed().as_secs_f64();
    assert_eq!(items.len(), n);
    assert!(items.iter().zip(&base).all(|(a, b)| a.id == b.id));

    let started = put_new(&renewed(&base, 1), &names, 2);
    let same = store.last_listing_write(FOLDER).await.unwrap();
    let new_same = started.elapsed().as_secs_f64();
    let new_same_wal = file_size(&wal(&new));
    checkpoint(&new);
    let started = put_new(&grown, &grown_names, 3);
    let grew = store.last_listing_write(FOLDER).await.unwrap();
    let new_new = started.elapsed().as_secs_f64();
    let new_new_wal = file_size(&wal(&new));
    assert_eq!(same.entry_rows(), 0, "{same:?}");

    println!();
    println!("| {n} items | before (one JSON body) | now (rows) |");
    println!("|---|---|---|");
    println!(
        "| store file | {:.1} MiB ({:.1} KiB per 1,000 items) | {:.1} MiB ({:.1} KiB per 1,000 items) |",
        old_bytes as f64 / support::MIB as f64,
        per_1000(old_bytes, n),
        new_bytes as f64 / support::MIB as f64,
        per_1000(new_bytes, n)
    );
    println!(
        "| first store | {:.0} ms | {:.0} ms ({} rows) |",
        old_store * 1e3,
        new_store * 1e3,
        write.changes
    );
    println!(
        "| load (read and parse into items) | {:.0} ms | {:.0} ms |",
        old_load * 1e3,
        new_load * 1e3
    );
    println!(
        "| revalidation, nothing new (new URLs) | {:.0} ms, whole body, {:.1} MiB to the WAL | {:.0} ms, {} rows changed, {:.0} KiB to the WAL |",
        old_same * 1e3,
        old_same_wal as f64 / support::MIB as f64,
        new_same * 1e3,
        same.changes,
        new_same_wal as f64 / 1024.0
    );
    println!(
        "| revalidation, 10 new items | {:.0} ms, whole body, {:.1} MiB to the WAL | {:.0} ms, {} rows changed ({} inserted), {:.0} KiB to the WAL |",
        old_new * 1e3,
        old_new_wal as f64 / support::MIB as f64,
        new_new * 1e3,
        grew.changes,
        grew.inserted,
        new_new_wal as f64 / 1024.0
    );
    println!();
    verdict(
        "a revalidation that finds 10 new items writes about 10 rows",
        format!(
            "{} entry rows + the folder's ({} changes)",
            grew.entry_rows(),
            grew.changes
        ),
        "10 + 1",
        grew.entry_rows() == 10 && grew.changes == 11,
    );
}
