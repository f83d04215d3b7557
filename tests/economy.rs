//! Upstream economy: what each kind of request costs in calls to Google, counted by the
//! emulator. Google's quotas are per day (10,000 API calls, 75,000 download-URL requests), a
//! listing page holds at most 100 items and sizes can only be learned by probing, so every
//! call saved here is a call a big library does not run out of.
//!
//! Also the metadata store as a user meets it: a restarted server answers from it and probes
//! nothing, and the quota counts it keeps continue across restarts.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Gateway, Stack, parse_multistatus, sha256, start_custom};
use gphotos_dav_emulator::{self as emulator, BIG_ALBUM_TITLE, EmulatorOptions, Fault};
use reqwest::StatusCode;

const N: usize = 250;
const MINUTE: Duration = Duration::from_secs(60);

async fn stack() -> Stack {
    let opts = EmulatorOptions {
        big_album: N,
        // Tokens outlive the hours skipped below, so counts are not blurred by refreshes.
        access_token_ttl: Duration::from_secs(30 * 24 * 3600),
        ..EmulatorOptions::default()
    };
    start_custom(opts, emulator::REFRESH_TOKEN, |_| {}).await
}

/// The big album's folder (decoded).
fn album_path() -> String {
    format!("/album/{BIG_ALBUM_TITLE}/")
}

/// The URL of `path` (decoded) under a gateway's root URL.
fn url_of(base: &str, path: &str) -> String {
    format!(
        "{base}{}",
        common::encode_path(path.trim_start_matches('/'))
    )
}

async fn propfind(http: &reqwest::Client, url: &str, depth: &str) -> (StatusCode, String) {
    let resp = http
        .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), url)
        .header("Depth", depth)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// The file names of a folder and their sizes, listed through `base`.
async fn files(http: &reqwest::Client, base: &str, folder: &str) -> BTreeMap<String, u64> {
    let (status, xml) = propfind(http, &url_of(base, folder), "1").await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{xml}");
    parse_multistatus(&xml)
        .into_iter()
        .filter(|e| !e.is_collection)
        .map(|e| (e.name(), e.size()))
        .collect()
}

/// Every Library API call among `counts` (everything but tokens and the content host).
fn api_calls(counts: &BTreeMap<String, u64>) -> u64 {
    counts
        .iter()
        .filter(|(k, _)| common::is_library_api(k))
        .map(|(_, v)| *v)
        .sum()
}

fn media_calls(counts: &BTreeMap<String, u64>) -> u64 {
    counts
        .iter()
        .filter(|(k, _)| k.starts_with("content."))
        .map(|(_, v)| *v)
        .sum()
}

