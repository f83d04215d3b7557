//! What the client sees when the content host misbehaves: resumed downloads, aborted ones,
//! and items whose bytes changed since their size was announced. Never a short, padded or
//! otherwise wrong file presented as complete.

mod common;

use bytes::Bytes;
use common::{Stack, sha256, start};
use gphotos_dav::emulator::FixtureItem;
use reqwest::StatusCode;

/// The largest item of the library and its path under /media/all.
async fn largest(stack: &Stack) -> (FixtureItem, String) {
    let lib = stack.emulator().library();
    let item = lib
        .items
        .iter()
        .max_by_key(|i| i.bytes.len())
        .unwrap()
        .clone();
    let entries = stack.list("/media/all/").await;
    let entry = entries
        .iter()
        .find(|e| e.size() == item.bytes.len() as u64)
        .unwrap();
    (item, entry.href.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_mid_body_is_resumed_invisibly() {
    let stack = start().await;
    let (item, path) = largest(&stack).await;
    let gets = stack.emulator().counters().get("content.get");
    stack.emulator().cut_next_downloads(2);
    let (status, headers, body) = stack.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-length"].to_str().unwrap(),
        item.bytes.len().to_string()
    );
    assert_eq!(body.len(), item.bytes.len());
    assert_eq!(sha256(&body), sha256(&item.bytes));
    assert_eq!(
        stack.emulator().counters().get("content.get") - gets,
        3,
        "two cut requests, then one resumed from the last byte delivered"
    );
    // A range that gets cut is resumed too.
    stack.emulator().cut_next_downloads(1);
    let (status, _, body) = stack.get_range(&path, "bytes=1000-").await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(sha256(&body), sha256(&item.bytes[1000..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_that_keeps_breaking_fails_visibly() {
    let stack = start().await;
    let (_item, path) = largest(&stack).await;
    stack.emulator().cut_next_downloads(100);
    let resp = stack.http.get(stack.full_url(&path)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.bytes().await;
    assert!(
        body.is_err(),
        "the response must break, not complete with {} bytes",
        body.map(|b| b.len()).unwrap_or(0)
    );
    stack.emulator().cut_next_downloads(0);
    // The server is still fine afterwards.
    let (status, _, _) = stack.get(&path).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_change_upstream_aborts_the_download_and_the_next_listing_has_the_new_size() {
    let stack = start().await;
    let (item, path) = largest(&stack).await;
    let new_bytes = Bytes::from(item.bytes[..item.bytes.len() / 3].to_vec());
    stack.emulator().replace_bytes(&item.id, new_bytes.clone());

    let resp = stack.http.get(stack.full_url(&path)).send().await.unwrap();
    let body = resp.bytes().await;
    assert!(body.is_err(), "a download of changed bytes must break");

    let entries = stack.list("/media/all/").await;
    let entry = entries.iter().find(|e| e.href == path).unwrap();
    assert_eq!(entry.size(), new_bytes.len() as u64, "size probed again");
    let (status, _, body) = stack.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&new_bytes));
}
