//! A fuzz run against a writable server on the emulator: a few thousand random requests
//! (methods, paths, headers and bodies, valid and hostile, sent as raw bytes so that nothing
//! cleans them up first), bounded in count and in time. Google (the emulator) is healthy
//! throughout, so every request deserves an answer below 500: a 5xx, a panic, a request left
//! unanswered or a server that stops answering is a bug in the server.
//!
//! The run is seeded; the seed is printed, and `FUZZ_SEED=<n>` replays it (the requests are
//! the same; their interleaving over the concurrent connections may differ).
//! `FUZZ_REQUESTS` and `FUZZ_SECONDS` change the bounds (defaults 3,000 and 60).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Stack, start_custom};
use gphotos_dav::server::auth::hash_password;
use gphotos_dav::server::config::UserConfig;
use gphotos_dav_emulator::{self as emulator, EmulatorOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const USER: &str = "fuzz";
const PASSWORD: &str = "correct horse battery";
/// Connections sending at once.
const WORKERS: usize = 3;
/// The longest any one answer may take; longer is a hang.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Panics anywhere in this process (the server runs in it): each is a bug.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// One request as sent, and whether the server may rightly close without answering (a body
/// cut short on purpose).
struct Sent {
    bytes: Vec<u8>,
    may_go_unanswered: bool,
}

/// What happened to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Status(u16),
    NoAnswer,
    TimedOut,
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// The paths and names the generator starts from: real ones (so requests reach deep into
/// the tree) and made-up ones.
struct Corpus {
    paths: Vec<String>,
    albums: Vec<String>,
    host: String,
}

const METHODS: &[&str] = &[
    "OPTIONS",
    "GET",
    "HEAD",
    "PROPFIND",
    "PROPPATCH",
    "PUT",
    "DELETE",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
];
const ODD_METHODS: &[&str] = &[
    "BREW",
    "POST",
    "PATCH",
    "TRACE",
    "SEARCH",
    "REPORT",
    "get",
    "propfind",
    "Put",
    "lock",
    "X-MS-ENUMATTS",
    "M-SEARCH",
    "VERSION-CONTROL",
    "ACL",
    "BIND",
    "A",
];

/// Percent-encodes every byte outside the unreserved set, the way clients send paths.
fn encode(path: &str) -> String {
    common::encode_path(path)
}

fn random_path(rng: &mut StdRng, c: &Corpus) -> Vec<u8> {
    let base = encode(pick::<String>(rng, &c.paths));
    match rng.random_range(0..30) {
        0..=7 | 20.. => base.into_bytes(),
        8 => format!("{base}/..").into_bytes(),
        9 => format!("{base}/../../../../etc/passwd").into_bytes(),
        10 => base.replace('/', "//").into_bytes(),
        11 => format!("{base}%2e%2e%2f%2e%2e%2f").into_bytes(),
        12 => format!("/{}", "a".repeat(rng.random_range(100..10_000))).into_bytes(),
        13 => format!("{base}/{}", encode("Été 東京 🌅 ｆｕｌｌ\u{301}")).into_bytes(),
        14 => {
            // Raw control bytes, NUL and DEL, and bytes that are not UTF-8.
            let mut p = base.into_bytes();
            for _ in 0..rng.random_range(1..4) {
                p.push(*pick(
                    rng,
                    &[0u8, 1, 7, 0x1b, 0x7f, 0x80, 0xff, b' ', b'\t'],
                ));
            }
            p
        }
        15 => format!("{base}%{:02x}%zz%", rng.random::<u8>()).into_bytes(),
        16 => format!("{base}?q={}#frag", rng.random::<u32>()).into_bytes(),
        17 => format!("http://{}{}", c.host, base).into_bytes(),
        18 => b"*".to_vec(),
        _ => format!(
            "{base}/._{}",
            pick(rng, &[".DS_Store", "desktop.ini", "x.jpg"])
        )
        .into_bytes(),
    }
}

fn random_destination(rng: &mut StdRng, c: &Corpus) -> String {
    let album = pick(rng, &c.albums);
    let name = format!("/album/{}-{}", encode(album), rng.random_range(0..5));
    match rng.random_range(0..8) {
        0 => format!("http://{}{}", c.host, name),
        1 => name,
        2 => format!("https://elsewhere.example{name}"),
        3 => "not a url at all \u{7f}".into(),
        4 => format!("http://{}/../../etc", c.host),
        5 => String::new(),
        6 => format!("http://{}{}", c.host, encode(pick::<String>(rng, &c.paths))),
        _ => format!("/media/all/{}", rng.random::<u16>()),
    }
}

fn random_headers(rng: &mut StdRng, c: &Corpus, method: &str) -> String {
    let mut h = String::new();
    let mut add = |name: &str, value: String| {
        h.push_str(name);
        h.push_str(": ");
        h.push_str(&value);
        h.push_str("\r\n");
    };
    let auth = base64::engine::general_purpose::STANDARD;
    match rng.random_range(0..20) {
        0 => {}
        1 => add("Authorization", "Basic !!!not base64".into()),
        2 => add("Authorization", format!("Basic {}", auth.encode(USER))),
        3 => add("Authorization", format!("Bearer {}", rng.random::<u64>())),
        4 => add(
            "Authorization",
            format!("Basic {}", auth.encode("fuzz:wrong")),
        ),
        5 => add(
            "Authorization",
            format!("Basic {}", auth.encode([0xff, 0xfe, b':', 0])),
        ),
        _ => add(
            "Authorization",
            format!("Basic {}", auth.encode(format!("{USER}:{PASSWORD}"))),
        ),
    }
    if rng.random_bool(0.5) || method == "PROPFIND" {
        let depth = [
            "0", "1", "infinity", "Infinity", "2", "-1", "", "1,0", " 1 ",
        ];
        if rng.random_bool(0.7) {
            add("Depth", pick(rng, &["0", "1"]).to_string());
        } else if rng.random_bool(0.7) {
            add("Depth", pick(rng, &depth).to_string());
        }
    }
    if rng.random_bool(0.3) {
        let n = rng.random_range(0..100_000u64);
        let ranges = [
            format!("bytes=0-{n}"),
            format!("bytes={n}-"),
            format!("bytes=-{n}"),
            "bytes=0-0,5-9,-1".into(),
            format!("bytes={n}-0"),
            "bytes=18446744073709551615-".into(),
            "bytes=99999999999999999999999-".into(),
            "chars=0-1".into(),
            "bytes=".into(),
            "bytes=a-b".into(),
        ];
        add("Range", pick(rng, &ranges).clone());
        if rng.random_bool(0.3) {
            let v = [
                "\"etag\"",
                "W/\"x\"",
                "Mon, 01 Jan 2024 00:00:00 GMT",
                "garbage",
            ];
            add("If-Range", pick(rng, &v).to_string());
        }
    }
    if rng.random_bool(0.2) {
        let v = ["*", "\"x\"", "W/\"y\", \"z\"", ""];
        let name = pick(rng, &["If-Match", "If-None-Match"]);
        add(name, pick(rng, &v).to_string());
    }
    if rng.random_bool(0.1) {
        let v = [
            "Mon, 01 Jan 2024 00:00:00 GMT",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37 GMT",
        ];
        let name = pick(rng, &["If-Modified-Since", "If-Unmodified-Since"]);
        add(name, pick(rng, &v).to_string());
    }
    if matches!(method, "COPY" | "MOVE") || rng.random_bool(0.05) {
        add("Destination", random_destination(rng, c));
        if rng.random_bool(0.5) {
            add(
                "Overwrite",
                pick(rng, &["T", "F", "t", "x", ""]).to_string(),
            );
        }
    }
    if rng.random_bool(0.15) || matches!(method, "LOCK" | "UNLOCK") && rng.random_bool(0.5) {
        let token = format!("opaquelocktoken:{:032x}", rng.random::<u128>());
        let ifs = [
            format!("(<{token}>)"),
            format!("<http://{}/album/> (<{token}>)", c.host),
            "(Not <DAV:no-lock>)".into(),
            "(<".into(),
            "([\"etag\"])".into(),
            "garbage".into(),
        ];
        add("If", pick(rng, &ifs).clone());
        if method == "UNLOCK" || rng.random_bool(0.2) {
            let lt = [format!("<{token}>"), token.clone(), "<>".into()];
            add("Lock-Token", pick(rng, &lt).clone());
        }
    }
    if method == "LOCK" || rng.random_bool(0.05) {
        let t = [
            "Second-3600",
            "Infinite",
            "Infinite, Second-4100000000",
            "Second-x",
            "-1",
        ];
        add("Timeout", pick(rng, &t).to_string());
    }
    if rng.random_bool(0.1) {
        let ct = [
            "application/xml",
            "text/xml; charset=utf-16",
            "image/jpeg",
            "x/\u{1}",
        ];
        add("Content-Type", pick(rng, &ct).to_string());
    }
    if rng.random_bool(0.05) {
        add(
            "X-Expected-Entity-Length",
            rng.random_range(0..1000u32).to_string(),
        );
    }
    if rng.random_bool(0.05) {
        let agents = [
            "Microsoft-WebDAV-MiniRedir/10.0",
            "WebDAVFS/3.0",
            "rclone/v1.66",
        ];
        add("User-Agent", pick(rng, &agents).to_string());
    }
    if rng.random_bool(0.02) {
        // Larger than the server takes for a whole request head: 431.
        add("X-Huge", "h".repeat(rng.random_range(70_000..200_000)));
    }
    if rng.random_bool(0.02) {
        for i in 0..rng.random_range(50..300) {
            add(&format!("X-Many-{i}"), "v".into());
        }
    }
    h
}

/// A random element name: WebDAV's, a custom namespace's, or an odd one.
fn element(rng: &mut StdRng) -> String {
    let dav = [
        "propfind",
        "prop",
        "allprop",
        "propname",
        "include",
        "propertyupdate",
        "set",
        "remove",
        "lockinfo",
        "lockscope",
        "exclusive",
        "shared",
        "locktype",
        "write",
        "owner",
        "href",
        "getcontentlength",
        "displayname",
        "resourcetype",
        "getetag",
        "quota-used-bytes",
        "creationdate",
        "getlastmodified",
    ];
    match rng.random_range(0..10) {
        0..=6 => format!("D:{}", pick(rng, &dav)),
        7 => format!(
            "x:{}",
            pick(rng, &["a", "color", "Win32FileAttributes", "ü"])
        ),
        8 => pick(rng, &dav).to_string(),
        _ => pick(rng, &["undeclared:p", "a", "_", "D:", "D:a:b"]).to_string(),
    }
}

fn xml_text(rng: &mut StdRng) -> String {
    let texts = [
        "hello",
        "&amp;&lt;&gt;",
        "&#x1F600;",
        "&#0;",
        "&#xD800;",
        "&undefined;",
        "<![CDATA[x]]>",
        "<!-- c -->",
        "<?pi x?>",
        "é東",
        "]]>",
        "\u{feff}",
    ];
    pick(rng, &texts).to_string()
}

/// Random XML from a small grammar: WebDAV-shaped documents, nested to random depths.
fn random_element(rng: &mut StdRng, out: &mut String, depth: usize, max_depth: usize) {
    let name = element(rng);
    out.push('<');
    out.push_str(&name);
    if depth == 0 {
        out.push_str(" xmlns:D=\"DAV:\"");
        if rng.random_bool(0.7) {
            out.push_str(" xmlns:x=\"urn:x\"");
        }
    }
    if rng.random_bool(0.1) {
        out.push_str(&format!(" a=\"{}\"", xml_text(rng).replace('<', "")));
    }
    if rng.random_bool(0.15) {
        out.push_str("/>");
        return;
    }
    out.push('>');
    if depth < max_depth {
        for _ in 0..rng.random_range(0..4) {
            if rng.random_bool(0.3) {
                out.push_str(&xml_text(rng));
            } else {
                random_element(rng, out, depth + 1, max_depth);
            }
        }
    }
    if rng.random_bool(0.97) {
        out.push_str("</");
        out.push_str(&name);
        out.push('>');
    }
}

fn random_body(rng: &mut StdRng, method: &str) -> Vec<u8> {
    let decl = if rng.random_bool(0.7) {
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
    } else {
        ""
    };
    let xml_method = matches!(method, "PROPFIND" | "PROPPATCH" | "LOCK");
    if xml_method && rng.random_bool(0.4) {
        // What clients send.
        let valid = [
            "<D:propfind xmlns:D=\"DAV:\"><D:allprop/></D:propfind>",
            "<D:propfind xmlns:D=\"DAV:\"><D:propname/></D:propfind>",
            "<D:propfind xmlns:D=\"DAV:\"><D:prop><D:getcontentlength/><D:getetag/>\
             <D:resourcetype/><D:quota-used-bytes/><D:getlastmodified/></D:prop></D:propfind>",
            "<D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:exclusive/></D:lockscope>\
             <D:locktype><D:write/></D:locktype><D:owner>fuzz</D:owner></D:lockinfo>",
            "<D:propertyupdate xmlns:D=\"DAV:\" xmlns:Z=\"urn:schemas-microsoft-com:\"><D:set>\
             <D:prop><Z:Win32FileAttributes>00000020</Z:Win32FileAttributes></D:prop></D:set>\
             </D:propertyupdate>",
        ];
        return format!("{decl}{}", pick(rng, &valid)).into_bytes();
    }
    match rng.random_range(0..if xml_method { 20 } else { 28 }) {
        0..=9 => {
            let mut out = decl.to_string();
            let max = *pick(rng, &[1, 3, 5, 8]);
            random_element(rng, &mut out, 0, max);
            out.into_bytes()
        }
        10 => Vec::new(),
        11 => {
            // Deep: around the limit, or far past it, closed or not.
            let n = *pick(rng, &[63, 64, 65, 66, 200, 3000, 50_000]);
            let mut out = format!("{decl}<D:propfind xmlns:D=\"DAV:\"><D:prop>");
            out.push_str(&"<x:a xmlns:x=\"urn:x\">".repeat(n));
            if rng.random_bool(0.5) {
                out.push_str(&"</x:a>".repeat(n));
                out.push_str("</D:prop></D:propfind>");
            }
            out.into_bytes()
        }
        12 => format!(
            "{decl}<!DOCTYPE d [<!ENTITY e \"{}\"><!ENTITY f \"&e;&e;&e;&e;\">]>\
             <D:propfind xmlns:D=\"DAV:\"><D:prop><D:displayname>&f;</D:displayname></D:prop></D:propfind>",
            "x".repeat(100)
        )
        .into_bytes(),
        13 => format!(
            "{decl}<!doctype x SYSTEM \"file:///etc/passwd\"><x>&xxe;</x>"
        )
        .into_bytes(),
        14 => format!(
            "{decl}<D:propfind xmlns:D=\"DAV:\" big=\"{}\"><D:allprop/></D:propfind>",
            "a".repeat(rng.random_range(10_000..400_000))
        )
        .into_bytes(),
        15 => {
            let mut b = vec![0u8; rng.random_range(1..4096)];
            rng.fill(&mut b[..]);
            b
        }
        16 => b"\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>".to_vec(),
        17 => {
            // Many siblings, one level deep.
            let mut out = format!("{decl}<D:propfind xmlns:D=\"DAV:\"><D:prop>");
            out.push_str(&"<D:getetag/>".repeat(rng.random_range(100..20_000)));
            out.push_str("</D:prop></D:propfind>");
            out.into_bytes()
        }
        18 => b"<a></b>".to_vec(),
        19 => "<D:propertyupdate xmlns:D=\"DAV:\" xmlns:x=\"urn:x\"><D:set><D:prop>\
               <x:color>red</x:color></D:prop></D:set><D:remove><D:prop><x:gone/></D:prop>\
               </D:remove></D:propertyupdate>"
            .as_bytes()
            .to_vec(),
        // Bodies for the other methods: bytes an upload might carry.
        20..=23 => {
            let mut b = vec![0u8; rng.random_range(1..2048)];
            rng.fill(&mut b[..]);
            if rng.random_bool(0.5) {
                // Starts like a JPEG, so the upload goes as far as Google.
                let n = 3.min(b.len());
                b[..n].copy_from_slice(&[0xff, 0xd8, 0xff][..n]);
            }
            b
        }
        _ => Vec::new(),
    }
}

/// One random request.
fn random_request(rng: &mut StdRng, c: &Corpus) -> Sent {
    let method = if rng.random_bool(0.9) {
        pick(rng, METHODS).to_string()
    } else {
        pick(rng, ODD_METHODS).to_string()
    };
    let path = random_path(rng, c);
    let headers = random_headers(rng, c, &method);
    let body_chance = match method.as_str() {
        "PROPFIND" | "PROPPATCH" | "LOCK" | "PUT" => 0.85,
        _ => 0.1,
    };
    let body = if rng.random_bool(body_chance) {
        random_body(rng, &method)
    } else {
        Vec::new()
    };
    let mut may_go_unanswered = false;
    let framing = match rng.random_range(0..20) {
        0 => {
            // Announces more than it sends, then stops sending.
            may_go_unanswered = true;
            format!("Content-Length: {}\r\n", body.len() + 10)
        }
        1 if !body.is_empty() => format!("Content-Length: {}\r\n", body.len() - 1),
        2 => "Transfer-Encoding: chunked\r\n".to_string(),
        3 => "Content-Length: 5\r\nContent-Length: 6\r\n".to_string(),
        4 => "Content-Length: -1\r\n".to_string(),
        _ => format!("Content-Length: {}\r\n", body.len()),
    };
    let version = if rng.random_bool(0.97) {
        "HTTP/1.1"
    } else {
        "HTTP/1.0"
    };
    let mut bytes = method.into_bytes();
    bytes.push(b' ');
    bytes.extend_from_slice(&path);
    bytes.extend_from_slice(
        format!(
            " {version}\r\nHost: {}\r\nConnection: close\r\n{headers}{framing}\r\n",
            c.host
        )
        .as_bytes(),
    );
    if framing.starts_with("Transfer-Encoding") {
        if !body.is_empty() {
            bytes.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            bytes.extend_from_slice(&body);
            bytes.extend_from_slice(b"\r\n");
        }
        if rng.random_bool(0.9) {
            bytes.extend_from_slice(b"0\r\n\r\n");
        } else {
            may_go_unanswered = true;
        }
    } else {
        bytes.extend_from_slice(&body);
    }
    Sent {
        bytes,
        may_go_unanswered,
    }
}

/// Sends one request on a fresh connection and reads the status of its answer.
async fn send(addr: &str, sent: &Sent) -> Outcome {
    let result = tokio::time::timeout(ANSWER_TIMEOUT, async {
        let mut conn = TcpStream::connect(addr).await.expect("the server accepts");
        // The server may answer and close before it read everything (413, 431, 400).
        let _ = conn.write_all(&sent.bytes).await;
        if sent.may_go_unanswered {
            let _ = conn.shutdown().await;
        }
        let mut head = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if head.len() < 64 {
                        head.extend_from_slice(&buf[..n]);
                    }
                }
            }
        }
        head
    })
    .await;
    let Ok(head) = result else {
        return Outcome::TimedOut;
    };
    let text = String::from_utf8_lossy(&head);
    match text
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|s| s.parse().ok())
    {
        Some(status) => Outcome::Status(status),
        None => Outcome::NoAnswer,
    }
}

