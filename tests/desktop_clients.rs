//! Windows Explorer and macOS Finder, replayed: the requests these clients send when they mount
//! a WebDAV share, browse it and probe it, with their own headers, User-Agents and bodies.
//!
//! The requests come from `tests/data/client-captures.json`, a copy of the project's capture
//! notes: each entry names its `source` (a published packet capture, server log or the
//! client's own source code, e.g. apple-oss-distributions/webdavfs `webdav_network.c`) and how
//! faithful it is. Their paths belong to other servers, so each is mapped onto this tree by its
//! `path_kind` (the share root, a folder, or a probe for a missing file), keeping what matters:
//! a trailing slash or its absence, and the host root `/` for Windows' first OPTIONS.

mod common;

use std::collections::BTreeMap;

use common::{Stack, album_items, album_names, by_name, parse_multistatus, start, start_custom};
use gphotos_dav::google::library::NewItem;
use gphotos_dav::server::auth::hash_password;
use gphotos_dav::server::config::UserConfig;
use gphotos_dav_emulator::{self as emulator, EmulatorOptions, FixtureItem};
use reqwest::{Method, StatusCode};
use serde_json::Value;

const EXPLORER: &str = "Microsoft-WebDAV-MiniRedir/10.0.19045";
const FINDER: &str = "WebDAVFS/3.0.0 (03008000) Darwin/22.1.0";

/// The property list Finder sends for every stat (webdavfs `network_stat()`).
const FINDER_STAT: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:propfind xmlns:D=\"DAV:\">\n<D:prop>\n<D:getlastmodified/>\n<D:getcontentlength/>\n<D:creationdate/>\n<D:resourcetype/>\n</D:prop>\n</D:propfind>\n";

fn captures() -> Vec<Value> {
    serde_json::from_str(include_str!("data/client-captures.json")).unwrap()
}

/// A folder of the tree without a cached listing, and its items.
fn pets(stack: &Stack) -> (String, Vec<&FixtureItem>) {
    let lib = stack.emulator().library();
    let (album, name) = lib
        .albums
        .iter()
        .zip(album_names(lib))
        .find(|(a, _)| a.title == "Pets")
        .unwrap();
    (format!("/album/{name}"), album_items(lib, &album.id))
}

/// Where a captured request goes on this server. `prefix` is the served prefix ("" or
/// "/photos").
fn mapped_path(capture: &Value, prefix: &str) -> String {
    let path = capture["path"].as_str().unwrap();
    let method = capture["method"].as_str().unwrap();
    match capture["path_kind"].as_str().unwrap() {
        // Windows' first OPTIONS goes to the host root whatever URL is being mapped.
        "root" if method == "OPTIONS" && path == "/" => "/".to_string(),
        "root" => format!("{prefix}/"),
        "collection" if path == "/" => format!("{prefix}/"),
        // A folder, with the trailing slash exactly when the capture has one.
        "collection" if path.ends_with('/') => format!("{prefix}/album/Pets/"),
        "collection" => format!("{prefix}/album/Pets"),
        "noise" => {
            let name = path.rsplit('/').next().unwrap();
            format!("{prefix}/album/Pets/{name}")
        }
        other => panic!("unknown path_kind {other}"),
    }
}

/// Sends a captured request to `path` with the capture's headers (the Host is ours).
async fn replay(stack: &Stack, capture: &Value, path: &str) -> reqwest::Response {
    let origin = stack.url.split('/').take(3).collect::<Vec<_>>().join("/");
    let method = Method::from_bytes(capture["method"].as_str().unwrap().as_bytes()).unwrap();
    let mut req = stack.http.request(method, format!("{origin}{path}"));
    for (name, value) in capture["headers"].as_object().unwrap() {
        if !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length") {
            req = req.header(name, value.as_str().unwrap());
        }
    }
    // An empty body still goes out with `Content-Length: 0`, as Windows sends it.
    req.body(capture["body"].as_str().unwrap().to_string())
        .send()
        .await
        .unwrap()
}

