//! Download URLs (baseUrl) live 60 minutes by Google's documentation, and have died after 30
//! to 40 in the field. The gateway uses a URL up to `[google] url_max_age_secs` (default 25
//! minutes) and refreshes it before using it after that, refreshes a URL the content host
//! refuses once, and trusts URLs for less from then on when Google refused one early; all
//! refreshes go through coalesced mediaItems.batchGet calls. Time moves through the clocks
//! (the emulator's and the gateway's catalog), never by sleeping.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Stack, library_api_calls, sha256, start_custom};
use gphotos_dav_emulator::{self as emulator, EmulatorOptions};
use reqwest::StatusCode;

const MINUTE: Duration = Duration::from_secs(60);

/// Access tokens that outlive the hours these tests skip, so the Google call counts below are
/// not blurred by 401s and token refreshes. These tests read the same files again to watch
/// their URLs age, so the content cache, which would serve those reads from disk with no URL
/// at all, is off in all of them.
async fn stack() -> Stack {
    start_custom(opts(), emulator::REFRESH_TOKEN, |c| {
        c.cache.content_max = Some("0".into())
    })
    .await
}

fn opts() -> EmulatorOptions {
    EmulatorOptions {
        access_token_ttl: Duration::from_secs(30 * 24 * 3600),
        ..EmulatorOptions::default()
    }
}

/// A stack whose listings stay fresh for a day, so no background revalidation brings new URLs
/// behind a test's back: every URL's age is what the test made it. `url_max_age_secs` as
/// given (None: the default).
async fn steady_stack(opts: EmulatorOptions, url_max_age_secs: Option<u64>) -> Stack {
    start_custom(opts, emulator::REFRESH_TOKEN, |c| {
        c.cache.listing_ttl = 24 * 3600;
        c.cache.content_max = Some("0".into());
        if let Some(secs) = url_max_age_secs {
            c.google.url_max_age_secs = secs;
        }
    })
    .await
}

/// A GET of `path` answers 200 with exactly `bytes`.
async fn get_exact(stack: &Stack, path: &str, bytes: &[u8], when: &str) {
    let (status, _, body) = stack.get(path).await;
    assert_eq!(status, StatusCode::OK, "{path} {when}");
    assert_eq!(body.len(), bytes.len(), "{path} {when}");
    assert_eq!(sha256(&body), sha256(bytes), "{path} {when}");
}

/// A file of /media/all and its bytes.
async fn some_file(stack: &Stack) -> (String, Vec<u8>) {
    let lib = stack.emulator().library();
    let items: Vec<_> = lib.items.iter().collect();
    let want = common::by_name(&items);
    let e = stack.list("/media/all/").await.remove(5);
    (
        format!("/media/all/{}", e.name()),
        want[&e.name()].bytes.to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_bytes_are_served_past_the_url_lifetime() {
    let stack = stack().await;
    let (path, bytes) = some_file(&stack).await;
    for step in [0, 55, 10, 61] {
        stack.advance(MINUTE * step);
        let counters = stack.emulator().counters();
        let before = counters.snapshot();
        let (status, _, body) = stack.get(&path).await;
        assert_eq!(status, StatusCode::OK, "after {step} more minutes");
        assert_eq!(sha256(&body), sha256(&bytes), "after {step} more minutes");
        // Only a URL refresh (batchGet) and, once /media/all is stale, its revalidation in the
        // background (mediaItems.list, counted in this step or the next, so not exactly).
        let spent = library_api_calls(&before, &counters.snapshot());
        assert!(
            spent
                .keys()
                .all(|k| k == "mediaItems.batchGet" || k == "mediaItems.list"),
            "after {step} more minutes: {spent:?}"
        );
        if step == 0 {
            assert_eq!(spent, BTreeMap::new(), "fresh URL, fresh listing");
        }
    }
}

/// A URL that dies before its time is refused by the content host; the gateway refreshes it
/// once, through one batchGet and no other Google call, and retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_url_is_refreshed_once_through_batch_get() {
    let stack = stack().await;
    let (path, bytes) = some_file(&stack).await;
    // Only Google's clock moves: the URLs of the listing are dead, the gateway thinks not.
    stack.emulator().clock().advance(MINUTE * 61);
    let counters = stack.emulator().counters();
    let (before, batch, downloads) = (
        counters.snapshot(),
        counters.get("mediaItems.batchGet"),
        counters.get("content.get"),
    );
    let (status, _, body) = stack.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&bytes));
    assert_eq!(counters.get("mediaItems.batchGet") - batch, 1);
    assert_eq!(
        library_api_calls(&before, &counters.snapshot()),
        [("mediaItems.batchGet".to_string(), 1)].into(),
        "no other Google call"
    );
    assert_eq!(
        counters.get("content.get") - downloads,
        2,
        "refused, then served"
    );
    // The fresh URL is kept: the next download needs no refresh.
    let (status, _, _) = stack.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(counters.get("mediaItems.batchGet") - batch, 1);
}

