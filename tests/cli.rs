//! The binary as a user runs it: config errors, `emulator` + `serve` as child processes, `demo`.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{BIN, spawn, wait_for_line};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

async fn run_to_end(args: &[&str], envs: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("XDG_CACHE_HOME", common::isolated_cache())
        .envs(envs.iter().copied())
        .env_remove("GPHOTOS_DAV_CLIENT_ID")
        .env_remove("GPHOTOS_DAV_CLIENT_SECRET")
        .env_remove("GPHOTOS_DAV_REFRESH_TOKEN")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors_stop_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webdav.toml");
    let p = path.to_str().unwrap();

    std::fs::write(&path, "[server]\nlisen = \"127.0.0.1:0\"\n").unwrap();
    let (ok, err) = run_to_end(&["serve", "--config", p], &[]).await;
    assert!(!ok);
    assert!(
        err.contains("unknown field `lisen`") && err.contains("listen"),
        "{err}"
    );

    std::fs::write(&path, "[webdav]\npolicy = \"fast\"\n").unwrap();
    let (ok, err) = run_to_end(&["serve", "--config", p], &[]).await;
    assert!(!ok);
    assert!(
        err.contains("fast") && err.contains("native_proxy"),
        "{err}"
    );

    std::fs::write(&path, "[server]\nread_only = \"yes\"\n").unwrap();
    let (ok, err) = run_to_end(&["serve", "--config", p], &[]).await;
    assert!(!ok);
    assert!(err.contains("read_only"), "{err}");

    std::fs::write(&path, "").unwrap();
    let (ok, err) = run_to_end(&["serve", "--config", p], &[]).await;
    assert!(!ok);
    assert!(
        err.contains("GPHOTOS_DAV_CLIENT_ID") && err.contains("client_secret"),
        "{err}"
    );
    std::fs::write(
        &path,
        "[google]\nclient_id = \"i\"\nclient_secret = \"s\"\n\
         token_file = \"/nonexistent/token.json\"\n",
    )
    .unwrap();
    let (ok, err) = run_to_end(&["serve", "--config", p], &[]).await;
    assert!(!ok);
    assert!(
        err.contains("GPHOTOS_DAV_REFRESH_TOKEN") && err.contains("gphotos-dav auth --config"),
        "{err}"
    );

    // A download-URL age outside Google's range, or not a number of seconds.
    for (value, named) in [
        ("100", "600 to 3600"),
        ("7200", "600 to 3600"),
        ("\"25m\"", "invalid type"),
    ] {
        std::fs::write(
            &path,
            format!(
                "[google]\nclient_id = \"i\"\nclient_secret = \"s\"\nrefresh_token = \"r\"\n\
                 url_max_age_secs = {value}\n"
            ),
        )
        .unwrap();
        let (ok, err) = run_to_end(&["serve", "--config", p], &[]).await;
        assert!(!ok, "{value}");
        assert!(
            err.contains("url_max_age_secs") && err.contains(named),
            "{value}: {err}"
        );
    }

    let (ok, err) = run_to_end(&["serve", "--config", "/nonexistent/webdav.toml"], &[]).await;
    assert!(!ok);
    assert!(err.contains("/nonexistent/webdav.toml"), "{err}");
}

