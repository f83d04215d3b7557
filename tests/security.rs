//! Access control: Basic auth against argon2id hashes, read-only users, OPTIONS without
//! credentials, TLS with a certificate made in the test.

mod common;

use common::{parse_multistatus, start_custom};
use gphotos_dav_emulator::{self as emulator, EmulatorOptions};
use reqwest::{Method, StatusCode};

fn propfind() -> Method {
    Method::from_bytes(b"PROPFIND").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_guards_every_method_but_options() {
    let stack = start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.server.read_only = false;
        c.server.users = vec![
            common::user("alice", "correct horse", false),
            common::user("bob", "battery staple", true),
        ];
    })
    .await;
    let url = stack.full_url("/album/");

    // No credentials: 401 with the challenge and the DAV header (Finder needs both).
    let resp = stack.http.request(propfind(), &url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Basic realm=\"gphotos-dav\", charset=\"UTF-8\""
    );
    assert_eq!(resp.headers()["dav"], "1");
    for (user, pw) in [
        ("alice", "wrong"),
        ("nobody", "correct horse"),
        ("", ""),
        ("alice", ""),
    ] {
        let resp = stack
            .http
            .request(propfind(), &url)
            .basic_auth(user, Some(pw))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{user}:{pw}");
    }
    let resp = stack
        .http
        .get(stack.full_url("/media/all/"))
        .header("Authorization", "Basic !!!not-base64")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // OPTIONS needs no credentials.
    let resp = stack
        .http
        .request(Method::OPTIONS, &url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["dav"],
        "1, 2",
        "writable: class 2, with locks"
    );

    // The right password lets both users read.
    for (user, pw) in [("alice", "correct horse"), ("bob", "battery staple")] {
        for _ in 0..2 {
            let resp = stack
                .http
                .request(propfind(), &url)
                .header("Depth", "1")
                .basic_auth(user, Some(pw))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::MULTI_STATUS, "{user}");
            let entries = parse_multistatus(&resp.text().await.unwrap());
            assert_eq!(entries.len(), stack.emulator().library().albums.len() + 1);
        }
    }

    // bob may only read; alice's writes are carried out (here: an album is created).
    let resp = stack
        .http
        .put(stack.full_url("/album/x.jpg"))
        .basic_auth("bob", Some("battery staple"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.text().await.unwrap().contains("bob may only read"));
    let resp = stack
        .http
        .request(
            Method::from_bytes(b"MKCOL").unwrap(),
            stack.full_url("/album/new"),
        )
        .basic_auth("alice", Some("correct horse"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(stack.emulator().counters().get("albums.create"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_certificate_made_in_the_test() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let stack = start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.server.tls_cert = Some(cert_path.clone());
        c.server.tls_key = Some(key_path.clone());
    })
    .await;
    assert!(stack.url.starts_with("https://127.0.0.1:"), "{}", stack.url);
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let url = stack.url.replace("127.0.0.1", "localhost");
    let resp = client
        .request(propfind(), format!("{url}media/all/"))
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::MULTI_STATUS);
    let entries = parse_multistatus(&resp.text().await.unwrap());
    assert_eq!(entries.len(), stack.emulator().library().items.len() + 1);
    let resp = client
        .get(format!(
            "{}{}",
            url.trim_end_matches('/'),
            common::encode_path(&entries[1].href)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().len() as u64, entries[1].size());

    // Plain http to the TLS port gets no WebDAV answer.
    let plain = stack.url.replace("https://", "http://");
    let res = reqwest::Client::new().get(plain).send().await;
    assert!(res.is_err() || !res.unwrap().status().is_success());

    // A bad key file stops the start with the file's name.
    std::fs::write(&key_path, "not a key").unwrap();
    let err = common::try_start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.server.tls_cert = Some(cert_path.clone());
        c.server.tls_key = Some(key_path.clone());
    })
    .await
    .err()
    .expect("a bad key must stop the start");
    assert!(err.contains("tls_key") && err.contains("key.pem"), "{err}");
}
