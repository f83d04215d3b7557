//! Organising albums from the file manager (issue #20): COPY, MOVE and DELETE of files
//! between album folders, against the emulator.
//!
//! The oracle is Google's side: the emulator's albums after each request and its call
//! counters (no upload for a COPY or MOVE between albums, one batch call for a selection
//! sent together, exactly one import for a picked file), as well as what the client was
//! answered and what the next PROPFIND lists.

mod common;

use common::{Stack, cadaver, jpeg, rclone, sha256, start_custom};
use gphotos_dav::catalog::store::PickedSet;
use gphotos_dav::pick;
use gphotos_dav::server::auth::hash_password;
use gphotos_dav::server::config::UserConfig;
use gphotos_dav_emulator::{self as emulator, EmulatorOptions, MediaKind};
use reqwest::{Method, StatusCode};

/// A writable gateway; batches close once no other request is on its way.
async fn writable() -> Stack {
    start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.server.read_only = false;
        c.upload.batch_window_ms = 10;
    })
    .await
}

/// `method` of `from` with the Destination `to` (a path: made an absolute URL on this
/// server, as Finder and Explorer send it) and the `Overwrite` header if given.
async fn send(
    stack: &Stack,
    method: &str,
    from: &str,
    to: &str,
    overwrite: Option<&str>,
) -> (StatusCode, String) {
    let mut req = stack
        .http
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            stack.full_url(from),
        )
        .header("Destination", stack.full_url(to));
    if let Some(o) = overwrite {
        req = req.header("Overwrite", o);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

async fn delete(stack: &Stack, path: &str) -> (StatusCode, String) {
    let resp = stack
        .http
        .delete(stack.full_url(path))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

/// The item ids of the album titled `title`, as Google has them now (the first such album).
fn members(stack: &Stack, title: &str) -> Vec<String> {
    let lib = stack.emulator().current_library();
    lib.albums_titled(title)[0].item_ids.clone()
}

/// The names a PROPFIND of `path` lists (files only).
async fn names(stack: &Stack, path: &str) -> Vec<String> {
    stack
        .list(path)
        .await
        .iter()
        .filter(|e| !e.is_collection)
        .map(|e| e.name())
        .collect()
}

/// A file of the album `title` whose shown name is its item's filename: (name, item id).
fn plain_member(stack: &Stack, title: &str, nth: usize) -> (String, String) {
    let lib = stack.emulator().current_library();
    let album = lib.albums_titled(title)[0];
    let item = album
        .item_ids
        .iter()
        .filter_map(|id| lib.item(id))
        .filter(|i| !i.filename.is_empty() && i.filename != "IMG_0001.JPG")
        .nth(nth)
        .unwrap();
    (item.filename.clone(), item.id.clone())
}

fn count(stack: &Stack, kind: &str) -> u64 {
    stack.emulator().counters().get(kind)
}

const ADD: &str = "albums.batchAddMediaItems";
const REMOVE: &str = "albums.batchRemoveMediaItems";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_adds_to_an_album_and_delete_takes_out_without_uploading() {
    let stack = writable().await;
    let (name, id) = plain_member(&stack, "Pets", 0);
    let (_, _, original) = stack.get(&format!("/album/Pets/{name}")).await;
    stack.emulator().counters().reset();

    let (status, text) = send(
        &stack,
        "COPY",
        &format!("/album/Pets/{name}"),
        &format!("/album/Empty/{name}"),
        Some("F"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert_eq!(members(&stack, "Empty"), vec![id.clone()]);
    assert!(members(&stack, "Pets").contains(&id));
    assert_eq!(count(&stack, ADD), 1);
    assert_eq!(count(&stack, "uploads"), 0);
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 0);
    // The next PROPFIND shows it, with the same bytes.
    assert_eq!(names(&stack, "/album/Empty/").await, vec![name.clone()]);
    let (status, _, copied) = stack.get(&format!("/album/Empty/{name}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&copied), sha256(&original));

    // Already there: 204, or 412 with Overwrite: F; no call either way.
    let (from, to) = (
        format!("/album/Pets/{name}"),
        format!("/album/Empty/{name}"),
    );
    let again = |o| send(&stack, "COPY", &from, &to, o);
    assert_eq!(again(Some("F")).await.0, StatusCode::PRECONDITION_FAILED);
    assert_eq!(again(None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(count(&stack, ADD), 1);

    // From a view (any folder showing an app-created item) works the same.
    let lib = stack.emulator().current_library();
    let loose = lib
        .items
        .iter()
        .find(|i| {
            i.kind == MediaKind::Photo
                && !i.filename.is_empty()
                && i.filename != "IMG_0001.JPG"
                && lib.albums.iter().all(|a| !a.item_ids.contains(&i.id))
        })
        .unwrap()
        .clone();
    let (status, text) = send(
        &stack,
        "COPY",
        &format!("/media/all/{}", loose.filename),
        &format!("/album/Empty/{}", loose.filename),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert_eq!(members(&stack, "Empty"), vec![id.clone(), loose.id.clone()]);

    // A different item under a name the album shows: 409. Items cannot be renamed: 403.
    let lib = stack.emulator().current_library();
    let twins: Vec<&str> = lib
        .items
        .iter()
        .filter(|i| i.filename == "IMG_0001.JPG")
        .map(|i| i.id.as_str())
        .collect();
    let camera = stack.list("/album/Old Camera/").await;
    let shown = |id: &str| {
        camera
            .iter()
            .map(|e| e.name())
            .find(|n| n.contains(id))
            .unwrap()
    };
    let (status, text) = send(
        &stack,
        "COPY",
        &format!("/album/Old Camera/{}", shown(twins[0])),
        "/album/Empty/IMG_0001.JPG",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let (status, text) = send(
        &stack,
        "COPY",
        &format!("/album/Old Camera/{}", shown(twins[1])),
        "/album/Empty/IMG_0001.JPG",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");
    let (status, text) = send(
        &stack,
        "COPY",
        &format!("/album/Pets/{name}"),
        "/album/Old Camera/renamed.jpg",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("cannot rename"), "{text}");
    let adds = count(&stack, ADD);
    // Only album folders take files; a missing album is 409; another server's URL is 403
    // (not a place here, whatever its path).
    for (to, want) in [
        (format!("/upload/{name}"), StatusCode::FORBIDDEN),
        (format!("/media/all/{name}"), StatusCode::FORBIDDEN),
        (format!("/album/No such/{name}"), StatusCode::CONFLICT),
    ] {
        let (status, text) = send(&stack, "COPY", &format!("/album/Pets/{name}"), &to, None).await;
        assert_eq!(status, want, "{to}: {text}");
    }
    let resp = stack
        .http
        .request(
            Method::from_bytes(b"COPY").unwrap(),
            stack.full_url(&format!("/album/Pets/{name}")),
        )
        .header(
            "Destination",
            format!("http://elsewhere.invalid:1/other/Empty/{name}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "another host");
    let resp = stack
        .http
        .request(
            Method::from_bytes(b"COPY").unwrap(),
            stack.full_url(&format!("/album/Pets/{name}")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(count(&stack, ADD), adds);

    // DELETE in an album folder takes the item out of that album; it stays in the library.
    let (status, text) = delete(&stack, &format!("/album/Empty/{name}")).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("stays in your library"), "{text}");
    assert_eq!(count(&stack, REMOVE), 1);
    assert!(!members(&stack, "Empty").contains(&id));
    assert!(members(&stack, "Pets").contains(&id));
    assert!(!names(&stack, "/album/Empty/").await.contains(&name));
    assert!(names(&stack, "/media/all/").await.contains(&name));
    // Anywhere else, and of an album folder: 403 with the reason; a missing file: 404.
    let (status, text) = delete(&stack, &format!("/media/all/{name}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("cannot delete items"), "{text}");
    assert_eq!(
        delete(&stack, "/album/Pets/").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        delete(&stack, &format!("/album/Empty/{name}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(count(&stack, REMOVE), 1);
    assert_eq!(count(&stack, "uploads"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finder_and_explorer_moves_between_albums() {
    let stack = writable().await;
    let (first, first_id) = plain_member(&stack, "Pets", 0);
    let (second, second_id) = plain_member(&stack, "Pets", 1);
    stack.list("/album/Empty/").await;
    stack.emulator().counters().reset();

    // Finder: absolute Destination URL, Overwrite: F.
    let (status, text) = send(
        &stack,
        "MOVE",
        &format!("/album/Pets/{first}"),
        &format!("/album/Empty/{first}"),
        Some("F"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert_eq!(members(&stack, "Empty"), vec![first_id.clone()]);
    assert!(!members(&stack, "Pets").contains(&first_id));
    assert_eq!((count(&stack, ADD), count(&stack, REMOVE)), (1, 1));
    assert!(names(&stack, "/album/Empty/").await.contains(&first));
    assert!(!names(&stack, "/album/Pets/").await.contains(&first));

    // Explorer: Overwrite: T, into an album that already holds the item (it was copied
    // there before): 204, only the removal.
    let (status, _) = send(
        &stack,
        "COPY",
        &format!("/album/Pets/{second}"),
        &format!("/album/Empty/{second}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, text) = send(
        &stack,
        "MOVE",
        &format!("/album/Pets/{second}"),
        &format!("/album/Empty/{second}"),
        Some("T"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    assert!(!members(&stack, "Pets").contains(&second_id));
    assert!(members(&stack, "Empty").contains(&second_id));
    assert_eq!((count(&stack, ADD), count(&stack, REMOVE)), (2, 2));

    // Renames and moves out of a view: 403 with the reason, nothing sent to Google.
    let (third, _) = plain_member(&stack, "Pets", 0);
    for (from, to) in [
        (
            format!("/album/Pets/{third}"),
            "/album/Pets/renamed.jpg".to_string(),
        ),
        (
            format!("/album/Pets/{third}"),
            "/album/Empty/renamed.jpg".to_string(),
        ),
        (
            format!("/media/all/{third}"),
            format!("/album/Empty/{third}"),
        ),
    ] {
        let (status, text) = send(&stack, "MOVE", &from, &to, Some("F")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{from} -> {to}: {text}");
    }
    // A Destination on another host is not a place here (RFC 4918 10.3), even with a path
    // that would be one.
    let foreign = stack
        .full_url(&format!("/album/Empty/{third}"))
        .replace("127.0.0.1", "localhost");
    for method in ["MOVE", "COPY"] {
        let resp = stack
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                stack.full_url(&format!("/album/Pets/{third}")),
            )
            .header("Destination", &foreign)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{method} {foreign}");
        assert!(resp.text().await.unwrap().contains("another host"));
    }
    assert_eq!((count(&stack, ADD), count(&stack, REMOVE)), (2, 2));
    assert_eq!(count(&stack, "uploads"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_removal_leaves_the_item_in_both_albums_and_says_so() {
    let stack = writable().await;
    let (name, id) = plain_member(&stack, "Pets", 0);
    stack.list("/album/Empty/").await;
    stack
        .emulator()
        .inject(REMOVE, emulator::Fault::Status(400), 1, None);
    let (status, text) = send(
        &stack,
        "MOVE",
        &format!("/album/Pets/{name}"),
        &format!("/album/Empty/{name}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{text}");
    assert!(text.contains("in both"), "{text}");
    assert!(members(&stack, "Empty").contains(&id));
    assert!(members(&stack, "Pets").contains(&id));
    // Both listings show it (never in neither).
    assert!(names(&stack, "/album/Empty/").await.contains(&name));
    assert!(names(&stack, "/album/Pets/").await.contains(&name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_sent_together_shares_one_call_per_album() {
    // The batch closes with its 50th request, never by the clock.
    let stack = start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.server.read_only = false;
        c.upload.batch_window_ms = 600_000;
        c.upload.batch_max_items = 50;
        c.upload.batch_close_early = false;
    })
    .await;
    let all: Vec<String> = names(&stack, "/media/all/").await;
    let chosen: Vec<String> = all.into_iter().take(50).collect();
    stack.list("/album/Empty/").await;
    stack.emulator().counters().reset();
    let pairs: Vec<(String, String)> = chosen
        .iter()
        .map(|n| (format!("/media/all/{n}"), format!("/album/Empty/{n}")))
        .collect();
    let copies = pairs
        .iter()
        .map(|(from, to)| send(&stack, "COPY", from, to, None));
    for (status, text) in futures::future::join_all(copies).await {
        assert_eq!(status, StatusCode::CREATED, "{text}");
    }
    assert_eq!(count(&stack, ADD), 1);
    assert_eq!(members(&stack, "Empty").len(), 50);
    let mut listed = names(&stack, "/album/Empty/").await;
    listed.sort();
    let mut want = chosen.clone();
    want.sort();
    assert_eq!(listed, want);

    let deletes = pairs.iter().map(|(_, to)| delete(&stack, to));
    for (status, text) in futures::future::join_all(deletes).await {
        assert_eq!(status, StatusCode::OK, "{text}");
    }
    assert_eq!(count(&stack, REMOVE), 1);
    assert!(members(&stack, "Empty").is_empty());
    assert!(names(&stack, "/album/Empty/").await.is_empty());
    assert_eq!(count(&stack, "uploads"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copying_an_album_folder_makes_an_album_with_the_same_members() {
    let stack = writable().await;
    stack.emulator().counters().reset();
    let resp = stack
        .http
        .request(
            Method::from_bytes(b"COPY").unwrap(),
            stack.full_url("/album/Pets/"),
        )
        .header("Destination", stack.full_url("/album/Pets again/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(members(&stack, "Pets again"), members(&stack, "Pets"));
    assert_eq!(count(&stack, "albums.create"), 1);
    assert_eq!(count(&stack, ADD), 1);
    assert_eq!(count(&stack, "uploads"), 0);
    let mut a = names(&stack, "/album/Pets/").await;
    let mut b = names(&stack, "/album/Pets again/").await;
    a.sort();
    b.sort();
    assert_eq!(a, b);
    // Depth 0: the album without members. Onto an existing album: 412 with Overwrite: F.
    let resp = stack
        .http
        .request(
            Method::from_bytes(b"COPY").unwrap(),
            stack.full_url("/album/Pets/"),
        )
        .header("Destination", stack.full_url("/album/Pets bare/"))
        .header("Depth", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert!(members(&stack, "Pets bare").is_empty());
    let (status, _) = send(&stack, "COPY", "/album/Pets/", "/album/Empty/", Some("F")).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(count(&stack, "albums.create"), 2);
    // Album renames keep working.
    let (status, text) = send(
        &stack,
        "MOVE",
        "/album/Pets bare/",
        "/album/Bare/",
        Some("F"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert_eq!(
        stack
            .emulator()
            .current_library()
            .albums_titled("Bare")
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copying_a_picked_file_imports_it_exactly_once() {
    let stack = writable().await;
    let lib = stack.emulator().library();
    let item = lib
        .items
        .iter()
        .find(|i| {
            i.kind == MediaKind::Photo
                && !i.filename.is_empty()
                && i.filename != "IMG_0001.JPG"
                && lib.albums.iter().all(|a| !a.item_ids.contains(&i.id))
        })
        .unwrap()
        .clone();
    let google = common::google_on(&stack.emu);
    let mut printed: Vec<u8> = Vec::new();
    let mut output = pick::Output {
        out: &mut printed,
        terminal: false,
        quiet: true,
        done: None,
    };
    let store = stack.catalog.store();
    let session = pick::begin(&google, store, "sel", None, &mut output)
        .await
        .unwrap();
    stack
        .emulator()
        .pick(&session.id, std::slice::from_ref(&item.id))
        .unwrap();
    let _: PickedSet = pick::finish(&google, store, "sel", &session, &mut output)
        .await
        .unwrap();
    let picked = names(&stack, "/picked/sel/").await;
    assert_eq!(picked.len(), 1);
    let name = &picked[0];
    let (_, _, bytes) = stack.get(&format!("/picked/sel/{name}")).await;
    stack.emulator().counters().reset();

    let (status, text) = send(
        &stack,
        "COPY",
        &format!("/picked/sel/{name}"),
        &format!("/album/Empty/{name}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert_eq!(count(&stack, "uploads"), 1);
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 1);
    assert_eq!(count(&stack, ADD), 0);
    let copy = members(&stack, "Empty");
    assert_eq!(copy.len(), 1);
    assert_ne!(copy[0], item.id);
    let (status, _, served) = stack.get(&format!("/album/Empty/{name}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served.len(), bytes.len());

    // Again: already there. Into another album: the copy is added, not imported again.
    let (status, _) = send(
        &stack,
        "COPY",
        &format!("/picked/sel/{name}"),
        &format!("/album/Empty/{name}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, text) = send(
        &stack,
        "COPY",
        &format!("/picked/sel/{name}"),
        &format!("/album/Pets/{name}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert!(members(&stack, "Pets").contains(&copy[0]));
    assert_eq!(count(&stack, "uploads"), 1);
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 1);
    assert_eq!(count(&stack, ADD), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_moves_and_copies_between_album_folders_server_side() {
    let stack = writable().await;
    let (name, id) = plain_member(&stack, "Pets", 0);
    let (other, other_id) = plain_member(&stack, "Pets", 1);
    stack.emulator().counters().reset();
    let url = format!("--webdav-url={}", stack.url);
    let out = rclone(&[
        "moveto",
        &format!(":webdav:album/Pets/{name}"),
        &format!(":webdav:album/Empty/{name}"),
        &url,
        "--webdav-vendor=other",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(members(&stack, "Empty"), vec![id.clone()]);
    assert!(!members(&stack, "Pets").contains(&id));
    let out = rclone(&[
        "copyto",
        &format!(":webdav:album/Pets/{other}"),
        &format!(":webdav:album/Empty/{other}"),
        &url,
        "--webdav-vendor=other",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(members(&stack, "Empty").contains(&other_id));
    assert!(members(&stack, "Pets").contains(&other_id));
    // Server-side: no bytes went up or came down.
    assert_eq!(count(&stack, "uploads"), 0);
    assert_eq!(count(&stack, "content.get"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cadaver_copies_moves_and_deletes() {
    let stack = writable().await;
    let (first, first_id) = plain_member(&stack, "Pets", 0);
    let (second, second_id) = plain_member(&stack, "Pets", 1);
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "copy Pets/{first} Empty/{first}\nmove Pets/{second} Empty/{second}\ndelete Empty/{first}\nquit\n"
    );
    let (ok, text) = cadaver(&stack, "/album/", dir.path(), script.as_bytes()).await;
    assert!(ok, "{text}");
    assert!(!text.contains("failed"), "{text}");
    assert_eq!(members(&stack, "Empty"), vec![second_id.clone()]);
    assert!(members(&stack, "Pets").contains(&first_id));
    assert!(!members(&stack, "Pets").contains(&second_id));
    assert_eq!(count(&stack, "uploads"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_users_are_refused_and_nothing_changes() {
    let stack = start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.server.read_only = false;
        c.server.users = vec![UserConfig {
            name: "bob".into(),
            password_hash: hash_password("battery staple").unwrap(),
            read_only: true,
            root: None,
        }];
    })
    .await;
    let (name, _) = plain_member(&stack, "Pets", 0);
    let before = stack.emulator().current_library().albums.clone();
    let from = stack.full_url(&format!("/album/Pets/{name}"));
    let to = stack.full_url(&format!("/album/Empty/{name}"));
    for method in ["COPY", "MOVE", "DELETE"] {
        let resp = stack
            .http
            .request(Method::from_bytes(method.as_bytes()).unwrap(), &from)
            .basic_auth("bob", Some("battery staple"))
            .header("Destination", &to)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{method}");
    }
    let after = stack.emulator().current_library().albums.clone();
    assert_eq!(
        before.iter().map(|a| &a.item_ids).collect::<Vec<_>>(),
        after.iter().map(|a| &a.item_ids).collect::<Vec<_>>()
    );
    assert_eq!(count(&stack, ADD) + count(&stack, REMOVE), 0);
}

async fn put(stack: &Stack, path: &str, body: Vec<u8>) -> StatusCode {
    let resp = stack
        .http
        .put(stack.full_url(path))
        .body(body)
        .send()
        .await
        .unwrap();
    resp.status()
}

/// The upload records follow the album: a file taken out of its album and sent again puts the
/// same item back (no second upload: Google would make a duplicate), and a file copied or
/// moved into an album is there when the same bytes are sent to its new place (204, not 409).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_records_follow_copies_moves_and_removals() {
    let stack = writable().await;
    let photo = jpeg(24, 24, 41, 90);
    assert_eq!(
        put(&stack, "/album/Empty/kept.jpg", photo.clone()).await,
        StatusCode::CREATED
    );
    let id = members(&stack, "Empty")[0].clone();
    assert_eq!(count(&stack, "uploads"), 1);

    // Out of the album, then the same bytes again: the item comes back, nothing uploaded.
    let (status, text) = delete(&stack, "/album/Empty/kept.jpg").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(members(&stack, "Empty").is_empty());
    let adds = count(&stack, ADD);
    assert_eq!(
        put(&stack, "/album/Empty/kept.jpg", photo.clone()).await,
        StatusCode::CREATED
    );
    assert_eq!(members(&stack, "Empty"), vec![id.clone()]);
    assert_eq!(count(&stack, ADD), adds + 1);
    assert_eq!(count(&stack, "uploads"), 1, "no second upload");
    assert_eq!(count(&stack, "mediaItems.batchCreate"), 1);
    // And once more: a plain repeat.
    assert_eq!(
        put(&stack, "/album/Empty/kept.jpg", photo.clone()).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(count(&stack, ADD), adds + 1);

    // Copied into another album, the same bytes sent there are a repeat too.
    let shown = names(&stack, "/album/Empty/").await;
    assert_eq!(shown.len(), 1);
    let (status, text) = send(
        &stack,
        "COPY",
        &format!("/album/Empty/{}", shown[0]),
        &format!("/album/Pets/{}", shown[0]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert_eq!(
        put(&stack, &format!("/album/Pets/{}", shown[0]), photo.clone()).await,
        StatusCode::NO_CONTENT
    );
    // Other bytes where an item left: a new upload, not a conflict.
    let (status, _) = delete(&stack, "/album/Empty/kept.jpg").await;
    assert_eq!(status, StatusCode::OK);
    let other = jpeg(24, 24, 42, 90);
    assert_eq!(
        put(&stack, "/album/Empty/kept.jpg", other).await,
        StatusCode::CREATED
    );
    assert_eq!(count(&stack, "uploads"), 2);
    let now = members(&stack, "Empty");
    assert_eq!(now.len(), 1);
    assert_ne!(now[0], id);
}

/// Google refuses a whole batch when one id in it is invalid ("Partial success is not
/// supported"): an item deleted in the Google Photos app since the folder was listed spoils
/// the batch of everyone copying with it. The server then asks again one id at a time, so
/// only the request whose own item is gone fails; the others are answered 201.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deleted_item_fails_only_its_own_copy_in_a_shared_batch() {
    // The batch closes with its 3rd request, never by the clock.
    let stack = start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.server.read_only = false;
        c.upload.batch_window_ms = 600_000;
        c.upload.batch_max_items = 3;
        c.upload.batch_close_early = false;
    })
    .await;
    let chosen: Vec<(String, String)> = (0..3).map(|n| plain_member(&stack, "Pets", n)).collect();
    stack.list("/album/Pets/").await;
    stack.list("/album/Empty/").await;
    // Deleted in the app after the listing: the listing still names it.
    let (gone_name, gone_id) = chosen[1].clone();
    stack.emulator().delete_in_app(&gone_id);
    stack.emulator().counters().reset();

    let pairs: Vec<(String, String)> = chosen
        .iter()
        .map(|(n, _)| (format!("/album/Pets/{n}"), format!("/album/Empty/{n}")))
        .collect();
    let copies = pairs
        .iter()
        .map(|(from, to)| send(&stack, "COPY", from, to, None));
    let answers = futures::future::join_all(copies).await;
    for ((name, _), (status, text)) in chosen.iter().zip(&answers) {
        if *name == gone_name {
            assert_eq!(*status, StatusCode::FORBIDDEN, "{name}: {text}");
            assert!(text.contains("invalid media item id"), "{text}");
        } else {
            assert_eq!(*status, StatusCode::CREATED, "{name}: {text}");
        }
    }
    // One refused batch of three, then one call per id.
    assert_eq!(count(&stack, ADD), 4);
    let mut got = members(&stack, "Empty");
    got.sort();
    let mut want = vec![chosen[0].1.clone(), chosen[2].1.clone()];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(count(&stack, "uploads"), 0);
}

/// A locked album member is not taken out or moved without its lock token (RFC 4918 7):
/// 423 and nothing changes at Google; with the token in an `If` header it goes ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_members_need_their_token() {
    let stack = writable().await;
    let (name, id) = plain_member(&stack, "Pets", 0);
    let path = format!("/album/Pets/{name}");
    let lock = stack
        .http
        .request(Method::from_bytes(b"LOCK").unwrap(), stack.full_url(&path))
        .header("Timeout", "Second-600")
        .body(
            r#"<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>test</D:owner></D:lockinfo>"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(lock.status(), StatusCode::OK);
    let token = lock.headers()["Lock-Token"].to_str().unwrap().to_string();
    stack.emulator().counters().reset();

    let (status, text) = delete(&stack, &path).await;
    assert_eq!(status, StatusCode::LOCKED, "{text}");
    let (status, text) = send(&stack, "MOVE", &path, &format!("/album/Empty/{name}"), None).await;
    assert_eq!(status, StatusCode::LOCKED, "{text}");
    assert_eq!(count(&stack, ADD) + count(&stack, REMOVE), 0);
    assert!(members(&stack, "Pets").contains(&id));

    // `Lock-Token` is `<opaquelocktoken:...>`; the If header takes it in parentheses.
    let resp = stack
        .http
        .delete(stack.full_url(&path))
        .header("If", format!("({token})"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!members(&stack, "Pets").contains(&id));
    assert_eq!(count(&stack, REMOVE), 1);
}
