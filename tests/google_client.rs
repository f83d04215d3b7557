//! The Google client against the emulator: tokens, pagination, batchGet, typed errors.

#[path = "common/google.rs"]
mod google;

use std::time::Duration;

use gphotos_dav::google::{Credentials, Endpoints, Google, GoogleError, RetryPolicy};
use gphotos_dav_emulator::{self as emulator, Emulator, EmulatorOptions, RunningEmulator};

async fn setup(refresh_token: &str) -> (RunningEmulator, Google) {
    setup_with(EmulatorOptions::default(), refresh_token).await
}

async fn setup_with(opts: EmulatorOptions, refresh_token: &str) -> (RunningEmulator, Google) {
    let emu = Emulator::start(opts, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let google = google::google_with(&emu, refresh_token, RetryPolicy::immediate());
    (emu, google)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_an_expired_token_make_exactly_one_token_call() {
    let (emu, google) = setup(emulator::REFRESH_TOKEN).await;
    let counters = emu.emulator.counters();
    let id = emu.emulator.library().items[0].id.clone();
    google.library.get_media_item(&id).await.unwrap();
    google.library.get_media_item(&id).await.unwrap();
    assert_eq!(counters.get("token"), 1, "the access token is cached");

    // The emulator's clock passes the token's lifetime: Google now answers 401 to it, while
    // our cache still believes it valid. Every request sees the 401 and refreshes once.
    emu.emulator.clock().advance(Duration::from_secs(3600));
    let calls = (0..100).map(|_| google.library.get_media_item(&id));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(counters.get("token"), 2, "one refresh for 100 requests");
}

/// A library longer than one page everywhere: 200 items in one album (search pages of 100),
/// 260 items in all (list pages of 100), 100 albums (albums.list pages of 50). With repeated
/// entries, the album and the album list each take one page more.
fn paged_library() -> EmulatorOptions {
    EmulatorOptions {
        big_album: 200,
        many_albums: 91,
        ..EmulatorOptions::default()
    }
}

/// Pages a listing of `n` entries takes when each page after the first begins with the last
/// entry of the page before (the repeat takes one of the page's `size` places).
fn pages_with_repeats(n: usize, size: usize) -> u64 {
    if n <= size {
        1
    } else {
        1 + (n - size).div_ceil(size - 1) as u64
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_is_followed_to_the_end() {
    let (emu, google) = setup_with(paged_library(), emulator::REFRESH_TOKEN).await;
    let counters = emu.emulator.counters();
    let lib = emu.emulator.library();
    assert!(
        lib.albums.len() > 50 && lib.items.len() > 200,
        "more than a page"
    );

    let albums = google.library.list_albums().await.unwrap();
    let ids: Vec<&str> = albums.iter().map(|a| a.id.as_str()).collect();
    let want: Vec<&str> = lib.albums.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, want);
    assert_eq!(
        counters.get("albums.list"),
        lib.albums.len().div_ceil(50) as u64
    );

    let items = google.library.list_media_items().await.unwrap();
    let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let want: Vec<&str> = lib.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, want);
    assert_eq!(
        counters.get("mediaItems.list"),
        lib.items.len().div_ceil(100) as u64
    );

    let mut searches = 0;
    for album in &lib.albums {
        let items = google.library.album_items(&album.id).await.unwrap();
        let got: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        let want: Vec<&str> = album.item_ids.iter().map(String::as_str).collect();
        assert_eq!(got, want, "album {}", album.title);
        // An empty album still costs its one (empty) page.
        searches += album.item_ids.len().div_ceil(100).max(1) as u64;
    }
    assert_eq!(counters.get("mediaItems.search"), searches);
    assert!(
        searches > lib.albums.len() as u64,
        "one album took several pages"
    );
}

/// Google at times repeats a page's last entry at the top of the next page: each listing
/// still holds every entry exactly once, in Google's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_repeated_on_the_next_page_is_listed_once() {
    let (emu, google) = setup_with(paged_library(), emulator::REFRESH_TOKEN).await;
    let counters = emu.emulator.counters();
    let lib = emu.emulator.library();
    emu.emulator.set_repeat_last_entry(true);

    let albums = google.library.list_albums().await.unwrap();
    let ids: Vec<&str> = albums.iter().map(|a| a.id.as_str()).collect();
    let want: Vec<&str> = lib.albums.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, want);
    assert_eq!(
        counters.get("albums.list"),
        pages_with_repeats(lib.albums.len(), 50)
    );

    let items = google.library.list_media_items().await.unwrap();
    let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let want: Vec<&str> = lib.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, want);
    assert_eq!(
        counters.get("mediaItems.list"),
        pages_with_repeats(lib.items.len(), 100)
    );

    let big = &lib.albums_titled(emulator::BIG_ALBUM_TITLE)[0];
    let items = google.library.album_items(&big.id).await.unwrap();
    let got: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let want: Vec<&str> = big.item_ids.iter().map(String::as_str).collect();
    assert_eq!(got, want);
    assert_eq!(
        counters.get("mediaItems.search"),
        pages_with_repeats(big.item_ids.len(), 100)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_get_chunks_by_fifty_and_keeps_order() {
    let (emu, google) = setup(emulator::REFRESH_TOKEN).await;
    let lib = emu.emulator.library();
    let mut ids: Vec<String> = lib.items.iter().map(|i| i.id.clone()).collect();
    ids.reverse();
    ids.push("AF1QipNoSuchItem".into());
    let results = google.library.batch_get(&ids).await.unwrap();
    assert_eq!(results.len(), ids.len());
    for (id, r) in ids.iter().zip(&results) {
        match r {
            Ok(item) => assert_eq!(&item.id, id),
            Err(status) => assert_eq!(id, "AF1QipNoSuchItem", "{status:?}"),
        }
    }
    assert!(results.last().unwrap().is_err());
    assert_eq!(
        emu.emulator.counters().get("mediaItems.batchGet"),
        ids.len().div_ceil(50) as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_errors_carry_the_fix() {
    let (_emu, google) = setup(emulator::REFRESH_TOKEN_REVOKED).await;
    let err = google.library.list_albums().await.unwrap_err();
    assert!(matches!(err, GoogleError::InvalidGrant), "{err:?}");

    let (_emu, google) = setup(emulator::REFRESH_TOKEN_NO_SCOPE).await;
    let err = google.library.list_albums().await.unwrap_err();
    assert!(matches!(err, GoogleError::InsufficientScopes), "{err:?}");
    assert!(
        err.to_string()
            .contains("photoslibrary.readonly.appcreateddata")
    );

    let (_emu, google) = setup(emulator::REFRESH_TOKEN_API_DISABLED).await;
    let err = google.library.list_albums().await.unwrap_err();
    match &err {
        GoogleError::ApiDisabled { enable_url } => {
            assert!(enable_url.ends_with("project=123456789012"))
        }
        other => panic!("{other:?}"),
    }

    let (_emu, google) = setup(emulator::REFRESH_TOKEN).await;
    let err = google
        .library
        .get_media_item("AF1QipNoSuchItem")
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            GoogleError::Api { code: 400, .. } | GoogleError::NotFound(_)
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_client_secret_is_named() {
    let emu = Emulator::start(EmulatorOptions::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let google = Google::new(
        &Credentials {
            client_id: emulator::CLIENT_ID.into(),
            client_secret: "wrong".into(),
            refresh_token: emulator::REFRESH_TOKEN.into(),
            persist_to: None,
        },
        &Endpoints {
            api_base: emu.api_base(),
            token_url: emu.token_url(),
            picker_base: emu.picker_base(),
        },
        RetryPolicy::immediate(),
    )
    .unwrap();
    let err = google.library.list_albums().await.unwrap_err();
    assert!(matches!(err, GoogleError::InvalidClient(_)), "{err:?}");
    assert!(!err.to_string().contains("wrong"), "no secret in errors");
}

/// An expired access token gets the same `401 {"code":16}` from the emulator's uploads
/// endpoint as a token without `photoslibrary.appendonly` (whether Google's does is not
/// documented): the upload refreshes the token once, sends again and gets its upload token.
/// A token really lacking the scope is refused again after the refresh: a scope error, after
/// exactly two attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uploads_endpoint_refreshes_once_and_tells_a_missing_scope_apart() {
    let (emu, google) = setup(emulator::REFRESH_TOKEN).await;
    let counters = emu.emulator.counters();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bytes");
    std::fs::write(&file, b"\xFF\xD8\xFF\xE0 not much of a jpeg").unwrap();
    let size = std::fs::metadata(&file).unwrap().len();
    google
        .upload
        .upload_file(&file, size, "image/jpeg")
        .await
        .unwrap();
    assert_eq!((counters.get("uploads"), counters.get("token")), (1, 1));
    // The emulator's clock passes the token's lifetime; our cache still believes it valid.
    emu.emulator.clock().advance(Duration::from_secs(3600));
    let token = google
        .upload
        .upload_file(&file, size, "image/jpeg")
        .await
        .unwrap();
    assert!(!token.is_empty());
    assert_eq!(
        (counters.get("uploads"), counters.get("token")),
        (3, 2),
        "refused once, refreshed once, sent again"
    );

    let (emu, google) = setup(emulator::REFRESH_TOKEN_NO_APPEND).await;
    let err = google
        .upload
        .upload_file(&file, size, "image/jpeg")
        .await
        .unwrap_err();
    assert!(matches!(err, GoogleError::InsufficientScopes), "{err:?}");
    let counters = emu.emulator.counters();
    assert_eq!(counters.get("uploads"), 2);
    assert_eq!(counters.get("token"), 2);
}

/// What the redirecting servers received: (port, path, Authorization header).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(u16, String, Option<String>)>>>;
/// (port, path) → where that path redirects to.
type Routes = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<(u16, String), String>>>;

/// A tiny content host on 127.0.0.1:0: a path in `routes` answers 302 to its target, any
/// other path answers `hello` (5 bytes). Every request is recorded in `seen`.
async fn redirecting_server(seen: Seen, routes: Routes) -> u16 {
    use http_body_util::Full;
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            let (seen, routes) = (seen.clone(), routes.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let path = req.uri().path().to_string();
                    let auth = req
                        .headers()
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_string());
                    seen.lock().unwrap().push((port, path.clone(), auth));
                    let target = routes.lock().unwrap().get(&(port, path)).cloned();
                    let resp = match target {
                        Some(to) => hyper::Response::builder()
                            .status(302)
                            .header("location", to)
                            .body(Full::new(bytes::Bytes::new())),
                        None => hyper::Response::builder()
                            .header("content-length", "5")
                            .body(Full::new(bytes::Bytes::from_static(b"hello"))),
                    };
                    async move { resp }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(conn), service)
                    .await;
            });
        }
    });
    port
}

