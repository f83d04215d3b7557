//! Google's quotas and rate limits as a user meets them: a 429 is told apart by Google's
//! structured error (not its words), a daily quota closes its bucket's gate until Pacific
//! midnight, the content host's 429 pauses downloads and probes, and while a gate is closed
//! every request that needs Google answers 503 with `Retry-After` at once, costing Google
//! nothing. The emulator's call counters are the oracle; time moves by the clocks, never by
//! waiting.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Stack, by_name, sha256, start, start_custom, start_on};
use gphotos_dav::google::GoogleError;
use gphotos_dav::google::quota::Bucket;
use gphotos_dav_emulator::{self as emulator, Emulator, EmulatorOptions, Fault, FixtureItem};
use reqwest::StatusCode;

/// A GET: its status, its `Retry-After` in seconds (if any) and its body.
async fn get(stack: &Stack, path: &str) -> (StatusCode, Option<u64>, Vec<u8>) {
    let resp = stack.http.get(stack.full_url(path)).send().await.unwrap();
    let status = resp.status();
    let after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, after, resp.bytes().await.unwrap().to_vec())
}

/// A Depth 1 PROPFIND: its status and `Retry-After`.
async fn propfind(stack: &Stack, path: &str) -> (StatusCode, Option<u64>) {
    let resp = stack
        .http
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            stack.full_url(path),
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
    (status, after)
}

/// `/media/all/<name>` → the fixture item behind it.
fn all_items(stack: &Stack) -> BTreeMap<String, FixtureItem> {
    let items: Vec<&FixtureItem> = stack.emulator().library().items.iter().collect();
    by_name(&items)
        .into_iter()
        .map(|(name, item)| (format!("/media/all/{name}"), item.clone()))
        .collect()
}

fn content_calls(stack: &Stack) -> (u64, u64) {
    let c = stack.emulator().counters();
    (c.get("content.head"), c.get("content.get"))
}

