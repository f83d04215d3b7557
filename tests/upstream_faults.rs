//! What the client sees when the content host misbehaves: resumed downloads, aborted ones,
//! and items whose bytes changed since their size was announced. Never a short, padded or
//! otherwise wrong file presented as complete.

mod common;

use bytes::Bytes;
use common::{Stack, sha256, start};
use gphotos_dav_emulator::FixtureItem;
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

    // The first answer states another total: nothing was sent yet, so the client gets a
    // status and the reason, not a body cut after a 200.
    let resp = stack.http.get(stack.full_url(&path)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let text = resp.text().await.unwrap();
    assert!(text.contains("size changed"), "{text}");

    let entries = stack.list("/media/all/").await;
    let entry = entries.iter().find(|e| e.href == path).unwrap();
    assert_eq!(entry.size(), new_bytes.len() as u64, "size probed again");
    let (status, _, body) = stack.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&new_bytes));
}

use gphotos_dav_emulator::Fault;

/// Everything a client can see: every album listed fully and every byte of /media/all.
async fn read_everything(stack: &Stack) {
    let lib = stack.emulator().library();
    let albums = stack.list("/album/").await;
    assert_eq!(albums.len(), lib.albums.len());
    for album in &albums {
        let entries = stack.list(&album.href).await;
        let want = lib
            .albums
            .iter()
            .find(|a| album.name().contains(&a.title.replace('/', "／")))
            .map(|a| a.item_ids.len());
        if let Some(n) = want {
            assert_eq!(entries.len(), n, "{}", album.href);
        }
    }
    let entries = stack.list("/media/all/").await;
    assert_eq!(entries.len(), lib.items.len());
    let mut total = 0;
    for e in &entries {
        let (status, _, body) = stack.get(&e.href).await;
        assert_eq!(status, StatusCode::OK, "{}", e.href);
        assert_eq!(body.len() as u64, e.size(), "{}", e.href);
        assert!(
            lib.items.iter().any(|i| sha256(&i.bytes) == sha256(&body)),
            "{} is an original",
            e.href
        );
        total += 1;
    }
    assert_eq!(total, lib.items.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_throttling_server_errors_and_resets_are_retried() {
    let stack = start().await;
    let emu = stack.emulator();
    emu.inject(
        "mediaItems.search",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        2,
        None,
    );
    emu.inject("albums.list", Fault::Status(503), 1, Some(2));
    emu.inject("mediaItems.list", Fault::Reset, 1, Some(2));
    emu.inject("token", Fault::Status(500), 1, Some(1));
    emu.inject("content.head", Fault::Status(502), 3, None);
    emu.inject("content.get", Fault::Reset, 2, Some(4));
    emu.inject("content.get", Fault::Status(504), 5, Some(2));
    read_everything(&stack).await;
    let c = emu.counters();
    assert!(c.get("albums.list") >= 3, "two 503s then success");
    assert!(c.get("mediaItems.list") >= 3, "two resets then success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_is_an_error_never_an_empty_folder() {
    let stack = start().await;
    stack
        .emulator()
        .inject("mediaItems.search", Fault::Status(503), 1, None);
    let album = &stack.list("/album/").await[0];
    let (status, body) = stack.propfind_raw(&album.href, Some("1")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(body.contains("503"), "{body}");
    let calls = stack.emulator().counters().get("mediaItems.search");
    assert!((2..=7).contains(&calls), "bounded retries: {calls}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_quota_is_not_retried_and_answers_503_with_retry_after() {
    let stack = start().await;
    stack
        .emulator()
        .inject("mediaItems.list", Fault::DailyQuota, 1, None);
    let (status, body) = stack.propfind_raw("/media/all/", Some("1")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("per day"), "{body}");
    assert_eq!(stack.emulator().counters().get("mediaItems.list"), 1);
    let resp = stack
        .http
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            stack.full_url("/media/all/"),
        )
        .send()
        .await
        .unwrap();
    let after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=25 * 3600).contains(&after),
        "until Pacific midnight: {after}"
    );
    // The gate is closed: other folders answer 503 too, without calling Google at all.
    let (status, body) = stack.propfind_raw("/album/", Some("1")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("midnight Pacific"), "{body}");
    assert_eq!(stack.emulator().counters().get("albums.list"), 0);
    assert_eq!(stack.emulator().counters().get("mediaItems.list"), 1);
}

/// An upstream that refuses a download before sending anything: the client sees a status and
/// the reason, never a 200 whose body is cut (which a client cannot tell from a network fault).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_download_is_a_status_not_a_cut_body() {
    let stack = start().await;
    let (item, path) = largest(&stack).await;
    let gets = stack.emulator().counters().get("content.get");
    stack
        .emulator()
        .inject("content.get", Fault::Status(500), 1, None);
    let resp = stack.http.get(stack.full_url(&path)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert!(resp.headers().get("content-range").is_none());
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("500"),
        "the reason names Google's answer: {text}"
    );
    let tried = stack.emulator().counters().get("content.get") - gets;
    assert!((2..=24).contains(&tried), "bounded retries: {tried}");

    // A ranged GET the same way.
    let resp = stack
        .http
        .get(stack.full_url(&path))
        .header("Range", "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);

    // An item Google no longer serves: 404, not a cut body.
    stack.emulator().clear_faults();
    stack
        .emulator()
        .inject("content.get", Fault::Status(404), 1, None);
    let resp = stack.http.get(stack.full_url(&path)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // Healthy again: exact bytes.
    stack.emulator().clear_faults();
    let (status, _, body) = stack.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&item.bytes));
}
