//! From zero to a mounted library: `auth` (loopback redirect + PKCE) against the emulator's
//! authorization endpoint, the token file, `doctor`, and `serve` telling what is missing.

mod common;

use std::process::Stdio;

use common::{BIN, wait_for_line};
use gphotos_dav_emulator::{self as emulator, Emulator, EmulatorOptions, RunningEmulator};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn write_config(dir: &std::path::Path, emu: &RunningEmulator, refresh: Option<&str>) -> String {
    let path = dir.join("webdav.toml");
    let refresh = refresh
        .map(|r| format!("refresh_token = \"{r}\"\n"))
        .unwrap_or_default();
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[google]\nclient_id = \"{}\"\n\
             client_secret = \"{}\"\n{refresh}api_base = \"{}\"\ntoken_url = \"{}\"\n\
             picker_base = \"{}\"\nauth_url = \"{}\"\ntoken_file = \"{}\"\n",
            emulator::CLIENT_ID,
            emulator::CLIENT_SECRET,
            emu.api_base(),
            emu.token_url(),
            emu.picker_base(),
            emu.auth_url(),
            dir.join("state").join("token.json").display()
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

async fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("XDG_CACHE_HOME", common::isolated_cache())
        .env_remove("GPHOTOS_DAV_REFRESH_TOKEN")
        .env_remove("GPHOTOS_DAV_CLIENT_ID")
        .env_remove("GPHOTOS_DAV_CLIENT_SECRET")
        .output()
        .await
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

/// Runs `auth`, plays the browser on the URL it prints (optionally tampering with it), and
/// returns whether it succeeded and what it printed.
async fn auth_flow(config: &str, tamper: impl FnOnce(String) -> String) -> (bool, String) {
    let mut child = Command::new(BIN)
        .args([
            "auth",
            "--config",
            config,
            "--no-browser",
            "--timeout",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("GPHOTOS_DAV_REFRESH_TOKEN")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let line = wait_for_line(&mut out, "/o/oauth2/v2/auth?", &mut seen).await;
    let url = tamper(line.trim().to_string());
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(url.contains("access_type=offline"), "{url}");
    assert!(url.contains("state="), "{url}");
    // The "browser": follows Google's redirect to the loopback listener of `auth`.
    let page = reqwest::get(&url).await.unwrap();
    assert!(page.status().is_success() || page.status().as_u16() == 404);
    while let Ok(Some(l)) = out.next_line().await {
        seen.push_str(&l);
        seen.push('\n');
    }
    let status = child.wait().await.unwrap();
    let mut err = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    (status.success(), format!("{seen}{err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_saves_a_working_refresh_token_with_mode_0600() {
    let emu = Emulator::start(EmulatorOptions::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &emu, None);

    // Before: serve says what is missing and how to fix it.
    let (ok, text) = run(&["serve", "--config", &config]).await;
    assert!(!ok);
    assert!(text.contains("gphotos-dav auth --config"), "{text}");

    let (ok, text) = auth_flow(&config, |u| u).await;
    assert!(ok, "{text}");
    assert!(text.contains("Saved the refresh token"), "{text}");
    let token_path = dir.path().join("state").join("token.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&token_path).unwrap()).unwrap();
    let refresh = saved["refresh_token"].as_str().unwrap();
    assert!(!text.contains(refresh), "the token is not printed");
    assert!(
        saved["scopes"]
            .as_str()
            .unwrap()
            .contains("photoslibrary.readonly.appcreateddata")
    );

    // The saved token serves the library.
    let mut cfg = gphotos_dav::server::Config::load(std::path::Path::new(&config)).unwrap();
    cfg.validate().unwrap();
    cfg.cache.path = Some(common::isolated_cache().join("metadata.sqlite"));
    let server = gphotos_dav::server::Server::bind(&cfg).await.unwrap();
    let url = server.url();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(async {
        let _ = rx.await;
    }));
    let resp = reqwest::Client::new()
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            format!("{url}album/"),
        )
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 207);
    let _ = tx.send(());

    // And doctor agrees.
    let (ok, text) = run(&["doctor", "--config", &config]).await;
    assert!(ok, "{text}");
    for check in [
        "config",
        "listen",
        "access",
        "token",
        "scopes",
        "library-api",
        "picker-api",
    ] {
        assert!(text.contains(&format!("ok    {check}:")), "{check}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_refuses_a_redirect_with_the_wrong_state_and_asks_for_scopes() {
    let emu = Emulator::start(EmulatorOptions::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &emu, None);
    let (ok, text) = auth_flow(&config, |u| {
        let mut url = url::Url::parse(&u).unwrap();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "state" {
                    "forged".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        url.to_string()
    })
    .await;
    assert!(!ok);
    assert!(text.contains("wrong state"), "{text}");
    assert!(!dir.path().join("state").join("token.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_each_failure_and_its_fix() {
    let emu = Emulator::start(EmulatorOptions::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let cases = [
        (
            emulator::REFRESH_TOKEN_REVOKED,
            "FAIL  token",
            "gphotos-dav auth --config",
        ),
        (
            emulator::REFRESH_TOKEN_NO_SCOPE,
            "FAIL  scopes",
            "--scopes all",
        ),
        (
            emulator::REFRESH_TOKEN_API_DISABLED,
            "FAIL  library-api",
            "photoslibrary.googleapis.com/overview?project=123456789012",
        ),
    ];
    for (token, failure, fix) in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &emu, Some(token));
        let (ok, text) = run(&["doctor", "--config", &config]).await;
        assert!(!ok, "{token}: {text}");
        assert!(text.contains(failure), "{token}: {text}");
        assert!(text.contains(fix), "{token}: {text}");
        assert!(!text.contains(token), "no secret in the report");
    }
    // A token from before album renames: everything works but renames, so a warning.
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &emu, Some(emulator::REFRESH_TOKEN_NO_EDIT));
    let (ok, text) = run(&["doctor", "--config", &config]).await;
    assert!(ok, "{text}");
    assert!(
        text.contains("warn  scopes: reading works; not granted: https://www.googleapis.com/auth/photoslibrary.edit.appcreateddata"),
        "{text}"
    );
    assert!(
        text.contains("album renames") && text.contains("--scopes all"),
        "{text}"
    );

    let (ok, text) = run(&["doctor", "--config", "/nonexistent.toml"]).await;
    assert!(!ok && text.contains("FAIL  config"), "{text}");
}

/// A server on `config`'s token file, writable, its store at `store`; what it serves, how to
/// stop it, and its task.
async fn serve_on(
    config: &str,
    store: &std::path::Path,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let mut cfg = gphotos_dav::server::Config::load(std::path::Path::new(config)).unwrap();
    cfg.validate().unwrap();
    cfg.cache.path = Some(store.to_path_buf());
    cfg.server.read_only = false;
    cfg.upload.batch_window_ms = 10;
    cfg.upload.batch_close_early = false;
    let server = gphotos_dav::server::Server::bind(&cfg).await.unwrap();
    let url = server.url();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = rx.await;
    }));
    (url, tx, task)
}

/// Stops a server from [`serve_on`] and waits (with a deadline) until it has let go of its
/// store.
async fn stop(tx: tokio::sync::oneshot::Sender<()>, task: tokio::task::JoinHandle<()>) {
    let _ = tx.send(());
    tokio::time::timeout(std::time::Duration::from_secs(60), task)
        .await
        .expect("the server stops within 60 s")
        .unwrap();
}

/// PUTs `body` to `path` on a fresh connection (none is left open to hold the server).
async fn put(url: &str, path: &str, body: &[u8]) -> u16 {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    client
        .put(format!("{}{path}", url.trim_end_matches('/')))
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The account `auth` recorded in the token file.
fn recorded_account(dir: &std::path::Path) -> Option<String> {
    gphotos_dav::google::token_file::read(&dir.join("state").join("token.json"))
        .unwrap()
        .unwrap()
        .account
}

/// The identity a store file was written for.
fn store_identity(path: &std::path::Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT value FROM meta WHERE key = 'identity'", [], |r| {
        r.get(0)
    })
    .unwrap()
}

/// `auth` records the Google account (the `id_token`'s `sub`), and the metadata store belongs
/// to it: signing in again as the same account keeps the store warm (no listing call, a
/// repeated upload answered from its record), signing in as another account starts a fresh
/// store, so the first account's upload records are not trusted (the same bytes to the same
/// path are uploaded again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthorizing_as_another_account_rebuilds_the_store_and_as_the_same_keeps_it() {
    let emu = Emulator::start(EmulatorOptions::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &emu, None);
    let store = dir.path().join("cache").join("metadata.sqlite");
    let photo = common::jpeg(64, 48, 11, 90);
    let uploads = || emu.emulator.counters().get("uploads");

    // The first account signs in; the token file names it, and so does the store.
    let first = emu.emulator.signed_in_account();
    let (ok, text) = auth_flow(&config, |u| u).await;
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("Google account id: {first}")),
        "{text}"
    );
    assert_eq!(
        recorded_account(dir.path()).as_deref(),
        Some(first.as_str())
    );
    let (url, tx, task) = serve_on(&config, &store).await;
    assert_eq!(put(&url, "/album/Empty/beach.jpg", &photo).await, 201);
    assert_eq!(put(&url, "/album/Empty/beach.jpg", &photo).await, 204);
    assert_eq!(uploads(), 1);
    stop(tx, task).await;
    assert!(
        store_identity(&store).ends_with(&format!(" account={first}")),
        "{}",
        store_identity(&store)
    );

    // The same account again (a new refresh token): the store stays warm.
    let (ok, text) = auth_flow(&config, |u| u).await;
    assert!(ok, "{text}");
    assert_eq!(
        recorded_account(dir.path()).as_deref(),
        Some(first.as_str())
    );
    let (url, tx, task) = serve_on(&config, &store).await;
    let before = emu.emulator.counters().snapshot();
    let resp = reqwest::Client::new()
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            format!("{url}album/Empty/"),
        )
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 207);
    assert!(resp.text().await.unwrap().contains("beach.jpg"));
    assert_eq!(put(&url, "/album/Empty/beach.jpg", &photo).await, 204);
    let spent = common::library_api_calls(&before, &emu.emulator.counters().snapshot());
    assert!(spent.is_empty(), "a warm store lists nothing: {spent:?}");
    assert_eq!(uploads(), 1);
    stop(tx, task).await;

    // Another account signs in with the same OAuth client. Its library does not hold the
    // first account's photo (the emulator's one library stands for it once the photo is
    // gone); a store that trusted the first account's upload record would answer 204 and
    // upload nothing.
    let album = emu
        .emulator
        .current_library()
        .albums
        .iter()
        .find(|a| a.title == "Empty")
        .unwrap()
        .clone();
    assert_eq!(album.item_ids.len(), 1);
    emu.emulator.delete_in_app(&album.item_ids[0]);
    let second = "200000000000000000002";
    emu.emulator.sign_in_as(second);
    let (ok, text) = auth_flow(&config, |u| u).await;
    assert!(ok, "{text}");
    assert_eq!(recorded_account(dir.path()).as_deref(), Some(second));
    let (url, tx, task) = serve_on(&config, &store).await;
    assert_eq!(put(&url, "/album/Empty/beach.jpg", &photo).await, 201);
    assert_eq!(uploads(), 2);
    stop(tx, task).await;
    assert!(store_identity(&store).ends_with(&format!(" account={second}")));
}
