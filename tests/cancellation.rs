//! Requests dropped mid-flight. Clients hang up all the time, which drops the request's future
//! at whatever await point it had reached; shared state the request was part of (a coalesced
//! listing load, a shared size probe, the access-token refresh) must not stay stuck.
//!
//! The gateway reaches the emulator's API and token endpoint through a small proxy that can
//! hold one chosen request until the test releases it, so a request is dropped exactly while
//! Google's answer is outstanding. Nothing waits on the wall clock: every wait is for an event,
//! under a deadline.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gphotos_dav::catalog::Catalog;
use gphotos_dav::google::Google;
use gphotos_dav::pick;
use gphotos_dav_emulator::{
    self as emulator, Emulator, EmulatorOptions, MediaKind, RunningEmulator,
};
use http_body_util::{BodyExt, Full};
use tokio::sync::{Notify, oneshot};

const DEADLINE: Duration = Duration::from_secs(30);

/// A request to hold: the first whose path contains `path`; `arrived` fires when it comes,
/// and it goes on to the emulator when `release` is notified.
struct Hold {
    path: String,
    arrived: Option<oneshot::Sender<()>>,
    release: Arc<Notify>,
}

/// A forwarding proxy in front of the emulator's API and token endpoint.
struct Proxy {
    base: String,
    hold: Arc<Mutex<Option<Hold>>>,
}

impl Proxy {
    async fn start(emu: &RunningEmulator) -> Proxy {
        use hyper::service::service_fn;
        let target = format!("http://{}", emu.addr);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hold: Arc<Mutex<Option<Hold>>> = Arc::default();
        let client = reqwest::Client::new();
        let holds = hold.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (target, holds, client) = (target.clone(), holds.clone(), client.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (target, holds, client) =
                            (target.clone(), holds.clone(), client.clone());
                        async move {
                            let held = {
                                let mut slot = holds.lock().unwrap();
                                match slot.as_ref() {
                                    Some(h) if req.uri().path().contains(&h.path) => slot.take(),
                                    _ => None,
                                }
                            };
                            if let Some(mut h) = held {
                                let released = h.release.notified();
                                let _ = h.arrived.take().unwrap().send(());
                                released.await;
                            }
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let mut out = client.request(
                                parts.method,
                                format!("{target}{}", parts.uri.path_and_query().unwrap()),
                            );
                            for (name, value) in &parts.headers {
                                if name != "host" {
                                    out = out.header(name, value);
                                }
                            }
                            let answer = out.body(body).send().await.unwrap();
                            let mut resp = hyper::Response::builder().status(answer.status());
                            for (name, value) in answer.headers() {
                                resp = resp.header(name, value);
                            }
                            let body = answer.bytes().await.unwrap();
                            Ok::<_, std::convert::Infallible>(resp.body(Full::new(body)).unwrap())
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(conn), service)
                        .await;
                });
            }
        });
        Proxy { base, hold }
    }

    /// Holds the next request whose path contains `path`; returns (arrived, release).
    fn hold(&self, path: &str) -> (oneshot::Receiver<()>, Arc<Notify>) {
        let (tx, rx) = oneshot::channel();
        let release = Arc::new(Notify::new());
        *self.hold.lock().unwrap() = Some(Hold {
            path: path.into(),
            arrived: Some(tx),
            release: release.clone(),
        });
        (rx, release)
    }
}

/// A gateway whose API and token calls go through `proxy`.
async fn gateway(emu: &RunningEmulator, proxy: &Proxy) -> common::Gateway {
    let direct = format!("http://{}", emu.addr);
    let via = |url: String| url.replace(&direct, &proxy.base);
    common::try_gateway(emu, emulator::REFRESH_TOKEN, |c| {
        c.google.api_base = via(emu.api_base());
        c.google.token_url = via(emu.token_url());
        c.google.picker_base = via(emu.picker_base());
    })
    .await
    .unwrap()
}

fn google(emu: &RunningEmulator) -> Google {
    common::google_on(emu)
}

/// Runs `list` of `path` in a task, waits until the held request reached the proxy, and
/// drops the task there (the client hung up).
async fn drop_mid_flight(catalog: &Catalog, path: &[&str], arrived: oneshot::Receiver<()>) {
    let segments: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    let catalog = catalog.clone();
    let task = tokio::spawn(async move { catalog.list(&segments).await });
    tokio::time::timeout(DEADLINE, arrived)
        .await
        .expect("the held request arrives")
        .unwrap();
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
}

