//! Upgrading over a metadata store an earlier release wrote.
//!
//! A user's store holds every size the server ever probed and the listings it loaded: a new
//! release that could not read them would move the file aside and start cold, probing every
//! file of every folder again (one content-host request each, thousands for a real library).
//! So a release must open its predecessor's store in place: its schema migrated, its listings
//! kept (since schema 5 as rows, one per entry: the JSON bodies of earlier releases are moved
//! into rows by the migration, and the first revalidation finds them unchanged), the same
//! folder names in the `listings` table.
//!
//! # The fixture
//! `tests/fixtures/store-3276aed.sqlite` is the store the release at commit 3276aed wrote,
//! made by running that release's binary against its emulator (seed 1, the default library):
//!
//! ```text
//! git worktree add /tmp/old 3276aed && cd /tmp/old && cargo build --bin gphotos-dav
//! target/debug/gphotos-dav emulator --listen 127.0.0.1:0 > emu.toml   # prints [google]
//! printf '[server]\nlisten = "127.0.0.1:0"\n%s\n[cache]\npath = "/tmp/fx/metadata.sqlite"\n' \
//!     "$(grep -v '^#' emu.toml)" > webdav.toml
//! target/debug/gphotos-dav serve --config webdav.toml                 # logs its URL
//! curl -X PROPFIND -H 'Depth: 1' http://127.0.0.1:PORT/album/
//! curl -X PROPFIND -H 'Depth: 1' http://127.0.0.1:PORT/album/Pets/
//! # Ctrl-C both, then fold the write-ahead log into the file (what SQLite does itself on the
//! # next open), so the fixture is one file:
//! sqlite3 /tmp/fx/metadata.sqlite 'PRAGMA wal_checkpoint(TRUNCATE);'
//! ```
//!
//! It holds schema 2, the listings `albums` and `album:<Pets id>`, and the six sizes of the
//! album "Pets" (68 KiB: SQLite spends a page on each of its 7 tables and their indexes).
//! To make one for a later release, run the same steps on that release's commit.
//!
//! Two things of the fixture are set to this run before the gateway opens it, as they would
//! be for a user who upgrades in place: the owner (`meta.identity`, which that release wrote
//! as `"<api_base> <client_id>"`, and the emulator's port differs on each run) and the time
//! the listings were fetched (now: a stored listing older than the machine's uptime cannot be
//! placed on the monotonic clock and is ignored, which would make the test depend on when it
//! runs). Everything else is as the old release wrote it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use gphotos_dav_emulator::{self as emulator, Emulator, EmulatorOptions};
use reqwest::StatusCode;

/// The store written by the release at commit 3276aed (see the module doc).
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/store-3276aed.sqlite"
);
/// The album whose listing and sizes the fixture holds.
const ALBUM: &str = "Pets";
/// Every wait for the server's background work ends here.
const DEADLINE: Duration = Duration::from_secs(30);

/// Copies the fixture to `path` and sets it to this run: owned by the gateway that `api_base`
/// names, listings fetched now.
fn install_fixture(path: &Path, api_base: &str) {
    std::fs::copy(FIXTURE, path).unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2, "the fixture is a schema 2 store");
    let identity = format!("{api_base} {}", emulator::CLIENT_ID);
    let owners = conn
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'identity'",
            [identity],
        )
        .unwrap();
    assert_eq!(owners, 1, "the old release recorded its owner");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let listings = conn
        .execute("UPDATE listings SET fetched_at = ?1", [now])
        .unwrap();
    assert_eq!(listings, 2, "the fixture holds two listings");
}

/// Every content-host request (size probes: HEADs or ranged GETs; downloads).
fn content_calls(counts: &BTreeMap<String, u64>) -> u64 {
    counts
        .iter()
        .filter(|(k, _)| k.starts_with("content."))
        .map(|(_, v)| *v)
        .sum()
}