/// Counters that changed between two snapshots, with the increase.
fn diff(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let was = before.get(k).copied().unwrap_or(0);
            (*v != was).then(|| (k.clone(), v - was))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_listing_costs_pages_and_probes_and_a_warm_one_nothing() {
    let stack = stack().await;
    let counters = stack.emulator().counters();
    // Resolve /album first, so what follows is the album's own cost.
    stack.list("/album/").await;
    let before = counters.snapshot();

    let listed = files(&stack.http, &stack.url, &album_path()).await;
    assert_eq!(listed.len(), N);
    let cold = diff(&before, &counters.snapshot());
    assert_eq!(
        cold.get("mediaItems.search").copied(),
        Some(N.div_ceil(100) as u64),
        "one search per page of 100: {cold:?}"
    );
    let probes = cold.get("content.head").copied().unwrap_or(0)
        + cold.get("content.probe").copied().unwrap_or(0);
    assert!(probes <= N as u64, "at most one probe per item: {cold:?}");
    assert_eq!(api_calls(&cold), N.div_ceil(100) as u64, "{cold:?}");

    // A second listing, and a stat of every file: nothing.
    let warm = counters.snapshot();
    assert_eq!(files(&stack.http, &stack.url, &album_path()).await, listed);
    for name in listed.keys().take(25) {
        let url = url_of(&stack.url, &format!("{}{name}", album_path()));
        let (status, xml) = propfind(&stack.http, &url, "0").await;
        assert_eq!(status, StatusCode::MULTI_STATUS, "{xml}");
    }
    assert_eq!(diff(&warm, &counters.snapshot()), BTreeMap::new());

    // A GET while the listing's URL is fresh: the bytes, and no API call.
    let (name, size) = listed.iter().next().unwrap();
    let (status, _, body) = stack.get(&format!("{}{name}", album_path())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len() as u64, *size);
    let get = diff(&warm, &counters.snapshot());
    assert_eq!(api_calls(&get), 0, "{get:?}");
    assert_eq!(get.get("content.get").copied(), Some(1), "{get:?}");
}

/// Past the URL lifetime, a client fetching the album one file at a time (the way rclone or a
/// file manager copies) costs one batchGet per 50 files, whatever the order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshing_urls_costs_one_batch_get_per_50_items() {
    // Listings stay fresh for hours here: a revalidated listing would bring new URLs by itself.
    let opts = EmulatorOptions {
        big_album: N,
        access_token_ttl: Duration::from_secs(30 * 24 * 3600),
        ..EmulatorOptions::default()
    };
    let stack = start_custom(opts, emulator::REFRESH_TOKEN, |c| {
        c.cache.listing_ttl = 4 * 3600
    })
    .await;
    let listed = files(&stack.http, &stack.url, &album_path()).await;
    let lib = stack.emulator().library();
    let album = lib
        .albums
        .iter()
        .find(|a| a.title == BIG_ALBUM_TITLE)
        .unwrap();
    let items: Vec<_> = lib
        .items
        .iter()
        .filter(|i| album.item_ids.contains(&i.id))
        .collect();
    let want = common::by_name(&items);
    stack.advance(MINUTE * 55);
    let before = stack.emulator().counters().snapshot();
    // Odd order: every 7th name, wrapping around.
    let names: Vec<&String> = listed.keys().collect();
    for k in 0..names.len() {
        let name = names[(k * 7) % names.len()];
        let (status, _, body) = stack.get(&format!("{}{name}", album_path())).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(sha256(&body), sha256(&want[name].bytes), "{name}");
    }
    let spent = diff(&before, &stack.emulator().counters().snapshot());
    assert_eq!(
        spent.get("mediaItems.batchGet").copied(),
        Some(N.div_ceil(50) as u64),
        "{spent:?}"
    );
    assert_eq!(api_calls(&spent), N.div_ceil(50) as u64, "{spent:?}");
}