/// Picker item URLs need `Authorization: Bearer`; a redirect to any other origin (another
/// port on the same address is one; another host name is one) must not carry it, on the
/// download client (hyper-util) and on the size probes (reqwest) alike, and a hop back to
/// the first origin does not bring it back. Within one origin it is kept (the URLs need it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_token_never_follows_a_redirect_to_another_origin() {
    use futures::StreamExt;
    let (_emu, google) = setup(emulator::REFRESH_TOKEN).await;
    let (seen, routes) = (Seen::default(), Routes::default());
    let a = redirecting_server(seen.clone(), routes.clone()).await;
    let b = redirecting_server(seen.clone(), routes.clone()).await;
    let at = |port: u16, path: &str| format!("http://127.0.0.1:{port}{path}");
    {
        let mut r = routes.lock().unwrap();
        r.insert((a, "/same".into()), at(a, "/final-same"));
        r.insert((a, "/port".into()), at(b, "/final-port"));
        r.insert(
            (a, "/host".into()),
            format!("http://localhost:{a}/final-host"),
        );
        r.insert((a, "/away-and-back".into()), at(b, "/back"));
        r.insert((b, "/back".into()), at(a, "/final-back"));
    }
    // The access token the content client attaches: the token source's.
    let token = google.library.tokens().access_token().await.unwrap();
    let bearer = Some(format!("Bearer {}", token.secret()));
    /// A request expected: port, path, whether it carries the token.
    type Hop<'a> = (u16, &'a str, bool);
    let cases: Vec<(&str, Vec<Hop>)> = vec![
        ("/same", vec![(a, "/same", true), (a, "/final-same", true)]),
        ("/port", vec![(a, "/port", true), (b, "/final-port", false)]),
        ("/host", vec![(a, "/host", true), (a, "/final-host", false)]),
        (
            "/away-and-back",
            vec![
                (a, "/away-and-back", true),
                (b, "/back", false),
                (a, "/final-back", false),
            ],
        ),
    ];
    for (start, expected) in cases {
        let expected: Vec<(u16, String, Option<String>)> = expected
            .into_iter()
            .map(|(port, path, token)| (port, path.to_string(), bearer.clone().filter(|_| token)))
            .collect();

        seen.lock().unwrap().clear();
        let mut download = google
            .content
            .download_bearer(&at(a, start), 0)
            .await
            .unwrap();
        let mut body = Vec::new();
        while let Some(chunk) = download.body.next().await {
            body.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(body, b"hello", "download from {start}");
        assert_eq!(*seen.lock().unwrap(), expected, "download from {start}");

        seen.lock().unwrap().clear();
        let size = google
            .content
            .probe_size_bearer(&at(a, start))
            .await
            .unwrap();
        assert_eq!(size, 5, "probe of {start}");
        assert_eq!(*seen.lock().unwrap(), expected, "probe of {start}");
    }
}

