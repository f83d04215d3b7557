//! A family server (issue #19): two emulators as two Google accounts, served as `/alice` and
//! `/bob` of one server, with users rooted in their library.

mod common;

use std::time::Duration;

use base64::Engine;
use common::{album_items, album_names, by_name, encode_path, parse_multistatus, sha256};
use gphotos_dav::google::RetryPolicy;
use gphotos_dav::google::quota::Bucket;
use gphotos_dav::server::auth::hash_password;
use gphotos_dav::server::config::{GoogleConfig, LibraryConfig, Policy, UserConfig};
use gphotos_dav::server::{Config, Server, Tuning};
use gphotos_dav_emulator::{self as emulator, Emulator, EmulatorOptions, RunningEmulator};
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

const PASSWORD: &str = "family password";
const KEY: &str = "0123456789abcdef0123456789abcdef-family";

struct Family {
    alice: RunningEmulator,
    bob: RunningEmulator,
    /// The server's root URL, with a trailing slash.
    url: String,
    http: reqwest::Client,
    server: Option<Server>,
    /// The libraries that started, by mount.
    libraries: Vec<(String, gphotos_dav::catalog::Catalog)>,
    _stop: Option<oneshot::Sender<()>>,
    dir: tempfile::TempDir,
    /// The configuration it was started with.
    config: Config,
}

/// `[[library]]` keys for an account on `emu`.
fn library(mount: &str, emu: &RunningEmulator, refresh_token: Option<&str>) -> LibraryConfig {
    LibraryConfig {
        mount: mount.into(),
        google: GoogleConfig {
            client_id: Some(emulator::CLIENT_ID.into()),
            client_secret: Some(emulator::CLIENT_SECRET.into()),
            refresh_token: refresh_token.map(str::to_string),
            api_base: emu.api_base(),
            token_url: emu.token_url(),
            picker_base: emu.picker_base(),
            ..GoogleConfig::default()
        },
        daily_share: None,
    }
}

async fn emulators() -> (RunningEmulator, RunningEmulator) {
    let start = |seed| {
        Emulator::start(
            EmulatorOptions {
                seed,
                ..EmulatorOptions::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        )
    };
    (start(1).await.unwrap(), start(2).await.unwrap())
}

/// Alice's account on emulator 1, Bob's on emulator 2 (Bob's refresh token `bob_token`), one
/// OAuth client; then `customize`.
async fn family(bob_token: &str, customize: impl FnOnce(&mut Config, &std::path::Path)) -> Family {
    let (alice, bob) = emulators().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.cache.path = Some(dir.path().join("metadata.sqlite"));
    config.cache.content_dir = Some(dir.path().join("content"));
    config.libraries = vec![
        library("alice", &alice, Some(emulator::REFRESH_TOKEN)),
        library("bob", &bob, Some(bob_token)),
    ];
    customize(&mut config, dir.path());
    config.validate().expect("valid config");
    let server = Server::bind_tuned(
        &config,
        Tuning {
            retry: RetryPolicy::immediate(),
        },
    )
    .await
    .expect("server binds");
    let url = server.url();
    let libraries = server.libraries().to_vec();
    Family {
        libraries,
        alice,
        bob,
        url,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        server: Some(server),
        _stop: None,
        dir,
        config,
    }
}

impl Family {
    /// Stops serving and starts again on the same configuration and stores (a restart).
    async fn restart(&mut self) {
        drop(self._stop.take());
        let server = Server::bind_tuned(
            &self.config,
            Tuning {
                retry: RetryPolicy::immediate(),
            },
        )
        .await
        .expect("server binds again");
        self.url = server.url();
        self.libraries = server.libraries().to_vec();
        self.server = Some(server);
        self.serve();
    }

    /// Starts serving (after the test looked at the bound server).
    fn serve(&mut self) {
        let server = self.server.take().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(server.serve(async {
            let _ = rx.await;
        }));
        self._stop = Some(tx);
    }

    fn full_url(&self, path: &str) -> String {
        format!("{}{}", self.url, encode_path(path.trim_start_matches('/')))
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        user: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
        let mut req = self.http.request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            self.full_url(path),
        );
        if let Some(user) = user {
            req = req.basic_auth(user, Some(PASSWORD));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        (status, headers, resp.bytes().await.unwrap().to_vec())
    }

    async fn propfind(&self, path: &str, user: Option<&str>) -> (StatusCode, String) {
        let (status, _, body) = self
            .request("PROPFIND", path, user, &[("Depth", "1")])
            .await;
        (status, String::from_utf8(body).unwrap())
    }

    /// The children's names of a folder that must answer 207.
    async fn names(&self, path: &str, user: Option<&str>) -> Vec<String> {
        let (status, body) = self.propfind(path, user).await;
        assert_eq!(status, StatusCode::MULTI_STATUS, "{path}: {body}");
        let mut entries = parse_multistatus(&body);
        entries.remove(0);
        let mut names: Vec<String> = entries.iter().map(|e| e.name()).collect();
        names.sort();
        names
    }

    /// The status of a request sent as raw bytes, so that its path reaches the server as
    /// written (HTTP clients resolve `..` and `%2e%2e` before sending).
    async fn raw_status(&self, method: &str, path: &str, user: &str, extra: &str) -> u16 {
        let addr = self.url.trim_start_matches("http://").trim_end_matches('/');
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{PASSWORD}"));
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\n\
             Depth: 1\r\nContent-Length: 0\r\n{extra}Connection: close\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&answer);
        text.split(' ').nth(1).unwrap().parse().unwrap()
    }
}