/// Refreshes asked for at the same time share batchGet calls: one call for up to 50 ids, and
/// one fetch for an id many requests wait for. (One thread, so "the same time" is exact.)
#[tokio::test(flavor = "current_thread")]
async fn concurrent_refreshes_coalesce_into_batch_get_calls() {
    let stack = stack().await;
    let lib = stack.emulator().library();
    stack.list("/media/all/").await;
    let ids: Vec<&str> = lib.items.iter().map(|i| i.id.as_str()).collect();
    assert!(ids.len() > 50, "{} items", ids.len());
    let bytes: BTreeMap<&str, &[u8]> = lib
        .items
        .iter()
        .map(|i| (i.id.as_str(), &i.bytes[..]))
        .collect();
    let counters = stack.emulator().counters();

    async fn fetch_all(stack: &Stack, ids: &[&str]) -> Vec<Vec<u8>> {
        futures::future::join_all(ids.iter().map(|id| async move {
            let mut d = stack.catalog.download(id, 0).await.unwrap();
            let mut out = Vec::new();
            while let Some(chunk) = futures::StreamExt::next(&mut d.body).await {
                out.extend_from_slice(&chunk.unwrap());
            }
            out
        }))
        .await
    }

    for (wanted, calls) in [
        (ids[..10].to_vec(), 1),
        (vec![ids[0]; 5], 1),
        (ids.clone(), ids.len().div_ceil(50) as u64),
    ] {
        // Every URL the gateway holds is now older than 25 minutes (and, at Google's 60, still
        // works for the first round).
        stack.advance(MINUTE * 51);
        let (before, batch) = (counters.snapshot(), counters.get("mediaItems.batchGet"));
        let got = fetch_all(&stack, &wanted).await;
        for (id, body) in wanted.iter().zip(got) {
            assert_eq!(sha256(&body), sha256(bytes[id]), "{id}");
        }
        assert_eq!(
            counters.get("mediaItems.batchGet") - batch,
            calls,
            "{} refreshes",
            wanted.len()
        );
        assert_eq!(
            library_api_calls(&before, &counters.snapshot()),
            [("mediaItems.batchGet".to_string(), calls)].into(),
            "{} refreshes: no other Google call",
            wanted.len()
        );
    }
}

/// Many threads asking for one old URL at once, round after round: exactly one batchGet per
/// round, also for a request that found the URL old just before the call came back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_refreshes_of_one_url_make_one_call() {
    let stack = stack().await;
    stack.list("/media/all/").await;
    let id = stack.emulator().library().items[3].id.clone();
    let counters = stack.emulator().counters();
    for round in 1..=20u64 {
        stack.advance(MINUTE * 51);
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (catalog, id) = (stack.catalog.clone(), id.clone());
                tokio::spawn(async move { catalog.download_url(&id).await })
            })
            .collect();
        let mut urls = std::collections::BTreeSet::new();
        for t in tasks {
            urls.insert(t.await.unwrap().unwrap());
        }
        assert_eq!(urls.len(), 1, "round {round}: one fresh URL for everyone");
        assert_eq!(counters.get("mediaItems.batchGet"), round, "round {round}");
    }
}

