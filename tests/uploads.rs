//! Uploads (issue #9): PUT and MKCOL with `read_only = false`, against the emulator.
//!
//! Every test checks what Google ended up with (the emulator's library and its counters by
//! call kind) as well as what the client was answered, so "201 but nothing created" or
//! "one batchCreate per file" cannot pass.

mod common;

use common::{cadaver, mp4, rclone};

use std::time::Duration;

use bytes::Bytes;
use common::{Stack, jpeg, parse_multistatus, sha256, start_custom};
use gphotos_dav::server::Config;
use gphotos_dav_emulator::{self as emulator, EmulatorOptions, Fault};
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A writable gateway whose batches close after `window_ms` or `max_items` items (not
/// earlier: `batch_close_early` is off, so tests decide what shares a batch).
async fn writable(window_ms: u64, max_items: usize) -> Stack {
    writable_with(window_ms, max_items, |_| {}).await
}

async fn writable_with(window_ms: u64, max_items: usize, more: impl FnOnce(&mut Config)) -> Stack {
    start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.server.read_only = false;
        c.upload.batch_window_ms = window_ms;
        c.upload.batch_max_items = max_items;
        c.upload.batch_close_early = false;
        more(c);
    })
    .await
}

/// The EXIF (TIFF, little endian) block of [`with_gps`]: IFD0 holds `Make` and a pointer to
/// a GPS IFD with a latitude, stored last.
fn exif_with_gps() -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"II\x2a\x00\x08\x00\x00\x00");
    // IFD0 at 8: two entries, then next-IFD 0; ends at 38.
    t.extend_from_slice(&2u16.to_le_bytes());
    t.extend_from_slice(&[0x0F, 0x01, 2, 0]); // Make, ASCII
    t.extend_from_slice(&6u32.to_le_bytes());
    t.extend_from_slice(&38u32.to_le_bytes());
    t.extend_from_slice(&[0x25, 0x88, 4, 0]); // GPSInfo pointer, LONG
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&44u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(b"Canon\0"); // 38..44
    // GPS IFD at 44: LatitudeRef "N", Latitude 3 rationals at 74.
    t.extend_from_slice(&2u16.to_le_bytes());
    t.extend_from_slice(&[0x01, 0x00, 2, 0]);
    t.extend_from_slice(&2u32.to_le_bytes());
    t.extend_from_slice(b"N\0\0\0");
    t.extend_from_slice(&[0x02, 0x00, 5, 0]);
    t.extend_from_slice(&3u32.to_le_bytes());
    t.extend_from_slice(&74u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    for (n, d) in [(48u32, 1u32), (51, 1), (2964, 100)] {
        t.extend_from_slice(&n.to_le_bytes());
        t.extend_from_slice(&d.to_le_bytes());
    }
    assert_eq!(t.len(), 98);
    t
}

/// What Google keeps of [`exif_with_gps`]: IFD0 with `Make` only (the freed entry zeroed),
/// no GPS IFD.
fn exif_without_gps() -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"II\x2a\x00\x08\x00\x00\x00");
    t.extend_from_slice(&1u16.to_le_bytes());
    t.extend_from_slice(&[0x0F, 0x01, 2, 0]);
    t.extend_from_slice(&6u32.to_le_bytes());
    t.extend_from_slice(&38u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&[0u8; 12]);
    t.extend_from_slice(b"Canon\0");
    t
}

/// `jpeg` with an APP1 EXIF segment holding `tiff` right after SOI.
fn with_exif(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(tiff);
    out.extend_from_slice(&jpeg[2..]);
    out
}

