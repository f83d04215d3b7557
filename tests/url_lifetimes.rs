//! Download URLs (baseUrl) live 60 minutes, sometimes less. The gateway refreshes a URL older
//! than 50 minutes before using it, and a URL the content host refuses once, both through
//! coalesced mediaItems.batchGet calls. Time moves through the clocks (the emulator's and the
//! gateway's catalog), never by sleeping.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Stack, library_api_calls, sha256, start_custom};
use gphotos_dav::emulator::{self, EmulatorOptions};
use reqwest::StatusCode;

const MINUTE: Duration = Duration::from_secs(60);

/// Access tokens that outlive the hours these tests skip, so the Google call counts below are
/// not blurred by 401s and token refreshes.
async fn stack() -> Stack {
    let opts = EmulatorOptions {
        access_token_ttl: Duration::from_secs(30 * 24 * 3600),
        ..EmulatorOptions::default()
    };
    start_custom(opts, emulator::REFRESH_TOKEN, |_| {}).await
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
        // Every URL the gateway holds is now older than 50 minutes (yet still works).
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