/// Seconds from now (Google's clock) to the next midnight in Los Angeles.
fn to_pacific_midnight(stack: &Stack) -> u64 {
    let now = stack.emulator().clock().now();
    let midnight = gphotos_dav::google::quota::next_pacific_midnight(now);
    (midnight - now).num_seconds() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_content_hosts_daily_429_gets_cost_no_content_request_until_pacific_midnight() {
    let emu = Emulator::start(EmulatorOptions::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let n = emu.emulator.library().items.len() as u64;
    // Google's daily media quota, and ours configured alike: the listing's n size probes and
    // two downloads fit, the third download does not.
    let quota = n + 2;
    emu.emulator.set_daily_quotas(None, Some(quota));
    let store_dir = tempfile::tempdir().unwrap();
    let store_path = store_dir.path().join("metadata.sqlite");
    let path = store_path.clone();
    let stack = start_on(emu, move |c| {
        c.google.daily_media_quota = quota;
        // This test is about Google's 429, not our probe budget: all of the quota may probe.
        c.cache.probe_budget = Some(quota);
        c.cache.path = Some(path);
    })
    .await;
    let items = all_items(&stack);
    assert_eq!(stack.list("/media/all/").await.len() as u64, n);
    assert_eq!(stack.emulator().daily_counts().1, n, "one probe per item");
    let paths: Vec<&String> = items.keys().collect();
    for path in &paths[..2] {
        let (status, _, body) = get(&stack, path).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(sha256(&body), sha256(&items[*path].bytes));
    }

    // The third download: Google's 429, near our count of the day's quota, so daily.
    let (heads, gets) = content_calls(&stack);
    let (status, after, body) = get(&stack, paths[2]).await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(text.contains("per day"), "{text}");
    let left = to_pacific_midnight(&stack);
    let after = after.expect("Retry-After");
    assert!(
        after.abs_diff(left) <= 2,
        "until Pacific midnight: {after} vs {left}"
    );
    assert_eq!(
        content_calls(&stack),
        (heads, gets + 1),
        "sent once, not retried"
    );

    // Ten more GETs: each 503 with Retry-After at once, none reaches the content host.
    for path in &paths[3..13] {
        let (status, after, _) = get(&stack, path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(after.unwrap().abs_diff(left) <= 2);
    }
    assert_eq!(content_calls(&stack), (heads, gets + 1));
    // What is cached is still served: the listing with its sizes, and the albums (another
    // bucket, whose gate is open).
    assert_eq!(
        propfind(&stack, "/media/all/").await.0,
        StatusCode::MULTI_STATUS
    );
    assert_eq!(
        propfind(&stack, "/album/").await.0,
        StatusCode::MULTI_STATUS
    );
    assert_eq!(content_calls(&stack), (heads, gets + 1));

    // A restart the same day keeps the gate closed. (The store's jobs run in order: once this
    // read is answered, the closing is written.)
    let today = stack.catalog.google().quota.today();
    assert!(stack.catalog.store().usage(today).await.media_exhausted);
    let restarted = stack
        .gateway(|c| {
            c.google.daily_media_quota = quota;
            c.cache.probe_budget = Some(quota);
            c.cache.path = Some(store_path);
        })
        .await;
    let resp = stack
        .http
        .get(format!(
            "{}{}",
            restarted.url,
            common::encode_path(&paths[3][1..])
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(content_calls(&stack), (heads, gets + 1));

    // Pacific midnight: Google counts a new day, and the gate opens.
    stack.advance(Duration::from_secs(left + 1));
    let (status, _, body) = get(&stack, paths[2]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&items[paths[2]].bytes));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_429_far_from_the_quota_pauses_one_minute_then_two() {
    // One probe at a time, so that no probe is in flight when the 429 arrives and the counts
    // are exact.
    let stack = start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.cache.probe_concurrency = 1;
        // The same file is read again to meet the pause: the content cache would serve it.
        c.cache.content_max = Some("0".into());
    })
    .await;
    let items = all_items(&stack);
    let (path, item) = items.iter().next().unwrap();
    stack.emulator().inject(
        "content.head",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
        Some(1),
    );
    // The listing's probes meet the 429: the PROPFIND fails with a pause of a minute.
    let (status, after) = propfind(&stack, "/media/all/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!((1..=60).contains(&after.unwrap()), "{after:?}");
    let (heads, gets) = content_calls(&stack);
    assert_eq!(
        (heads, gets),
        (1, 0),
        "the 429 is not retried, no other probe is sent"
    );

    // Meanwhile PROPFINDs that need a probe and GETs answer 503 at once, costing nothing.
    let (status, after) = propfind(&stack, "/media/all/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!((1..=60).contains(&after.unwrap()));
    let (status, after, _) = get(&stack, path).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!((1..=60).contains(&after.unwrap()));
    assert_eq!(content_calls(&stack), (heads, gets));

    // A minute later (by the clocks) everything works again, with exact bytes.
    stack.advance(Duration::from_secs(61));
    assert_eq!(stack.list("/media/all/").await.len(), items.len());
    let (status, _, body) = get(&stack, path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&item.bytes));

    // Two 429s in a row: the second pause is two minutes. Each GET sends at most two
    // requests (here exactly one) to the content host.
    stack.emulator().inject(
        "content.get",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
        Some(2),
    );
    let (_, gets) = content_calls(&stack);
    let (status, after, _) = get(&stack, path).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!((1..=60).contains(&after.unwrap()));
    assert_eq!(content_calls(&stack).1, gets + 1);
    stack.advance(Duration::from_secs(61));
    let (status, after, _) = get(&stack, path).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!((61..=120).contains(&after.unwrap()), "{after:?}");
    assert_eq!(content_calls(&stack).1, gets + 2);
    let (status, _, _) = get(&stack, path).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(content_calls(&stack).1, gets + 2, "closed: not sent");
    stack.advance(Duration::from_secs(121));
    let (status, _, body) = get(&stack, path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&item.bytes));
    assert_eq!(content_calls(&stack).1, gets + 3);
}

/// A 429 of the Library API, with `details` naming a per-minute limit but words saying "per
/// day": it is the details that count.
fn per_minute_saying_per_day() -> Fault {
    Fault::Throttled {
        message: "Quota exceeded for quota metric 'All requests' and limit 'All requests per \
                  day' of service 'photoslibrary.googleapis.com'"
            .into(),
        quota_limit: Some("WritesPerMinutePerUser".into()),
        retry_after_secs: Some(1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_429s_are_told_apart_by_their_details_not_their_words() {
    let stack = start().await;
    let emu = stack.emulator();
    // Structured per-minute 429s: retried with backoff, the listing succeeds.
    emu.inject(
        "mediaItems.list",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
        Some(2),
    );
    let entries = stack.list("/media/all/").await;
    assert_eq!(entries.len(), emu.library().items.len());
    assert_eq!(emu.counters().get("mediaItems.list"), 3);

    // "per day" in the words, per minute in the details: retried as well.
    emu.inject("albums.list", per_minute_saying_per_day(), 1, Some(2));
    let albums = stack.list("/album/").await;
    assert_eq!(albums.len(), emu.library().albums.len());
    assert_eq!(emu.counters().get("albums.list"), 3);

    // No structure at all, far from the day's quota: a short-lived limit, retried.
    emu.inject(
        "mediaItems.search",
        Fault::Throttled {
            message: "Quota exceeded ... per day".into(),
            quota_limit: None,
            retry_after_secs: None,
        },
        1,
        Some(2),
    );
    let (status, _) = propfind(&stack, &albums[0].href).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(emu.counters().get("mediaItems.search"), 3);
    // None of it closed the gate.
    stack.catalog.google().quota.check().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unstructured_api_429_near_the_days_quota_closes_the_api_gate() {
    let stack = start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.google.daily_quota = 2;
    })
    .await;
    let emu = stack.emulator();
    let albums = stack.list("/album/").await;
    assert_eq!(
        stack.catalog.google().quota.used_today(Bucket::Api),
        1,
        "one albums.list"
    );
    emu.inject(
        "mediaItems.list",
        Fault::Throttled {
            message: "Too many requests".into(),
            quota_limit: None,
            retry_after_secs: None,
        },
        1,
        None,
    );
    // The second call of a day of two: taken for the daily quota, not retried.
    let (status, after) = propfind(&stack, "/media/all/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let left = to_pacific_midnight(&stack);
    assert!(after.unwrap().abs_diff(left) <= 2);
    assert_eq!(emu.counters().get("mediaItems.list"), 1);
    // The gate is closed: other folders answer 503 without a call; the cached one is served.
    let (status, _) = propfind(&stack, &albums[0].href).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(emu.counters().get("mediaItems.search"), 0);
    assert_eq!(
        propfind(&stack, "/album/").await.0,
        StatusCode::MULTI_STATUS
    );
    assert_eq!(emu.counters().get("albums.list"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picker_calls_count_in_their_own_bucket() {
    let emu = Emulator::start(EmulatorOptions::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let google = common::google_on(&emu);
    // What reaches the store, as the server wires it.
    let logged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = logged.clone();
    google.quota.restore(
        google.quota.today(),
        Default::default(),
        Box::new(move |_, bucket, n| sink.lock().unwrap().push((bucket, n))),
    );
    let session = google.picker.create_session(Some(5)).await.unwrap();
    google.picker.get_session(&session.id).await.unwrap();
    google.picker.delete_session(&session.id).await.unwrap();
    assert_eq!(emu.emulator.counters().get("picker.sessions.create"), 1);
    assert_eq!(google.quota.used_today(Bucket::Picker), 3);
    assert_eq!(google.quota.used_today(Bucket::Api), 0);
    assert_eq!(*logged.lock().unwrap(), vec![("picker", 1); 3]);
    // A Library call counts where it belongs.
    google.library.list_albums_page().await.unwrap();
    assert_eq!(google.quota.used_today(Bucket::Api), 1);
    assert_eq!(google.quota.used_today(Bucket::Picker), 3);
    let metrics = gphotos_dav::metrics::get().render();
    assert!(
        metrics.contains("gphotos_dav_quota_used_today{bucket=\"picker\"}"),
        "{metrics}"
    );
}

/// Picked items' bytes count in the Picker's quota (1,000,000 media requests a minute), not in
/// the Library API's 75,000 a day: a closed media gate (the library's day spent) still lets a
/// picked item download, and the Library item beside it is refused without a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picked_bytes_count_in_the_pickers_bucket_not_the_librarys_day() {
    let emu = Emulator::start(EmulatorOptions::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let google = common::google_on(&emu);
    let lib = emu.emulator.library();
    let photo = lib
        .items
        .iter()
        .find(|i| i.mime_type.starts_with("image/"))
        .unwrap()
        .clone();
    let session = google.picker.create_session(Some(5)).await.unwrap();
    emu.emulator
        .pick(&session.id, std::slice::from_ref(&photo.id))
        .unwrap();
    let picked = google.picker.list_items(&session.id).await.unwrap();
    assert_eq!(picked.len(), 1);
    let library_url = google
        .library
        .batch_get(std::slice::from_ref(&photo.id))
        .await
        .unwrap()
        .remove(0)
        .unwrap()
        .download_url();

    // The library's day is spent.
    let _ = google
        .quota
        .close_daily(Bucket::Media, "test: the day's media requests");
    let (media, picker) = (
        google.quota.used_today(Bucket::Media),
        google.quota.used_today(Bucket::Picker),
    );
    let content_before = emu.emulator.counters().get("content.get");
    let err = match google.content.download(&library_url, 0).await {
        Err(e) => e,
        Ok(_) => panic!("a closed media gate let a Library download through"),
    };
    assert!(matches!(err, GoogleError::GateClosed { .. }), "{err:?}");
    assert_eq!(emu.emulator.counters().get("content.get"), content_before);

    let mut download = google
        .content
        .download_bearer(&picked[0].download_url(), 0)
        .await
        .unwrap();
    let mut body = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut download.body).await {
        body.extend_from_slice(&chunk.unwrap());
    }
    assert!(!body.is_empty());
    assert_eq!(download.total, Some(body.len() as u64));
    assert_eq!(google.quota.used_today(Bucket::Media), media);
    assert_eq!(google.quota.used_today(Bucket::Picker), picker + 1);
}

/// A closed media gate refuses a download before anything else happens: a URL too old to use
/// is not refreshed first (that would spend a Library API call on bytes that cannot come).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_media_gate_spends_no_api_call_on_refreshing_old_urls() {
    let stack = start().await;
    let items = all_items(&stack);
    let path = items.keys().next().unwrap().clone();
    assert_eq!(stack.list("/media/all/").await.len(), items.len());
    // Past `url_max_age_secs` (25 min): a GET would refresh the URL with a batchGet first.
    stack.advance(Duration::from_secs(26 * 60));
    let _ = stack
        .catalog
        .google()
        .quota
        .close_daily(Bucket::Media, "test: the day's media requests are spent");
    let api_before = stack.emulator().counters().get("mediaItems.batchGet");
    let content_before = content_calls(&stack);
    let (status, after, body) = get(&stack, &path).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(after.is_some_and(|s| s >= 1));
    assert_eq!(
        stack.emulator().counters().get("mediaItems.batchGet"),
        api_before
    );
    assert_eq!(content_calls(&stack), content_before);
}