fn library_calls(counts: &BTreeMap<String, u64>) -> u64 {
    common::library_api_calls(&BTreeMap::new(), counts)
        .values()
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_the_previous_release_wrote_opens_warm_with_no_probe() {
    let emu = Emulator::start(EmulatorOptions::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.sqlite");
    install_fixture(&path, &emu.api_base());

    // What the album shows: the emulator's library, the same for the same seed.
    let lib = emu.emulator.library().clone();
    let album = lib.albums.iter().find(|a| a.title == ALBUM).unwrap();
    let items = common::album_items(&lib, &album.id);
    let expected: BTreeMap<String, u64> = common::by_name(&items)
        .into_iter()
        .map(|(name, item)| (name, item.bytes.len() as u64))
        .collect();
    assert_eq!(expected.len(), 6);
    let mut albums = common::album_names(&lib);
    albums.sort();

    let stack = common::start_on(emu, {
        let path = path.clone();
        move |c| c.cache.path = Some(path)
    })
    .await;
    let counters = stack.emulator().counters();

    // Opened where it is, not moved aside and not replaced by a store in memory.
    assert_eq!(stack.catalog.store().location(), path.display().to_string());
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        files.iter().all(|f| !f.contains(".unusable-")),
        "the store was moved aside: {files:?}"
    );
    // The sizes were read at start.
    assert_eq!(
        stack.catalog.known_bytes(),
        expected.values().sum::<u64>(),
        "the remembered sizes"
    );

    // The folders answer from the store: names and exact sizes, no call to Google at all.
    let mut shown: Vec<String> = stack
        .list("/album/")
        .await
        .into_iter()
        .filter(|e| e.is_collection)
        .map(|e| e.name())
        .collect();
    shown.sort();
    assert_eq!(shown, albums);
    let folder = format!("/album/{ALBUM}/");
    let listed = |entries: Vec<common::DavEntry>| -> BTreeMap<String, u64> {
        entries
            .into_iter()
            .filter(|e| !e.is_collection)
            .map(|e| (e.name(), e.size()))
            .collect()
    };
    assert_eq!(listed(stack.list(&folder).await), expected);
    let spent = counters.snapshot();
    assert_eq!(content_calls(&spent), 0, "no size probe: {spent:?}");
    assert_eq!(library_calls(&spent), 0, "no listing call: {spent:?}");

    // Past the listing TTL: still answered at once, and revalidated in the background
    // against this emulator, whose items have the ids the store knows: still no probe.
    stack.catalog.clock().advance(Duration::from_secs(6 * 60));
    assert_eq!(listed(stack.list(&folder).await), expected);
    // Fresh in memory again once both listings on the path (the albums, the album) reloaded.
    let (name, item) = common::by_name(&items).into_iter().next().unwrap();
    let segments = vec!["album".to_string(), ALBUM.to_string(), name.clone()];
    tokio::time::timeout(DEADLINE, async {
        while !stack.catalog.resolves_from_memory(&segments) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the stale listings are revalidated");
    assert_eq!(listed(stack.list(&folder).await), expected);
    // The old release's JSON bodies became rows (one per entry) in place, and they are what
    // Google says now: the revalidations wrote no entry row, only the folders' fetch times.
    for stored in ["albums".to_string(), format!("album:{}", album.id)] {
        let write = stack
            .catalog
            .store()
            .last_listing_write(&stored)
            .await
            .expect("the revalidated listing was stored");
        assert_eq!(write.entry_rows(), 0, "{stored}: {write:?}");
        assert_eq!(write.changes, 1, "{stored}: {write:?}");
    }
    let stored = stack
        .catalog
        .store()
        .listing(&format!("album:{}", album.id))
        .await
        .unwrap();
    assert_eq!(stored.rows.len(), expected.len());
    let spent = counters.snapshot();
    assert!(library_calls(&spent) >= 1, "revalidated: {spent:?}");
    assert_eq!(content_calls(&spent), 0, "no size probe: {spent:?}");

    // And the bytes: a download on the revalidated listing's URL, exactly the item's.
    let (status, _, body) = stack.get(&format!("{folder}{name}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(common::sha256(&body), common::sha256(&item.bytes));
    let spent = counters.snapshot();
    assert_eq!(spent.get("content.get"), Some(&1), "{spent:?}");
    assert_eq!(spent.get("content.head"), None, "{spent:?}");
}