/// With the default `url_max_age_secs` (1500), a URL 24 minutes old is used as it is and one
/// 26 minutes old is replaced before it is used, although Google would still serve both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_url_is_replaced_after_25_minutes() {
    let stack = steady_stack(opts(), None).await;
    assert_eq!(stack.catalog.url_age().max(), MINUTE * 25);
    let (path, bytes) = some_file(&stack).await;
    let counters = stack.emulator().counters();
    let batch = counters.get("mediaItems.batchGet");

    stack.advance(MINUTE * 24);
    let downloads = counters.get("content.get");
    get_exact(&stack, &path, &bytes, "at 24 minutes").await;
    assert_eq!(counters.get("mediaItems.batchGet") - batch, 0, "at 24 min");
    assert_eq!(counters.get("content.get") - downloads, 1);

    stack.advance(MINUTE * 2);
    let downloads = counters.get("content.get");
    get_exact(&stack, &path, &bytes, "at 26 minutes").await;
    assert_eq!(counters.get("mediaItems.batchGet") - batch, 1, "at 26 min");
    assert_eq!(
        counters.get("content.get") - downloads,
        1,
        "no refusal first"
    );
    assert_eq!(counters.get("content.expired"), 0);
    assert_eq!(counters.get("mediaItems.get"), 0);
    assert_eq!(
        stack.catalog.url_age().max(),
        MINUTE * 25,
        "nothing was refused"
    );
}

/// Google ends URLs at 35 minutes, while the gateway was told to use them for 50: the first
/// GET past 35 minutes is refused (403), refreshed and served exactly; from then on the gateway
/// uses URLs for 31 minutes only (the refused age less 5), so three hours of downloads meet no
/// other refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_death_shortens_the_age_urls_are_used_for() {
    let early = EmulatorOptions {
        baseurl_ttl: MINUTE * 35,
        ..opts()
    };
    let stack = steady_stack(early, Some(3000)).await;
    assert_eq!(stack.catalog.url_age().max(), MINUTE * 50);
    let lib = stack.emulator().library();
    let want = common::by_name(&lib.items.iter().collect::<Vec<_>>());
    let files: Vec<(String, Vec<u8>)> = stack
        .list("/media/all/")
        .await
        .into_iter()
        .take(5)
        .map(|e| {
            (
                format!("/media/all/{}", e.name()),
                want[&e.name()].bytes.to_vec(),
            )
        })
        .collect();
    let counters = stack.emulator().counters();

    stack.advance(MINUTE * 36);
    let (batch, downloads) = (
        counters.get("mediaItems.batchGet"),
        counters.get("content.get"),
    );
    get_exact(&stack, &files[0].0, &files[0].1, "at 36 minutes").await;
    assert_eq!(counters.get("content.expired"), 1, "Google refused it");
    assert_eq!(
        counters.get("content.get") - downloads,
        2,
        "refused, then served"
    );
    assert_eq!(counters.get("mediaItems.batchGet") - batch, 1);
    let shortened = stack.catalog.url_age().max();
    assert_eq!(shortened, MINUTE * 31);

    // Three hours of downloads, one every 4 minutes, across the files: no URL is used past
    // 31 minutes, so Google refuses none.
    let batch = counters.get("mediaItems.batchGet");
    for round in 1..=45u32 {
        stack.advance(MINUTE * 4);
        let (path, bytes) = &files[round as usize % files.len()];
        get_exact(&stack, path, bytes, &format!("in round {round}")).await;
        assert_eq!(counters.get("content.expired"), 1, "round {round}");
    }
    let refreshes = counters.get("mediaItems.batchGet") - batch;
    // 180 minutes at one refresh per 31 (the files share their calls): 5 or 6 calls.
    assert!((5..=6).contains(&refreshes), "{refreshes} batchGet calls");
    assert_eq!(stack.catalog.url_age().max(), shortened);
    assert_eq!(counters.get("mediaItems.get"), 0);
}

