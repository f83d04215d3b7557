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