async fn names(catalog: &Catalog, path: &[&str]) -> Vec<String> {
    let segments: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    let entries = tokio::time::timeout(DEADLINE, catalog.list(&segments))
        .await
        .unwrap_or_else(|_| panic!("listing {path:?} is stuck"))
        .unwrap();
    let mut names: Vec<String> = entries.iter().map(|e| e.name().to_string()).collect();
    names.sort();
    names
}

/// A picked folder's sizes are probed with the access token. The first probe refreshes the
/// token, holding the token source's lock while Google answers; the request is dropped right
/// then. The probe, shared with every other request needing that size, used to be driven
/// only by its waiters: abandoned, it kept the token lock forever and every later Google
/// call of the server waited on it. The probe must finish on its own, and the server go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_probe_dropped_during_the_token_refresh_strands_nothing() {
    let emu = Emulator::start(EmulatorOptions::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let proxy = Proxy::start(&emu).await;
    let gw = gateway(&emu, &proxy).await;

    // A picked set of three photos, stored as `gphotos-dav pick` stores it.
    let direct = google(&emu);
    let chosen: Vec<String> = emu
        .emulator
        .library()
        .items
        .iter()
        .filter(|i| i.kind == MediaKind::Photo)
        .take(3)
        .map(|i| i.id.clone())
        .collect();
    let mut printed = Vec::new();
    let mut out = pick::Output {
        out: &mut printed,
        terminal: false,
        quiet: true,
        done: None,
    };
    let store = gw.catalog.store();
    let session = pick::begin(&direct, store, "Picks", None, &mut out)
        .await
        .unwrap();
    emu.emulator.pick(&session.id, &chosen).unwrap();
    let set = pick::finish(&direct, store, "Picks", &session, &mut out)
        .await
        .unwrap();
    assert_eq!(
        emu.emulator.counters().get("token"),
        1,
        "the pick's own token"
    );

    let (arrived, release) = proxy.hold("/token");
    drop_mid_flight(&gw.catalog, &["picked", "Picks"], arrived).await;
    release.notify_one();

    // Every other Google call needs the token: the album list must come.
    let albums = names(&gw.catalog, &["album"]).await;
    let mut expected = common::album_names(emu.emulator.library());
    expected.sort();
    assert_eq!(albums, expected);
    assert_eq!(
        emu.emulator.counters().get("token"),
        2,
        "one refresh, finished"
    );

    // The picked folder lists, with the sizes Google serves for each item.
    let listed = tokio::time::timeout(
        DEADLINE,
        gw.catalog.list(&["picked".into(), "Picks".into()]),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(listed.len(), 3);
    let items = gphotos_dav::catalog::picked::decode_items(&set.items_json).unwrap();
    for entry in listed {
        let gphotos_dav::catalog::Entry::File(file) = entry else {
            panic!("a folder in a picked set");
        };
        let item = items
            .iter()
            .find(|s| file.id.ends_with(&s.item.id))
            .unwrap();
        let size = direct
            .content
            .probe_size_bearer(&item.item.download_url())
            .await
            .unwrap();
        assert_eq!(file.size, size, "{}", file.name);
    }
}

/// A folder's load is coalesced (one Google call for everyone asking meanwhile); the request
/// that started it is dropped while Google's answer is outstanding. The folder must still
/// load, and once stale still revalidate in the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_dropped_mid_load_still_loads_and_revalidates() {
    let emu = Emulator::start(EmulatorOptions::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let proxy = Proxy::start(&emu).await;
    let gw = gateway(&emu, &proxy).await;
    let lib = emu.emulator.library();
    let album = lib.albums.iter().find(|a| a.item_ids.len() >= 2).unwrap();
    let folder =
        common::album_names(lib)[lib.albums.iter().position(|a| a.id == album.id).unwrap()].clone();
    let mut expected = common::file_names(&common::album_items(lib, &album.id));
    expected.sort();
    names(&gw.catalog, &["album"]).await;
    let searches = || emu.emulator.counters().get("mediaItems.search");
    assert_eq!(searches(), 0);

    let (arrived, release) = proxy.hold("mediaItems:search");
    drop_mid_flight(&gw.catalog, &["album", &folder], arrived).await;
    release.notify_one();
    assert_eq!(names(&gw.catalog, &["album", &folder]).await, expected);
    let loaded = searches();
    assert!(loaded >= 1);

    // Stale: answered from the cache at once, fetched again in the background.
    gw.catalog.clock().advance(Duration::from_secs(3600));
    assert_eq!(names(&gw.catalog, &["album", &folder]).await, expected);
    tokio::time::timeout(DEADLINE, async {
        while searches() == loaded {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the stale listing is revalidated");
}
