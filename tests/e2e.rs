//! End to end: emulator + gateway on ephemeral ports, driven over HTTP like a WebDAV client.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{
    Stack, album_items, album_names, by_name, library_api_calls, parse_multistatus, sha256, start,
    start_with,
};
use gphotos_dav_emulator::{self as emulator, EmulatorOptions, FixtureItem, Library, MediaKind};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn album_root_lists_every_album_with_safe_names() {
    let stack = start().await;
    let lib = stack.emulator().library();
    let entries = stack.list("/album/").await;
    let got: BTreeSet<String> = entries.iter().map(|e| e.name()).collect();
    let want: BTreeSet<String> = album_names(lib).into_iter().collect();
    assert_eq!(got, want);
    assert!(entries.iter().all(|e| e.is_collection));
    // The fixture's hard cases, stated literally.
    assert!(got.contains("Friends／Family 2021"), "{got:?}");
    assert!(got.contains("Été à Paris — 東京"), "{got:?}");
    let trips: Vec<_> = lib.albums_titled("Trip");
    assert_eq!(trips.len(), 2);
    for t in trips {
        assert!(got.contains(&format!("Trip {{{}}}", t.id)), "{got:?}");
    }
    assert!(!got.contains("Trip"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_album_lists_exactly_its_items_with_exact_sizes_and_dates() {
    let stack = start().await;
    let lib = stack.emulator().library();
    let names = album_names(lib);
    for (album, dir) in lib.albums.iter().zip(&names) {
        let items = album_items(lib, &album.id);
        let want = by_name(&items);
        let entries = stack.list(&format!("/album/{dir}/")).await;
        let got: BTreeSet<String> = entries.iter().map(|e| e.name()).collect();
        assert_eq!(
            got,
            want.keys().cloned().collect::<BTreeSet<_>>(),
            "album {dir}"
        );
        for e in &entries {
            let item = want[&e.name()];
            assert!(!e.is_collection);
            assert_eq!(e.size(), item.bytes.len() as u64, "size of {}", e.href);
            assert_eq!(
                e.props["getlastmodified"],
                httpdate::fmt_http_date(item.creation_time.into()),
                "date of {}",
                e.href
            );
            assert_eq!(
                e.props["getcontenttype"], item.mime_type,
                "type of {}",
                e.href
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_all_lists_the_whole_library_and_serves_identical_bytes() {
    let stack = start().await;
    let lib = stack.emulator().library();
    let items: Vec<&FixtureItem> = lib.items.iter().collect();
    let want = by_name(&items);
    let entries = stack.list("/media/all/").await;
    assert_eq!(entries.len(), lib.items.len());
    let got: BTreeSet<String> = entries.iter().map(|e| e.name()).collect();
    assert_eq!(got, want.keys().cloned().collect::<BTreeSet<_>>());
    let mut videos = 0;
    for e in &entries {
        let item = want[&e.name()];
        let (status, headers, body) = stack.get(&format!("/media/all/{}", e.name())).await;
        assert_eq!(status, StatusCode::OK, "GET {}", e.href);
        assert_eq!(
            body.len() as u64,
            e.size(),
            "PROPFIND size vs GET of {}",
            e.href
        );
        assert_eq!(
            headers["content-length"].to_str().unwrap(),
            e.size().to_string()
        );
        assert_eq!(sha256(&body), sha256(&item.bytes), "bytes of {}", e.href);
        if item.kind == MediaKind::Video {
            videos += 1;
        }
    }
    assert!(videos >= 1, "the fixture has videos");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_named_files_are_all_reachable_and_ids_resolve() {
    let stack = start().await;
    let lib = stack.emulator().library();
    let names = album_names(lib);
    let (album, dir) = lib
        .albums
        .iter()
        .zip(&names)
        .find(|(a, _)| {
            let items = album_items(lib, &a.id);
            items
                .iter()
                .filter(|i| i.filename == "IMG_0001.JPG")
                .count()
                >= 3
        })
        .expect("the fixture has an album with three IMG_0001.JPG");
    let items = album_items(lib, &album.id);
    let dupes: Vec<&&FixtureItem> = items
        .iter()
        .filter(|i| i.filename == "IMG_0001.JPG")
        .collect();
    let listed: BTreeSet<String> = stack
        .list(&format!("/album/{dir}/"))
        .await
        .iter()
        .map(|e| e.name())
        .collect();
    for item in &dupes {
        let name = format!("IMG_0001 {{{}}}.JPG", item.id);
        assert!(listed.contains(&name), "{name} in {listed:?}");
        let (status, _, body) = stack.get(&format!("/album/{dir}/{name}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(sha256(&body), sha256(&item.bytes));
        // Any name carrying the id resolves to the same item.
        let (status, _, body) = stack
            .get(&format!("/album/{dir}/renamed {{{}}}.JPG", item.id))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(sha256(&body), sha256(&item.bytes));
    }
    assert!(!listed.contains("IMG_0001.JPG"));
    // The item without a filename is named by its id.
    let nameless = lib
        .items
        .iter()
        .find(|i| i.filename.is_empty())
        .expect("fixture item without filename");
    let (status, _, body) = stack.get(&format!("/media/all/{}.jpg", nameless.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&nameless.bytes));
    // Unknown names are 404, not an error.
    let (status, _, _) = stack.get(&format!("/album/{dir}/nope.jpg")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = stack.get("/album/no such album/x.jpg").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The largest item: ranges cross many read buffers.
fn largest(lib: &Library) -> &FixtureItem {
    lib.items.iter().max_by_key(|i| i.bytes.len()).unwrap()
}

async fn check_ranges(stack: &Stack) {
    let lib = stack.emulator().library();
    let item = largest(lib);
    let items: Vec<&FixtureItem> = lib.items.iter().collect();
    let name = by_name(&items)
        .into_iter()
        .find(|(_, i)| i.id == item.id)
        .unwrap()
        .0;
    let path = format!("/media/all/{name}");
    let len = item.bytes.len();
    assert!(len > 600_000, "largest fixture item is {len} bytes");
    let cases = [
        ("bytes=0-0".to_string(), 0, 0),
        ("bytes=100-199".to_string(), 100, 199),
        ("bytes=300000-".to_string(), 300000, len - 1),
        ("bytes=-1000".to_string(), len - 1000, len - 1),
        (format!("bytes=1-{}", len - 2), 1, len - 2),
        (format!("bytes={}-{}", len - 1, len + 500), len - 1, len - 1),
    ];
    for (range, first, last) in cases {
        let (status, headers, body) = stack.get_range(&path, &range).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            headers["content-range"].to_str().unwrap(),
            format!("bytes {first}-{last}/{len}"),
            "{range}"
        );
        assert_eq!(
            sha256(&body),
            sha256(&item.bytes[first..=last]),
            "slice {range}"
        );
    }
    let (status, headers, _) = stack
        .get_range(&path, &format!("bytes={}-", len + 10))
        .await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        headers["content-range"].to_str().unwrap(),
        format!("bytes */{len}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_requests_answer_exact_slices() {
    let stack = start().await;
    check_ranges(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_requests_are_exact_when_the_upstream_ignores_range() {
    let stack = start().await;
    stack.emulator().set_ignore_range(true);
    check_ranges(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propfind_without_depth_is_depth_one_and_on_a_file_is_the_file() {
    let stack = start().await;
    let entries = stack.propfind("/album/", None).await;
    assert_eq!(entries[0].href, "/album/");
    assert_eq!(entries.len(), stack.emulator().library().albums.len() + 1);
    // Without the trailing slash too, answered directly.
    let entries = stack.propfind("/media/all", None).await;
    assert_eq!(entries[0].href, "/media/all/");
    assert_eq!(entries.len(), stack.emulator().library().items.len() + 1);
    let file = entries[1].clone();
    let only = stack.propfind(&file.href, None).await;
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].href, file.href);
    assert_eq!(only[0].size(), file.size());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_infinity_on_a_folder_is_refused_and_bad_depths_are_400() {
    let stack = start().await;
    for path in ["/", "/album/", "/media/all"] {
        let (status, body) = stack.propfind_raw(path, Some("infinity")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(body.contains("propfind-finite-depth"), "{body}");
    }
    let entries = stack.list("/media/all/").await;
    let one = stack.propfind(&entries[0].href, Some("infinity")).await;
    assert_eq!(one.len(), 1, "infinity on a file means the file");
    let (status, _) = stack.propfind_raw("/album/", Some("2")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = stack.propfind_raw("/album/", Some("0")).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_have_sensible_dates_and_etags_are_stable() {
    let stack = start().await;
    let root = stack.propfind("/", Some("1")).await;
    for e in &root {
        let date = httpdate::parse_http_date(&e.props["getlastmodified"]).unwrap();
        let year_2020 = std::time::UNIX_EPOCH + Duration::from_secs(1_577_836_800);
        assert!(date > year_2020, "{} has {:?}", e.href, e.props);
        assert!(e.is_collection);
    }
    let dir_tags: BTreeSet<&String> = root.iter().map(|e| &e.props["getetag"]).collect();
    assert_eq!(dir_tags.len(), root.len(), "one ETag per folder");
    let names: BTreeSet<String> = root[1..].iter().map(|e| e.name()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["album", "feature", "media", "picked", "shared-album"].map(String::from))
    );
    let a = stack.list("/media/all/").await;
    let b = stack.list("/media/all/").await;
    let tags = |v: &[common::DavEntry]| -> Vec<String> {
        v.iter().map(|e| e.props["getetag"].clone()).collect()
    };
    assert_eq!(tags(&a), tags(&b));
    assert_eq!(
        tags(&a).iter().collect::<BTreeSet<_>>().len(),
        a.len(),
        "one ETag per item"
    );
}

/// RFC 4918 15.6: `getetag` is the entity tag as the ETag header carries it, quotes
/// included, so a client may compare the two or send the property back in If-Match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn getetag_is_the_etag_header_and_works_in_if_match() {
    let stack = start().await;
    let listed = stack.list("/media/all/").await;
    for e in listed.iter().take(5) {
        let tag = &e.props["getetag"];
        assert!(
            tag.starts_with('"') && tag.ends_with('"') && tag.len() > 2,
            "{tag}"
        );
        let resp = stack
            .http
            .head(stack.full_url(&e.href))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["etag"].to_str().unwrap(), tag, "{}", e.href);
    }
    let e = &listed[0];
    let tag = &e.props["getetag"];
    let resp = stack
        .http
        .get(stack.full_url(&e.href))
        .header("If-Match", tag.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().len() as u64, e.size());
    let resp = stack
        .http
        .get(stack.full_url(&e.href))
        .header("If-None-Match", tag.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    let (_, folder) = stack.propfind_raw("/media/all/", Some("0")).await;
    assert!(folder.contains("<D:getetag>\""), "{folder}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_are_probed_once_and_remembered() {
    let stack = start().await;
    let emu = stack.emulator();
    let n = emu.library().items.len() as u64;
    stack.list("/media/all/").await;
    let probes = emu.counters().get("content.head");
    assert!(
        probes >= n && probes <= n + 2,
        "{probes} probes for {n} items"
    );
    stack.list("/media/all/").await;
    assert_eq!(emu.counters().get("content.head"), probes, "no probe twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_download_url_is_fetched_again() {
    let stack = start().await;
    let emu = stack.emulator();
    let entries = stack.list("/media/all/").await;
    let lib = emu.library();
    let items: Vec<&FixtureItem> = lib.items.iter().collect();
    let want = by_name(&items);
    // Past the 60-minute lifetime of every baseUrl handed out so far.
    emu.clock().advance(Duration::from_secs(61 * 60));
    let before = emu.counters().snapshot();
    let e = &entries[3];
    let (status, _, body) = stack.get(&format!("/media/all/{}", e.name())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&want[&e.name()].bytes));
    // The access token (59 minutes) died too: the first batchGet is refused with a 401 and
    // sent again with a fresh token.
    let after = emu.counters().snapshot();
    assert_eq!(
        library_api_calls(&before, &after),
        [("mediaItems.batchGet".to_string(), 2)].into(),
        "a fresh URL was fetched by batchGet, and nothing else was called"
    );
    assert_eq!(after["token"] - before["token"], 1);
}

async fn assert_upstream_error(refresh_token: &str, needles: &[&str]) {
    let stack = start_with(EmulatorOptions::default(), refresh_token).await;
    for path in ["/album/", "/media/all/"] {
        let (status, body) = stack.propfind_raw(path, Some("1")).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{path}: {body}");
        for needle in needles {
            assert!(body.contains(needle), "{path}: {needle:?} not in {body:?}");
        }
        assert!(!body.contains("multistatus"));
    }
    // The virtual root needs no Google call and still answers.
    let (status, _) = stack.propfind_raw("/", Some("1")).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_scope_is_an_error_with_the_fix_not_an_empty_folder() {
    assert_upstream_error(
        emulator::REFRESH_TOKEN_NO_SCOPE,
        &[
            "insufficient authentication scopes",
            "photoslibrary.readonly.appcreateddata",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_api_is_an_error_with_the_link_to_enable_it() {
    assert_upstream_error(
        emulator::REFRESH_TOKEN_API_DISABLED,
        &["https://console.developers.google.com/apis/api/photoslibrary.googleapis.com/overview?project=123456789012"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_refresh_token_says_to_authorize_again() {
    assert_upstream_error(
        emulator::REFRESH_TOKEN_REVOKED,
        &["invalid_grant", "Authorize again"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_server_refuses_writes_and_answers_options() {
    let stack = start().await;
    let resp = stack
        .http
        .request(reqwest::Method::OPTIONS, stack.full_url("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["dav"], "1");
    assert_eq!(resp.headers()["ms-author-via"], "DAV");
    for (method, path) in [
        ("PUT", "/album/new.jpg"),
        ("MKCOL", "/album/new"),
        ("DELETE", "/media/all/"),
        ("MOVE", "/media/all/x.jpg"),
        ("PROPPATCH", "/album/"),
    ] {
        let resp = stack
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                stack.full_url(path),
            )
            .body("data")
            .send()
            .await
            .unwrap();
        assert!(
            resp.status() == StatusCode::FORBIDDEN
                || resp.status() == StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {}",
            resp.status()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_gives_length_without_contacting_the_content_host() {
    let stack = start().await;
    let entries = stack.list("/media/all/").await;
    let gets = stack.emulator().counters().get("content.get");
    let e = &entries[0];
    let resp = stack
        .http
        .head(stack.full_url(&e.href))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-length"].to_str().unwrap(),
        e.size().to_string()
    );
    assert_eq!(stack.emulator().counters().get("content.get"), gets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multistatus_parses_and_hrefs_stay_under_the_request_path() {
    let stack = start().await;
    let (status, body) = stack.propfind_raw("/album/", Some("1")).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    for e in parse_multistatus(&body) {
        assert!(e.href.starts_with("/album/"), "{}", e.href);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_listings_share_their_size_probes() {
    let stack = start().await;
    let n = stack.emulator().library().items.len() as u64;
    let listings = (0..20).map(|_| stack.propfind("/media/all/", Some("1")));
    for entries in futures::future::join_all(listings).await {
        assert_eq!(entries.len() as u64, n + 1);
    }
    let probes = stack.emulator().counters().get("content.head");
    assert_eq!(probes, n, "one probe per item, whoever asked");
    assert_eq!(stack.emulator().counters().get("mediaItems.list"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_listings_are_answered_from_cache_and_revalidated_in_the_background() {
    let stack = start().await;
    let emu = stack.emulator();
    let first = stack.list("/media/all/").await;
    assert_eq!(emu.counters().get("mediaItems.list"), 1);
    // Within the TTL: no call at all.
    stack.list("/media/all/").await;
    assert_eq!(emu.counters().get("mediaItems.list"), 1);
    // Past the TTL, with Google failing: the cached listing is still answered, complete.
    stack.advance(Duration::from_secs(301));
    emu.inject(
        "mediaItems.list",
        gphotos_dav_emulator::Fault::Status(503),
        1,
        None,
    );
    let stale = stack.list("/media/all/").await;
    assert_eq!(stale.len(), first.len(), "an outage never empties a folder");
    // Once Google answers again, the background refresh lands.
    emu.clear_faults();
    let before = emu.counters().get("mediaItems.list");
    stack.list("/media/all/").await;
    tokio::time::timeout(Duration::from_secs(60), async {
        while emu.counters().get("mediaItems.list") == before {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the background revalidation calls mediaItems.list within 60 s");
    let again = stack.list("/media/all/").await;
    assert_eq!(again.len(), first.len());
}