async fn propfind_status(url: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), url)
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_and_serve_subcommands_work_together() {
    let mut emu = spawn(&["emulator", "--listen", "127.0.0.1:0", "--seed", "3"]);
    let mut out = BufReader::new(emu.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let mut config = String::new();
    // The emulator prints a ready-to-use [google] section.
    wait_for_line(&mut out, "[google]", &mut seen).await;
    config.push_str("[google]\n");
    let last = wait_for_line(&mut out, "picker_base", &mut seen).await;
    let body = seen.split("[google]\n").nth(1).unwrap().to_string();
    config.push_str(&body);
    assert!(config.ends_with(&format!("{last}\n")));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webdav.toml");
    std::fs::write(
        &path,
        format!("[server]\nlisten = \"127.0.0.1:0\"\n\n{config}"),
    )
    .unwrap();
    let mut serve = spawn(&["serve", "--config", path.to_str().unwrap()]);
    let mut err = BufReader::new(serve.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let line = wait_for_line(&mut err, "listening on http://", &mut seen).await;
    let url = line[line.find("http://").unwrap()..].trim().to_string();
    let (status, body) = propfind_status(&format!("{url}album/")).await;
    assert_eq!(status, 207, "{body}");
    assert!(
        body.contains("Friends%EF%BC%8FFamily%202021") || body.contains("Friends／Family 2021"),
        "{body}"
    );
    serve.kill().await.unwrap();
    emu.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_a_mountable_library_at_once() {
    let mut demo = spawn(&["demo", "--listen", "127.0.0.1:0"]);
    let mut out = BufReader::new(demo.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let line = wait_for_line(&mut out, "WebDAV: http://", &mut seen).await;
    let url = line[line.find("http://").unwrap()..].trim().to_string();
    let (status, body) = propfind_status(&format!("{url}media/all/")).await;
    assert_eq!(status, 207, "{body}");
    assert!(body.matches("<D:response>").count() > 20, "{body}");
    demo.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_policy_flag_is_checked_and_applied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webdav.toml");
    let p = path.to_str().unwrap();
    let creds = "[google]\nclient_id = \"id\"\nclient_secret = \"s\"\nrefresh_token = \"r\"\n";

    let (ok, err) = run_to_end(&["serve", "--config", p, "--policy", "teleport"], &[]).await;
    assert!(!ok);
    assert!(
        err.contains("teleport") && err.contains("302_redirect") && err.contains("use_proxy_url"),
        "{err}"
    );

    std::fs::write(
        &path,
        format!("{creds}[webdav]\ndown_proxy_url = \"https://bytes.example\"\n"),
    )
    .unwrap();
    let (ok, err) = run_to_end(&["serve", "--config", p, "--policy", "use_proxy_url"], &[]).await;
    assert!(!ok);
    assert!(err.contains("sign_key"), "the missing key is named: {err}");

    let key_file = dir.path().join("missing.key");
    std::fs::write(
        &path,
        format!(
            "{creds}[server]\nlisten = \"127.0.0.1:0\"\n[webdav]\npolicy = \"use_proxy_url\"\n\
             down_proxy_url = \"https://bytes.example\"\nsign_key_file = \"{}\"\n",
            key_file.display()
        ),
    )
    .unwrap();
    let (ok, err) = run_to_end(&["serve", "--config", p], &[]).await;
    assert!(!ok);
    assert!(
        err.contains("sign_key_file") && err.contains("missing.key"),
        "{err}"
    );
    // The flag also overrides a policy of the file that could not start.
    let mut emu = spawn(&["emulator", "--listen", "127.0.0.1:0"]);
    let mut out = BufReader::new(emu.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    wait_for_line(&mut out, "picker_base", &mut seen).await;
    let google = seen.split("[google]\n").nth(1).unwrap().to_string();
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[google]\n{google}[webdav]\n\
             policy = \"use_proxy_url\"\n"
        ),
    )
    .unwrap();
    let mut serve = spawn(&["serve", "--config", p, "--policy", "302_redirect"]);
    let mut err = BufReader::new(serve.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let line = wait_for_line(&mut err, "listening on http://", &mut seen).await;
    let url = line[line.find("http://").unwrap()..].trim().to_string();
    let (status, body) = propfind_status(&format!("{url}media/all/")).await;
    assert_eq!(status, 207, "{body}");
    let href = body
        .split("<D:href>")
        .skip(2)
        .map(|h| h.split("</D:href>").next().unwrap())
        .find(|h| !h.ends_with('/'))
        .expect("a file")
        .to_string();
    let base = url.split("/").take(3).collect::<Vec<_>>().join("/");
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}{href}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let location = resp.headers()["location"].to_str().unwrap();
    assert!(location.contains("/lh/"), "{location}");
    serve.kill().await.unwrap();
    emu.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_password_prints_a_usable_argon2id_hash() {
    use tokio::io::AsyncWriteExt;
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"pa55 word\n")
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("pa55"));
    gphotos_dav::server::auth::validate_hash(&hash).unwrap();

    let (ok, err) = run_to_end(&["hash-password"], &[]).await;
    assert!(!ok && err.contains("no password"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_access_from_the_network_needs_consent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webdav.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"0.0.0.0:0\"\n[google]\nclient_id = \"i\"\n\
         client_secret = \"s\"\nrefresh_token = \"r\"\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let (ok, err) = run_to_end(&["serve", "--config", p], &[]).await;
    assert!(!ok);
    assert!(
        err.contains("refusing to serve without authentication")
            && err.contains("--allow-anonymous"),
        "{err}"
    );
    // With consent it starts (and listens).
    let mut serve = spawn(&["serve", "--config", p, "--allow-anonymous"]);
    let mut lines = BufReader::new(serve.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    wait_for_line(&mut lines, "listening on http://0.0.0.0:", &mut seen).await;
    serve.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_downloads_finish_then_exits_zero() {
    use gphotos_dav_emulator::{Emulator, EmulatorOptions, Fault};
    let emu = Emulator::start(EmulatorOptions::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut serve, url) = common::spawn_serve(dir.path(), &emu).await;
    let item = emu
        .emulator
        .library()
        .items
        .iter()
        .max_by_key(|i| i.bytes.len())
        .unwrap()
        .clone();
    // Learn the item's name and size first, then make its bytes slow to arrive.
    let (status, body) = propfind_status(&format!("{url}media/all/")).await;
    assert_eq!(status, 207);
    assert!(body.contains(&item.bytes.len().to_string()));
    emu.emulator.inject(
        "content.get",
        Fault::Latency(Duration::from_millis(1500)),
        1,
        None,
    );
    let gets = emu.emulator.counters().get("content.get");
    let file_url = format!("{url}media/all/{}", item.filename);
    let download = tokio::spawn(async move {
        let resp = reqwest::get(file_url).await.unwrap();
        (
            resp.status().as_u16(),
            resp.bytes().await.map(|b| b.to_vec()),
        )
    });
    // Wait until the download reached the content host, then ask the server to stop.
    tokio::time::timeout(Duration::from_secs(60), async {
        while emu.emulator.counters().get("content.get") == gets {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the download reaches the content host within 60 s");
    let pid = serve.id().unwrap().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    let (status, bytes) = download.await.unwrap();
    assert_eq!(status, 200);
    let bytes = bytes.expect("the in-flight download completes");
    assert_eq!(bytes.len(), item.bytes.len());
    assert!(bytes == item.bytes.as_ref(), "the exact bytes");
    let exit = tokio::time::timeout(Duration::from_secs(60), serve.wait())
        .await
        .expect("the server exits after its downloads finished")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    // And it no longer accepts connections.
    assert!(reqwest::get(&url).await.is_err());
}