/// A picked item's bytes need the access token: when Google refuses a token our cache still
/// believes valid (401), the content client refreshes it once and sends again, for the
/// download and the size probe alike: the same bytes, one token call, nothing for the caller
/// to handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_on_picked_bytes_is_refreshed_once() {
    use futures::StreamExt;
    let opts = EmulatorOptions {
        // Shorter than the picked URL's 60 minutes, so the URL outlives the token.
        access_token_ttl: Duration::from_secs(600),
        ..EmulatorOptions::default()
    };
    let (emu, google) = setup_with(opts, emulator::REFRESH_TOKEN).await;
    let counters = emu.emulator.counters();
    let photo = emu
        .emulator
        .library()
        .items
        .iter()
        .find(|i| i.mime_type.starts_with("image/"))
        .unwrap()
        .id
        .clone();
    let session = google.picker.create_session(Some(5)).await.unwrap();
    emu.emulator
        .pick(&session.id, std::slice::from_ref(&photo))
        .unwrap();
    let url = google.picker.list_items(&session.id).await.unwrap()[0].download_url();
    let read = |url: String| {
        let google = google.clone();
        async move {
            let mut download = google.content.download_bearer(&url, 0).await.unwrap();
            let mut body = Vec::new();
            while let Some(chunk) = download.body.next().await {
                body.extend_from_slice(&chunk.unwrap());
            }
            body
        }
    };
    let first = read(url.clone()).await;
    assert!(!first.is_empty());
    assert_eq!(counters.get("token"), 1);

    emu.emulator.clock().advance(Duration::from_secs(700));
    let again = read(url.clone()).await;
    assert_eq!(again, first, "the same bytes after the refresh");
    assert_eq!(counters.get("token"), 2, "one refresh");
    assert_eq!(
        google.content.probe_size_bearer(&url).await.unwrap(),
        first.len() as u64
    );
    assert_eq!(counters.get("token"), 2, "the fresh token serves the probe");
}
