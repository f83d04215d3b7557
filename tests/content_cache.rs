//! The content cache (issue #16): bytes read once are served again from disk with no request
//! to Google; a partly cached read asks only for the missing runs, one request each; the
//! cache stays under its bound, survives a restart, never serves bytes of another size,
//! detects damaged files, never fails a read when it cannot write, and serves what it holds
//! while the media gate is closed. The emulator's counters (`content.get`, bytes sent) are the
//! oracle; every body is checked by SHA-256.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use common::{Stack, sha256, start_custom};
use gphotos_dav::catalog::cache::BLOCK;
use gphotos_dav::google::quota::Bucket;
use gphotos_dav::server::Config;
use gphotos_dav_emulator::{self as emulator, EmulatorOptions};
use reqwest::StatusCode;

/// Six blocks, the last one short.
const SIZE: usize = 5 * BLOCK as usize + 1234;

/// Deterministic noise, so every byte position is distinguishable.
fn noise(len: usize, seed: u32) -> Bytes {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// A stack whose store and content cache live in `dir`, so a second gateway can reopen them.
async fn stack_in(dir: &Path, customize: impl FnOnce(&mut Config)) -> Stack {
    let (store, content) = (dir.join("metadata.sqlite"), dir.join("content"));
    start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.cache.path = Some(store);
        c.cache.content_dir = Some(content);
        customize(c);
    })
    .await
}

/// Gives the library's first photo `bytes` (before anything was probed) and returns its id
/// and its path under /media/all.
async fn big_photo(stack: &Stack, bytes: &Bytes) -> (String, String) {
    let lib = stack.emulator().library();
    let item = lib
        .items
        .iter()
        .find(|i| i.mime_type.starts_with("image/"))
        .unwrap();
    stack.emulator().replace_bytes(&item.id, bytes.clone());
    let entries = stack.list("/media/all/").await;
    let entry = entries
        .iter()
        .find(|e| e.size() == bytes.len() as u64)
        .expect("the photo is listed with its new size");
    (item.id.clone(), entry.href.clone())
}

fn gets(stack: &Stack) -> u64 {
    stack.emulator().counters().get("content.get")
}

fn sent(stack: &Stack) -> u64 {
    stack.emulator().content_bytes_sent()
}

/// GET of `path` with `range` (or whole): the status and the body's bytes.
async fn read(stack: &Stack, path: &str, range: Option<&str>) -> (StatusCode, Vec<u8>) {
    let (status, _, body) = match range {
        Some(r) => stack.get_range(path, r).await,
        None => stack.get(path).await,
    };
    (status, body)
}

/// Every entry file under `dir` (one sparse file per item, its blocks at their own offsets)
/// with its length and the bytes it takes on disk (a hole takes none: what the cache holds).
fn files(dir: &Path) -> Vec<(PathBuf, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        // A file may vanish between the listing and its metadata (its last block evicted).
        if let Ok(meta) = entry.metadata() {
            out.push((entry.path(), meta.len(), meta.blocks() * 512));
        }
    }
    out.sort();
    out
}

/// The bytes the cache's files take on disk.
fn on_disk(dir: &Path) -> u64 {
    files(dir).iter().map(|f| f.2).sum()
}

/// Waits (with a deadline) until no request of the cache is receiving blocks: a client has
/// its last byte before the block holding it is written, so files are looked at after this.
async fn settled(stack: &Stack) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while stack.catalog.content_in_flight() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cache's requests end"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Every block handed to a writer was written or given up, and its room given back.
    assert_eq!(
        stack.catalog.content_write_backlog(),
        0,
        "the write-behind queue is empty"
    );
}