/// Each `<D:response>`: its href and the status of each propstat, in document order.
fn propstat_statuses(xml: &str) -> Vec<(String, Vec<String>)> {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name(("DAV:", "response")))
        .map(|r| {
            let href = r
                .children()
                .find(|n| n.has_tag_name(("DAV:", "href")))
                .and_then(|n| n.text())
                .unwrap()
                .to_string();
            let statuses = r
                .children()
                .filter(|n| n.has_tag_name(("DAV:", "propstat")))
                .map(|p| {
                    p.children()
                        .find(|n| n.has_tag_name(("DAV:", "status")))
                        .and_then(|n| n.text())
                        .unwrap()
                        .to_string()
                })
                .collect();
            (href, statuses)
        })
        .collect()
}

fn assert_rfc1123(value: &str, what: &str) {
    assert!(value.ends_with(" GMT"), "{what}: {value}");
    httpdate::parse_http_date(value).unwrap_or_else(|e| panic!("{what}: {value}: {e}"));
}

/// Checks one replayed answer against what its client needs.
async fn check_answer(stack: &Stack, capture: &Value, path: &str) {
    let client = capture["client"].as_str().unwrap();
    let agent = capture["headers"]["User-Agent"].as_str().unwrap_or("");
    let kind = capture["path_kind"].as_str().unwrap();
    let method = capture["method"].as_str().unwrap();
    let what = format!("{client}: {method} {path}");
    let resp = replay(stack, capture, path).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap();
    if kind == "noise" {
        assert_eq!(status, StatusCode::NOT_FOUND, "{what}");
        assert_eq!(body, "", "{what}: a plain 404");
        return;
    }
    if method == "OPTIONS" {
        assert_eq!(status, StatusCode::OK, "{what}");
        assert_eq!(headers["dav"], "1", "{what}: class 1, read-only");
        assert_eq!(headers["ms-author-via"], "DAV", "{what}");
        return;
    }
    assert_eq!(status, StatusCode::MULTI_STATUS, "{what}: {body}");
    let entries = parse_multistatus(&body);
    let request_path = if path.ends_with('/') {
        path.to_string()
    } else {
        format!("{path}/")
    };
    let request_path = common::decode(&request_path);
    assert_eq!(
        entries[0].href, request_path,
        "{what}: the target comes first"
    );
    let body_sent = capture["body"].as_str().unwrap();
    if body_sent.is_empty() || body_sent.contains("resourcetype") {
        assert!(entries[0].is_collection, "{what}");
    }
    for e in &entries[1..] {
        assert!(e.href.starts_with(&request_path), "{what}: {}", e.href);
        assert!(e.href.len() > request_path.len(), "{what}: {}", e.href);
    }
    let depth = capture["headers"]["Depth"].as_str().unwrap();
    if depth == "0" {
        assert_eq!(entries.len(), 1, "{what}");
    }
    for (href, statuses) in propstat_statuses(&body) {
        assert_eq!(
            statuses.first().map(String::as_str),
            Some("HTTP/1.1 200 OK"),
            "{what}: {href}: the 200 propstat comes first"
        );
    }
    for e in &entries {
        if body_sent.is_empty() || body_sent.contains("getlastmodified") {
            assert_rfc1123(&e.props["getlastmodified"], &what);
        }
        if body_sent.is_empty() || body_sent.contains("creationdate") {
            let created = &e.props["creationdate"];
            assert!(created.ends_with('Z'), "{what}: {created}");
            chrono::DateTime::parse_from_rfc3339(created).unwrap();
        }
        if !e.is_collection && (body_sent.is_empty() || body_sent.contains("getcontentlength")) {
            assert!(e.size() > 0, "{what}: {}", e.href);
        }
        if body_sent.is_empty() && agent.contains("Microsoft") {
            // Allprop for Explorer carries the Win32 properties, dates in RFC 1123.
            assert_rfc1123(&e.props["Win32CreationTime"], &what);
            assert_rfc1123(&e.props["Win32LastModifiedTime"], &what);
            let attributes = if e.is_collection {
                "00000010"
            } else {
                "00000020"
            };
            assert_eq!(
                e.props["Win32FileAttributes"], attributes,
                "{what}: {}",
                e.href
            );
        }
    }
    // Files listed in a folder have their exact sizes.
    if entries.len() > 1 && request_path.ends_with("/album/Pets/") {
        let (_, items) = pets(stack);
        let want = by_name(&items);
        assert_eq!(entries.len(), want.len() + 1, "{what}");
        for e in &entries[1..] {
            if body_sent.is_empty() || body_sent.contains("getcontentlength") {
                assert_eq!(e.size(), want[&e.name()].bytes.len() as u64, "{what}");
            }
        }
    }
}