/// However early Google ends URLs, the gateway keeps using them for 10 minutes (600 s): a
/// refusal at 12 minutes brings it down to 10, not to 7; refusals of younger URLs change
/// nothing; every download still ends with the exact bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_age_urls_are_used_for_never_drops_below_600_seconds() {
    let stack = steady_stack(opts(), None).await;
    let (path, bytes) = some_file(&stack).await;
    let counters = stack.emulator().counters();
    stack.emulator().set_url_lifetime(MINUTE * 11);

    stack.advance(MINUTE * 12);
    get_exact(&stack, &path, &bytes, "at 12 minutes").await;
    assert_eq!(counters.get("content.expired"), 1);
    assert_eq!(stack.catalog.url_age().max(), Duration::from_secs(600));

    // Google gets worse: URLs die after 2 minutes. Each download is refused and refreshed,
    // and the age stays at its floor.
    stack.emulator().set_url_lifetime(MINUTE * 2);
    for round in 1..=4u64 {
        stack.advance(MINUTE * 3);
        get_exact(&stack, &path, &bytes, &format!("in round {round}")).await;
        assert_eq!(counters.get("content.expired"), 1 + round, "round {round}");
        assert_eq!(
            stack.catalog.url_age().max(),
            Duration::from_secs(600),
            "round {round}"
        );
    }
}

/// The fixture's first album with items, and its folder's name under `/album`.
fn album_with_items(lib: &emulator::Library) -> (&emulator::FixtureAlbum, String) {
    lib.albums
        .iter()
        .zip(common::album_names(lib))
        .find(|(a, _)| !a.item_ids.is_empty())
        .expect("an album with items")
}

/// The name item `id` is shown under in `/media/all`.
fn name_in_media_all(lib: &emulator::Library, id: &str) -> String {
    let everything: Vec<_> = lib.items.iter().collect();
    common::by_name(&everything)
        .into_iter()
        .find(|(_, i)| i.id == id)
        .map(|(name, _)| name)
        .expect("the item is in /media/all")
}

