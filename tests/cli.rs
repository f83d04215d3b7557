//! The binary as a user runs it: config errors, `emulator` + `serve` as child processes, `demo`.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_gphotos-dav");

async fn run_to_end(args: &[&str], envs: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
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
        err.contains("GPHOTOS_DAV_REFRESH_TOKEN") && err.contains("client_secret"),
        "{err}"
    );

    let (ok, err) = run_to_end(&["serve", "--config", "/nonexistent/webdav.toml"], &[]).await;
    assert!(!ok);
    assert!(err.contains("/nonexistent/webdav.toml"), "{err}");
}

/// Reads lines from a child's pipe until one contains `marker`; returns that line.
async fn wait_for_line<R: tokio::io::AsyncRead + Unpin>(
    lines: &mut tokio::io::Lines<BufReader<R>>,
    marker: &str,
    seen: &mut String,
) -> String {
    let found = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(marker) {
                return Some(line);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(line)) => line,
        _ => panic!("no line with {marker:?} in:\n{seen}"),
    }
}

fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_LOG", "info")
        .kill_on_drop(true)
        .spawn()
        .unwrap()
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
