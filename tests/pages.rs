//! Listings longer than one of Google's pages, through the server: albums.list answers at most
//! 50 albums a page, mediaItems.list and mediaItems.search at most 100 items. A PROPFIND of
//! such a folder must show every entry exactly once, under the name it always has, for exactly
//! the pages Google needed (the emulator's call counters are the oracle).
//!
//! Google at times repeats the last entry of a page at the top of the next one. Listed twice,
//! a file whose name was unique would get an ` {ID}` suffix, which a sync tool reads as a
//! delete and a new file: with the emulator repeating entries, the names must not change.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{
    Gateway, Stack, album_items, album_names, file_names, library_api_calls as api_calls,
    parse_multistatus,
};
use gphotos_dav_emulator::{self as emulator, BIG_ALBUM_TITLE, EmulatorOptions, Library};
use reqwest::StatusCode;

/// Items in the big album: two search pages, three when entries repeat.
const BIG: usize = 200;
/// Empty albums added to the 8 seeded ones and the big album: 100 albums, two albums.list
/// pages, three when entries repeat.
const MANY: usize = 91;

async fn stack() -> Stack {
    let opts = EmulatorOptions {
        big_album: BIG,
        many_albums: MANY,
        // No token refresh in the middle of the counts.
        access_token_ttl: Duration::from_secs(30 * 24 * 3600),
        ..EmulatorOptions::default()
    };
    common::start_custom(opts, emulator::REFRESH_TOKEN, |_| {}).await
}

/// The entry names of a folder (PROPFIND Depth 1 through the gateway at `base`, without the
/// folder itself), sorted, duplicates kept.
async fn names(stack: &Stack, base: &str, folder: &str) -> Vec<String> {
    let url = format!(
        "{base}{}",
        common::encode_path(folder.trim_start_matches('/'))
    );
    let resp = stack
        .http
        .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), url)
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(
        status,
        StatusCode::MULTI_STATUS,
        "PROPFIND {folder}: {body}"
    );
    let mut entries = parse_multistatus(&body);
    assert!(!entries.is_empty(), "{folder}: {body}");
    entries.remove(0);
    let mut names: Vec<String> = entries.iter().map(|e| e.name()).collect();
    names.sort();
    names
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

/// What the three long folders must show, stated from the fixture library on its own.
struct Expected {
    albums: Vec<String>,
    big_album: Vec<String>,
    all: Vec<String>,
}

fn expected(lib: &Library) -> Expected {
    let big = lib.albums_titled(BIG_ALBUM_TITLE)[0];
    let all: Vec<_> = lib.items.iter().collect();
    Expected {
        albums: sorted(album_names(lib)),
        big_album: sorted(file_names(&album_items(lib, &big.id))),
        all: sorted(file_names(&all)),
    }
}

/// Pages a listing of `n` entries takes in pages of `size`; with `repeats`, each page after
/// the first begins with the last entry of the page before, which takes one of its places.
fn pages(n: usize, size: usize, repeats: bool) -> u64 {
    match (repeats, n <= size) {
        (false, _) => n.div_ceil(size) as u64,
        (true, true) => 1,
        (true, false) => 1 + (n - size).div_ceil(size - 1) as u64,
    }
}

/// Lists `/album/`, the big album and `/media/all/` through a new gateway (a cold catalog),
/// checks each listing's exact names and the exact Library API calls it cost, and returns
/// the three name lists.
async fn list_long_folders(stack: &Stack, gateway: &Gateway, repeats: bool) -> [Vec<String>; 3] {
    let lib = stack.emulator().library();
    let want = expected(lib);
    let (albums_n, big_n, all_n) = (lib.albums.len(), want.big_album.len(), lib.items.len());
    assert_eq!((albums_n, big_n, all_n), (9 + MANY, BIG, 60 + BIG));
    let counters = stack.emulator().counters();
    let how = if repeats {
        "with repeats"
    } else {
        "without repeats"
    };

    let before = counters.snapshot();
    let albums = names(stack, &gateway.url, "/album/").await;
    assert_eq!(albums.len(), albums_n, "{how}");
    assert_eq!(albums, want.albums, "{how}");
    let spent = api_calls(&before, &counters.snapshot());
    let want_calls = BTreeMap::from([("albums.list".to_string(), pages(albums_n, 50, repeats))]);
    assert_eq!(spent, want_calls, "/album/ {how}");

    let before = counters.snapshot();
    let big = names(stack, &gateway.url, &format!("/album/{BIG_ALBUM_TITLE}/")).await;
    assert_eq!(big.len(), big_n, "{how}");
    assert_eq!(big, want.big_album, "{how}");
    let spent = api_calls(&before, &counters.snapshot());
    let want_calls =
        BTreeMap::from([("mediaItems.search".to_string(), pages(big_n, 100, repeats))]);
    assert_eq!(spent, want_calls, "the big album {how}");

    let before = counters.snapshot();
    let all = names(stack, &gateway.url, "/media/all/").await;
    assert_eq!(all.len(), all_n, "{how}");
    assert_eq!(all, want.all, "{how}");
    let spent = api_calls(&before, &counters.snapshot());
    let want_calls = BTreeMap::from([("mediaItems.list".to_string(), pages(all_n, 100, repeats))]);
    assert_eq!(spent, want_calls, "/media/all/ {how}");

    [albums, big, all]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_folders_are_listed_page_by_page_to_the_end() {
    let stack = stack().await;
    let gateway = stack.gateway(|_| {}).await;
    list_long_folders(&stack, &gateway, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_google_repeats_on_the_next_page_is_listed_once_under_its_name() {
    let stack = stack().await;
    let plain = list_long_folders(&stack, &stack.gateway(|_| {}).await, false).await;
    stack.emulator().set_repeat_last_entry(true);
    let repeated = list_long_folders(&stack, &stack.gateway(|_| {}).await, true).await;
    for (what, (a, b)) in ["/album/", "the big album", "/media/all/"]
        .iter()
        .zip(plain.iter().zip(&repeated))
    {
        assert_eq!(a, b, "{what}: the same names with and without repeats");
    }
}
