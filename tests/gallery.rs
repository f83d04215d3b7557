//! The gallery over plain HTTP (issue #17): who gets the page and who gets what WebDAV
//! answers, the headers of the page, thumbnails that are Google's size variants (counted by
//! the emulator), and the picking API's statuses. The browser itself drives the page in
//! tests/browser.rs.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Stack, sha256, start_custom};
use gphotos_dav_emulator::{self as emulator, EmulatorOptions, MediaKind};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

fn options() -> EmulatorOptions {
    EmulatorOptions {
        // The API's task follows the session at this pace (Google asks for 5 s).
        picker_poll_interval: Duration::from_millis(20),
        ..EmulatorOptions::default()
    }
}

/// A writable stack with a user who writes and one who only reads.
async fn stack(read_only_server: bool) -> Stack {
    start_custom(options(), emulator::REFRESH_TOKEN, |c| {
        c.server.read_only = read_only_server;
        c.server.users = vec![
            common::user("alice", "alice pw", false),
            common::user("bob", "bob pw", true),
        ];
    })
    .await
}

fn origin(stack: &Stack) -> String {
    stack.url.trim_end_matches('/').to_string()
}

async fn get_as(
    stack: &Stack,
    user: &str,
    path: &str,
    accept: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    // `path` as the page writes it: already escaped, with its query.
    let mut req = stack
        .http
        .get(format!("{}{path}", origin(stack)))
        .basic_auth(user, Some(format!("{user} pw")));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

/// What Chrome sends when it navigates.
const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

/// A folder's entries (PROPFIND Depth 1, as alice).
async fn list_as(stack: &Stack, path: &str) -> Vec<common::DavEntry> {
    let resp = stack
        .http
        .request(
            Method::from_bytes(b"PROPFIND").unwrap(),
            stack.full_url(path),
        )
        .basic_auth("alice", Some("alice pw"))
        .header("depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::MULTI_STATUS, "{path}");
    let mut entries = common::parse_multistatus(&resp.text().await.unwrap());
    entries.remove(0);
    entries
}

/// The decoded `href` of every tile of a page.
fn tiles(html: &str) -> Vec<String> {
    html.split(r#"<a class="tile" href=""#)
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(|s| common::decode(&s.replace("&amp;", "&")))
        .collect()
}

/// The `src` of every thumbnail on a page.
fn thumbnails(html: &str) -> Vec<String> {
    html.split("src=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .filter(|s| s.contains("/_/thumb/"))
        .map(|s| s.replace("&amp;", "&"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_gets_the_page_and_every_other_client_what_webdav_answers() {
    let stack = stack(false).await;
    let pets = "/album/Pets/";
    let (status, h, body) = get_as(&stack, "alice", pets, Some(BROWSER_ACCEPT)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["vary"], "Accept");
    assert_eq!(
        h["content-security-policy"],
        gphotos_dav::server::web::security::CSP
    );
    let html = String::from_utf8(body).unwrap();
    assert!(
        html.contains(r#"<a href="/album/Pets/">Pets</a>"#),
        "{html}"
    );
    assert!(html.contains(r#"<link rel="stylesheet" href="/_/assets/gallery.css">"#));
    // One tile per item of the album, each a link to the file's own path.
    let lib = stack.emulator().library();
    let album = lib.albums.iter().find(|a| a.title == "Pets").unwrap();
    assert_eq!(thumbnails(&html).len(), album.item_ids.len(), "{html}");
    let listed = list_as(&stack, pets).await;
    let want: BTreeSet<String> = listed
        .iter()
        .map(|e| format!("{pets}{}", e.name()))
        .collect();
    assert_eq!(tiles(&html).into_iter().collect::<BTreeSet<_>>(), want);

    // Without its slash: the same page.
    let (status, h, again) = get_as(&stack, "alice", "/album/Pets", Some(BROWSER_ACCEPT)).await;
    assert_eq!(
        (status, &h["vary"]),
        (StatusCode::OK, &"Accept".parse().unwrap())
    );
    assert_eq!(String::from_utf8(again).unwrap(), html);

    // Finder (`*/*`) and a client that says nothing get dav-server's answer, no Vary.
    let (s1, h1, b1) = get_as(&stack, "alice", pets, Some("*/*")).await;
    let (s2, h2, b2) = get_as(&stack, "alice", pets, None).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(b1, b2);
    assert_eq!(h1.get("content-type"), h2.get("content-type"));
    assert!(h1.get("vary").is_none() && h1.get("content-security-policy").is_none());
    assert!(!String::from_utf8_lossy(&b1).contains("/_/thumb/"));
    // `text/html;q=0` names it only to refuse it.
    let (_, h, b) = get_as(&stack, "alice", pets, Some("text/html;q=0, */*")).await;
    assert!(h.get("vary").is_none());
    assert_eq!(b, b1);

    // A file asked for by a browser is its bytes.
    let file = &listed[0];
    let (status, _, bytes) = get_as(
        &stack,
        "alice",
        &common::encode_path(&format!("{pets}{}", file.name())),
        Some(BROWSER_ACCEPT),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes.len() as u64, file.size());

    // The same authentication as WebDAV: the page, the assets and the thumbnails.
    for path in [pets, "/_/assets/gallery.js", "/_/api/picks"] {
        let resp = stack
            .http
            .get(stack.full_url(path))
            .header("accept", BROWSER_ACCEPT)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let (status, h, js) = get_as(&stack, "bob", "/_/assets/gallery.js", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h["content-type"], "text/javascript; charset=utf-8");
    assert!(String::from_utf8(js).unwrap().contains("ArrowLeft"));
    let (status, _, _) = get_as(&stack, "alice", "/_/assets/nothing.js", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Upload controls for who may write, in folders that take files.
    let has_upload = |html: &str| html.contains(r#"id="upload""#);
    assert!(has_upload(&html));
    let (_, _, bob_page) = get_as(&stack, "bob", pets, Some(BROWSER_ACCEPT)).await;
    assert!(!has_upload(&String::from_utf8(bob_page).unwrap()));
    let (_, _, all) = get_as(&stack, "alice", "/media/all/", Some(BROWSER_ACCEPT)).await;
    assert!(!has_upload(&String::from_utf8(all).unwrap()));
    let (_, _, albums) = get_as(&stack, "alice", "/album/", Some(BROWSER_ACCEPT)).await;
    assert!(
        String::from_utf8(albums)
            .unwrap()
            .contains(r#"id="new-album""#)
    );
}

/// The grid's thumbnails are Google's size variants, never originals: the emulator counts the
/// bytes it served by kind. A second look is served from the content cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thumbnails_are_size_variants_a_fraction_of_the_originals() {
    let stack = stack(false).await;
    let counters = stack.emulator().counters();
    let (_, _, page) = get_as(&stack, "alice", "/media/all/", Some(BROWSER_ACCEPT)).await;
    let thumbs = thumbnails(&String::from_utf8(page).unwrap());
    let lib = stack.emulator().library();
    assert_eq!(thumbs.len(), lib.items.len());
    let originals: u64 = lib.items.iter().map(|i| i.bytes.len() as u64).sum();
    let (gets, original_before) = (
        counters.get("content.get"),
        counters.bytes("content.original"),
    );
    let mut served = 0u64;
    let mut distinct = BTreeSet::new();
    for src in &thumbs {
        assert!(src.ends_with("?s=256"), "{src}");
        let (status, h, body) = get_as(&stack, "alice", src, None).await;
        assert_eq!(status, StatusCode::OK, "{src}");
        assert_eq!(h["content-type"], "image/jpeg", "{src}");
        assert_eq!(h["content-length"], body.len().to_string());
        let img = image::load_from_memory(&body).unwrap();
        assert!(img.width() <= 256 && img.height() <= 256, "{src}");
        served += body.len() as u64;
        distinct.insert(sha256(&body));
    }
    let sized = counters.bytes("content.sized");
    let small = counters.bytes("content.original") - original_before;
    // One request per item; what came is what was served.
    assert_eq!(counters.get("content.get") - gets, thumbs.len() as u64);
    assert_eq!(sized + small, served);
    // Only photos no bigger than the thumbnail come whole ("may be the photo itself").
    let tiny: u64 = lib
        .items
        .iter()
        .filter(|i| i.kind == MediaKind::Photo && i.width <= 256 && i.height <= 256)
        .map(|i| i.bytes.len() as u64)
        .sum();
    assert_eq!(small, tiny);
    println!(
        "{} thumbnails: {served} bytes from Google ({sized} of size variants), originals \
         {originals} bytes: {:.1}%",
        thumbs.len(),
        served as f64 * 100.0 / originals as f64
    );
    assert!(served * 4 < originals, "{served} of {originals}");
    assert!(distinct.len() > thumbs.len() / 2);

    // Again: from the content cache, no request to Google.
    let before = counters.get("content.get");
    for src in thumbs.iter().take(10) {
        let (status, _, _) = get_as(&stack, "alice", src, None).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(counters.get("content.get"), before);

    // The viewer's screen size: fit in the box, not cropped.
    let (status, _, body) = get_as(
        &stack,
        "alice",
        &thumbs[0].replace("?s=256", "?w=300&h=300"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let img = image::load_from_memory(&body).unwrap();
    assert!(img.width() <= 640 && img.height() <= 640);
    // Bad sizes and paths.
    for (src, want) in [
        (thumbs[0].replace("?s=256", ""), StatusCode::BAD_REQUEST),
        (
            thumbs[0].replace("?s=256", "?s=abc"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/_/thumb/media/all/nothing.jpg?s=256".to_string(),
            StatusCode::NOT_FOUND,
        ),
        (
            "/_/thumb/media/all/?s=256".to_string(),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (status, _, _) = get_as(&stack, "alice", &src, None).await;
        assert_eq!(status, want, "{src}");
    }
}

async fn api(
    stack: &Stack,
    user: &str,
    method: Method,
    path: &str,
    origin: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = stack
        .http
        .request(method, stack.full_url(&format!("/_/api/picks{path}")))
        .basic_auth(user, Some(format!("{user} pw")));
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Waits until `GET picks/<name>` satisfies `done` (`null`: the set is gone, 404).
async fn wait_for(stack: &Stack, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let (status, v) =
                api(stack, "alice", Method::GET, &format!("/{name}"), None, None).await;
            let v = match status {
                StatusCode::OK => v,
                StatusCode::NOT_FOUND => Value::Null,
                other => panic!("{other}: {v}"),
            };
            if done(&v) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the set reached the state in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_picking_api_answers_the_statuses_of_the_issue() {
    let stack = stack(false).await;
    let ours = origin(&stack);
    let ours = Some(ours.as_str());
    let post = Method::POST;

    // Another site, or no origin at all: 403 before anything happens.
    for o in [None, Some("http://evil.example"), Some("https://127.0.0.1")] {
        let (status, _) = api(
            &stack,
            "alice",
            post.clone(),
            "",
            o,
            Some(json!({"name": "A"})),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{o:?}");
    }
    assert_eq!(stack.emulator().counters().get("picker.sessions.create"), 0);
    // Read-only users: 403 for POST and DELETE, lists for GET.
    let (status, _) = api(
        &stack,
        "bob",
        post.clone(),
        "",
        ours,
        Some(json!({"name": "A"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api(&stack, "bob", Method::DELETE, "/A", ours, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, list) = api(&stack, "bob", Method::GET, "", None, None).await;
    assert_eq!((status, list), (StatusCode::OK, json!([])));

    // Bad names.
    for bad in [
        json!({"name": ""}),
        json!({"name": "a/b"}),
        json!({"nom": "x"}),
    ] {
        let (status, v) = api(&stack, "alice", post.clone(), "", ours, Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} {v}");
    }
    // A set: 201 with where to pick and until when.
    let (status, created) = api(
        &stack,
        "alice",
        post.clone(),
        "",
        ours,
        Some(json!({"name": "Summer"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "Summer");
    let picker = created["pickerUri"].as_str().unwrap().to_string();
    assert!(picker.ends_with("/autoclose"), "{picker}");
    assert!(
        created["expireTime"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .is_ok()
    );
    let (status, _) = api(
        &stack,
        "alice",
        post.clone(),
        "",
        ours,
        Some(json!({"name": "Summer"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, one) = api(&stack, "alice", Method::GET, "/Summer", None, None).await;
    assert_eq!((status, &one["state"]), (StatusCode::OK, &json!("waiting")));
    let (status, _) = api(&stack, "alice", Method::GET, "/Winter", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, h, svg) = get_as(&stack, "alice", "/_/api/picks/Summer/qr.svg", None).await;
    assert_eq!(
        (status, &h["content-type"]),
        (StatusCode::OK, &"image/svg+xml".parse().unwrap())
    );
    assert!(String::from_utf8(svg).unwrap().starts_with("<?xml"));

    // The user picks on Google's page (the emulator's stand-in); the set becomes ready.
    let lib = stack.emulator().library();
    let photos: Vec<&str> = lib
        .items
        .iter()
        .filter(|i| i.kind == MediaKind::Photo)
        .take(3)
        .map(|i| i.id.as_str())
        .collect();
    let page = reqwest::get(format!("{picker}?ids={}", photos.join(",")))
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let ready = wait_for(&stack, "Summer", |v| v["state"] == "ready").await;
    assert_eq!(ready["items"], 3);
    assert_eq!(ready["path"], "/picked/Summer/");
    assert_eq!(list_as(&stack, "/picked/Summer/").await.len(), 3);
    let (_, all) = api(&stack, "bob", Method::GET, "", None, None).await;
    assert_eq!(all.as_array().unwrap().len(), 1);

    // Picked thumbnails come with the bearer token, as their bytes.
    let counters = stack.emulator().counters();
    let (_, _, page) = get_as(&stack, "alice", "/picked/Summer/", Some(BROWSER_ACCEPT)).await;
    let thumbs = thumbnails(&String::from_utf8(page).unwrap());
    assert_eq!(thumbs.len(), 3);
    for src in &thumbs {
        let (status, h, _) = get_as(&stack, "alice", src, None).await;
        assert_eq!(
            (status, &h["content-type"]),
            (StatusCode::OK, &"image/jpeg".parse().unwrap())
        );
    }
    assert!(counters.get("picker.content.get") >= 3);
    assert_eq!(counters.bytes("content.original"), 0);

    // Import into an album: 202, then progress until done.
    let (status, v) = api(
        &stack,
        "alice",
        post.clone(),
        "/Summer/import",
        None,
        Some(json!({"album": "From the page"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let (status, v) = api(
        &stack,
        "alice",
        post.clone(),
        "/Summer/import",
        ours,
        Some(json!({"album": "From the page"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let done = wait_for(&stack, "Summer", |v| {
        v.is_null() || (v["import"]["state"] != "running" && v["import"].is_object())
    })
    .await;
    // A complete import ends the set (as `pick --import-to-album`), so the set is gone now,
    // or shown with its import done when the GET came between the two.
    if done["state"] == "ready" {
        assert_eq!(done["import"]["state"], "done", "{done}");
        assert_eq!(done["import"]["imported"], 3, "{done}");
    }
    let album = tokio::time::timeout(DEADLINE, async {
        loop {
            let (status, _, _) = get_as(&stack, "alice", "/album/From%20the%20page/", None).await;
            if status == StatusCode::OK {
                return list_as(&stack, "/album/From the page/").await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(album.len(), 3);
    let (status, _) = api(&stack, "alice", Method::GET, "/Summer", None, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a complete import ends the set"
    );

    // Delete: a waiting session is ended at Google; unknown is 404.
    let (status, _) = api(
        &stack,
        "alice",
        post.clone(),
        "",
        ours,
        Some(json!({"name": "Later"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let deletes = counters.get("picker.sessions.delete");
    let (status, _) = api(&stack, "alice", Method::DELETE, "/Later", ours, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(counters.get("picker.sessions.delete"), deletes + 1);
    let (status, _) = api(&stack, "alice", Method::DELETE, "/Later", ours, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api(&stack, "alice", Method::GET, "/Later", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A read-only server still picks (picking changes nothing in the library) but imports
/// nothing (403), and shows no upload control.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_server_picks_but_does_not_import() {
    let stack = stack(true).await;
    let ours = origin(&stack);
    let (status, created) = api(
        &stack,
        "alice",
        Method::POST,
        "",
        Some(&ours),
        Some(json!({"name": "Ro"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let picker = created["pickerUri"].as_str().unwrap();
    let id = &stack.emulator().library().items[0].id;
    reqwest::get(format!("{picker}?ids={id}")).await.unwrap();
    wait_for(&stack, "Ro", |v| v["state"] == "ready").await;
    let (status, _) = api(
        &stack,
        "alice",
        Method::POST,
        "/Ro/import",
        Some(&ours),
        Some(json!({"album": "X"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, _, page) = get_as(&stack, "alice", "/picked/", Some(BROWSER_ACCEPT)).await;
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains(r#"id="pick-form""#));
    assert!(page.contains(r#"data-import="0""#));
    assert!(!page.contains(r#"id="upload""#));
    let (status, _) = api(&stack, "alice", Method::DELETE, "/Ro", Some(&ours), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}
