//! The probe budget (#18): size probes spend at most `[cache] probe_budget` requests per
//! Pacific day, counted in the store across restarts. A listing that needs more answers 503
//! with `Retry-After` (the next Pacific midnight) and says how many items still need a size;
//! what it probed is kept, and the next day completes it with only the missing probes, the
//! folders refused first. The emulator's counters are the oracle; time moves by the clocks.

mod common;

use std::time::Duration;

use common::{Stack, album_items, album_names, by_name, start_on};
use gphotos_dav_emulator::{Emulator, EmulatorOptions, FixtureItem, RunningEmulator};
use reqwest::StatusCode;

/// A Depth 1 PROPFIND of `path` on the gateway at `base`: status, `Retry-After`, body.
async fn propfind(stack: &Stack, base: &str, path: &str) -> (StatusCode, Option<u64>, String) {
    let resp = stack
        .http
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            format!(
                "{base}{}",
                common::encode_path(path.trim_start_matches('/'))
            ),
        )
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, after, resp.text().await.unwrap())
}

async fn emulator_started() -> RunningEmulator {
    Emulator::start(EmulatorOptions::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("emulator starts")
}

/// Size probes the content host received (HEADs: the emulator answers them with a length).
fn heads(stack: &Stack) -> u64 {
    stack.emulator().counters().get("content.head")
}

/// Seconds from now (Google's clock) to the next midnight in Los Angeles.
fn to_pacific_midnight(stack: &Stack) -> u64 {
    let now = stack.emulator().clock().now();
    let midnight = gphotos_dav::google::quota::next_pacific_midnight(now);
    (midnight - now).num_seconds() as u64
}

/// Checks a 207's files against `items`: every one listed, each with its exact size.
fn assert_exact(body: &str, items: &[&FixtureItem]) {
    let entries = common::parse_multistatus(body);
    let files: Vec<_> = entries.iter().filter(|e| !e.is_collection).collect();
    let expected = by_name(items);
    assert_eq!(files.len(), expected.len(), "{body}");
    for file in files {
        let item = expected
            .get(&file.name())
            .unwrap_or_else(|| panic!("unexpected {}", file.name()));
        assert_eq!(file.size(), item.bytes.len() as u64, "{}", file.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_past_the_budget_waits_for_the_next_day_across_a_restart() {
    let store_dir = tempfile::tempdir().unwrap();
    let store_path = store_dir.path().join("metadata.sqlite");
    let path = store_path.clone();
    let emu = emulator_started().await;
    let budget = emu.emulator.library().items.len() as u64 / 2;
    let stack = start_on(emu, move |c| {
        c.cache.path = Some(path);
        c.cache.probe_budget = Some(budget);
    })
    .await;
    let items: Vec<&FixtureItem> = stack.emulator().library().items.iter().collect();
    let n = items.len() as u64;
    assert!(n > budget + 2, "the fixture holds {n} items");

    // Day one: the budget's probes are sent, not one more; the listing is refused.
    let (status, after, body) = propfind(&stack, &stack.url, "/media/all/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let left = to_pacific_midnight(&stack);
    let after = after.expect("Retry-After");
    assert!(
        after.abs_diff(left) <= 2,
        "until Pacific midnight: {after} vs {left}"
    );
    let missing = n - budget;
    assert!(
        body.contains(&format!("{missing} items still need a size")),
        "{body}"
    );
    assert!(body.contains("[cache] probe_budget"), "{body}");
    assert_eq!(heads(&stack), budget);

    // Again the same day: refused at once, no probe sent.
    let (status, _, body) = propfind(&stack, &stack.url, "/media/all/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains(&format!("{missing} items still need a size")),
        "{body}"
    );
    assert_eq!(heads(&stack), budget);

    // A restart on the same store, the same day: the sizes probed and the day's count are
    // remembered, so it sends nothing either. (The store's jobs run in order: once this read
    // is answered, every size and count of the first gateway is written.)
    let today = stack.catalog.google().quota.today();
    assert_eq!(stack.catalog.store().usage(today).await.probes, budget);
    let restarted = stack
        .gateway(|c| {
            c.cache.path = Some(store_path);
            c.cache.probe_budget = Some(budget);
        })
        .await;
    let (status, after, body) = propfind(&stack, &restarted.url, "/media/all/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(after.unwrap().abs_diff(left) <= 2);
    assert!(
        body.contains(&format!("{missing} items still need a size")),
        "{body}"
    );
    assert_eq!(heads(&stack), budget);

    // Pacific midnight: a new budget. The restarted gateway lists every item with its exact
    // size, probing only the ones still missing.
    let d = Duration::from_secs(left + 1);
    stack.advance(d);
    restarted.catalog.clock().advance(d);
    let (status, _, body) = propfind(&stack, &restarted.url, "/media/all/").await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_exact(&body, &items);
    assert_eq!(heads(&stack), n, "only the {missing} missing sizes probed");
    let today = restarted.catalog.google().quota.today();
    assert_eq!(restarted.catalog.store().usage(today).await.probes, missing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_day_probes_the_folders_refused_first() {
    let emu = emulator_started().await;
    let lib = emu.emulator.library();
    let names = album_names(lib);
    // The biggest album.
    let (i, album) = lib
        .albums
        .iter()
        .enumerate()
        .max_by_key(|(_, a)| a.item_ids.len())
        .unwrap();
    let big_name = names[i].clone();
    let big: Vec<FixtureItem> = album_items(lib, &album.id).into_iter().cloned().collect();
    let big: Vec<&FixtureItem> = big.iter().collect();
    let budget = big.len() as u64 - 1;
    let stack = start_on(emu, move |c| c.cache.probe_budget = Some(budget)).await;

    // Day one: the big album is refused with one item missing.
    let big_path = format!("/album/{big_name}/");
    let (status, _, body) = propfind(&stack, &stack.url, &big_path).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("1 items still need a size"), "{body}");
    assert_eq!(heads(&stack), budget);

    // Day two: a client lists another folder (the albums, which need no probe); the refused
    // album is probed in the background, before anyone asks for it again.
    stack.advance(Duration::from_secs(to_pacific_midnight(&stack) + 1));
    let (status, _, body) = propfind(&stack, &stack.url, "/album/").await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let expected = budget + 1;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while heads(&stack) < expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refused album was not probed: {} of {expected} probes",
            heads(&stack)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Its listing now costs no probe.
    let (status, _, body) = propfind(&stack, &stack.url, &big_path).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_exact(&body, &big);
    assert_eq!(heads(&stack), expected);
}

/// Content requests the content host received for items' own bytes (GETs).
fn gets(stack: &Stack) -> u64 {
    stack.emulator().counters().get("content.get")
}

/// A GET or HEAD of a file whose size nobody probed learns it from the download's own answer:
/// one content request each (none a probe, so even with the day's probe budget spent), the
/// exact bytes and lengths, and the size remembered for what follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_of_an_unsized_file_costs_one_request_and_no_probe() {
    // With the content cache on, that one request also fills the cache.
    for cache in [true, false] {
        get_of_unsized_files(cache).await;
    }
}

async fn get_of_unsized_files(cache: bool) {
    let emu = emulator_started().await;
    let stack = start_on(emu, |c| {
        c.cache.probe_budget = Some(1);
        if !cache {
            c.cache.content_max = Some("0".into());
        }
    })
    .await;
    let lib = stack.emulator().library();

    // Spend the day's budget on an album of several items: its listing is refused, and only
    // its items can have a size.
    let album = lib
        .albums
        .iter()
        .position(|a| a.item_ids.len() >= 2)
        .expect("an album of two items");
    let dir = common::album_names(lib)[album].clone();
    let (status, _, body) = propfind(&stack, &stack.url, &format!("/album/{dir}/")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(heads(&stack), 1);

    // Photos of /media/all outside that album: nobody knows their sizes.
    let all: Vec<&FixtureItem> = lib.items.iter().collect();
    let names = by_name(&all);
    let sizeless: Vec<(&String, &&FixtureItem)> = names
        .iter()
        .filter(|(_, i)| {
            i.mime_type.starts_with("image/")
                && i.bytes.len() > 200
                && !lib.albums[album].item_ids.contains(&i.id)
        })
        .take(3)
        .collect();
    assert_eq!(sizeless.len(), 3, "three photos outside the album");
    let url = |name: &str| format!("{}media/all/{}", stack.url, common::encode_path(name));

    // A whole GET: one content request, exact length and bytes.
    let (name, item) = sizeless[0];
    let before = gets(&stack);
    let resp = stack.http.get(url(name)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.content_length(), Some(item.bytes.len() as u64));
    assert_eq!(resp.bytes().await.unwrap(), item.bytes);
    assert_eq!(
        gets(&stack),
        before + 1,
        "one request for the size and the bytes"
    );

    // A ranged GET: one request for exactly that range, whose answer told the total.
    let (name, item) = sizeless[1];
    let before = gets(&stack);
    let resp = stack
        .http
        .get(url(name))
        .header("Range", "bytes=10-99")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let total = item.bytes.len();
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes 10-99/{total}").as_str()
    );
    assert_eq!(resp.bytes().await.unwrap(), item.bytes.slice(10..100));
    assert_eq!(gets(&stack), before + 1);

    // A HEAD: one request (for the first byte), the exact length.
    let (name, item) = sizeless[2];
    let before = gets(&stack);
    let resp = stack.http.head(url(name)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-length"],
        item.bytes.len().to_string().as_str()
    );
    assert_eq!(gets(&stack), before + 1);

    // Every size is remembered: a HEAD and a Depth 0 PROPFIND of each cost nothing more.
    let before = gets(&stack);
    for (name, item) in &sizeless {
        let resp = stack.http.head(url(name)).send().await.unwrap();
        assert_eq!(
            resp.headers()["content-length"],
            item.bytes.len().to_string().as_str()
        );
        let (status, _, body) = propfind(&stack, &stack.url, &format!("/media/all/{name}")).await;
        assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
        let entries = common::parse_multistatus(&body);
        assert_eq!(entries.len(), 1, "{body}");
        assert_eq!(entries[0].size(), item.bytes.len() as u64, "{body}");
    }
    assert_eq!(gets(&stack), before);

    // The bytes read again: from the content cache when it is on (the first request filled
    // it), else one request each.
    let (name, item) = sizeless[0];
    let resp = stack.http.get(url(name)).send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap(), item.bytes);
    let (name, item) = sizeless[1];
    let resp = stack
        .http
        .get(url(name))
        .header("Range", "bytes=20-89")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap(), item.bytes.slice(20..90));
    let again = if cache { 0 } else { 2 };
    assert_eq!(gets(&stack), before + again, "cache {cache}");
    assert_eq!(heads(&stack), 1, "not one probe beyond the budget's");
    let today = stack.catalog.google().quota.today();
    assert_eq!(stack.catalog.store().usage(today).await.probes, 1);
}
