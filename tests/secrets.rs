//! No secret ever reaches a log line: client secret, refresh tokens, access tokens, WebDAV
//! passwords and hashes, Google download URLs (which work like passwords for an hour), and the
//! key and signatures of signed download links.
//! Everything runs with every target logging at debug level, through failures of every kind.
//! One test in its own binary, because it owns the process-wide log subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{sha256, start_custom};
use gphotos_dav::server::auth::hash_password;
use gphotos_dav::server::config::{Policy, UserConfig};
use gphotos_dav::server::signed::SignKey;
use gphotos_dav_emulator::{self as emulator, EmulatorOptions, Fault};
use reqwest::{Method, StatusCode};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_env_filter("debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let password = "Tr0ub4dor&3-very-secret";
    let hash = hash_password(password).unwrap();
    let users = vec![UserConfig {
        name: "alice".into(),
        password_hash: hash.clone(),
        read_only: false,
        root: None,
    }];
    let stack = start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.server.users = users.clone();
    })
    .await;
    let emu = stack.emulator().clone();
    let propfind = Method::from_bytes(b"PROPFIND").unwrap();

    // Wrong and right passwords.
    let resp = stack
        .http
        .request(propfind.clone(), stack.full_url("/album/"))
        .basic_auth("alice", Some("wrong-guess-123"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let list = |path: &'static str| {
        stack
            .http
            .request(propfind.clone(), stack.full_url(path))
            .header("Depth", "1")
            .basic_auth("alice", Some(password))
            .send()
    };
    let body = list("/media/all/").await.unwrap().text().await.unwrap();
    let entries = common::parse_multistatus(&body);
    assert!(entries.len() > 10);
    let get = |href: String| {
        stack
            .http
            .get(stack.full_url(&href))
            .basic_auth("alice", Some(password))
            .send()
    };
    // Downloads, a cut one, ranges.
    emu.cut_next_downloads(1);
    for e in entries.iter().skip(1).take(5) {
        let resp = get(e.href.clone()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.bytes().await.unwrap().len() as u64, e.size());
    }
    // Expired download URLs and access tokens, throttling and server errors.
    emu.clock().advance(Duration::from_secs(3700));
    emu.inject(
        "mediaItems.batchGet",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        2,
        Some(2),
    );
    emu.inject("mediaItems.search", Fault::Status(500), 1, Some(1));
    for e in entries.iter().skip(6).take(3) {
        let resp = get(e.href.clone()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{}", e.href);
        let bytes = resp.bytes().await.unwrap();
        assert!(
            emu.library()
                .items
                .iter()
                .any(|i| sha256(&i.bytes) == sha256(&bytes))
        );
    }
    let resp = list("/album/").await.unwrap();
    assert_eq!(resp.status(), StatusCode::MULTI_STATUS);

    // The GET policies: 302s hand out Google URLs, signed links carry signatures under a key;
    // none of them is logged, and neither is the key.
    let sign_key = "a-sign-key-for-the-secrets-test-0123456789";
    let redirecting = stack
        .gateway(|c| c.webdav.policy = Policy::Redirect302)
        .await;
    let byte_node = stack
        .gateway(|c| c.webdav.sign_key = Some(SignKey::new(sign_key)))
        .await;
    let front = stack
        .gateway(|c| {
            c.webdav.policy = Policy::UseProxyUrl;
            c.webdav.down_proxy_url = Some(byte_node.url.clone());
            c.webdav.sign_key = Some(SignKey::new(sign_key));
        })
        .await;
    let mut signatures = Vec::new();
    for e in entries.iter().skip(1).take(3) {
        for gateway in [&redirecting.url, &front.url] {
            let url = format!("{gateway}{}", common::encode_path(&e.href[1..]));
            let resp = stack.http.get(url).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::FOUND, "{}", e.href);
            let location = resp.headers()["location"].to_str().unwrap().to_string();
            if let Some((_, sign)) = location.split_once("&sign=") {
                signatures.push(sign.to_string());
                let tampered = location.replace("&sign=", "&sign=x");
                let resp = stack.http.get(tampered).send().await.unwrap();
                assert_eq!(resp.status(), StatusCode::FORBIDDEN);
            }
            let resp = stack.http.get(location).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{}", e.href);
            assert_eq!(resp.bytes().await.unwrap().len() as u64, e.size());
        }
    }
    assert_eq!(signatures.len(), 3);
    let mut secrets = emu.issued_secrets();
    secrets.push(sign_key.to_string());
    secrets.extend(signatures);

    // Broken credentials of every kind.
    for token in [
        emulator::REFRESH_TOKEN_NO_SCOPE,
        emulator::REFRESH_TOKEN_API_DISABLED,
        emulator::REFRESH_TOKEN_REVOKED,
    ] {
        let broken = start_custom(EmulatorOptions::default(), token, |_| {}).await;
        let (status, _) = broken.propfind_raw("/album/", Some("1")).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        secrets.extend(broken.emulator().issued_secrets());
    }
    let wrong_client = start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.google.client_secret = Some("another-client-secret-value".into());
    })
    .await;
    let (status, _) = wrong_client.propfind_raw("/album/", Some("1")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.len() > 10_000,
        "debug logging was captured ({} bytes)",
        logs.len()
    );
    assert!(logs.contains("alice"), "failed logins name the user");
    // One access-log line per request, with the user once authenticated.
    let access: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("gphotos_dav::access"))
        .collect();
    assert!(access.len() > 10, "{} access lines", access.len());
    assert!(
        access
            .iter()
            .any(|l| l.contains("status=401") && l.contains("method=PROPFIND")),
        "refused requests are logged"
    );
    assert!(
        access
            .iter()
            .any(|l| l.contains("status=207") && l.contains("alice") && l.contains("ms=")),
        "{:?}",
        &access[..3]
    );
    assert!(
        secrets.len() > 20,
        "access tokens and download URLs were issued"
    );
    secrets.extend(
        [
            emulator::CLIENT_SECRET,
            emulator::REFRESH_TOKEN,
            emulator::REFRESH_TOKEN_NO_SCOPE,
            emulator::REFRESH_TOKEN_API_DISABLED,
            emulator::REFRESH_TOKEN_REVOKED,
            "another-client-secret-value",
            password,
            "wrong-guess-123",
            &hash,
        ]
        .map(String::from),
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret reached the logs: {}…",
            &secret[..6.min(secret.len())]
        );
    }
}