/// Starts a gateway on the stack's emulator whose store is the file at `path`.
async fn gateway_at(stack: &Stack, path: &std::path::Path) -> Gateway {
    let path = path.to_path_buf();
    stack.gateway(move |c| c.cache.path = Some(path)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_costs_no_probes_and_no_listing() {
    let stack = stack().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("metadata.sqlite");
    let counters = stack.emulator().counters();

    let first = gateway_at(&stack, &store).await;
    let listed = files(&stack.http, &first.url, &album_path()).await;
    let all = files(&stack.http, &first.url, "/media/all/").await;
    first.catalog.store().flush().await;
    drop(first);

    // Same store, new process state: the listings and sizes come from disk.
    let before = counters.snapshot();
    let second = gateway_at(&stack, &store).await;
    assert_eq!(files(&stack.http, &second.url, &album_path()).await, listed);
    assert_eq!(files(&stack.http, &second.url, "/media/all/").await, all);
    let spent = diff(&before, &counters.snapshot());
    assert_eq!(api_calls(&spent), 0, "{spent:?}");
    assert_eq!(media_calls(&spent), 0, "{spent:?}");

    // The stored download URLs are young: a GET costs no API call either.
    let (name, size) = listed.iter().next().unwrap();
    let resp = stack
        .http
        .get(url_of(&second.url, &format!("{}{name}", album_path())))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().len() as u64, *size);
    assert_eq!(api_calls(&diff(&before, &counters.snapshot())), 0);

    // Past the TTL, the stored listing is still answered at once and revalidated behind.
    second.catalog.clock().advance(MINUTE * 6);
    let before = counters.snapshot();
    assert_eq!(files(&stack.http, &second.url, &album_path()).await, listed);
    let spent = diff(&before, &counters.snapshot());
    assert_eq!(media_calls(&spent), 0, "{spent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_use_is_counted_per_day_in_the_store_across_restarts() {
    let stack = stack().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("metadata.sqlite");
    let counters = stack.emulator().counters();
    let today = gphotos_dav::google::quota::pacific_today(chrono::Utc::now());
    let start = counters.snapshot();

    let first = gateway_at(&stack, &store).await;
    files(&stack.http, &first.url, &album_path()).await;
    first.catalog.store().flush().await;
    let used = first.catalog.store().usage(today).await;
    let spent = diff(&start, &counters.snapshot());
    assert_eq!(used.api, api_calls(&spent), "{spent:?}");
    assert_eq!(used.media, media_calls(&spent), "{spent:?}");
    assert!(used.api > 0 && used.media >= N as u64);
    drop(first);

    // The next run adds to the same day.
    let second = gateway_at(&stack, &store).await;
    files(&stack.http, &second.url, "/media/all/").await;
    second.catalog.store().flush().await;
    let total = second.catalog.store().usage(today).await;
    let spent = diff(&start, &counters.snapshot());
    assert_eq!(total.api, api_calls(&spent), "{spent:?}");
    assert_eq!(total.media, media_calls(&spent), "{spent:?}");
    assert!(total.api > used.api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_up_daily_quota_stays_closed_after_a_restart() {
    let stack = stack().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("metadata.sqlite");
    stack
        .emulator()
        .inject("mediaItems.list", Fault::DailyQuota, 1, None);
    let first = gateway_at(&stack, &store).await;
    let (status, body) = propfind(&stack.http, &format!("{}media/all/", first.url), "1").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    first.catalog.store().flush().await;
    drop(first);

    stack.emulator().clear_faults();
    let before = stack.emulator().counters().snapshot();
    let second = gateway_at(&stack, &store).await;
    let resp = stack
        .http
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            format!("{}album/", second.url),
        )
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"));
    let spent = diff(&before, &stack.emulator().counters().snapshot());
    assert_eq!(
        api_calls(&spent),
        0,
        "the gate is closed until Pacific midnight: {spent:?}"
    );
}

/// Uploads `n` new photos straight to Google, as another app (the phone) would: the server
/// does not know of them until it lists `/media/all` again.
async fn upload_elsewhere(stack: &Stack, n: usize) {
    use gphotos_dav::google::library::NewItem;
    let google = common::google_on(&stack.emu);
    let dir = tempfile::tempdir().unwrap();
    let mut items = Vec::new();
    for i in 0..n {
        let photo = common::jpeg(16, 16, 7000 + i as u64, 90);
        let name = format!("phone-{i}.jpg");
        let file = dir.path().join(&name);
        std::fs::write(&file, &photo).unwrap();
        let upload_token = google
            .upload
            .upload_file(&file, photo.len() as u64, "image/jpeg")
            .await
            .unwrap();
        items.push(NewItem {
            upload_token,
            file_name: name,
        });
    }
    let created = google.library.batch_create(None, &items).await.unwrap();
    assert!(created.iter().all(|c| c.is_ok()), "{created:?}");
}

/// `/media/all` listed once its listing is past the TTL: answered from memory at once, and
/// revalidated behind; returns once the revalidated listing is in memory (`name`, a file it
/// holds, resolves from memory), so the next request does not revalidate again.
async fn stale_listing(stack: &Stack, gateway: &Gateway, name: &str) -> BTreeMap<String, u64> {
    gateway.catalog.clock().advance(MINUTE * 6);
    let stale = files(&stack.http, &gateway.url, "/media/all/").await;
    let segments = ["media", "all", name].map(String::from);
    tokio::time::timeout(Duration::from_secs(30), async {
        while !gateway.catalog.resolves_from_memory(&segments) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the stale listing is revalidated");
    stale
}

/// Waits (with a deadline) until the store has written `folder` again, and returns what that
/// write did.
async fn next_write(
    gateway: &Gateway,
    folder: &str,
    last: Option<gphotos_dav::catalog::store::ListingWrite>,
) -> gphotos_dav::catalog::store::ListingWrite {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let now = gateway.catalog.store().last_listing_write(folder).await;
            if let Some(write) = now.filter(|w| Some(*w) != last) {
                return write;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the listing is written to the store")
}

/// The store keeps listings as rows and a revalidation writes only what changed (#18): the
/// first listing of `/media/all` writes a row per item; a revalidation that finds nothing new
/// writes none (only the folder's fetch time: Google's fresh download URLs are not a change);
/// one that finds 10 new items writes 10; one that misses 3 deleted items deletes 3. A restart
/// on that store lists exactly what was last listed, at no cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revalidation_writes_only_the_rows_that_changed() {
    let stack = stack().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("metadata.sqlite");
    let counters = stack.emulator().counters();
    let gw = gateway_at(&stack, &store).await;

    let first = files(&stack.http, &gw.url, "/media/all/").await;
    let write = next_write(&gw, "media-all", None).await;
    assert_eq!(write.inserted, first.len() as u64, "a row per item");
    assert_eq!((write.updated, write.deleted), (0, 0));
    assert_eq!(
        write.changes,
        first.len() as u64 + 1,
        "and the folder's row"
    );

    // Stale, nothing changed upstream: the same listing (new URLs), no entry row written.
    let kept = first.keys().last().unwrap().clone();
    assert_eq!(stale_listing(&stack, &gw, &kept).await, first);
    let write = next_write(&gw, "media-all", Some(write)).await;
    assert_eq!(write.entry_rows(), 0, "{write:?}");
    assert_eq!(write.changes, 1, "the fetch time alone: {write:?}");

    // 10 new items upstream: 10 rows.
    upload_elsewhere(&stack, 10).await;
    stale_listing(&stack, &gw, "phone-9.jpg").await;
    let write = next_write(&gw, "media-all", Some(write)).await;
    assert_eq!((write.inserted, write.updated, write.deleted), (10, 0, 0));
    assert_eq!(write.changes, 11);
    let grown = files(&stack.http, &gw.url, "/media/all/").await;
    assert_eq!(grown.len(), first.len() + 10);
    assert_eq!(grown.keys().filter(|n| n.starts_with("phone-")).count(), 10);

    // 3 deleted in the Google Photos app: 3 rows deleted.
    let lib = stack.emulator().current_library();
    let album = lib
        .albums
        .iter()
        .find(|a| a.title == BIG_ALBUM_TITLE)
        .unwrap();
    for id in &album.item_ids[..3] {
        stack.emulator().delete_in_app(id);
    }
    stale_listing(&stack, &gw, "phone-0.jpg").await;
    let write = next_write(&gw, "media-all", Some(write)).await;
    assert_eq!((write.inserted, write.updated, write.deleted), (0, 0, 3));
    assert_eq!(write.changes, 4);
    let last = files(&stack.http, &gw.url, "/media/all/").await;
    assert_eq!(last.len(), grown.len() - 3);
    gw.catalog.store().flush().await;
    drop(gw);

    // The rows, updated three times, are the listing: a restart shows it as it was, with
    // no call to Google.
    let before = counters.snapshot();
    let again = gateway_at(&stack, &store).await;
    assert_eq!(files(&stack.http, &again.url, "/media/all/").await, last);
    let spent = diff(&before, &counters.snapshot());
    assert_eq!(api_calls(&spent), 0, "{spent:?}");
    assert_eq!(media_calls(&spent), 0, "{spent:?}");
}