async fn put(stack: &Stack, path: &str, body: Vec<u8>) -> (StatusCode, String) {
    let resp = stack
        .http
        .put(stack.full_url(path))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

async fn request(stack: &Stack, method: &str, path: &str) -> (StatusCode, String) {
    let resp = stack
        .http
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            stack.full_url(path),
        )
        .header("Destination", stack.full_url("/upload/elsewhere.jpg"))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

/// The items of the album titled `title` as Google has them now.
fn album_files(stack: &Stack, title: &str) -> Vec<(String, Bytes)> {
    let lib = stack.emulator().current_library();
    let album = lib.albums.iter().find(|a| a.title == title).unwrap();
    album
        .item_ids
        .iter()
        .map(|id| {
            let item = lib.item(id).unwrap();
            (item.filename.clone(), item.bytes.clone())
        })
        .collect()
}

fn count(stack: &Stack, kind: &str) -> u64 {
    stack.emulator().counters().get(kind)
}

/// Sends `head` then `body` on a fresh connection and returns the status line's code and
/// everything the server answered. `half_close` ends the sending side after the body.
async fn raw(stack: &Stack, head: &str, body: &[u8], half_close: bool) -> (u16, String) {
    let addr = stack.url.trim_start_matches("http://");
    let addr = &addr[..addr.find('/').unwrap()];
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    let _ = conn.write_all(body).await;
    if half_close {
        let _ = conn.shutdown().await;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).to_string();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

fn host(stack: &Stack) -> String {
    let addr = stack.url.trim_start_matches("http://");
    addr[..addr.find('/').unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_t_uploads_and_google_serves_the_photo_without_location() {
    let stack = writable(10, 50).await;
    let original = with_exif(&jpeg(64, 48, 7, 90), &exif_with_gps());
    let expected = with_exif(&jpeg(64, 48, 7, 90), &exif_without_gps());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("beach.jpg");
    std::fs::write(&file, &original).unwrap();

    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-T"])
        .arg(&file)
        .arg(stack.full_url("/album/Empty/beach.jpg"))
        .output()
        .await
        .expect("curl must be installed: run tests/run-all.sh");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "201", "{out:?}");
    assert_eq!(count(&stack, "uploads"), 1);
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 1);

    // Google has the item in the album, and serves it without the GPS IFD: every other
    // byte is the original's.
    let files = album_files(&stack, "Empty");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0, "beach.jpg");
    assert_eq!(files[0].1.as_ref(), expected.as_slice());
    assert_ne!(expected.len(), original.len());

    // The listing shows the size Google serves, and GET returns exactly those bytes.
    let entries = stack.list("/album/Empty/").await;
    let entry = entries.iter().find(|e| e.name() == "beach.jpg").unwrap();
    assert_eq!(entry.size(), expected.len() as u64);
    let (status, _, body) = stack.get("/album/Empty/beach.jpg").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&expected));
    // It also shows in /media/all, newest first.
    let all = stack.list("/media/all/").await;
    assert!(all.iter().any(|e| e.name() == "beach.jpg"));

    // The same bytes again: 204, nothing sent to Google.
    let (status, _) = put(&stack, "/album/Empty/beach.jpg", original.clone()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(count(&stack, "uploads"), 1);
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 1);

    // Other bytes under that name: 409, and why.
    let (status, text) = put(&stack, "/album/Empty/beach.jpg", jpeg(64, 48, 8, 90)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(text.contains("Google Photos cannot replace"), "{text}");
    // A name the album already shows (not uploaded here) cannot be replaced either.
    let pets = stack.list("/album/Pets/").await;
    let taken = pets.iter().find(|e| !e.is_collection).unwrap().name();
    let (status, text) = put(&stack, &format!("/album/Pets/{taken}"), jpeg(8, 8, 1, 90)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");
    assert_eq!(count(&stack, "uploads"), 1);
    assert_eq!(album_files(&stack, "Empty").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mkcol_creates_an_album_and_upload_takes_videos_without_an_album() {
    let stack = writable(10, 50).await;
    // Two clients creating the same album at once make one album.
    let (a, b) = tokio::join!(
        request(&stack, "MKCOL", "/album/Holidays 2026"),
        request(&stack, "MKCOL", "/album/Holidays 2026")
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::METHOD_NOT_ALLOWED]
    );
    assert_eq!(count(&stack, "albums.create"), 1);
    assert!(album_files(&stack, "Holidays 2026").is_empty());
    let albums = stack.list("/album/").await;
    assert!(albums.iter().any(|e| e.name() == "Holidays 2026"));
    let (status, _) = request(&stack, "MKCOL", "/album/Holidays 2026").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, text) = request(&stack, "MKCOL", "/media/new").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(text.contains("MKCOL /album/<title>"), "{text}");
    assert_eq!(count(&stack, "albums.create"), 1);

    let photo = jpeg(32, 32, 3, 90);
    let (status, _) = put(&stack, "/album/Holidays 2026/a.jpg", photo.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        album_files(&stack, "Holidays 2026")[0].1.as_ref(),
        photo.as_slice()
    );

    // /upload: an item in no album; Google serves a transcode of a video.
    let video = mp4(100_000, 9);
    let (status, _) = put(&stack, "/upload/clip.mp4", video.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let lib = stack.emulator().current_library();
    let item = lib.items.iter().find(|i| i.filename == "clip.mp4").unwrap();
    assert!(lib.albums.iter().all(|a| !a.item_ids.contains(&item.id)));
    let transcoded = emulator::transcode(&video);
    assert_ne!(transcoded.len(), video.len());
    assert_eq!(item.bytes, transcoded);
    // Listed at once with the size uploaded while Google processes it (tests/processing.rs),
    // then with the size of what Google serves.
    let listed = stack.list("/upload/").await;
    let entry = listed.iter().find(|e| e.name() == "clip.mp4").unwrap();
    assert_eq!(entry.size(), video.len() as u64);
    stack.advance(emulator::DEFAULT_VIDEO_PROCESSING);
    let listed = stack.list("/upload/").await;
    let entry = listed.iter().find(|e| e.name() == "clip.mp4").unwrap();
    assert_eq!(entry.size(), transcoded.len() as u64);
    let (status, _, body) = stack.get("/upload/clip.mp4").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&transcoded));
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_their_reason() {
    let stack = writable(10, 50).await;
    let (status, text) = put(
        &stack,
        "/album/Empty/notes.jpg",
        b"just some text\n".repeat(10),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(text.contains("only takes photos and videos"), "{text}");

    let (status, text) = put(&stack, "/media/all/x.jpg", jpeg(8, 8, 1, 90)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(text.contains("/album/<title>/<name>"), "{text}");
    let (status, _) = put(&stack, "/x.jpg", jpeg(8, 8, 1, 90)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, text) = put(&stack, "/album/No Such Album/x.jpg", jpeg(8, 8, 1, 90)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");

    let item = stack.list("/album/Pets/").await;
    let name = item.iter().find(|e| !e.is_collection).unwrap().name();
    // Since #20 a file in an album folder can be copied or moved into another album folder
    // and deleted from its album (tests/organise.rs); into /upload it cannot go.
    for method in ["MOVE", "COPY"] {
        let (status, text) = request(&stack, method, &format!("/album/Pets/{name}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method}");
        assert!(
            text.contains("only into an album folder"),
            "{method}: {text}"
        );
    }
    let all = stack.list("/media/all/").await;
    let in_view = all.iter().find(|e| !e.is_collection).unwrap().name();
    let (status, text) = request(&stack, "DELETE", &format!("/media/all/{in_view}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(text.contains("API cannot"), "{text}");
    let (status, _) = request(&stack, "DELETE", "/album/Pets/").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A photo over 200 MB is refused once its first bytes show it is a photo; a video over
    // 20 GB as soon as its length is announced.
    let head = jpeg(16, 16, 2, 90);
    let (code, text) = raw(
        &stack,
        &format!(
            "PUT /album/Empty/huge.jpg HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
            host(&stack),
            200 * 1024 * 1024 + 1
        ),
        &head,
        false,
    )
    .await;
    assert_eq!(code, 413, "{text}");
    assert!(text.contains("photos of at most 200 MB"), "{text}");
    let (code, text) = raw(
        &stack,
        &format!(
            "PUT /album/Empty/huge.mp4 HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
            host(&stack),
            20u64 * 1024 * 1024 * 1024 + 1
        ),
        &[],
        false,
    )
    .await;
    assert_eq!(code, 413, "{text}");
    assert!(text.contains("videos of at most 20 GB"), "{text}");

    assert_eq!(count(&stack, "uploads"), 0);
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 0);
    assert!(album_files(&stack, "Empty").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_and_long_bodies_create_nothing() {
    let stack = writable(10, 50).await;
    let photo = jpeg(64, 64, 5, 90);
    // Shorter than Content-Length: the connection ends early.
    let (code, _) = raw(
        &stack,
        &format!(
            "PUT /album/Empty/short.jpg HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
            host(&stack),
            photo.len() + 100
        ),
        &photo,
        true,
    )
    .await;
    assert_ne!(code / 100, 2);
    // Shorter and longer than Finder's X-Expected-Entity-Length, chunked.
    for (name, announced) in [
        ("short2.jpg", photo.len() + 1),
        ("long.jpg", photo.len() - 1),
    ] {
        let chunked = format!("{:x}\r\n", photo.len());
        let mut body = chunked.into_bytes();
        body.extend_from_slice(&photo);
        body.extend_from_slice(b"\r\n0\r\n\r\n");
        let (code, text) = raw(
            &stack,
            &format!(
                "PUT /album/Empty/{name} HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\
                 X-Expected-Entity-Length: {announced}\r\nConnection: close\r\n\r\n",
                host(&stack)
            ),
            &body,
            false,
        )
        .await;
        assert_eq!(code, 400, "{name}: {text}");
        assert!(text.contains("announced; nothing was uploaded"), "{text}");
    }
    assert_eq!(count(&stack, "uploads"), 0);
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 0);
    assert!(album_files(&stack, "Empty").is_empty());
    let listed = stack.list("/album/Empty/").await;
    assert!(listed.is_empty(), "{listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_finishing_together_share_one_batch_create_per_album() {
    // The batch closes when six items are pending (the window is far longer than the test).
    let stack = writable(120_000, 6).await;
    let mut puts = Vec::new();
    for i in 0..6u64 {
        let path = if i < 3 {
            format!("/album/Pets/new{i}.jpg")
        } else {
            format!("/upload/new{i}.jpg")
        };
        let body = jpeg(16, 16, 100 + i, 90);
        let http = stack.http.clone();
        let url = stack.full_url(&path);
        puts.push(tokio::spawn(async move {
            http.put(url).body(body).send().await.unwrap().status()
        }));
    }
    for p in puts {
        assert_eq!(p.await.unwrap(), StatusCode::CREATED);
    }
    assert_eq!(count(&stack, "uploads"), 6);
    assert_eq!(
        count(&stack, "mediaItems.batchCreate"),
        2,
        "one call for the album, one for /upload"
    );
    let pets = album_files(&stack, "Pets");
    for i in 0..3 {
        assert!(pets.iter().any(|(n, _)| *n == format!("new{i}.jpg")));
    }
}

/// With `batch_close_early` (the default), a client sending one file at a time never waits
/// for the window: each PUT's batch is created as soon as no other upload is on its way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_file_at_a_time_does_not_wait_for_the_window() {
    let stack = writable_with(600_000, 50, |c| c.upload.batch_close_early = true).await;
    for i in 0..3u64 {
        let answer = tokio::time::timeout(
            Duration::from_secs(60),
            put(
                &stack,
                &format!("/album/Empty/seq{i}.jpg"),
                jpeg(12, 12, 300 + i, 90),
            ),
        )
        .await
        .expect("answered long before the 10-minute window");
        assert_eq!(answer.0, StatusCode::CREATED);
    }
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 3);
    assert_eq!(album_files(&stack, "Empty").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_google_refuses_fails_only_its_own_put() {
    let stack = writable(120_000, 3).await;
    stack.emulator().reject_uploads_named("bad.jpg");
    let mut puts = Vec::new();
    for name in ["good1.jpg", "bad.jpg", "good2.jpg"] {
        let http = stack.http.clone();
        let url = stack.full_url(&format!("/album/Empty/{name}"));
        let body = jpeg(16, 16, name.len() as u64 + name.as_bytes()[4] as u64, 90);
        puts.push(tokio::spawn(async move {
            let resp = http.put(url).body(body).send().await.unwrap();
            (resp.status(), resp.text().await.unwrap())
        }));
    }
    let mut answers = Vec::new();
    for p in puts {
        answers.push(p.await.unwrap());
    }
    assert_eq!(answers[0].0, StatusCode::CREATED);
    assert_eq!(answers[1].0, StatusCode::BAD_GATEWAY, "{}", answers[1].1);
    assert!(
        answers[1].1.contains("refused to create the item"),
        "{}",
        answers[1].1
    );
    assert_eq!(answers[2].0, StatusCode::CREATED);
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 1);
    let mut names: Vec<String> = album_files(&stack, "Empty")
        .into_iter()
        .map(|f| f.0)
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["good1.jpg".to_string(), "good2.jpg".to_string()]
    );
    let listed = stack.list("/album/Empty/").await;
    assert!(!listed.iter().any(|e| e.name() == "bad.jpg"));

    // A failed upload (no token) fails the PUT before any batchCreate.
    stack
        .emulator()
        .inject("uploads", Fault::Status(400), 1, Some(1));
    let (status, text) = put(&stack, "/album/Empty/later.jpg", jpeg(8, 8, 4, 90)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{text}");
    assert!(text.contains("did not accept the upload"), "{text}");
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 1);
}

/// Google refuses a batchCreate once (`fault`) before creating anything: the PUT still
/// answers 201, and Google ends up with exactly one item, created by the second call.
async fn a_refused_batch_create_is_retried(fault: Fault) {
    let stack = writable(10, 50).await;
    stack
        .emulator()
        .inject("mediaItems.batchCreate", fault.clone(), 1, Some(1));
    let photo = jpeg(24, 16, 77, 90);
    let (status, text) = put(&stack, "/album/Empty/retried.jpg", photo.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{fault:?}: {text}");
    assert_eq!(count(&stack, "uploads"), 1, "{fault:?}");
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 2, "{fault:?}");
    let files = album_files(&stack, "Empty");
    assert_eq!(files.len(), 1, "{fault:?}");
    assert_eq!(files[0].0, "retried.jpg");
    assert_eq!(sha256(&files[0].1), sha256(&photo));
    let lib = stack.emulator().current_library();
    let named: Vec<_> = lib
        .items
        .iter()
        .filter(|i| i.filename == "retried.jpg")
        .collect();
    assert_eq!(named.len(), 1, "{fault:?}: one item in the whole library");
    let listed: Vec<String> = stack
        .list("/album/Empty/")
        .await
        .iter()
        .map(|e| e.name())
        .collect();
    assert_eq!(listed, vec!["retried.jpg".to_string()], "{fault:?}");
}

/// The per-minute write limit (429 RESOURCE_EXHAUSTED with its ErrorInfo) is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_create_refused_by_the_write_limit_is_retried() {
    a_refused_batch_create_is_retried(Fault::WriteRateLimited).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_create_refused_with_503_is_retried() {
    a_refused_batch_create_is_retried(Fault::Status(503)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_create_refused_with_500_is_retried() {
    a_refused_batch_create_is_retried(Fault::Status(500)).await;
}

/// A batchCreate whose answer is lost (the connection breaks after the request went out) is
/// not sent again: Google may have created the item, and a repeat would find its token
/// used. The PUT fails with 502 and one call was made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_create_whose_answer_is_lost_is_not_retried() {
    let stack = writable(10, 50).await;
    stack
        .emulator()
        .inject("mediaItems.batchCreate", Fault::Reset, 1, Some(1));
    let (status, text) = put(&stack, "/album/Empty/lost.jpg", jpeg(8, 8, 5, 90)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{text}");
    assert!(text.contains("could not create the item"), "{text}");
    assert_eq!(count(&stack, "uploads"), 1);
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 1);
}

/// The daily quota is not retried: one call, 503 with Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_create_refused_by_the_daily_quota_is_not_retried() {
    let stack = writable(10, 50).await;
    stack
        .emulator()
        .inject("mediaItems.batchCreate", Fault::DailyQuota, 1, Some(1));
    let (status, text) = put(&stack, "/album/Empty/daily.jpg", jpeg(8, 8, 6, 90)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 1);
    assert!(album_files(&stack, "Empty").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_use_the_resumable_protocol_and_resume_after_a_broken_chunk() {
    let stack = writable_with(10, 50, |c| {
        c.upload.resumable_threshold = 256 * 1024;
        c.upload.chunk_size = 256 * 1024;
    })
    .await;
    let photo = jpeg(700, 700, 11, 100);
    assert!(photo.len() > 3 * 256 * 1024, "{}", photo.len());
    // Request 1 starts the session, 2 sends the first chunk, 3 (the second chunk) breaks.
    stack.emulator().inject("uploads", Fault::Reset, 3, Some(1));
    let (status, text) = put(&stack, "/upload/big.jpg", photo.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let chunks = photo.len().div_ceil(256 * 1024) as u64;
    // start + every chunk + the broken one + one query.
    assert_eq!(count(&stack, "uploads"), 1 + chunks + 2);
    let lib = stack.emulator().current_library();
    let item = lib.items.iter().find(|i| i.filename == "big.jpg").unwrap();
    assert_eq!(sha256(&item.bytes), sha256(&photo));
}

/// Google announces a chunk granularity when a resumable upload starts; here three times
/// Google's 256 KiB, and a configured chunk size (1 MiB) that is not a multiple of it. Every
/// chunk but the last must be a multiple of the announced granularity, and the bytes arrive
/// exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumable_chunks_follow_the_announced_granularity() {
    const GRANULARITY: usize = 3 * 256 * 1024;
    let opts = EmulatorOptions {
        upload_chunk_granularity: GRANULARITY,
        ..EmulatorOptions::default()
    };
    let stack = start_custom(opts, emulator::REFRESH_TOKEN, |c| {
        c.server.read_only = false;
        c.upload.batch_window_ms = 10;
        c.upload.resumable_threshold = 256 * 1024;
        c.upload.chunk_size = 1024 * 1024;
    })
    .await;
    let video = mp4(2 * GRANULARITY + 1000 * 1000 + 123, 9);
    let (status, text) = put(&stack, "/upload/granular.mp4", video.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let chunks = stack.emulator().upload_chunks();
    let sizes: Vec<usize> = chunks.iter().map(|c| c.0).collect();
    // 786432 + 786432 + 786432 + the rest; never a 1 MiB chunk.
    assert_eq!(
        sizes,
        vec![
            GRANULARITY,
            GRANULARITY,
            GRANULARITY,
            video.len() - 3 * GRANULARITY
        ]
    );
    for (len, last) in &chunks[..chunks.len() - 1] {
        assert!(!last);
        assert_eq!(len % GRANULARITY, 0, "{sizes:?}");
    }
    assert!(chunks.last().unwrap().1, "the last chunk finalizes");
    // start + the chunks: none was refused and sent again.
    assert_eq!(count(&stack, "uploads"), 1 + chunks.len() as u64);
    let lib = stack.emulator().current_library();
    let item = lib
        .items
        .iter()
        .find(|i| i.filename == "granular.mp4")
        .unwrap();
    // Google serves a transcode of a video: compare with the transcode of the exact bytes.
    assert_eq!(sha256(&item.bytes), sha256(&emulator::transcode(&video)));
}

/// A refresh token granted without `photoslibrary.appendonly`: Google's uploads endpoint
/// answers `401 {"code":16,"message":"Authentication session is not defined."}`. The PUT is
/// answered 403 with the fix (authorize again with the scopes), after one refresh and one
/// more attempt, and nothing is created. Raw and resumable uploads alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_without_the_append_scope_says_to_authorize_again() {
    let stack = start_custom(
        EmulatorOptions::default(),
        emulator::REFRESH_TOKEN_NO_APPEND,
        |c| {
            c.server.read_only = false;
            c.upload.batch_window_ms = 10;
            c.upload.resumable_threshold = 256 * 1024;
            c.upload.chunk_size = 256 * 1024;
        },
    )
    .await;
    // Reading works: the token has the read scope.
    assert!(!stack.list("/album/").await.is_empty());
    let tokens_before = count(&stack, "token");
    let (status, text) = put(&stack, "/album/Empty/small.jpg", jpeg(8, 8, 3, 90)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("photoslibrary.appendonly"), "{text}");
    assert!(
        text.contains("Authentication session is not defined."),
        "{text}"
    );
    assert!(text.contains("gphotos-dav auth"), "{text}");
    assert_eq!(count(&stack, "uploads"), 2, "one refresh, one more attempt");
    assert_eq!(count(&stack, "token") - tokens_before, 1);
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 0);

    let big = jpeg(700, 700, 12, 100);
    assert!(big.len() > 256 * 1024);
    let (status, text) = put(&stack, "/upload/big.jpg", big).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("photoslibrary.appendonly"), "{text}");
    assert_eq!(count(&stack, "uploads"), 4, "two starts, no chunk");
    assert!(stack.emulator().upload_chunks().is_empty());
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 0);
    assert!(album_files(&stack, "Empty").is_empty());
}

/// The XML body of a LOCK as Finder and Explorer send it.
const LOCKINFO: &str = "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<D:lockinfo xmlns:D=\"DAV:\">\
    <D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>\
    <D:owner><D:href>user</D:href></D:owner></D:lockinfo>";

async fn lock(stack: &Stack, path: &str, agent: &str) -> (StatusCode, String) {
    let resp = stack
        .http
        .request(Method::from_bytes(b"LOCK").unwrap(), stack.full_url(path))
        .header("User-Agent", agent)
        .header("Content-Type", "text/xml; charset=\"utf-8\"")
        .header("Depth", "0")
        .header("Timeout", "Second-600")
        .body(LOCKINFO)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let token = resp
        .headers()
        .get("Lock-Token")
        .map(|v| v.to_str().unwrap().trim_matches(['<', '>']).to_string())
        .unwrap_or_default();
    (status, token)
}

async fn unlock(stack: &Stack, path: &str, agent: &str, token: &str) -> StatusCode {
    stack
        .http
        .request(Method::from_bytes(b"UNLOCK").unwrap(), stack.full_url(path))
        .header("User-Agent", agent)
        .header("Lock-Token", format!("<{token}>"))
        .send()
        .await
        .unwrap()
        .status()
}

async fn proppatch(stack: &Stack, path: &str, agent: &str, token: &str, body: &str) -> StatusCode {
    stack
        .http
        .request(
            Method::from_bytes(b"PROPPATCH").unwrap(),
            stack.full_url(path),
        )
        .header("User-Agent", agent)
        .header("If", format!("(<{token}>)"))
        .header("Content-Type", "text/xml; charset=\"utf-8\"")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
}

const FINDER: &str = "WebDAVFS/3.0.0 (03008000) Darwin/23.0.0 (arm64)";
const EXPLORER: &str = "Microsoft-WebDAV-MiniRedir/10.0.19045";

/// Finder's copy of one photo: an empty PUT, LOCK, the content PUT (chunked, with
/// `X-Expected-Entity-Length` and the lock token), the AppleDouble sidecar, PROPPATCH,
/// UNLOCK. The sequence ends with one item; the sidecar stays on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finder_chunked_copy_replay_creates_one_item() {
    let stack = writable(10, 50).await;
    let photo = jpeg(48, 32, 21, 90);
    let path = "/album/Empty/IMG_0042.jpg";

    let resp = stack
        .http
        .put(stack.full_url(path))
        .header("User-Agent", FINDER)
        .header("Content-Length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let listed = stack.list("/album/Empty/").await;
    let placeholder = listed.iter().find(|e| e.name() == "IMG_0042.jpg").unwrap();
    assert_eq!(placeholder.size(), 0);
    assert_eq!(count(&stack, "uploads"), 0);

    let (status, token) = lock(&stack, path, FINDER).await;
    assert_eq!(status, StatusCode::OK);
    assert!(token.starts_with("urn:uuid:"), "{token}");

    // Without the token the locked file cannot be written.
    let (status, _) = put(&stack, path, photo.clone()).await;
    assert_eq!(status, StatusCode::LOCKED);

    let chunks: Vec<Result<Bytes, std::io::Error>> = photo
        .chunks(1000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let resp = stack
        .http
        .put(stack.full_url(path))
        .header("User-Agent", FINDER)
        .header("X-Expected-Entity-Length", photo.len().to_string())
        .header("If", format!("(<{token}>)"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::NO_CONTENT,
        "replaces the placeholder"
    );

    let sidecar = vec![0u8; 4096];
    let resp = stack
        .http
        .put(stack.full_url("/album/Empty/._IMG_0042.jpg"))
        .header("User-Agent", FINDER)
        .body(sidecar.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    let status = proppatch(
        &stack,
        path,
        FINDER,
        &token,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><D:propertyupdate xmlns:D=\"DAV:\">\
         <D:set><D:prop><D:getlastmodified>Mon, 01 Jun 2026 10:00:00 GMT</D:getlastmodified>\
         </D:prop></D:set></D:propertyupdate>",
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(
        unlock(&stack, path, FINDER, &token).await,
        StatusCode::NO_CONTENT
    );

    let files = album_files(&stack, "Empty");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0, "IMG_0042.jpg");
    assert_eq!(sha256(&files[0].1), sha256(&photo));
    assert_eq!(count(&stack, "uploads"), 1);
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 1);
    let listed = stack.list("/album/Empty/").await;
    let names: Vec<(String, u64)> = listed
        .iter()
        .filter(|e| !e.is_collection)
        .map(|e| (e.name(), e.size()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("IMG_0042.jpg".to_string(), photo.len() as u64),
            ("._IMG_0042.jpg".to_string(), 4096)
        ]
    );
    let resp = stack
        .http
        .get(stack.full_url("/album/Empty/._IMG_0042.jpg"))
        .header("User-Agent", FINDER)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), sidecar.as_slice());
    // Finder tidies up its sidecar: that works; the photo itself cannot be deleted.
    let (status, _) = request(&stack, "DELETE", "/album/Empty/._IMG_0042.jpg").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// Explorer's copy of one photo: LOCK of the missing name (which creates it empty), PUT with
/// the token, PROPPATCH of the Win32 times, UNLOCK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explorer_lock_put_unlock_replay_creates_one_item() {
    let stack = writable(10, 50).await;
    let photo = jpeg(40, 30, 31, 90);
    let path = "/album/Empty/Picture.jpg";
    let options = stack
        .http
        .request(Method::OPTIONS, stack.full_url("/"))
        .header("User-Agent", EXPLORER)
        .send()
        .await
        .unwrap();
    assert_eq!(options.headers()["DAV"], "1, 2");

    let (status, token) = lock(&stack, path, EXPLORER).await;
    assert_eq!(status, StatusCode::CREATED);
    let listed = stack.list("/album/Empty/").await;
    assert_eq!(
        listed
            .iter()
            .find(|e| e.name() == "Picture.jpg")
            .unwrap()
            .size(),
        0
    );
    let resp = stack
        .http
        .put(stack.full_url(path))
        .header("User-Agent", EXPLORER)
        .header("If", format!("(<{token}>)"))
        .body(photo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let status = proppatch(
        &stack,
        path,
        EXPLORER,
        &token,
        "<?xml version=\"1.0\" encoding=\"utf-8\" ?><D:propertyupdate xmlns:D=\"DAV:\" \
         xmlns:Z=\"urn:schemas-microsoft-com:\"><D:set><D:prop>\
         <Z:Win32LastModifiedTime>Mon, 01 Jun 2026 10:00:00 GMT</Z:Win32LastModifiedTime>\
         <Z:Win32FileAttributes>00000020</Z:Win32FileAttributes>\
         </D:prop></D:set></D:propertyupdate>",
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(
        unlock(&stack, path, EXPLORER, &token).await,
        StatusCode::NO_CONTENT
    );
    let files = album_files(&stack, "Empty");
    assert_eq!(files.len(), 1);
    assert_eq!(sha256(&files[0].1), sha256(&photo));
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 1);
    let listed = stack.list("/album/Empty/").await;
    let entry = listed.iter().find(|e| e.name() == "Picture.jpg").unwrap();
    assert_eq!(entry.size(), photo.len() as u64);
}

/// `rclone copy` of a local folder into a new album, twice: the first run creates the album
/// and the items (sharing batchCreate calls); the second uploads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_copy_twice_uploads_once() {
    let stack = writable(200, 50).await;
    let src = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 0..4u64 {
        let bytes = jpeg(24, 24, 40 + i, 90);
        std::fs::write(src.path().join(format!("p{i}.jpg")), &bytes).unwrap();
        files.push((format!("p{i}.jpg"), bytes));
    }
    // One with a location: Google serves it smaller than the original.
    let located = with_exif(&jpeg(24, 24, 50, 90), &exif_with_gps());
    std::fs::write(src.path().join("located.jpg"), &located).unwrap();
    files.push(("located.jpg".to_string(), located));
    let video = mp4(60_000, 3);
    std::fs::write(src.path().join("clip.mp4"), &video).unwrap();
    files.push(("clip.mp4".to_string(), video));

    let args = [
        "copy",
        src.path().to_str().unwrap(),
        ":webdav:album/Rclone Trip",
        "--webdav-url",
        &stack.url,
        "--webdav-vendor",
        "other",
        "--ignore-size",
    ];
    let out = rclone(&args).await;
    assert!(
        out.status.success(),
        "first run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&stack, "albums.create"), 1);
    assert_eq!(count(&stack, "uploads"), files.len() as u64);
    let first_batches = count(&stack, "mediaItems.batchCreate");
    assert!(
        (1..files.len() as u64).contains(&first_batches),
        "{first_batches} batchCreate calls for {} files",
        files.len()
    );
    let mut got: Vec<String> = album_files(&stack, "Rclone Trip")
        .into_iter()
        .map(|f| f.0)
        .collect();
    got.sort();
    let mut want: Vec<String> = files.iter().map(|f| f.0.clone()).collect();
    want.sort();
    assert_eq!(got, want);

    let out = rclone(&args).await;
    assert!(
        out.status.success(),
        "second run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        count(&stack, "uploads"),
        files.len() as u64,
        "the second run uploads nothing"
    );
    assert_eq!(count(&stack, "mediaItems.batchCreate"), first_batches);
    assert_eq!(count(&stack, "albums.create"), 1);
    assert_eq!(album_files(&stack, "Rclone Trip").len(), files.len());

    // Without --ignore-size rclone sees that Google serves another size for the located photo
    // (and for the video, once Google has processed it), and sends it again: it is answered
    // 204 from the store, nothing is uploaded, and rclone then reports the size difference
    // (docs/uploads.md).
    let strict: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| *a != "--ignore-size")
        .collect();
    let out = rclone(&strict).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("sizes differ"), "{stderr}");
    assert_eq!(count(&stack, "uploads"), files.len() as u64);
    assert_eq!(count(&stack, "mediaItems.batchCreate"), first_batches);
    // rclone then deletes the file it believes corrupted; since #20 a DELETE in an album
    // folder takes the item out of the album (it stays in the library), which is why
    // docs/uploads.md says to use --ignore-size.
    let mut left: Vec<String> = album_files(&stack, "Rclone Trip")
        .into_iter()
        .map(|f| f.0)
        .collect();
    left.sort();
    let kept: Vec<String> = want
        .iter()
        .filter(|n| *n != "located.jpg")
        .cloned()
        .collect();
    assert_eq!(left, kept);

    // Run again with --ignore-size: the same bytes put the item back into the album, without
    // an upload (the store remembers which item they made).
    let out = rclone(&args).await;
    assert!(
        out.status.success(),
        "run after the removal: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&stack, "uploads"), files.len() as u64);
    assert_eq!(count(&stack, "mediaItems.batchCreate"), first_batches);
    let mut back: Vec<String> = album_files(&stack, "Rclone Trip")
        .into_iter()
        .map(|f| f.0)
        .collect();
    back.sort();
    assert_eq!(back, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cadaver_put_uploads_into_an_album() {
    let stack = writable(10, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let photo = jpeg(20, 20, 77, 90);
    std::fs::write(dir.path().join("from-cadaver.jpg"), &photo).unwrap();
    let (ok, text) = cadaver(
        &stack,
        "/album/Empty/",
        dir.path(),
        b"put from-cadaver.jpg\nls\nquit\n",
    )
    .await;
    assert!(ok, "{text}");
    assert!(text.contains("succeeded"), "{text}");
    let files = album_files(&stack, "Empty");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0, "from-cadaver.jpg");
    assert_eq!(sha256(&files[0].1), sha256(&photo));
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_servers_still_refuse_every_write() {
    let stack = start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |_| {}).await;
    // What read-only servers answered before uploads existed: dav-server refuses the method.
    let (status, _) = put(&stack, "/album/Empty/x.jpg", jpeg(8, 8, 1, 90)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = request(&stack, "MKCOL", "/album/New").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let names: Vec<String> = stack.list("/").await.iter().map(|e| e.name()).collect();
    assert!(!names.contains(&"upload".to_string()), "{names:?}");
    assert_eq!(count(&stack, "uploads"), 0);
    let body = parse_multistatus(&stack.propfind_raw("/", Some("0")).await.1);
    assert_eq!(body.len(), 1);
}

/// The store keeps what was uploaded where across restarts: a new server on the same store
/// answers a repeat with 204, different bytes with 409, and uploads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_remembers_uploads_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("metadata.sqlite");
    let db_first = db.clone();
    let stack = writable_with(10, 50, move |c| c.cache.path = Some(db_first)).await;
    let photo = jpeg(30, 20, 90, 90);
    let (status, _) = put(&stack, "/upload/kept.jpg", photo.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(count(&stack, "uploads"), 1);

    let again = stack
        .gateway(|c| {
            c.server.read_only = false;
            c.upload.batch_window_ms = 10;
            c.cache.path = Some(db);
        })
        .await;
    let url = format!("{}upload/kept.jpg", again.url);
    let resp = stack.http.put(&url).body(photo).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = stack
        .http
        .put(&url)
        .body(jpeg(30, 20, 91, 90))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert_eq!(count(&stack, "uploads"), 1);
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 1);
    // The new server lists the item under /upload from the store's record.
    let resp = stack
        .http
        .request(
            Method::from_bytes(b"PROPFIND").unwrap(),
            format!("{}upload/", again.url),
        )
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    let entries = parse_multistatus(&resp.text().await.unwrap());
    assert!(
        entries.iter().any(|e| e.name() == "kept.jpg"),
        "{entries:?}"
    );
}

// ------------------------------------------------------------------ album renames

/// A MOVE as Finder and Explorer send it when a folder is renamed: absolute Destination
/// URL, `Overwrite: F`. (Reconstructed from their documented behaviour; the captures in
/// shared/ hold no MOVE.)
async fn rename(stack: &Stack, from: &str, to: &str, overwrite: &str) -> (StatusCode, String) {
    let resp = stack
        .http
        .request(Method::from_bytes(b"MOVE").unwrap(), stack.full_url(from))
        .header("Destination", stack.full_url(to))
        .header("Overwrite", overwrite)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

/// The names a PROPFIND of `path` lists.
async fn folder_names(stack: &Stack, path: &str) -> Vec<String> {
    stack.list(path).await.iter().map(|e| e.name()).collect()
}

fn album_titles(stack: &Stack) -> Vec<String> {
    let lib = stack.emulator().current_library();
    lib.albums.iter().map(|a| a.title.clone()).collect()
}

/// Finder's and Explorer's New Folder: MKCOL of a placeholder name, then a MOVE to the name
/// the user typed. One album, with the typed title, takes the files dropped into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_folder_then_rename_makes_one_album_with_the_typed_title() {
    let stack = writable(10, 50).await;
    for (placeholder, typed) in [
        ("/album/untitled folder", "/album/Summer trip/"),
        ("/album/New folder", "/album/Été à Paris"),
    ] {
        let (status, _) = request(&stack, "MKCOL", placeholder).await;
        assert_eq!(status, StatusCode::CREATED);
        let created = stack
            .emulator()
            .current_library()
            .albums
            .last()
            .unwrap()
            .id
            .clone();
        let (status, text) = rename(&stack, &format!("{placeholder}/"), typed, "F").await;
        assert_eq!(status, StatusCode::CREATED, "{text}");
        let title = typed.trim_start_matches("/album/").trim_end_matches('/');
        let lib = stack.emulator().current_library();
        let album = lib.albums.iter().find(|a| a.id == created).unwrap();
        assert_eq!(album.title, title, "the same album, renamed");
        let listed = folder_names(&stack, "/album/").await;
        assert!(listed.contains(&title.to_string()), "{listed:?}");
        let old = placeholder.trim_start_matches("/album/");
        assert!(!listed.contains(&old.to_string()), "{listed:?}");
        let (status, _) = stack
            .propfind_raw(&format!("{placeholder}/"), Some("0"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let photo = jpeg(24, 24, title.len() as u64, 90);
        let (status, _) = put(
            &stack,
            &format!("/album/{title}/dropped.jpg"),
            photo.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        let files = album_files(&stack, title);
        assert_eq!(files.len(), 1);
        assert_eq!(sha256(&files[0].1), sha256(&photo));
    }
    assert_eq!(count(&stack, "albums.create"), 2);
    assert_eq!(count(&stack, "albums.patch"), 2);
    let titles = album_titles(&stack);
    assert!(
        !titles
            .iter()
            .any(|t| t == "untitled folder" || t == "New folder"),
        "{titles:?}"
    );
}

/// A renamed album keeps what the store knows of its uploads (same bytes: 204, different
/// bytes: 409, nothing uploaded) and the local files written into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_album_keeps_its_uploads_and_local_files() {
    let stack = writable(10, 50).await;
    let photo = jpeg(20, 20, 41, 90);
    let (status, _) = put(&stack, "/album/Empty/a.jpg", photo.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = put(&stack, "/album/Empty/._a.jpg", b"finder sidecar".to_vec()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, text) = rename(&stack, "/album/Empty/", "/album/Full", "T").await;
    assert_eq!(status, StatusCode::CREATED, "{text}");

    let uploads = count(&stack, "uploads");
    let (status, _) = put(&stack, "/album/Full/a.jpg", photo.clone()).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "the same bytes, already uploaded"
    );
    let (status, text) = put(&stack, "/album/Full/a.jpg", jpeg(20, 20, 42, 90)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");
    assert_eq!(count(&stack, "uploads"), uploads);
    let (status, _, body) = stack.get("/album/Full/._a.jpg").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"finder sidecar".to_vec());
    let (status, _, body) = stack.get("/album/Full/a.jpg").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&album_files(&stack, "Full")[0].1));
    let (status, _, _) = stack.get("/album/Empty/._a.jpg").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_google_cannot_do_are_refused_with_their_reason() {
    let stack = writable(10, 50).await;
    let before = album_titles(&stack);
    let cases = [
        (
            "/album/Pets/",
            "/album/Empty/",
            "F",
            StatusCode::PRECONDITION_FAILED,
            "exists",
        ),
        (
            "/album/Pets/",
            "/album/Empty/",
            "T",
            StatusCode::FORBIDDEN,
            "cannot delete",
        ),
        (
            "/album/Pets/",
            "/album/Pets/",
            "T",
            StatusCode::FORBIDDEN,
            "the same",
        ),
        (
            "/album/Pets/",
            "/upload/Pets",
            "F",
            StatusCode::FORBIDDEN,
            "renaming an album",
        ),
        (
            "/album/Pets/",
            "/album/Empty/Pets",
            "F",
            StatusCode::FORBIDDEN,
            "renaming an album",
        ),
        (
            "/media/all/",
            "/album/All",
            "F",
            StatusCode::FORBIDDEN,
            "renaming an album",
        ),
        (
            "/album/No such album/",
            "/album/Other",
            "F",
            StatusCode::NOT_FOUND,
            "no such album",
        ),
    ];
    for (from, to, overwrite, want, says) in cases {
        let (status, text) = rename(&stack, from, to, overwrite).await;
        assert_eq!(status, want, "{from} -> {to}: {text}");
        assert!(text.contains(says), "{from} -> {to}: {text}");
    }
    // Another server's URL is not a place in this tree.
    let resp = stack
        .http
        .request(
            Method::from_bytes(b"MOVE").unwrap(),
            stack.full_url("/album/Pets/"),
        )
        .header("Destination", "http://elsewhere.invalid:1/other/Pets")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = stack
        .http
        .request(
            Method::from_bytes(b"MOVE").unwrap(),
            stack.full_url("/album/Pets/"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("Destination"));
    assert_eq!(count(&stack, "albums.patch"), 0);
    assert_eq!(album_titles(&stack), before);
}

/// A refresh token granted before renames existed lacks photoslibrary.edit.appcreateddata:
/// the MOVE says how to grant it, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_without_the_edit_scope_says_to_authorize_again() {
    let stack = start_custom(
        EmulatorOptions::default(),
        emulator::REFRESH_TOKEN_NO_EDIT,
        |c| {
            c.server.read_only = false;
            c.upload.batch_window_ms = 10;
        },
    )
    .await;
    let (status, text) = rename(&stack, "/album/Pets/", "/album/Animals", "F").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("photoslibrary.edit.appcreateddata"), "{text}");
    assert!(text.contains("gphotos-dav auth"), "{text}");
    assert_eq!(count(&stack, "albums.patch"), 1);
    assert!(album_titles(&stack).contains(&"Pets".to_string()));
    let listed = folder_names(&stack, "/album/").await;
    assert!(listed.contains(&"Pets".to_string()), "{listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cadaver_mkcol_and_move_rename_an_album() {
    let stack = writable(10, 50).await;
    let cwd = tempfile::tempdir().unwrap();
    let script = b"mkcol Draft\nmove Draft Trip2026\nls\nquit\n";
    let (ok, text) = cadaver(&stack, "/album/", cwd.path(), script).await;
    assert!(ok, "{text}");
    assert!(!text.contains("failed"), "{text}");
    let titles = album_titles(&stack);
    assert!(titles.contains(&"Trip2026".to_string()), "{titles:?}");
    assert!(!titles.contains(&"Draft".to_string()), "{titles:?}");
    assert_eq!(count(&stack, "albums.create"), 1);
    assert_eq!(count(&stack, "albums.patch"), 1);
}

/// Under `[webdav] prefix` the Destination must name a place below the prefix too. Behind a
/// reverse proxy that rewrites Host, the public host arrives in `X-Forwarded-Host` and a
/// Destination on it is this server; a Destination on any other host is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn album_renames_work_under_a_prefix() {
    let stack = writable_with(10, 50, |c| c.webdav.prefix = "/photos".into()).await;
    assert!(stack.url.ends_with("/photos/"), "{}", stack.url);
    let (status, _) = request(&stack, "MKCOL", "/album/Draft").await;
    assert_eq!(status, StatusCode::CREATED);
    let move_to = |destination: &'static str| {
        stack
            .http
            .request(
                Method::from_bytes(b"MOVE").unwrap(),
                stack.full_url("/album/Draft/"),
            )
            .header("Destination", destination)
            .header("X-Forwarded-Host", "proxy.example")
            .send()
    };
    let resp = move_to("http://proxy.example/album/Final").await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "outside the prefix");
    let resp = move_to("http://other.example/photos/album/Final")
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "another host");
    let resp = move_to("http://proxy.example/photos/album/Final%20cut/")
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let titles = album_titles(&stack);
    assert!(titles.contains(&"Final cut".to_string()), "{titles:?}");
    assert!(!titles.contains(&"Draft".to_string()), "{titles:?}");
    assert_eq!(count(&stack, "albums.patch"), 1);
}

/// `rclone moveto` of an album folder renames the album (rclone's WebDAV DirMove is a MOVE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_moveto_of_an_album_folder_renames_it() {
    let stack = writable(10, 50).await;
    let before = stack.emulator().current_library();
    let pets = before.albums.iter().find(|a| a.title == "Pets").unwrap();
    let out = rclone(&[
        "moveto",
        ":webdav:album/Pets",
        ":webdav:album/Animals",
        "--webdav-url",
        &stack.url,
        "--webdav-vendor",
        "other",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = stack.emulator().current_library();
    let renamed = after.albums.iter().find(|a| a.id == pets.id).unwrap();
    assert_eq!(renamed.title, "Animals");
    assert_eq!(renamed.item_ids, pets.item_ids, "the same items");
    assert_eq!(count(&stack, "albums.patch"), 1);
    assert_eq!(count(&stack, "uploads"), 0);
    let listed = stack.list("/album/Animals/").await;
    assert_eq!(listed.len(), pets.item_ids.len());
}

/// A rename waits for the uploads into the album that are under way: the one below is
/// recorded under the new name (the same bytes again answer 204), never left behind under
/// a name that no longer exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_waits_for_uploads_into_the_album() {
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().to_path_buf();
    let stack = writable_with(10, 50, move |c| c.upload.spool_dir = Some(spool_dir)).await;
    let photo = jpeg(32, 32, 61, 90);
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Vec<u8>, std::io::Error>>();
    tx.unbounded_send(Ok(photo[..100].to_vec())).unwrap();
    let uploading = {
        let (http, url) = (stack.http.clone(), stack.full_url("/album/Empty/slow.jpg"));
        let len = photo.len();
        tokio::spawn(async move {
            http.put(url)
                .header("Content-Length", len)
                .body(reqwest::Body::wrap_stream(rx))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // The PUT is spooling its body: it is inside the album's folder.
    tokio::time::timeout(Duration::from_secs(60), async {
        while std::fs::read_dir(spool.path()).unwrap().next().is_none() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the PUT starts spooling its body within 60 s");
    let mover = {
        let (http, from, to) = (
            stack.http.clone(),
            stack.full_url("/album/Empty/"),
            stack.full_url("/album/Renamed/"),
        );
        tokio::spawn(async move {
            http.request(Method::from_bytes(b"MOVE").unwrap(), from)
                .header("Destination", to)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
    tx.unbounded_send(Ok(photo[100..].to_vec())).unwrap();
    drop(tx);
    assert_eq!(uploading.await.unwrap(), StatusCode::CREATED);
    assert_eq!(mover.await.unwrap(), StatusCode::CREATED);
    let files = album_files(&stack, "Renamed");
    assert_eq!(files.len(), 1);
    assert_eq!(sha256(&files[0].1), sha256(&photo));
    let (status, _) = put(&stack, "/album/Renamed/slow.jpg", photo.clone()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(count(&stack, "uploads"), 1);
}
