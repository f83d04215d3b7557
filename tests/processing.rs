//! Videos Google is still processing (issue #14): a new upload's `mediaMetadata.video.status`
//! is PROCESSING for seconds to minutes, and its `=dv` URL serves nothing until READY.
//!
//! What a user must see: the file listed right after its PUT (with the size uploaded), a GET
//! answered 503 with Retry-After and the reason (never 404, never a cut body, and no request
//! to the content host), and once Google is done, the bytes Google serves and their size in
//! the listing, without waiting for the listing to expire. The emulator's counters show what
//! it cost; time moves through the clocks, never by sleeping.

mod common;

use common::{mp4, rclone};

use std::time::Duration;

use common::{DavEntry, Stack, parse_multistatus, sha256, start_custom};
use gphotos_dav::google::Google;
use gphotos_dav::pick;
use gphotos_dav_emulator::{self as emulator, EmulatorOptions, FixtureItem, MediaKind};
use reqwest::{Method, StatusCode};

/// How long the emulator processes each uploaded video in these tests.
const PROCESSING: Duration = Duration::from_secs(60);

fn opts() -> EmulatorOptions {
    EmulatorOptions {
        video_processing: PROCESSING,
        // Tokens outlive the minutes skipped here, so call counts are not blurred by refreshes.
        access_token_ttl: Duration::from_secs(24 * 3600),
        picker_poll_interval: Duration::from_millis(10),
        ..EmulatorOptions::default()
    }
}

async fn writable(opts: EmulatorOptions) -> Stack {
    start_custom(opts, emulator::REFRESH_TOKEN, |c| {
        c.server.read_only = false;
        c.upload.batch_window_ms = 10;
    })
    .await
}

fn count(stack: &Stack, kind: &str) -> u64 {
    stack.emulator().counters().get(kind)
}

fn entry<'a>(entries: &'a [DavEntry], name: &str) -> Option<&'a DavEntry> {
    entries.iter().find(|e| e.name() == name)
}

