//! Hostile and malformed requests, sent as raw bytes (HTTP client libraries would clean them
//! up first). None may crash the server, block other clients, or reach outside the tree.

mod common;

use std::time::Duration;

use common::{Stack, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(stack: &Stack) -> String {
    stack
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// Sends raw request bytes on a fresh connection; returns the status code and the response.
async fn raw(stack: &Stack, request: &[u8]) -> (u16, String) {
    let mut conn = TcpStream::connect(addr(stack)).await.unwrap();
    conn.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = [0u8; 65536];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if let Some(text) = std::str::from_utf8(&out).ok()
                        && response_complete(text)
                    {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server answered");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Whether a buffered HTTP/1.1 response with Content-Length has fully arrived.
fn response_complete(text: &str) -> bool {
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(usize::MAX);
    body.len() >= len
        || head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
}

fn request(method: &str, path: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_hostile_xml_is_refused_without_expansion() {
    let stack = start().await;
    let cases = [
        ("<propfind xmlns=\"DAV:\"><prop>", 400),
        ("not xml at all", 400),
        ("<?xml version=\"1.0\"?><D:wrong xmlns:D=\"DAV:\"/>", 400),
        (
            "<?xml version=\"1.0\"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\
             <D:propfind xmlns:D=\"DAV:\"><D:prop><D:displayname>&xxe;</D:displayname></D:prop></D:propfind>",
            400,
        ),
        (
            "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">\
             <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\
             <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>\
             <D:propfind xmlns:D=\"DAV:\"><D:prop><D:displayname>&lol3;</D:displayname></D:prop></D:propfind>",
            400,
        ),
    ];
    for (body, want) in cases {
        let (status, text) = raw(
            &stack,
            &request("PROPFIND", "/album/", "Depth: 1\r\n", body),
        )
        .await;
        assert_eq!(status, want, "{body}: {text}");
        assert!(!text.contains("root:"), "nothing of /etc/passwd");
    }
    // Over the limit: refused before the body is read, and after it when not announced.
    let big = format!(
        "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:allprop/></D:propfind>{}",
        " ".repeat(2 * 1024 * 1024)
    );
    let (status, _) = raw(
        &stack,
        &request("PROPFIND", "/album/", "Depth: 0\r\n", &big),
    )
    .await;
    assert_eq!(status, 413);
    let chunked = format!(
        "PROPFIND /album/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        big.len(),
        big
    );
    let (status, _) = raw(&stack, chunked.as_bytes()).await;
    assert_eq!(status, 413);
    // A well-formed body still works.
    let ok = "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><D:getcontentlength/></D:prop></D:propfind>";
    let (status, _) = raw(&stack, &request("PROPFIND", "/album/", "Depth: 1\r\n", ok)).await;
    assert_eq!(status, 207);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_and_broken_paths_never_leave_the_tree() {
    let stack = start().await;
    for path in [
        "/album/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2f..%2fetc/passwd",
        "/media/all/..%2F..%2F..%2Fetc%2Fpasswd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/album/../../../etc/passwd",
        "/media/all/%2e%2e%5c%2e%2e%5cwin.ini",
    ] {
        let (status, text) = raw(&stack, &request("GET", path, "", "")).await;
        assert!([400, 403, 404].contains(&status), "{path}: {status} {text}");
        assert!(!text.contains("root:"), "{path}");
    }
    for (path, want) in [
        ("/album/%zz", 400),
        ("/album/%e9t%e9", 400),
        ("/album/a%00b", 400),
    ] {
        let (status, _) = raw(&stack, &request("GET", path, "", "")).await;
        assert_eq!(status, want, "{path}");
    }
    let long = format!("/album/{}", "a".repeat(9000));
    let (status, _) = raw(&stack, &request("GET", &long, "", "")).await;
    assert_eq!(status, 414);
    let huge_header = format!("X-Big: {}\r\n", "b".repeat(200_000));
    let (status, _) = raw(&stack, &request("GET", "/", &huge_header, "")).await;
    assert_eq!(status, 431);
    for depth in ["2", "-1", "infinity-ish", ""] {
        let (status, _) = raw(
            &stack,
            &request("PROPFIND", "/album/", &format!("Depth: {depth}\r\n"), ""),
        )
        .await;
        assert_eq!(status, 400, "Depth {depth:?}");
    }
    let (status, _) = raw(&stack, &request("BREW", "/", "", "")).await;
    assert_eq!(status, 405);
    // Still healthy.
    let (status, _) = raw(&stack, &request("PROPFIND", "/", "Depth: 1\r\n", "")).await;
    assert_eq!(status, 207);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_vanishing_clients_do_not_block_others() {
    let stack = start().await;
    let entries = stack.list("/media/all/").await;
    let big = entries.iter().max_by_key(|e| e.size()).unwrap().clone();
    // A client that asks for a big file and never reads it...
    let mut stalled = TcpStream::connect(addr(&stack)).await.unwrap();
    stalled
        .write_all(&request("GET", &common::encode_path(&big.href), "", ""))
        .await
        .unwrap();
    // ...one that sends half a request line and stops...
    let mut half = TcpStream::connect(addr(&stack)).await.unwrap();
    half.write_all(b"PROPFIND /album/ HT").await.unwrap();
    // ...and one that disconnects mid-download.
    let mut gone = TcpStream::connect(addr(&stack)).await.unwrap();
    gone.write_all(&request("GET", &common::encode_path(&big.href), "", ""))
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let _ = gone.read(&mut buf).await.unwrap();
    drop(gone);
    // Everyone else is served, and fully.
    for e in entries.iter().take(10) {
        let (status, _, body) = stack.get(&e.href).await;
        assert_eq!(status, 200);
        assert_eq!(body.len() as u64, e.size());
    }
    drop(stalled);
    drop(half);
}