/// An album lists items `/media/all` holds already, each with a new download URL. The server
/// keeps one copy of each item and the newest URL beside it: a download through either folder
/// uses the album's younger URL, the store writes each folder's row with the URL that folder
/// was sent, and after a restart a listing read back from the store never puts its older URL
/// in place of a younger one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_listed_again_downloads_with_its_newest_url() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("metadata.sqlite");
    let path = store.clone();
    let stack = start_custom(opts(), emulator::REFRESH_TOKEN, move |c| {
        c.cache.listing_ttl = 24 * 3600;
        c.cache.content_max = Some("0".into());
        c.cache.path = Some(path);
    })
    .await;
    let lib = stack.emulator().library();
    let (album, album_dir) = album_with_items(lib);
    let members = common::album_items(lib, &album.id);
    let (in_album, item) = common::by_name(&members).into_iter().next().unwrap();
    let via_all = format!("/media/all/{}", name_in_media_all(lib, &item.id));
    let via_album = format!("/album/{album_dir}/{in_album}");
    let counters = stack.emulator().counters();

    // /media/all at 0, the album at 20 minutes; at 30 the first URL is past the 25 minutes
    // trusted, the album's is 10 minutes old.
    assert!(!stack.list("/media/all/").await.is_empty());
    stack.advance(MINUTE * 20);
    assert_eq!(
        stack.list(&format!("/album/{album_dir}/")).await.len(),
        members.len()
    );
    stack.advance(MINUTE * 10);
    let batch = counters.get("mediaItems.batchGet");
    get_exact(&stack, &via_album, &item.bytes, "through the album").await;
    get_exact(&stack, &via_all, &item.bytes, "through /media/all").await;
    assert_eq!(
        counters.get("mediaItems.batchGet") - batch,
        0,
        "the album's URL serves both"
    );

    // Each folder's rows keep the URL that folder was sent: the album's differ from
    // /media/all's for every item they share.
    let stored = stack.catalog.store();
    stored.flush().await;
    let urls = |listing: gphotos_dav::catalog::store::StoredListing| -> BTreeMap<String, String> {
        listing
            .rows
            .into_iter()
            .filter_map(|r| Some((r.key, r.file?.base_url)))
            .collect()
    };
    let all_urls = urls(stored.listing("media-all").await.expect("stored"));
    let album_urls = urls(
        stored
            .listing(&format!("album:{}", album.id))
            .await
            .expect("stored"),
    );
    assert_eq!(album_urls.len(), members.len());
    for (id, url) in &album_urls {
        assert!(url.starts_with("http"), "{id}: {url}");
        assert_ne!(Some(url), all_urls.get(id), "{id}: the album's own URL");
    }

    // A restart, 30 minutes after /media/all was listed: the album is read back first, then
    // /media/all, whose older URLs must not replace the album's.
    let restarted = stack
        .gateway(move |c| {
            c.cache.listing_ttl = 24 * 3600;
            c.cache.content_max = Some("0".into());
            c.cache.path = Some(store);
        })
        .await;
    restarted.catalog.clock().advance(MINUTE * 30);
    let http = reqwest::Client::new();
    let before = counters.snapshot();
    for path in [&via_album, &via_all] {
        let url = format!(
            "{}{}",
            restarted.url,
            common::encode_path(path.trim_start_matches('/'))
        );
        let resp = http.get(url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path} after the restart");
        let body = resp.bytes().await.unwrap();
        assert_eq!(
            sha256(&body),
            sha256(&item.bytes),
            "{path} after the restart"
        );
    }
    let spent = library_api_calls(&before, &counters.snapshot());
    assert!(spent.is_empty(), "after the restart: {spent:?}");
}

/// A date view is built from `/media/all`'s items, which carry the URLs `/media/all` was sent.
/// Listing one after an album brought younger URLs for the same items must not put the older
/// URLs back: here Google ends URLs at 35 minutes, `/media/all`'s are 40 minutes old when the
/// file is read and the album's 20, and the read meets no refusal and makes no call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_date_view_does_not_bring_back_an_older_url() {
    let early = EmulatorOptions {
        baseurl_ttl: MINUTE * 35,
        ..opts()
    };
    let stack = steady_stack(early, Some(3000)).await;
    let lib = stack.emulator().library();
    let (album, album_dir) = album_with_items(lib);
    let first = lib.item(&album.item_ids[0]).unwrap();
    let in_all = name_in_media_all(lib, &first.id);
    let counters = stack.emulator().counters();

    assert!(!stack.list("/media/all/").await.is_empty());
    stack.advance(MINUTE * 20);
    assert!(!stack.list(&format!("/album/{album_dir}/")).await.is_empty());
    stack.advance(MINUTE * 5);
    let mut listed = 0;
    for year in stack.list("/media/by-year/").await {
        listed += stack
            .list(&format!("/media/by-year/{}/", year.name()))
            .await
            .len();
    }
    assert_eq!(listed, lib.items.len(), "every item in one year");
    stack.advance(MINUTE * 15);

    let (batch, expired) = (
        counters.get("mediaItems.batchGet"),
        counters.get("content.expired"),
    );
    get_exact(
        &stack,
        &format!("/media/all/{in_all}"),
        &first.bytes,
        "at 40 minutes",
    )
    .await;
    assert_eq!(counters.get("content.expired") - expired, 0, "no refusal");
    assert_eq!(counters.get("mediaItems.batchGet") - batch, 0, "no call");
}