async fn put(stack: &Stack, path: &str, body: Vec<u8>) -> StatusCode {
    stack
        .http
        .put(stack.full_url(path))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

async fn head(stack: &Stack, path: &str) -> (StatusCode, Option<u64>) {
    let resp = stack.http.head(stack.full_url(path)).send().await.unwrap();
    let length = resp
        .headers()
        .get("Content-Length")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (resp.status(), length)
}

/// Asserts the answer of a GET of a video Google is processing: 503, `Retry-After`, the
/// reason in the body.
fn assert_processing(status: StatusCode, headers: &reqwest::header::HeaderMap, body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert_eq!(headers["Retry-After"], "15", "{text}");
    assert!(text.contains("still processing this video"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processing_video_is_listed_at_once_refused_for_now_then_served() {
    let stack = writable(opts()).await;
    let video = mp4(50_000, 7);
    let served = emulator::transcode(&video);
    assert_ne!(served.len(), video.len());
    let path = "/album/Empty/clip.mp4";
    assert_eq!(put(&stack, path, video.clone()).await, StatusCode::CREATED);

    // Listed right away, with the size uploaded: Depth 0, Depth 1 and HEAD.
    let own = stack.propfind(path, Some("0")).await;
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].size(), video.len() as u64);
    let listed = stack.list("/album/Empty/").await;
    assert_eq!(
        entry(&listed, "clip.mp4").expect("listed").size(),
        video.len() as u64
    );
    assert_eq!(
        head(&stack, path).await,
        (StatusCode::OK, Some(video.len() as u64))
    );
    let searches = count(&stack, "mediaItems.search");

    // A GET: 503 with Retry-After and the reason; the content host is not asked.
    let (status, headers, body) = stack.get(path).await;
    assert_processing(status, &headers, &body);
    assert_eq!(count(&stack, "content.get"), 0);
    assert_eq!(
        count(&stack, "content.head"),
        0,
        "no probe of a processing video"
    );
    assert_eq!(
        count(&stack, "mediaItems.batchGet"),
        0,
        "its status was just listed"
    );

    // 20 s later: asked again once (one batchGet), still processing; not again at once.
    stack.advance(Duration::from_secs(20));
    let (status, headers, body) = stack.get(path).await;
    assert_processing(status, &headers, &body);
    assert_eq!(count(&stack, "mediaItems.batchGet"), 1);
    let (status, headers, body) = stack.get(path).await;
    assert_processing(status, &headers, &body);
    let listed = stack.list("/album/Empty/").await;
    assert_eq!(
        entry(&listed, "clip.mp4").unwrap().size(),
        video.len() as u64
    );
    assert_eq!(count(&stack, "mediaItems.batchGet"), 1);
    assert_eq!(count(&stack, "content.get"), 0);

    // Past the processing time (and well within the 5-minute listing TTL): the folder shows
    // the size Google serves, after one more batchGet and one probe, without a new search.
    stack.advance(PROCESSING);
    let listed = stack.list("/album/Empty/").await;
    assert_eq!(
        entry(&listed, "clip.mp4").unwrap().size(),
        served.len() as u64
    );
    assert_eq!(count(&stack, "mediaItems.batchGet"), 2);
    assert_eq!(count(&stack, "mediaItems.search"), searches, "no reload");
    assert_eq!(
        head(&stack, path).await,
        (StatusCode::OK, Some(served.len() as u64))
    );
    let (status, headers, body) = stack.get(path).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["Content-Length"], served.len().to_string().as_str());
    assert_eq!(sha256(&body), sha256(&served));
    assert_eq!(count(&stack, "content.get"), 1);
    assert_eq!(count(&stack, "mediaItems.batchGet"), 2);
}

/// PROPFIND of `path` on the gateway at `base` (with its trailing slash).
async fn propfind_at(
    stack: &Stack,
    base: &str,
    path: &str,
    depth: &str,
) -> (StatusCode, Vec<DavEntry>) {
    let url = format!(
        "{base}{}",
        common::encode_path(path.trim_start_matches('/'))
    );
    let resp = stack
        .http
        .request(Method::from_bytes(b"PROPFIND").unwrap(), url)
        .header("Depth", depth)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    let entries = if status == StatusCode::MULTI_STATUS {
        parse_multistatus(&body)
    } else {
        Vec::new()
    };
    (status, entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processing_video_uploaded_elsewhere_stays_out_of_listings_until_ready() {
    let stack = writable(opts()).await;
    let video = mp4(40_000, 11);
    let served = emulator::transcode(&video);
    assert_eq!(
        put(&stack, "/album/Empty/other.mp4", video).await,
        StatusCode::CREATED
    );
    // Another installation (its own store) knows nothing of that upload's size.
    let other = stack.gateway(|_| {}).await;
    let (status, listed) = propfind_at(&stack, &other.url, "/album/Empty/", "1").await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(listed.len(), 1, "only the folder itself: {listed:?}");
    // Asked for by name, it is there, but not yet: 503, never 404 or 0 bytes.
    let resp = stack
        .http
        .get(format!("{}album/Empty/other.mp4", other.url))
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    assert_processing(status, &headers, &resp.bytes().await.unwrap());
    let (status, _) = propfind_at(&stack, &other.url, "/album/Empty/other.mp4", "0").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(count(&stack, "content.get"), 0);
    assert_eq!(count(&stack, "content.head"), 0);

    stack.emulator().clock().advance(PROCESSING);
    other.catalog.clock().advance(PROCESSING);
    let (status, listed) = propfind_at(&stack, &other.url, "/album/Empty/", "1").await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(
        entry(&listed, "other.mp4")
            .expect("listed once ready")
            .size(),
        served.len() as u64
    );
    let body = stack
        .http
        .get(format!("{}album/Empty/other.mp4", other.url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(sha256(&body), sha256(&served));
}

/// `rclone copy --ignore-size` of a video into a new album folder: rclone reads every upload
/// back with a PROPFIND, which lists the video while Google processes it, so the copy
/// succeeds. Reading the bytes meanwhile (`rclone cat`) fails with the 503 and its reason;
/// once Google is done it gives the bytes Google serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_copy_of_a_video_succeeds_while_google_processes_it() {
    let stack = writable(opts()).await;
    let src = tempfile::tempdir().unwrap();
    let video = mp4(80_000, 5);
    std::fs::write(src.path().join("holiday.mp4"), &video).unwrap();
    let remote = ":webdav:album/Rclone Videos";
    let webdav = ["--webdav-url", &stack.url, "--webdav-vendor", "other"];
    let mut copy = vec![
        "copy",
        src.path().to_str().unwrap(),
        remote,
        "--ignore-size",
    ];
    copy.extend(webdav);
    let out = rclone(&copy).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&stack, "uploads"), 1);
    assert_eq!(count(&stack, "content.get"), 0);
    let lib = stack.emulator().current_library();
    let album = lib
        .albums
        .iter()
        .find(|a| a.title == "Rclone Videos")
        .unwrap();
    assert_eq!(album.item_ids.len(), 1);
    let served = lib.item(&album.item_ids[0]).unwrap().bytes.clone();

    // rclone lists it with the size uploaded.
    let mut ls = vec!["lsl", remote];
    ls.extend(webdav);
    let out = rclone(&ls).await;
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listing}");
    assert!(
        listing.contains(&format!("{} ", video.len())) && listing.contains("holiday.mp4"),
        "{listing}"
    );

    // Reading it back while Google processes it: what the user is told.
    let file = format!("{remote}/holiday.mp4");
    let mut cat = vec!["cat", file.as_str()];
    cat.extend(webdav);
    let out = rclone(&cat).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("503"), "{stderr}");
    assert!(out.stdout.is_empty(), "no byte of a processing video");
    assert_eq!(count(&stack, "content.get"), 0);

    stack.advance(PROCESSING);
    let out = rclone(&cat).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sha256(&out.stdout), sha256(&served));
}