async fn replay_all(stack: &Stack, prefix: &str) {
    let all = captures();
    assert!(all.len() >= 14, "the capture file holds the sequences");
    for capture in &all {
        let path = mapped_path(capture, prefix);
        check_answer(stack, capture, &path).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_explorer_and_finder_requests_get_what_those_clients_need() {
    let stack = start().await;
    replay_all(&stack, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_requests_work_under_a_prefix_with_options_at_the_host_root() {
    let stack = start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.webdav.prefix = "/photos".into();
    })
    .await;
    replay_all(&stack, "/photos").await;
}

/// A request like the capture of Finder's stat or Explorer's folder listing, to any path.
async fn send(
    stack: &Stack,
    method: &str,
    path: &str,
    agent: &str,
    body: &str,
) -> reqwest::Response {
    let mut req = stack
        .http
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            stack.full_url(path),
        )
        .header("User-Agent", agent)
        .body(body.to_string());
    if method == "PROPFIND" {
        req = req.header("Depth", "0");
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_are_answered_from_memory_without_any_upstream_call() {
    let stack = start().await;
    let (pets, _) = pets(&stack);
    let names = [
        "._.",
        "._IMG_0001.JPG",
        ".DS_Store",
        "._.DS_Store",
        ".localized",
        ".Spotlight-V100",
        ".metadata_never_index",
        ".ql_disablethumbnails",
        "Backups.backupdb",
        "desktop.ini",
        "folder.jpg",
        "Folder.gif",
        "AutoRun.inf",
    ];
    let counters = stack.emulator().counters();
    let before = counters.snapshot();
    for folder in ["", "/media/all", "/media/by-day/2016", pets.as_str()] {
        for name in names {
            let path = format!("{folder}/{name}");
            let mut requests = vec![
                ("PROPFIND", EXPLORER, ""),
                ("GET", EXPLORER, ""),
                ("HEAD", EXPLORER, ""),
            ];
            // `folder.jpg` and `folder.gif` are Explorer's probes only: a photo may have
            // that name (see the next test).
            if !name.to_ascii_lowercase().starts_with("folder.") {
                requests.extend([("PROPFIND", FINDER, FINDER_STAT), ("GET", FINDER, "")]);
            }
            for (method, agent, body) in requests {
                let resp = send(&stack, method, &path, agent, body).await;
                assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
                if method != "HEAD" {
                    assert_eq!(resp.headers()["content-length"], "0", "{method} {path}");
                }
            }
            // Deeper inside a probed name too (Finder looks into `.Spotlight-V100/...`).
            let deeper = format!("{path}/Store-V2");
            let resp = send(&stack, "PROPFIND", &deeper, EXPLORER, "").await;
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{deeper}");
        }
    }
    assert_eq!(counters.snapshot(), before, "no Google call for any probe");
}

/// Uploads a photo named `name` into the album `album_id` the way any Google Photos app does
/// (uploads, then mediaItems.batchCreate), straight to the emulator; returns the bytes Google
/// then serves for it.
async fn upload_to_album(stack: &Stack, album_id: &str, name: &str, photo: &[u8]) -> Vec<u8> {
    let google = common::google_on(&stack.emu);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, photo).unwrap();
    let token = google
        .upload
        .upload_file(&file, photo.len() as u64, "image/jpeg")
        .await
        .unwrap();
    let created = google
        .library
        .batch_create(
            Some(album_id),
            &[NewItem {
                upload_token: token,
                file_name: name.into(),
            }],
        )
        .await
        .unwrap();
    let id = created[0].as_ref().expect("the item is created").id.clone();
    let lib = stack.emulator().current_library();
    lib.item(&id).unwrap().bytes.to_vec()
}

/// A PROPFIND Depth 1 of `folder` as Explorer sends it: the names it lists.
async fn explorer_lists(stack: &Stack, folder: &str) -> Vec<String> {
    let resp = stack
        .http
        .request(
            Method::from_bytes(b"PROPFIND").unwrap(),
            stack.full_url(&format!("{folder}/")),
        )
        .header("User-Agent", EXPLORER)
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::MULTI_STATUS, "{folder}");
    let entries = parse_multistatus(&resp.text().await.unwrap());
    entries.iter().skip(1).map(|e| e.name()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_photo_named_like_a_probe_stays_reachable() {
    // `folder.jpg` is a probe only for Explorer, and a listed name is served to anyone.
    let stack = start().await;
    let lib = stack.emulator().library();
    let (pets, items) = pets(&stack);
    let pets_album = lib.albums_titled("Pets")[0];
    let (camera, camera_items) = {
        let (album, name) = lib
            .albums
            .iter()
            .zip(album_names(lib))
            .find(|(a, _)| a.title == "Old Camera")
            .unwrap();
        (format!("/album/{name}"), album_items(lib, &album.id))
    };
    assert!(
        items
            .iter()
            .chain(&camera_items)
            .all(|i| !i.filename.eq_ignore_ascii_case("folder.jpg")),
        "no fixture is named folder.jpg before the upload"
    );
    let photo = camera_items[0].bytes.to_vec();
    let served = upload_to_album(&stack, &pets_album.id, "folder.jpg", &photo).await;
    let counters = stack.emulator().counters();

    // Any other client asks for it by name before listing the folder: the photo.
    for agent in ["rclone/v1.60", FINDER] {
        let resp = send(&stack, "GET", &format!("{pets}/folder.jpg"), agent, "").await;
        assert_eq!(resp.status(), StatusCode::OK, "{agent}");
        assert_eq!(
            common::sha256(&resp.bytes().await.unwrap()),
            common::sha256(&served),
            "{agent}"
        );
    }

    // Explorer lists the folder first, as it always does: the photo is there, and served.
    let listed = explorer_lists(&stack, &pets).await;
    assert!(listed.iter().any(|n| n == "folder.jpg"), "{listed:?}");
    assert_eq!(listed.len(), items.len() + 1, "{listed:?}");
    let resp = send(&stack, "GET", &format!("{pets}/folder.jpg"), EXPLORER, "").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        common::sha256(&resp.bytes().await.unwrap()),
        common::sha256(&served)
    );
    let resp = send(
        &stack,
        "PROPFIND",
        &format!("{pets}/folder.jpg"),
        EXPLORER,
        "",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::MULTI_STATUS);
    let entry = parse_multistatus(&resp.text().await.unwrap()).remove(0);
    assert_eq!(entry.size(), served.len() as u64);
    // And an ordinary name of the folder, to Explorer too.
    let (name, item) = by_name(&items).into_iter().next().unwrap();
    let resp = send(&stack, "GET", &format!("{pets}/{name}"), EXPLORER, "").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        common::sha256(&resp.bytes().await.unwrap()),
        common::sha256(&item.bytes)
    );

    // Where no such photo exists, Explorer's probe is a 404 from memory, whether the folder
    // was listed or not, and costs Google nothing.
    explorer_lists(&stack, &camera).await;
    let before = counters.snapshot();
    for folder in [camera.as_str(), "/album/Highlights", "/media/all"] {
        for method in ["GET", "PROPFIND"] {
            let path = format!("{folder}/folder.jpg");
            let resp = send(&stack, method, &path, EXPLORER, "").await;
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
        }
    }
    assert_eq!(counters.snapshot(), before, "no Google call for a probe");

    // To any other client it is an ordinary miss, answered from the folder's listing.
    let resp = send(
        &stack,
        "GET",
        &format!("{camera}/folder.jpg"),
        "rclone/v1.60",
        "",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_without_its_slash_is_answered_not_redirected() {
    let stack = start().await;
    let (pets, items) = pets(&stack);
    for agent in [EXPLORER, FINDER] {
        for method in ["GET", "HEAD"] {
            let resp = send(&stack, method, &pets, agent, "").await;
            assert_eq!(resp.status(), StatusCode::OK, "{method} {pets}");
            assert!(resp.headers().get("location").is_none());
            let length = resp.headers().get("content-length").cloned();
            let body = resp.bytes().await.unwrap();
            if method == "GET" {
                assert_eq!(length.unwrap(), body.len().to_string().as_str());
                let html = String::from_utf8(body.to_vec()).unwrap();
                for name in by_name(&items).keys() {
                    assert!(html.contains(name.as_str()), "index lists {name}");
                }
            }
        }
        let resp = send(&stack, "PROPFIND", &pets, agent, "").await;
        assert_eq!(resp.status(), StatusCode::MULTI_STATUS);
        let entries = parse_multistatus(&resp.text().await.unwrap());
        assert_eq!(entries[0].href, format!("{pets}/"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_get_carries_a_content_length() {
    let stack = start().await;
    let (pets, items) = pets(&stack);
    for (name, item) in by_name(&items) {
        let resp = send(&stack, "GET", &format!("{pets}/{name}"), EXPLORER, "").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["content-length"],
            item.bytes.len().to_string().as_str()
        );
    }
    for path in [
        "/",
        "/album/",
        "/album/no such album/x.jpg",
        "/media/all/nope.jpg",
    ] {
        let resp = send(&stack, "GET", path, EXPLORER, "").await;
        let length = resp.headers().get("content-length").cloned();
        let body = resp.bytes().await.unwrap();
        assert_eq!(
            length.unwrap_or_else(|| panic!("GET {path} has no Content-Length")),
            body.len().to_string().as_str(),
            "GET {path}"
        );
    }
}

/// Finder's quota request (webdavfs `network_statfs()`), from the capture file.
fn finder_quota_capture() -> Value {
    captures()
        .into_iter()
        .find(|c| c["body"].as_str().unwrap().contains("quota-used-bytes"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_used_is_the_size_of_every_item_known() {
    let stack = start().await;
    let quota = finder_quota_capture();
    let used = |body: String| -> u64 {
        let entries = parse_multistatus(&body);
        assert_eq!(entries.len(), 1);
        assert!(
            !entries[0].props.contains_key("quota-available-bytes"),
            "the free space of the Google account is unknown, so it is not claimed"
        );
        entries[0].props["quota-used-bytes"].parse().unwrap()
    };
    let resp = replay(&stack, &quota, "/").await;
    assert_eq!(resp.status(), StatusCode::MULTI_STATUS);
    assert_eq!(used(resp.text().await.unwrap()), 0, "no size known yet");
    stack.list("/media/all/").await;
    let resp = replay(&stack, &quota, "/").await;
    let total: u64 = stack
        .emulator()
        .library()
        .items
        .iter()
        .map(|i| i.bytes.len() as u64)
        .sum();
    assert_eq!(used(resp.text().await.unwrap()), total, "the whole library");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_users_options_stays_open_and_a_401_carries_the_dav_header() {
    let stack = start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.server.users = vec![UserConfig {
            name: "alice".into(),
            password_hash: hash_password("correct horse").unwrap(),
            read_only: true,
            root: None,
        }];
    })
    .await;
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for capture in captures() {
        let path = mapped_path(&capture, "");
        let resp = replay(&stack, &capture, &path).await;
        let method = capture["method"].as_str().unwrap().to_string();
        let what = format!("{} {method} {path}", capture["client"]);
        if method == "OPTIONS" {
            assert_eq!(resp.status(), StatusCode::OK, "{what}");
            *seen.entry("options").or_default() += 1;
        } else {
            // Finder asks for a password only when the 401 says DAV; Explorer the same way.
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
            assert!(
                resp.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Basic ")
            );
            *seen.entry("401").or_default() += 1;
        }
        assert_eq!(resp.headers()["dav"], "1", "{what}");
    }
    assert!(seen["options"] >= 4 && seen["401"] >= 8, "{seen:?}");
}