/// Printable form of a request, for the failure report (bodies cut at 300 bytes).
fn show(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(600)];
    format!("{:?}", String::from_utf8_lossy(cut))
}

async fn corpus(stack: &Stack) -> Corpus {
    let mut paths: Vec<String> = vec![
        "/".into(),
        "/album/".into(),
        "/media/all/".into(),
        "/media/by-year/".into(),
        "/feature/favorites/".into(),
        "/shared-album/".into(),
        "/picked/".into(),
        "/upload/".into(),
        "/upload/new.jpg".into(),
        "/album/does not exist/x.jpg".into(),
        "/d/x/y".into(),
    ];
    let mut albums = Vec::new();
    for album in stack.list("/album/").await {
        albums.push(album.name());
        paths.push(format!("/album/{}/", album.name()));
        paths.push(format!("/album/{}/new-{}.jpg", album.name(), albums.len()));
        for file in stack
            .list(&format!("/album/{}/", album.name()))
            .await
            .iter()
            .take(3)
        {
            paths.push(file.href.clone());
        }
    }
    for file in stack.list("/media/all/").await.iter().take(10) {
        paths.push(file.href.clone());
    }
    Corpus {
        paths,
        albums,
        host: stack
            .url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_get_answers_below_500_and_the_server_lives() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    let seed = env_u64("FUZZ_SEED").unwrap_or_else(rand::random);
    let max_requests = env_u64("FUZZ_REQUESTS").unwrap_or(3000) as usize;
    let seconds = env_u64("FUZZ_SECONDS").unwrap_or(60);
    println!("fuzz seed {seed} (replay with FUZZ_SEED={seed})");

    let hash = hash_password(PASSWORD).unwrap();
    let mut stack = start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.server.read_only = false;
        c.server.users = vec![UserConfig {
            name: USER.into(),
            password_hash: hash,
            read_only: false,
            root: None,
        }];
    })
    .await;
    // The corpus walks the tree with credentials.
    stack.http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers({
            let mut h = reqwest::header::HeaderMap::new();
            let v = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
            h.insert("authorization", format!("Basic {v}").parse().unwrap());
            h
        })
        .build()
        .unwrap();
    let corpus = Arc::new(corpus(&stack).await);
    let items_before = stack.list("/media/all/").await.len();
    let addr = corpus.host.clone();

    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (corpus, next, addr) = (corpus.clone(), next.clone(), addr.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(w as u64));
            let mut outcomes = Vec::new();
            while Instant::now() < deadline && next.fetch_add(1, Ordering::SeqCst) < max_requests {
                let sent = random_request(&mut rng, &corpus);
                let outcome = send(&addr, &sent).await;
                outcomes.push((outcome, sent));
            }
            outcomes
        }));
    }
    let mut histogram: BTreeMap<Outcome, usize> = BTreeMap::new();
    let mut bad = Vec::new();
    let mut total = 0;
    for worker in workers {
        for (outcome, sent) in worker.await.unwrap() {
            total += 1;
            *histogram.entry(outcome).or_default() += 1;
            let wrong = match outcome {
                Outcome::Status(s) => s >= 500,
                Outcome::NoAnswer => !sent.may_go_unanswered,
                Outcome::TimedOut => true,
            };
            if wrong {
                bad.push((outcome, sent));
            }
        }
    }
    let elapsed = started.elapsed();
    println!(
        "fuzz: {total} requests in {:.1} s ({} connections), outcomes: {histogram:?}",
        elapsed.as_secs_f64(),
        WORKERS
    );
    for (outcome, sent) in bad.iter().take(10) {
        println!("  {outcome:?} for {}", show(&sent.bytes));
    }

    // Still alive, and still right: the root lists exactly its folders (and the Finder
    // sidecars PUT there, which the server keeps for Finder).
    let entries = stack.propfind("/", Some("1")).await;
    let mut names: Vec<String> = entries
        .iter()
        .skip(1)
        .map(|e| e.name())
        .filter(|n| !n.starts_with("._") && n != ".DS_Store")
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "album",
            "feature",
            "media",
            "picked",
            "shared-album",
            "upload"
        ]
    );
    // MOVE may have renamed albums and MKCOL made some, PUT may have uploaded items, but
    // nothing can have gone (DELETE is refused).
    assert!(stack.list("/album/").await.len() >= corpus.albums.len());
    assert!(stack.list("/media/all/").await.len() >= items_before);
    assert!(total >= 200, "only {total} requests in {elapsed:?}");
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "panics in the server (seed {seed})"
    );
    assert!(
        bad.is_empty(),
        "{} requests got a 5xx, no answer or none in time (seed {seed}); first: {:?} for {}",
        bad.len(),
        bad[0].0,
        show(&bad[0].1.bytes)
    );
}