/// The one entry file under `dir`.
fn entry_file(dir: &Path) -> PathBuf {
    let files = files(dir);
    assert_eq!(files.len(), 1, "one entry file: {files:?}");
    files[0].0.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_from_an_empty_a_partial_and_a_full_cache_are_exact_and_ask_only_for_what_is_missing()
{
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_in(dir.path(), |_| {}).await;
    let bytes = noise(SIZE, 7);
    let (_, path) = big_photo(&stack, &bytes).await;
    let b = BLOCK as usize;

    // Empty cache: a range inside block 1 to the end of block 2. One request, from the start
    // of block 1 (reads are block aligned): blocks 1 and 2 are read whole and kept.
    let (g, s) = (gets(&stack), sent(&stack));
    let range = format!("bytes={}-{}", b + 1000, 3 * b - 1);
    let (status, body) = read(&stack, &path, Some(&range)).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(sha256(&body), sha256(&bytes[b + 1000..3 * b]));
    assert_eq!(gets(&stack), g + 1);
    settled(&stack).await;
    assert_eq!(
        sent(&stack) - s,
        2 * BLOCK,
        "blocks 1 and 2, where the range ends"
    );

    // Partial cache: the whole item. Blocks 0 and 3..=5 are missing: two runs, two requests,
    // and Google sends exactly their bytes.
    let (g, s) = (gets(&stack), sent(&stack));
    let (status, body) = read(&stack, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&bytes));
    assert_eq!(
        gets(&stack),
        g + 2,
        "one request per contiguous missing run"
    );
    assert_eq!(
        sent(&stack) - s,
        (SIZE - 2 * b) as u64,
        "only the missing bytes"
    );

    // Full cache: whole, ranged, a suffix and a read resumed in the middle: no request at all.
    let (g, s) = (gets(&stack), sent(&stack));
    let (status, body) = read(&stack, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&bytes));
    for (range, want) in [
        ("bytes=1000-2000".to_string(), &bytes[1000..=2000]),
        ("bytes=-1500".to_string(), &bytes[SIZE - 1500..]),
        (format!("bytes={}-", 3 * b + 17), &bytes[3 * b + 17..]),
    ] {
        let (status, body) = read(&stack, &path, Some(&range)).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(sha256(&body), sha256(want), "{range}");
    }
    assert_eq!(
        (gets(&stack), sent(&stack)),
        (g, s),
        "served from the cache"
    );

    // What is on disk: one file holding the item's six blocks at their offsets, no hole.
    settled(&stack).await;
    let on_disk = files(&dir.path().join("content"));
    assert_eq!(on_disk.len(), 1, "{on_disk:?}");
    assert_eq!(on_disk[0].1, SIZE as u64);
    assert!(on_disk[0].2 >= SIZE as u64, "{on_disk:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_serves_cached_bytes_with_no_content_request() {
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_in(dir.path(), |_| {}).await;
    let bytes = noise(SIZE, 11);
    let (_, path) = big_photo(&stack, &bytes).await;
    let (_, body) = read(&stack, &path, None).await;
    assert_eq!(sha256(&body), sha256(&bytes));
    settled(&stack).await;
    stack.catalog.store().flush().await;

    // A second server on the same store and directory.
    let (store, content) = (
        dir.path().join("metadata.sqlite"),
        dir.path().join("content"),
    );
    let again = stack
        .gateway(|c| {
            c.cache.path = Some(store);
            c.cache.content_dir = Some(content);
        })
        .await;
    let (g, s) = (gets(&stack), sent(&stack));
    let resp = stack
        .http
        .get(format!("{}{}", again.url, path.trim_start_matches('/')))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(sha256(&resp.bytes().await.unwrap()), sha256(&bytes));
    assert_eq!(
        (gets(&stack), sent(&stack)),
        (g, s),
        "no content request after a restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_keeps_the_directory_under_content_max() {
    let dir = tempfile::tempdir().unwrap();
    let max = 600 * 1024;
    let stack = stack_in(dir.path(), |c| c.cache.content_max = Some("600 KiB".into())).await;
    let bytes = noise(SIZE, 13);
    let (_, path) = big_photo(&stack, &bytes).await;
    let (_, body) = read(&stack, &path, None).await;
    assert_eq!(sha256(&body), sha256(&bytes));
    settled(&stack).await;
    let used = on_disk(&dir.path().join("content"));
    assert!(used <= max, "{used} bytes on disk, more than {max}");
    assert!(used >= BLOCK, "the most recent blocks are kept: {used}");

    // The most recently read end is still there; the evicted start is fetched again.
    let g = gets(&stack);
    let (_, body) = read(&stack, &path, Some("bytes=-1000")).await;
    assert_eq!(sha256(&body), sha256(&bytes[SIZE - 1000..]));
    assert_eq!(gets(&stack), g, "the tail was kept");
    let (_, body) = read(&stack, &path, Some("bytes=0-999")).await;
    assert_eq!(sha256(&body), sha256(&bytes[..1000]));
    assert_eq!(gets(&stack), g + 1, "the start was evicted");
    settled(&stack).await;
    let used = on_disk(&dir.path().join("content"));
    assert!(used <= max, "{used} bytes on disk, more than {max}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_whose_size_changed_upstream_is_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_in(dir.path(), |_| {}).await;
    let bytes = noise(SIZE, 17);
    let (id, path) = big_photo(&stack, &bytes).await;
    let b = BLOCK as usize;
    // Block 1 cached.
    let (_, body) = read(&stack, &path, Some(&format!("bytes={b}-{}", 2 * b - 1))).await;
    assert_eq!(sha256(&body), sha256(&bytes[b..2 * b]));

    // Google now serves other bytes of another size: the first missing block's answer says
    // so, nothing was sent yet, and the cached block is dropped.
    let new_bytes = noise(SIZE - 5000, 19);
    stack.emulator().replace_bytes(&id, new_bytes.clone());
    let resp = stack.http.get(stack.full_url(&path)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert!(resp.text().await.unwrap().contains("size changed"));
    let entries = stack.list("/media/all/").await;
    let entry = entries.iter().find(|e| e.href == path).unwrap();
    assert_eq!(entry.size(), new_bytes.len() as u64);
    let (status, body) = read(&stack, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        sha256(&body),
        sha256(&new_bytes),
        "no byte of the old version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_that_keeps_the_size_is_seen_after_content_max_age() {
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_in(dir.path(), |c| c.cache.content_max_age_secs = 3600).await;
    let bytes = noise(SIZE, 23);
    let (id, path) = big_photo(&stack, &bytes).await;
    let (_, body) = read(&stack, &path, None).await;
    assert_eq!(sha256(&body), sha256(&bytes));
    let edited = noise(SIZE, 29);
    stack.emulator().replace_bytes(&id, edited.clone());
    // Within the age, the cached bytes are what Google served when they were stored.
    stack.advance(Duration::from_secs(3500));
    let (_, body) = read(&stack, &path, None).await;
    assert_eq!(sha256(&body), sha256(&bytes));
    // Past it, Google's.
    stack.advance(Duration::from_secs(200));
    let g = gets(&stack);
    let (status, body) = read(&stack, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&edited));
    assert_eq!(gets(&stack), g + 1, "one request for the whole item");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_content_dir_still_serves_exact_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the directory's parent should be: nothing can be created under it.
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"x").unwrap();
    let content = blocker.join("content");
    let stack = start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.cache.content_dir = Some(content);
    })
    .await;
    let bytes = noise(SIZE, 31);
    let (_, path) = big_photo(&stack, &bytes).await;
    for n in 1..=2 {
        let g = gets(&stack);
        let (status, body) = read(&stack, &path, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(sha256(&body), sha256(&bytes), "read {n}");
        assert_eq!(gets(&stack), g + 1, "read {n} went to Google");
    }
    // The blocks it could not write gave their write-behind room back.
    settled(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_truncated_cache_file_is_detected_and_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_in(dir.path(), |_| {}).await;
    let bytes = noise(SIZE, 37);
    let (_, path) = big_photo(&stack, &bytes).await;
    let (_, body) = read(&stack, &path, None).await;
    assert_eq!(sha256(&body), sha256(&bytes));
    let content = dir.path().join("content");
    settled(&stack).await;
    // One flipped byte in block 2, the file cut short inside its last block (block 5).
    let file = entry_file(&content);
    let mut damaged = std::fs::read(&file).unwrap();
    damaged[2 * BLOCK as usize + 100] ^= 0xff;
    std::fs::write(&file, damaged).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(5 * BLOCK + 1000).unwrap();
    drop(f);

    let (g, s) = (gets(&stack), sent(&stack));
    let (status, body) = read(&stack, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&bytes));
    assert_eq!(gets(&stack), g + 2, "one request for each damaged block");
    assert_eq!(sent(&stack) - s, BLOCK + (SIZE as u64 - 5 * BLOCK));
    // Kept again, whole.
    let (g, s) = (gets(&stack), sent(&stack));
    let (_, body) = read(&stack, &path, None).await;
    assert_eq!(sha256(&body), sha256(&bytes));
    assert_eq!((gets(&stack), sent(&stack)), (g, s));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_media_gate_still_serves_cached_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_in(dir.path(), |_| {}).await;
    let bytes = noise(SIZE, 41);
    let (_, path) = big_photo(&stack, &bytes).await;
    let (_, body) = read(&stack, &path, Some("bytes=-2000")).await;
    assert_eq!(sha256(&body), sha256(&bytes[SIZE - 2000..]));
    let _ = stack
        .catalog
        .google()
        .quota
        .close_daily(Bucket::Media, "test: the day's media requests are spent");
    let g = gets(&stack);
    // The cached tail is served; the start, never read, cannot come.
    let (status, body) = read(&stack, &path, Some("bytes=-2000")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(sha256(&body), sha256(&bytes[SIZE - 2000..]));
    let (status, _) = read(&stack, &path, Some("bytes=0-999")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(gets(&stack), g, "nothing sent while the gate is closed");
}

/// Waits (with a deadline) until `n` reads wait for another read's request.
async fn until_waiting(stack: &Stack, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while stack.catalog.content_waiting() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} readers wait for the shared request",
            stack.catalog.content_waiting()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_share_one_request_and_survive_the_first_hanging_up() {
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_in(dir.path(), |_| {}).await;
    // Bigger than what the sockets between the first reader and the server can buffer, so the
    // first reader, not reading its body, holds the request in the middle of the item.
    let size = 64 * BLOCK as usize + 4321;
    let bytes = noise(size, 43);
    let (_, path) = big_photo(&stack, &bytes).await;
    let url = stack.full_url(&path);
    let g = gets(&stack);

    // The first reader starts the request and takes one piece, then stops reading.
    let mut first = stack.http.get(&url).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let piece = first.chunk().await.unwrap().expect("a first piece");
    assert_eq!(&piece[..], &bytes[..piece.len()]);

    // Three more read the whole item meanwhile: the blocks already kept from the cache, then
    // they wait for the first reader's request.
    const OTHERS: usize = 3;
    let readers: Vec<_> = (0..OTHERS)
        .map(|_| {
            let (http, url) = (stack.http.clone(), url.clone());
            tokio::spawn(async move {
                let resp = http.get(&url).send().await.unwrap();
                (resp.status(), resp.bytes().await.unwrap())
            })
        })
        .collect();
    until_waiting(&stack, OTHERS).await;

    // The first reader hangs up in the middle: the request goes on for the others.
    drop(first);
    for reader in readers {
        let (status, body) = reader.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            sha256(&body),
            sha256(&bytes),
            "every reader's bytes are exact"
        );
    }
    assert_eq!(gets(&stack), g + 1, "one request for all the readers");

    // Everything was kept: a fifth read asks Google nothing.
    let (status, body) = read(&stack, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&bytes));
    assert_eq!(gets(&stack), g + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_waiting_for_a_refused_request_get_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_in(dir.path(), |_| {}).await;
    let bytes = noise(SIZE, 47);
    let (_, path) = big_photo(&stack, &bytes).await;
    let _ = stack
        .catalog
        .google()
        .quota
        .close_daily(Bucket::Media, "test: the day's media requests are spent");
    let g = gets(&stack);
    let reads: Vec<_> = (0..3)
        .map(|_| {
            let (http, url) = (stack.http.clone(), stack.full_url(&path));
            tokio::spawn(async move { http.get(&url).send().await.unwrap().status() })
        })
        .collect();
    for r in reads {
        assert_eq!(r.await.unwrap(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(gets(&stack), g, "nothing sent while the gate is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_stops_inside_a_block_keeps_that_block() {
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_in(dir.path(), |_| {}).await;
    let bytes = noise(SIZE, 53);
    let (_, path) = big_photo(&stack, &bytes).await;
    let content = dir.path().join("content");

    // A thumbnailer reads the first 64 KiB: one request, for block 0 only (the client's
    // range ends inside it); the rest of block 0 is finished in the background.
    let (g, s) = (gets(&stack), sent(&stack));
    let (status, body) = read(&stack, &path, Some("bytes=0-65535")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(sha256(&body), sha256(&bytes[..65536]));
    assert_eq!(gets(&stack), g + 1);
    settled(&stack).await;
    assert_eq!(
        sent(&stack) - s,
        BLOCK,
        "Google was asked for block 0, no more"
    );
    // A row is written after its file: let the store catch up before a restart could matter.
    stack.catalog.store().flush().await;
    let on_disk = files(&content);
    assert_eq!(on_disk.len(), 1, "one entry file: {on_disk:?}");
    assert_eq!(
        (on_disk[0].1, on_disk[0].2),
        (BLOCK, BLOCK),
        "only the block the read stopped in"
    );

    // The same start again, and the rest of block 0: no request.
    let (g, s) = (gets(&stack), sent(&stack));
    for range in ["bytes=0-65535", "bytes=65536-262143", "bytes=1000-200000"] {
        let (status, body) = read(&stack, &path, Some(range)).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        let (a, b) = range[6..].split_once('-').unwrap();
        let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
        assert_eq!(sha256(&body), sha256(&bytes[a..=b]), "{range}");
    }
    assert_eq!(
        (gets(&stack), sent(&stack)),
        (g, s),
        "served from the cache"
    );
}

/// Without the cache a ranged GET asks Google for exactly the client's range (the lean GET
/// knows where it ends), and a whole GET for the whole item: bytes sent by the content host
/// are the oracle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_cache_google_is_asked_for_exactly_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_in(dir.path(), |c| c.cache.content_max = Some("0".into())).await;
    let bytes = noise(SIZE, 59);
    let (_, path) = big_photo(&stack, &bytes).await;
    for (range, want) in [
        (Some("bytes=1000-1999"), &bytes[1000..2000]),
        (Some("bytes=-1500"), &bytes[SIZE - 1500..]),
        (Some("bytes=300000-"), &bytes[300_000..]),
        (None, &bytes[..]),
    ] {
        let (g, s) = (gets(&stack), sent(&stack));
        let (status, body) = read(&stack, &path, range).await;
        let want_status = if range.is_some() {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        };
        assert_eq!(status, want_status, "{range:?}");
        assert_eq!(sha256(&body), sha256(want), "{range:?}");
        assert_eq!(gets(&stack), g + 1, "{range:?}");
        assert_eq!(sent(&stack) - s, want.len() as u64, "{range:?}");
    }
    assert_eq!(files(&dir.path().join("content")), vec![], "nothing kept");
}