fn google_for(stack: &Stack) -> Google {
    common::google_on(&stack.emu)
}

/// A video the user picked right after recording it: left out of the set's folder while
/// Google processes it (its size is unknown), a GET of it is 503 without any request to the
/// content host, and after the processing time a listing of the set lists the session again
/// and shows it, with the bytes Google serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_picked_video_still_processing_answers_503_then_its_bytes() {
    let stack = start_custom(
        EmulatorOptions {
            picked_video_processing: PROCESSING,
            ..opts()
        },
        emulator::REFRESH_TOKEN,
        |_| {},
    )
    .await;
    let lib = stack.emulator().library();
    let video: FixtureItem = lib
        .items
        .iter()
        .find(|i| i.kind == MediaKind::Video)
        .unwrap()
        .clone();
    let photo: FixtureItem = lib
        .items
        .iter()
        .find(|i| i.kind == MediaKind::Photo && i.filename.ends_with(".jpg"))
        .unwrap()
        .clone();
    let google = google_for(&stack);
    let mut printed = Vec::new();
    let mut output = pick::Output {
        out: &mut printed,
        terminal: false,
        quiet: true,
        done: None,
    };
    let store = stack.catalog.store();
    let session = pick::begin(&google, store, "fresh", None, &mut output)
        .await
        .unwrap();
    stack
        .emulator()
        .pick(&session.id, &[video.id.clone(), photo.id.clone()])
        .unwrap();
    pick::finish(&google, store, "fresh", &session, &mut output)
        .await
        .unwrap();
    let lists = count(&stack, "picker.mediaItems.list");

    let listed = stack.list("/picked/fresh/").await;
    assert!(entry(&listed, &photo.filename).is_some(), "{listed:?}");
    assert!(entry(&listed, &video.filename).is_none(), "{listed:?}");
    let path = format!("/picked/fresh/{}", video.filename);
    let (status, headers, body) = stack.get(&path).await;
    assert_processing(status, &headers, &body);
    assert_eq!(count(&stack, "picker.content.get"), 0);
    assert_eq!(
        count(&stack, "picker.mediaItems.list"),
        lists,
        "just listed"
    );

    stack.advance(PROCESSING);
    let listed = stack.list("/picked/fresh/").await;
    assert_eq!(
        entry(&listed, &video.filename)
            .expect("listed once ready")
            .size(),
        video.bytes.len() as u64
    );
    assert_eq!(count(&stack, "picker.mediaItems.list"), lists + 1);
    let (status, _, body) = stack.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&video.bytes));
    assert_eq!(count(&stack, "picker.mediaItems.list"), lists + 1);
}

/// The uploaded size comes from the store's upload records: a restarted server (here a
/// second one on the same store) lists a video still processing with it, too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_processing_video_is_listed_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("metadata.sqlite");
    let db_first = db.clone();
    let stack = start_custom(opts(), emulator::REFRESH_TOKEN, move |c| {
        c.server.read_only = false;
        c.upload.batch_window_ms = 10;
        c.cache.path = Some(db_first);
    })
    .await;
    let video = mp4(30_000, 13);
    assert_eq!(
        put(&stack, "/upload/kept.mp4", video.clone()).await,
        StatusCode::CREATED
    );
    let again = stack
        .gateway(|c| {
            c.server.read_only = false;
            c.cache.path = Some(db);
        })
        .await;
    let (status, listed) = propfind_at(&stack, &again.url, "/upload/", "1").await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(
        entry(&listed, "kept.mp4").expect("listed").size(),
        video.len() as u64
    );
    let resp = stack
        .http
        .get(format!("{}upload/kept.mp4", again.url))
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    assert_processing(status, &headers, &resp.bytes().await.unwrap());
    assert_eq!(count(&stack, "content.get"), 0);
}

/// With `302_redirect` a GET of a processing video is not sent to a URL that serves nothing:
/// it is the same 503, and once Google is done, the 302 to `=dv`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirecting_server_answers_503_instead_of_a_useless_redirect() {
    let stack = start_custom(opts(), emulator::REFRESH_TOKEN, |c| {
        c.server.read_only = false;
        c.upload.batch_window_ms = 10;
        c.webdav.policy = gphotos_dav::server::config::Policy::Redirect302;
    })
    .await;
    let video = mp4(20_000, 17);
    let path = "/album/Empty/redirected.mp4";
    assert_eq!(put(&stack, path, video.clone()).await, StatusCode::CREATED);
    let (status, headers, body) = stack.get(path).await;
    assert_processing(status, &headers, &body);
    assert_eq!(count(&stack, "content.get"), 0);

    stack.advance(PROCESSING);
    let (status, headers, _) = stack.get(path).await;
    assert_eq!(status, StatusCode::FOUND);
    let location = headers["Location"].to_str().unwrap().to_owned();
    assert!(location.ends_with("=dv"), "{location}");
    let bytes = stack
        .http
        .get(&location)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(sha256(&bytes), sha256(&emulator::transcode(&video)));
}