/// The folder name of the first album with items in `emu`'s library, its first file's name
/// and the digest of that file's bytes.
fn first_album(emu: &RunningEmulator) -> (String, String, String) {
    let lib = emu.emulator.library();
    let (album, folder) = lib
        .albums
        .iter()
        .zip(album_names(lib))
        .find(|(a, _)| !a.item_ids.is_empty())
        .unwrap();
    let items = album_items(lib, &album.id);
    let (name, item) = by_name(&items).into_iter().next().unwrap();
    (folder, name, sha256(&item.bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_lists_the_mounts_and_each_mount_is_its_own_account() {
    let mut f = family(emulator::REFRESH_TOKEN, |_, _| {}).await;
    f.serve();
    let (status, body) = f.propfind("/", None).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let entries = parse_multistatus(&body);
    let hrefs: Vec<(&str, bool)> = entries
        .iter()
        .map(|e| (e.href.as_str(), e.is_collection))
        .collect();
    assert_eq!(hrefs, [("/", true), ("/alice/", true), ("/bob/", true)]);
    let (status, _, _) = f.request("PROPFIND", "/", None, &[("Depth", "0")]).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    let (status, headers, _) = f.request("OPTIONS", "/", None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["dav"], "1");
    for path in ["/carol/", "/.DS_Store", "/album/"] {
        let (status, _) = f.propfind(path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }

    // Each mount holds its account's whole tree, and only its account's albums.
    let root = f.names("/alice/", None).await;
    assert!(
        root.iter().any(|n| n == "album") && root.iter().any(|n| n == "media"),
        "{root:?}"
    );
    let a_before = f.alice.emulator.counters().snapshot();
    let b_before = f.bob.emulator.counters().snapshot();
    let mut alice_albums = album_names(f.alice.emulator.library());
    alice_albums.sort();
    let mut bob_albums = album_names(f.bob.emulator.library());
    bob_albums.sort();
    assert_ne!(alice_albums, bob_albums, "two different accounts");
    assert_eq!(f.names("/alice/album/", None).await, alice_albums);
    assert_eq!(
        common::library_api_calls(&b_before, &f.bob.emulator.counters().snapshot()),
        Default::default(),
        "listing Alice's albums asks Bob's account nothing"
    );
    assert_eq!(f.names("/bob/album/", None).await, bob_albums);
    assert_eq!(
        f.alice.emulator.counters().get("albums.list"),
        a_before.get("albums.list").copied().unwrap_or(0) + 1
    );

    // Exact bytes from each account; a href names the mount.
    for (mount, emu) in [("alice", &f.alice), ("bob", &f.bob)] {
        let (folder, name, digest) = first_album(emu);
        let (status, body) = f.propfind(&format!("/{mount}/album/{folder}/"), None).await;
        assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
        let entries = parse_multistatus(&body);
        assert_eq!(entries[0].href, format!("/{mount}/album/{folder}/"));
        let content_before = emu.emulator.counters().get("content.get");
        let (status, _, bytes) = f
            .request("GET", &format!("/{mount}/album/{folder}/{name}"), None, &[])
            .await;
        assert_eq!(status, StatusCode::OK, "{mount}/{name}");
        assert_eq!(sha256(&bytes), digest, "{mount}/{name}");
        assert!(emu.emulator.counters().get("content.get") > content_before);
        // Without the slash, a mount is still its folder.
        let (status, _) = f.propfind(&format!("/{mount}"), None).await;
        assert_eq!(status, StatusCode::MULTI_STATUS);
    }
}

/// Writes a token file holding `refresh_token`.
fn token_file(path: &std::path::Path, refresh_token: &str) {
    use gphotos_dav::google::token_file::{TokenFile, write};
    write(
        path,
        &TokenFile {
            refresh_token: refresh_token.into(),
            scopes: String::new(),
            obtained_at: String::new(),
            account: None,
        },
    )
    .unwrap();
}

/// The identity a store file was written for.
fn store_identity(path: &std::path::Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT value FROM meta WHERE key = 'identity'", [], |r| {
        r.get(0)
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_library_has_its_own_token_file_store_and_the_project_one_quota() {
    let mut f = family(emulator::REFRESH_TOKEN, |c, dir| {
        for lib in &mut c.libraries {
            let path = dir.join(format!("tokens/{}.json", lib.mount));
            token_file(&path, emulator::REFRESH_TOKEN);
            lib.google.refresh_token = None;
            lib.google.token_file = Some(path);
        }
    })
    .await;
    f.serve();
    let dir = f.dir.path().to_path_buf();
    assert_eq!(
        f.libraries
            .iter()
            .map(|(m, _)| m.as_str())
            .collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    // One store file per library, each written for its account (the mount), not only for
    // the OAuth client the family shares.
    let a = store_identity(&dir.join("metadata-alice.sqlite"));
    let b = store_identity(&dir.join("metadata-bob.sqlite"));
    assert!(
        a.ends_with(" library=alice") && a.contains(&f.alice.api_base()),
        "{a}"
    );
    assert!(
        b.ends_with(" library=bob") && b.contains(&f.bob.api_base()),
        "{b}"
    );
    assert!(!dir.join("metadata.sqlite").exists());
    assert_eq!(
        f.names("/alice/album/", None).await.len(),
        f.alice.emulator.library().albums.len()
    );
    assert_eq!(
        f.names("/bob/album/", None).await.len(),
        f.bob.emulator.library().albums.len()
    );

    // Both accounts' requests count against the one project's quota.
    let (alice, bob) = (&f.libraries[0].1, &f.libraries[1].1);
    assert!(std::sync::Arc::ptr_eq(
        &alice.google().quota,
        &bob.google().quota
    ));
    let api = |emu: &RunningEmulator| -> u64 {
        common::library_api_calls(&Default::default(), &emu.emulator.counters().snapshot())
            .values()
            .sum()
    };
    let (a_calls, b_calls) = (api(&f.alice), api(&f.bob));
    assert!(a_calls >= 1 && b_calls >= 1, "{a_calls} {b_calls}");
    assert_eq!(
        alice.google().quota.used_today(Bucket::Api),
        a_calls + b_calls
    );

    // Bob's token revoked in his file only: his folder answers 502 with the fix, Alice's on.
    token_file(
        &dir.join("tokens/bob.json"),
        emulator::REFRESH_TOKEN_REVOKED,
    );
    drop(f._stop.take());
    let mut again = Config::default();
    again.server.listen = "127.0.0.1:0".parse().unwrap();
    again.cache.path = Some(dir.join("metadata.sqlite"));
    again.cache.content_max = Some("0".into());
    again.libraries = vec![
        library("alice", &f.alice, None),
        library("bob", &f.bob, None),
    ];
    for lib in &mut again.libraries {
        lib.google.token_file = Some(dir.join(format!("tokens/{}.json", lib.mount)));
    }
    again.validate().unwrap();
    let server = Server::bind_tuned(
        &again,
        Tuning {
            retry: RetryPolicy::immediate(),
        },
    )
    .await
    .unwrap();
    f.url = server.url();
    f.server = Some(server);
    f.serve();
    // The stores were kept: Alice's albums come from hers without asking Google again.
    let before = f.alice.emulator.counters().get("albums.list");
    assert_eq!(
        f.names("/alice/album/", None).await.len(),
        f.alice.emulator.library().albums.len()
    );
    assert_eq!(f.alice.emulator.counters().get("albums.list"), before);
    let (status, body) = f.propfind("/bob/media/all/", None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body.contains("invalid_grant") && body.contains("Authorize again"),
        "{body}"
    );
    assert!(f.names("/alice/media/all/", None).await.len() > 1);
}

/// The folder, file name and digest of Bob's first album file, and Alice's.
struct Files {
    alice: (String, String, String),
    bob: (String, String, String),
}

fn files(f: &Family) -> Files {
    Files {
        alice: first_album(&f.alice),
        bob: first_album(&f.bob),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooted_user_sees_only_their_library_at_the_root() {
    let hash = hash_password(PASSWORD).unwrap();
    let mut f = family(emulator::REFRESH_TOKEN, |c, _| {
        c.server.read_only = false;
        c.server.users = ["alice", "dad"]
            .into_iter()
            .map(|name| UserConfig {
                name: name.into(),
                password_hash: hash.clone(),
                read_only: false,
                root: (name == "alice").then(|| "/alice".to_string()),
            })
            .collect();
    })
    .await;
    f.serve();
    let Files {
        alice: (folder, name, digest),
        bob: (bob_folder, bob_name, _),
    } = files(&f);

    // Alice's `/` is her library: hrefs without the mount.
    let (status, body) = f.propfind("/", Some("alice")).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let entries = parse_multistatus(&body);
    assert_eq!(entries[0].href, "/");
    assert!(entries.iter().any(|e| e.href == "/album/"), "{body}");
    let mut mine = f.names("/", Some("alice")).await;
    mine.sort();
    assert_eq!(mine, f.names("/alice/", Some("dad")).await);
    assert_eq!(
        f.names("/album/", Some("alice")).await,
        f.names("/alice/album/", Some("dad")).await
    );
    let (status, _, bytes) = f
        .request(
            "GET",
            &format!("/album/{folder}/{name}"),
            Some("alice"),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&bytes), digest);

    // Nothing of Bob's can be named: plain, encoded, `..`.
    let bob_before = f.bob.emulator.counters().snapshot();
    for path in [
        "/bob/".to_string(),
        "/bob/album/".to_string(),
        format!("/bob/album/{bob_folder}/{bob_name}"),
        "/alice/album/".to_string(),
    ] {
        for method in ["PROPFIND", "GET"] {
            let (status, _, _) = f
                .request(method, &path, Some("alice"), &[("Depth", "1")])
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        }
    }
    let bob_file = format!("{}/{}", encode_path(&bob_folder), encode_path(&bob_name));
    for path in [
        "/../bob/album/".to_string(),
        "/%2e%2e/bob/album/".to_string(),
        "/%2E%2E/bob/".to_string(),
        "/album/%2e%2e/%2e%2e/bob/album/".to_string(),
        "/..%2fbob/album/".to_string(),
        format!("/../bob/album/{bob_file}"),
        format!("/album/../../bob/album/{bob_file}"),
    ] {
        for method in ["PROPFIND", "GET"] {
            let status = f.raw_status(method, &path, "alice", "").await;
            assert_eq!(status, 404, "{method} {path}");
        }
    }
    // A Destination into Bob's library: 403, for MOVE and COPY.
    let source = format!("/album/{folder}/{name}");
    let base = f.url.trim_end_matches('/').to_string();
    for destination in [
        format!("{base}/../bob/album/{}/x.jpg", encode_path(&bob_folder)),
        format!("{base}/%2e%2e/bob/album/x.jpg"),
        "/../bob/album/x.jpg".to_string(),
        "/album/%2E%2E/%2E%2E/bob/upload/x.jpg".to_string(),
    ] {
        for method in ["MOVE", "COPY"] {
            let (status, _, body) = f
                .request(
                    method,
                    &source,
                    Some("alice"),
                    &[("Destination", &destination)],
                )
                .await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{method} to {destination}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    let bob_after = f.bob.emulator.counters().snapshot();
    assert_eq!(
        common::library_api_calls(&bob_before, &bob_after),
        Default::default(),
        "Bob's account was never asked"
    );
    assert_eq!(bob_after.get("content.get"), bob_before.get("content.get"));

    // Dad sees both; a MOVE from one library into the other is refused.
    assert!(!f.names("/bob/album/", Some("dad")).await.is_empty());
    let (status, _, _) = f
        .request(
            "MOVE",
            &format!("/alice{source}"),
            Some("dad"),
            &[("Destination", &format!("{base}/bob/upload/x.jpg"))],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = f.request("PROPFIND", "/", None, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // OPTIONS needs no credentials (clients probe with it before they log in): a rooted
    // user's folder answers it too.
    for path in ["/", "/album/", "/alice/album/"] {
        let (status, headers, _) = f.request("OPTIONS", path, None, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(headers["dav"].to_str().unwrap().starts_with('1'), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_rooted_in_an_album_sees_only_that_album() {
    let hash = hash_password(PASSWORD).unwrap();
    let (alice, _) = emulators().await;
    let (folder, name, digest) = first_album(&alice);
    drop(alice);
    let trip = format!("/alice/album/{folder}");
    let mut f = family(emulator::REFRESH_TOKEN, |c, _| {
        c.server.read_only = false;
        c.server.users = [
            ("trip", Some(trip.clone())),
            ("gone", Some("/alice/album/No such album".to_string())),
            ("dad", None),
        ]
        .into_iter()
        .map(|(name, root)| UserConfig {
            name: name.into(),
            password_hash: hash.clone(),
            read_only: false,
            root,
        })
        .collect();
    })
    .await;
    f.serve();
    // The same seed, the same library: the album is there in the server's emulator too.
    assert_eq!(
        first_album(&f.alice),
        (folder.clone(), name.clone(), digest.clone())
    );

    // The album is the user's `/`: hrefs relative to it, the same entries as seen whole.
    let (status, body) = f.propfind("/", Some("trip")).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let mine = parse_multistatus(&body);
    let (status, body) = f.propfind(&format!("{trip}/"), Some("dad")).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let whole = parse_multistatus(&body);
    // (hrefs as `parse_multistatus` gives them: decoded)
    let whole_prefix = trip.clone();
    let expected: Vec<(String, bool)> = whole
        .iter()
        .map(|e| {
            let rel = e
                .href
                .strip_prefix(&whole_prefix)
                .unwrap_or_else(|| panic!("{}", e.href));
            (rel.to_string(), e.is_collection)
        })
        .collect();
    let got: Vec<(String, bool)> = mine
        .iter()
        .map(|e| (e.href.clone(), e.is_collection))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(got[0], ("/".to_string(), true));
    assert!(got.len() > 1, "{body}");
    let (status, _, bytes) = f
        .request("GET", &format!("/{name}"), Some("trip"), &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&bytes), digest);
    let (status, body) = f.propfind(&format!("/{name}"), Some("trip")).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(parse_multistatus(&body)[0].href, format!("/{name}"));

    // Nothing outside the album: the library's other folders, Bob's, `..` plain or encoded.
    for path in ["/album/", "/media/all/", "/bob/album/", "/alice/album/"] {
        for method in ["PROPFIND", "GET"] {
            let (status, _, _) = f
                .request(method, path, Some("trip"), &[("Depth", "1")])
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        }
    }
    for path in [
        "/../",
        "/%2e%2e/",
        "/%2e%2e/media/all/",
        "/..%2f..%2fmedia/",
        "/x/../../../bob/album/",
    ] {
        for method in ["PROPFIND", "GET"] {
            let status = f.raw_status(method, path, "trip", "").await;
            assert_eq!(status, 404, "{method} {path}");
        }
    }
    // A Destination leaving the album: 403; the album itself cannot be deleted or moved.
    let base = f.url.trim_end_matches('/').to_string();
    for destination in [
        format!("{base}/../x.jpg"),
        format!("{base}/%2e%2e/%2e%2e/bob/upload/x.jpg"),
        "/../../media/x.jpg".to_string(),
    ] {
        for method in ["MOVE", "COPY"] {
            let (status, _, body) = f
                .request(
                    method,
                    &format!("/{name}"),
                    Some("trip"),
                    &[("Destination", &destination)],
                )
                .await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{method} to {destination}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    for method in ["DELETE", "MOVE"] {
        let (status, _, _) = f
            .request(
                method,
                "/",
                Some("trip"),
                &[("Destination", &format!("{base}/x/"))],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} /");
    }
    assert_eq!(
        f.names(&format!("{trip}/"), Some("dad")).await.len(),
        got.len() - 1
    );

    // A root that does not exist: 404 for everything.
    for (method, path) in [("PROPFIND", "/"), ("GET", "/"), ("PROPFIND", "/album/")] {
        let (status, _, _) = f
            .request(method, path, Some("gone"), &[("Depth", "1")])
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_links_name_their_library_and_use_its_account() {
    let mut f = family(emulator::REFRESH_TOKEN, |c, dir| {
        let key = dir.join("sign.key");
        std::fs::write(&key, KEY).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        c.webdav.policy = Policy::UseProxyUrl;
        c.webdav.down_proxy_url = Some("http://bytes.example".into());
        c.webdav.sign_key_file = Some(key);
    })
    .await;
    f.serve();
    let all = files(&f);
    let mut links = Vec::new();
    for (mount, emu, (folder, name, digest)) in
        [("alice", &f.alice, &all.alice), ("bob", &f.bob, &all.bob)]
    {
        let (status, headers, _) = f
            .request("GET", &format!("/{mount}/album/{folder}/{name}"), None, &[])
            .await;
        assert_eq!(status, StatusCode::FOUND);
        let location = headers["location"].to_str().unwrap().to_string();
        let link = location
            .strip_prefix("http://bytes.example")
            .unwrap()
            .to_string();
        assert!(link.starts_with(&format!("/d/{mount}/")), "{link}");
        let other = if mount == "alice" { &f.bob } else { &f.alice };
        let (mine, theirs) = (
            emu.emulator.counters().get("content.get"),
            other.emulator.counters().get("content.get"),
        );
        let resp = f
            .http
            .get(format!("{}{}", f.url.trim_end_matches('/'), link))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{link}");
        assert_eq!(sha256(&resp.bytes().await.unwrap()), *digest, "{link}");
        assert!(emu.emulator.counters().get("content.get") > mine);
        assert_eq!(other.emulator.counters().get("content.get"), theirs);
        links.push((mount, link));
    }
    // The mount is signed: a link moved to another library, or without one, is refused.
    let (_, alice_link) = &links[0];
    for forged in [
        alice_link.replacen("/d/alice/", "/d/bob/", 1),
        alice_link.replacen("/d/alice/", "/d/carol/", 1),
        alice_link.replacen("/d/alice/", "/d/", 1),
    ] {
        let resp = f
            .http
            .get(format!("{}{}", f.url.trim_end_matches('/'), forged))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{forged}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_library_answers_502_and_the_others_go_on() {
    let mut f = family(emulator::REFRESH_TOKEN_REVOKED, |c, dir| {
        let mut carol = c.libraries[0].clone();
        carol.mount = "carol".into();
        carol.google.refresh_token = None;
        carol.google.token_file = Some(dir.join("no-such-token.json"));
        c.libraries.push(carol);
    })
    .await;
    assert_eq!(
        f.libraries
            .iter()
            .map(|(m, _)| m.as_str())
            .collect::<Vec<_>>(),
        ["alice", "bob"],
        "carol has no token: she did not start"
    );
    f.serve();
    assert_eq!(f.names("/", None).await, ["alice", "bob", "carol"]);
    // Bob's token is revoked: his folders answer 502 with the fix.
    for path in ["/bob/album/", "/bob/media/all/"] {
        let (status, body) = f.propfind(path, None).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{path}: {body}");
        assert!(
            body.contains("invalid_grant") && body.contains("Authorize again"),
            "{body}"
        );
    }
    // Carol never started: 502 saying how to sign her in.
    for path in ["/carol/", "/carol/album/"] {
        let (status, body) = f.propfind(path, None).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{path}: {body}");
        assert!(
            body.contains("no refresh token")
                && body.contains("auth --config <this file> --library carol"),
            "{body}"
        );
    }
    // Alice is served as usual.
    let (status, _) = f.propfind("/alice/album/", None).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    let (folder, name, digest) = first_album(&f.alice);
    let (status, _, bytes) = f
        .request("GET", &format!("/alice/album/{folder}/{name}"), None, &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&bytes), digest);

    // A server none of whose libraries starts does not start.
    let mut none = Config::default();
    none.server.listen = "127.0.0.1:0".parse().unwrap();
    none.cache.path = Some(":memory:".into());
    none.cache.content_max = Some("0".into());
    let mut lib = library("carol", &f.alice, None);
    lib.google.token_file = Some(f.dir.path().join("no-such-token.json"));
    none.libraries = vec![lib];
    none.validate().unwrap();
    let err = Server::bind(&none).await.err().unwrap().to_string();
    assert!(
        err.contains("no library could be served") && err.contains("carol"),
        "{err}"
    );
}

/// Library API calls `emu` answered so far.
fn api_calls(emu: &RunningEmulator) -> u64 {
    common::library_api_calls(&Default::default(), &emu.emulator.counters().snapshot())
        .values()
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_over_its_daily_share_answers_503_and_the_others_go_on() {
    // One project: 8 Library API calls a day; Alice may spend half of them.
    let mut f = family(emulator::REFRESH_TOKEN, |c, _| {
        for lib in &mut c.libraries {
            lib.google.daily_quota = 8;
        }
        c.libraries[0].daily_share = Some(0.5);
    })
    .await;
    f.serve();
    let alice_calls = api_calls(&f.alice);
    let mut albums = album_names(f.alice.emulator.library());
    albums.sort();
    let mut listed = 0;
    let refusal = loop {
        let path = match listed {
            0 => "/alice/album/".to_string(),
            n => format!("/alice/album/{}/", albums[n - 1]),
        };
        let (status, headers, body) = f.request("PROPFIND", &path, None, &[("Depth", "1")]).await;
        let body = String::from_utf8(body).unwrap();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break (path, headers, body);
        }
        assert_eq!(status, StatusCode::MULTI_STATUS, "{path}: {body}");
        listed += 1;
        assert!(listed <= albums.len(), "never refused");
    };
    let (path, headers, body) = refusal;
    // Exactly Alice's share reached her account, and the body names the share.
    assert_eq!(api_calls(&f.alice) - alice_calls, 4);
    let alice = f.libraries[0].1.google().clone();
    assert_eq!(alice.share.as_ref().unwrap().used_today(Bucket::Api), 4);
    assert!(
        body.contains("\"alice\"")
            && body.contains("daily_share = 0.5")
            && body.contains("4 of the project's daily_quota = 8"),
        "{path}: {body}"
    );
    let now = alice.clock.utc_now();
    let left = (gphotos_dav::google::quota::next_pacific_midnight(now) - now).num_seconds();
    let retry_after: i64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((retry_after - left).abs() <= 2, "{retry_after} vs {left}");
    // Bob shares the project, not Alice's share: his folders are served.
    assert_eq!(
        f.names("/bob/album/", None).await.len(),
        f.bob.emulator.library().albums.len()
    );

    // A restart the same day remembers Alice's count: still refused, her account not asked.
    f.restart().await;
    let before = api_calls(&f.alice);
    let (status, _, body) = f.request("PROPFIND", &path, None, &[("Depth", "1")]).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(api_calls(&f.alice), before);
    // A new Pacific day, a new share.
    let clock = f.libraries[0].1.google().clock.clone();
    clock.advance(Duration::from_secs(left.unsigned_abs() + 60));
    let (status, _, body) = f.request("PROPFIND", &path, None, &[("Depth", "1")]).await;
    assert_eq!(
        status,
        StatusCode::MULTI_STATUS,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(api_calls(&f.alice) > before);
}

/// The value of the series `series` (its whole name and labels) in `text`, 0 when absent.
fn series(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_labelled_with_the_library() {
    // Mounts no other test of this binary uses: the metrics are the process's.
    let mut f = family(emulator::REFRESH_TOKEN, |c, _| {
        c.libraries[0].mount = "ann".into();
        c.libraries[1].mount = "ben".into();
    })
    .await;
    f.serve();
    let (folder, name, digest) = first_album(&f.alice);
    assert!(
        !f.names(&format!("/ann/album/{folder}/"), None)
            .await
            .is_empty()
    );
    let (status, _, bytes) = f
        .request("GET", &format!("/ann/album/{folder}/{name}"), None, &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&bytes), digest);
    let size = bytes.len() as u64;
    assert!(!f.names("/ben/album/", None).await.is_empty());

    let text = gphotos_dav::metrics::get().render();
    let calls = |kind: &str, mount: &str| {
        series(
            &text,
            &format!(
                "gphotos_dav_upstream_calls_total{{kind=\"{kind}\",status=\"200\",library=\"{mount}\"}}"
            ),
        )
    };
    // Each library's calls are counted under its name, as its account answered them.
    for (mount, emu) in [("ann", &f.alice), ("ben", &f.bob)] {
        let counters = emu.emulator.counters();
        for kind in ["albums.list", "mediaItems.search"] {
            assert_eq!(calls(kind, mount), counters.get(kind), "{mount} {kind}");
        }
    }
    assert!(calls("albums.list", "ann") >= 1 && calls("mediaItems.search", "ben") == 0);
    // Bytes and cache lookups: Ann's read, nothing of Ben's.
    for (mount, proxied, from_google) in [("ann", size, size), ("ben", 0, 0)] {
        let label = format!("library=\"{mount}\"");
        assert_eq!(
            series(
                &text,
                &format!("gphotos_dav_proxied_bytes_total{{{label}}}")
            ),
            proxied,
            "{mount}\n{text}"
        );
        assert_eq!(
            series(
                &text,
                &format!("gphotos_dav_content_bytes_total{{source=\"google\",{label}}}")
            ),
            from_google,
            "{mount}"
        );
    }
    let lookups = |cache: &str, result: &str, mount: &str| {
        series(
            &text,
            &format!(
                "gphotos_dav_cache_lookups_total{{cache=\"{cache}\",result=\"{result}\",library=\"{mount}\"}}"
            ),
        )
    };
    assert!(lookups("listing", "miss", "ann") >= 2, "{text}");
    assert!(lookups("listing", "miss", "ben") >= 1, "{text}");
    assert!(lookups("size", "miss", "ann") >= 1, "{text}");
    assert_eq!(lookups("content", "miss", "ann"), 1, "{text}");
    assert_eq!(lookups("content", "miss", "ben"), 0, "{text}");
}

/// Runs the binary to its end (with a deadline); whether it succeeded and what it printed.
async fn run_bin(args: &[&str]) -> (bool, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(common::BIN)
            .args(args)
            .env("XDG_CACHE_HOME", common::isolated_cache())
            .env_remove("GPHOTOS_DAV_REFRESH_TOKEN")
            .env_remove("GPHOTOS_DAV_CLIENT_ID")
            .env_remove("GPHOTOS_DAV_CLIENT_SECRET")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `auth --library alice`, playing the browser; what it printed.
async fn auth_alice(config: &str) -> (bool, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(common::BIN)
        .args([
            "auth",
            "--config",
            config,
            "--library",
            "alice",
            "--no-browser",
            "--timeout",
            "60",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .env_remove("GPHOTOS_DAV_REFRESH_TOKEN")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let line = common::wait_for_line(&mut out, "/o/oauth2/v2/auth?", &mut seen).await;
    let page = reqwest::get(line.trim()).await.unwrap();
    assert!(page.status().is_success(), "{}", page.status());
    let rest = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(l)) = out.next_line().await {
            seen.push_str(&l);
            seen.push('\n');
        }
        child.wait().await.unwrap()
    })
    .await
    .unwrap();
    (rest.success(), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_take_the_library_and_doctor_checks_each() {
    let (alice, bob) = emulators().await;
    let dir = tempfile::tempdir().unwrap();
    let alice_token = dir.path().join("alice-token.json");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[cache]\npath = \":memory:\"\n\
         [[library]]\nmount = \"alice\"\nclient_id = \"{id}\"\nclient_secret = \"{secret}\"\n\
         token_file = \"{token}\"\napi_base = \"{a_api}\"\ntoken_url = \"{a_token}\"\n\
         picker_base = \"{a_picker}\"\nauth_url = \"{a_auth}\"\n\
         [[library]]\nmount = \"bob\"\nclient_id = \"{id}\"\nclient_secret = \"{secret}\"\n\
         refresh_token = \"{revoked}\"\napi_base = \"{b_api}\"\ntoken_url = \"{b_token}\"\n\
         picker_base = \"{b_picker}\"\n",
        id = emulator::CLIENT_ID,
        secret = emulator::CLIENT_SECRET,
        token = alice_token.display(),
        a_api = alice.api_base(),
        a_token = alice.token_url(),
        a_picker = alice.picker_base(),
        a_auth = alice.auth_url(),
        revoked = emulator::REFRESH_TOKEN_REVOKED,
        b_api = bob.api_base(),
        b_token = bob.token_url(),
        b_picker = bob.picker_base(),
    );
    let config = dir.path().join("webdav.toml");
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap();

    // Commands of one account need the library named, and a library that exists.
    let (ok, text) = run_bin(&["pick", "--config", config, "--list"]).await;
    assert!(
        !ok && text.contains("--library") && text.contains("alice, bob"),
        "{text}"
    );
    let (ok, text) = run_bin(&["auth", "--config", config, "--library", "carol"]).await;
    assert!(
        !ok && text.contains("no [[library]] mount = \"carol\""),
        "{text}"
    );

    // Before Alice signs in, doctor names her library's missing token and the fix.
    let (ok, text) = run_bin(&["doctor", "--config", config]).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("FAIL  [alice] google") && text.contains("--library alice"),
        "{text}"
    );

    // `auth --library alice` fills her token file only.
    let (ok, text) = auth_alice(config).await;
    assert!(ok, "{text}");
    assert!(text.contains(&alice_token.display().to_string()), "{text}");
    assert!(alice_token.exists());
    // It records her Google account, which her store's identity then includes.
    let saved = gphotos_dav::google::token_file::read(&alice_token)
        .unwrap()
        .unwrap();
    assert_eq!(
        saved.account,
        Some(alice.emulator.signed_in_account()),
        "{text}"
    );
    assert_ne!(saved.account, Some(bob.emulator.signed_in_account()));

    // One good library and one revoked: doctor checks both, names the bad one, fails.
    let (ok, text) = run_bin(&["doctor", "--config", config]).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("ok    [alice] token: the refresh token works"),
        "{text}"
    );
    assert!(text.contains("ok    [alice] library-api"), "{text}");
    assert!(
        text.contains("FAIL  [bob] token")
            && text.contains("gphotos-dav auth --config")
            && text.contains("--library bob"),
        "{text}"
    );
    assert!(text.contains("1 check(s) failed"), "{text}");

    // `pick --list --library alice` reads Alice's store.
    let (ok, text) = run_bin(&["pick", "--config", config, "--list", "--library", "alice"]).await;
    assert!(ok, "{text}");
}
