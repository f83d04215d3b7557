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
    raw_to(&addr(stack), request).await
}

/// [`raw`] to a server at `addr` (`host:port`). A connection closed without an answer gives
/// status 0.
async fn raw_to(addr: &str, request: &[u8]) -> (u16, String) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    // The server may refuse before it read everything (413): a failed write is no failure.
    let _ = conn.write_all(request).await;
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

/// `<a>` opened `levels` times, and closed again when `closed`.
fn nested(levels: usize, closed: bool) -> String {
    let mut xml = String::from("<?xml version=\"1.0\"?>");
    xml.push_str(&"<a>".repeat(levels));
    if closed {
        xml.push_str(&"</a>".repeat(levels));
    }
    xml
}

/// A PROPFIND whose `<D:prop>` holds a property nested so that the document is `levels`
/// elements deep in all (propfind, prop, then the property's own nesting).
fn deep_propfind(levels: usize) -> String {
    let inner = levels - 2;
    format!(
        "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop>{}{}</D:prop></D:propfind>",
        "<x:a xmlns:x=\"urn:x\">".repeat(inner),
        "</x:a>".repeat(inner)
    )
}

/// XML nested thousands of levels deep: dav-server's parser (xmltree) recurses once per
/// level, and 2,000 levels (6 KB) overflowed a tokio worker's stack, which aborts the whole
/// process (`thread 'tokio-rt-worker' has overflowed its stack`, SIGABRT) for every user.
/// The server runs as a child process here, so a crash shows as a dead child and a closed
/// connection instead of taking this test binary down with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_xml_is_refused_and_the_server_lives() {
    use tokio::io::AsyncBufReadExt;
    let emu = gphotos_dav_emulator::Emulator::start(
        gphotos_dav_emulator::EmulatorOptions::default(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("webdav.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nread_only = false\n{}",
            emu.google_config()
        ),
    )
    .unwrap();
    let mut serve = common::spawn(&["serve", "--config", config.to_str().unwrap()]);
    let mut log = tokio::io::BufReader::new(serve.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let line = common::wait_for_line(&mut log, "listening on http://", &mut seen).await;
    let addr = line[line.find("http://").unwrap() + 7..]
        .trim()
        .trim_end_matches('/')
        .to_string();
    let (log_tx, mut log_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = log.next_line().await {
            let _ = log_tx.send(line);
        }
    });
    let send = |req: Vec<u8>| {
        let addr = addr.clone();
        async move { raw_to(&addr, &req).await }
    };

    for method in ["PROPFIND", "PROPPATCH", "LOCK"] {
        for (body, what) in [
            (nested(2000, true), "2,000 levels"),
            (nested(2000, false), "2,000 levels, never closed"),
            (nested(100_000, true), "100,000 levels"),
            (deep_propfind(65), "65 levels"),
        ] {
            let (status, text) = send(request(method, "/album/", "Depth: 0\r\n", &body)).await;
            if status == 0 {
                // Give a dying server a moment to be reaped, to report how it ended.
                let ended = tokio::time::timeout(Duration::from_secs(10), serve.wait()).await;
                panic!("{method} {what}: no answer; the server: {ended:?}");
            }
            assert_eq!(status, 400, "{method} {what}: {text}");
            assert!(
                text.contains("nested deeper than 64 levels"),
                "{method} {what}: {text}"
            );
            assert!(
                serve.try_wait().unwrap().is_none(),
                "{method} {what}: the server died"
            );
        }
    }
    // The log says what was wrong.
    let logged = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = log_rx.recv().await {
            if line.contains("request refused") && line.contains("nested deeper than 64") {
                return line;
            }
        }
        String::new()
    })
    .await
    .unwrap_or_default();
    assert!(logged.contains("INFO"), "{logged}");
    // 64 levels is still a document dav-server reads: the deep property is simply unknown.
    let (status, text) = send(request(
        "PROPFIND",
        "/album/",
        "Depth: 0\r\n",
        &deep_propfind(64),
    ))
    .await;
    assert_eq!(status, 207, "{text}");
    // Malformed but shallow stays dav-server's to refuse, as before.
    let (status, _) = send(request(
        "PROPFIND",
        "/album/",
        "Depth: 0\r\n",
        "<propfind xmlns=\"DAV:\"><prop>",
    ))
    .await;
    assert_eq!(status, 400);
    let (status, _) = send(request("PROPFIND", "/", "Depth: 1\r\n", "")).await;
    assert_eq!(status, 207);
    assert!(serve.try_wait().unwrap().is_none(), "the server lives");
}

/// Inputs the fuzz test (tests/fuzz.rs) found: dav-server panicked on an unclosed `If`
/// header and on an entity tag that is a lone quote (the connection died unanswered),
/// answered 502 to a body that broke off, and 501 to a PROPPATCH of a dead property.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_bodies_dav_server_mishandled_get_4xx() {
    let stack = start().await;
    let files = stack.list("/media/all/").await;
    let file = common::encode_path(&files[0].href);
    for (name, value) in [
        ("If", "(<"),
        ("If", "([\"abc\""),
        ("If", "(<urn:x>) garbage"),
        ("If-None-Match", "\""),
        ("If-Match", "\"a\", W/\""),
        ("If-Range", "\""),
    ] {
        let (status, text) = raw(
            &stack,
            &request("HEAD", &file, &format!("{name}: {value}\r\n"), ""),
        )
        .await;
        assert_eq!(status, 400, "{name}: {value}: {text}");
        let (status, text) = raw(
            &stack,
            &request("GET", &file, &format!("{name}: {value}\r\n"), ""),
        )
        .await;
        assert_eq!(status, 400, "{name}: {value}: {text}");
        assert!(text.contains(&format!("invalid {name} header")), "{text}");
    }
    // A valid If header still reaches dav-server and is evaluated there: no such lock.
    let (status, _) = raw(
        &stack,
        &request("GET", &file, "If: (<opaquelocktoken:nope>)\r\n", ""),
    )
    .await;
    assert_eq!(status, 412);

    // A chunked body whose framing breaks: the client's fault, 400, not a 502.
    let broken = format!(
        "OPTIONS {file} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Transfer-Encoding: chunked\r\n\r\n5\r\nab"
    );
    let mut conn = TcpStream::connect(addr(&stack)).await.unwrap();
    conn.write_all(broken.as_bytes()).await.unwrap();
    conn.shutdown().await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(30), conn.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    if !answer.is_empty() {
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }

    // PROPPATCH of a property in another namespace: refused (nothing is stored) with 403
    // inside a 207, not a 501 for the whole request.
    let body = "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:x=\"urn:x\">\
                <D:set><D:prop><x:color>red</x:color></D:prop></D:set></D:propertyupdate>";
    let stack = common::start_custom(
        gphotos_dav_emulator::EmulatorOptions::default(),
        gphotos_dav_emulator::REFRESH_TOKEN,
        |c| c.server.read_only = false,
    )
    .await;
    let (status, text) = raw(&stack, &request("PROPPATCH", &file, "", body)).await;
    assert_eq!(status, 207, "{text}");
    assert!(text.contains("403 Forbidden"), "{text}");
    assert!(text.contains("color"), "{text}");
}
