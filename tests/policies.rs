//! The three answers to a GET (`[webdav] policy`): native_proxy, 302_redirect and
//! use_proxy_url with signed links served by a byte node, checked the way a client sees them:
//! statuses, the Location's exact form, validators, and the bytes at the end of it. Time moves
//! through the clocks (emulator and gateways), never by sleeping.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Gateway, Stack, by_name, encode_path, library_api_calls, sha256, start_custom};
use gphotos_dav::server::auth::hash_password;
use gphotos_dav::server::config::{Policy, UserConfig};
use gphotos_dav::server::signed::SignKey;
use gphotos_dav_emulator::{self as emulator, EmulatorOptions, Fault, FixtureItem, MediaKind};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

const KEY: &str = "policies-test-key-0123456789-abcdefghijklmnopqrstuvwxyz";
const MINUTE: Duration = Duration::from_secs(60);

/// The emulator's options here: access tokens that outlive the hours these tests skip, so the
/// Google call counts below are not blurred by 401s and token refreshes.
fn opts() -> EmulatorOptions {
    EmulatorOptions {
        access_token_ttl: Duration::from_secs(30 * 24 * 3600),
        ..EmulatorOptions::default()
    }
}

async fn stack_with(policy: Policy) -> Stack {
    start_custom(opts(), emulator::REFRESH_TOKEN, |c| {
        c.webdav.policy = policy;
    })
    .await
}

/// A split deployment: a byte node (the stack's gateway, native_proxy, with the key) and a
/// WebDAV front (use_proxy_url to the byte node, same key).
struct Split {
    /// The emulator and the byte node.
    node: Stack,
    front: Gateway,
}

async fn split_with(link_ttl_secs: Option<u64>) -> Split {
    split_on(link_ttl_secs, |_| {}).await
}

/// [`split_with`], with a last say on the byte node's configuration.
async fn split_on(
    link_ttl_secs: Option<u64>,
    customize_node: impl FnOnce(&mut gphotos_dav::server::Config),
) -> Split {
    let node = start_custom(opts(), emulator::REFRESH_TOKEN, |c| {
        c.webdav.sign_key = Some(SignKey::new(KEY));
        customize_node(c);
    })
    .await;
    let down = node.url.trim_end_matches('/').to_string();
    let front = node
        .gateway(|c| {
            c.webdav.policy = Policy::UseProxyUrl;
            c.webdav.down_proxy_url = Some(down);
            c.webdav.sign_key = Some(SignKey::new(KEY));
            c.webdav.link_ttl_secs = link_ttl_secs;
        })
        .await;
    Split { node, front }
}

impl Split {
    fn front_url(&self, path: &str) -> String {
        format!(
            "{}{}",
            self.front.url,
            encode_path(path.trim_start_matches('/'))
        )
    }

    /// Time passes for Google and both gateways.
    fn advance(&self, d: Duration) {
        self.node.advance(d);
        self.front.catalog.clock().advance(d);
    }
}

async fn send(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = http.request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .unwrap_or_else(|| panic!("no {name} header in {h:?}"))
        .to_str()
        .unwrap()
        .to_string()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `/media/all/<name>` of the first item of `kind`, that item, and its PROPFIND entry's ETag.
async fn pick(stack: &Stack, gateway_url: &str, kind: MediaKind) -> (String, FixtureItem, String) {
    let lib = stack.emulator().library();
    let items: Vec<&FixtureItem> = lib.items.iter().collect();
    let want = by_name(&items);
    let url = format!("{gateway_url}media/all/");
    let resp = stack
        .http
        .request(Method::from_bytes(b"PROPFIND").unwrap(), &url)
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::MULTI_STATUS);
    let entries = common::parse_multistatus(&resp.text().await.unwrap());
    // Prefer a name that needs percent-encoding (`IMG_0001 {ID}.JPG`) when there is one.
    let mut files: Vec<_> = entries.iter().filter(|e| !e.is_collection).collect();
    files.sort_by_key(|e| !e.name().contains(' '));
    let e = files
        .into_iter()
        .find(|e| want[&e.name()].kind == kind)
        .expect("the fixture has this kind");
    // The property holds the entity tag without its quotes; the header has them.
    let etag = e.props["getetag"].trim_matches('"');
    (
        format!("/media/all/{}", e.name()),
        want[&e.name()].clone(),
        format!("\"{etag}\""),
    )
}

fn http_date(item: &FixtureItem) -> String {
    httpdate::fmt_http_date(item.creation_time.into())
}

// ---------------------------------------------------------------- 302_redirect

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_302_sends_get_and_head_to_a_fresh_google_url() {
    let stack = stack_with(Policy::Redirect302).await;
    let content_host = format!("{}/lh/", stack.emu.base_url());
    for (kind, suffix) in [(MediaKind::Photo, "=d"), (MediaKind::Video, "=dv")] {
        let (path, item, etag) = pick(&stack, &stack.url, kind).await;
        let gets = stack.emulator().counters().get("content.get");
        for method in [Method::GET, Method::HEAD] {
            let (status, h, body) =
                send(&stack.http, method.clone(), &stack.full_url(&path), &[]).await;
            assert_eq!(status, StatusCode::FOUND, "{method} {path}");
            assert!(body.is_empty());
            let location = header(&h, "location");
            let token = location
                .strip_prefix(&content_host)
                .and_then(|rest| rest.strip_suffix(suffix))
                .unwrap_or_else(|| panic!("{location} is not {content_host}<token>{suffix}"));
            assert!(
                !token.is_empty()
                    && token
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{location}"
            );
            assert_eq!(header(&h, "etag"), etag, "{method} {path}");
            assert_eq!(header(&h, "last-modified"), http_date(&item));
            // The client follows it, without any credential, and gets the item's bytes.
            let (status, _, bytes) = send(&stack.http, Method::GET, &location, &[]).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(sha256(&bytes), sha256(&item.bytes), "{path} via {method}");
        }
        assert_eq!(
            stack.emulator().counters().get("content.get") - gets,
            2,
            "only the client's two downloads: the gateway streamed nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_302_honours_conditional_requests() {
    let stack = stack_with(Policy::Redirect302).await;
    let (path, item, etag) = pick(&stack, &stack.url, MediaKind::Photo).await;
    let url = stack.full_url(&path);
    let modified = http_date(&item);
    let second_before =
        httpdate::fmt_http_date(SystemTime::from(item.creation_time) - Duration::from_secs(1));
    for method in [Method::GET, Method::HEAD] {
        for (headers, want) in [
            (
                vec![("If-None-Match", etag.as_str())],
                StatusCode::NOT_MODIFIED,
            ),
            (vec![("If-None-Match", "\"other\"")], StatusCode::FOUND),
            (
                vec![("If-Modified-Since", modified.as_str())],
                StatusCode::NOT_MODIFIED,
            ),
            (
                vec![("If-Modified-Since", second_before.as_str())],
                StatusCode::FOUND,
            ),
            (
                vec![
                    ("If-None-Match", "\"other\""),
                    ("If-Modified-Since", modified.as_str()),
                ],
                StatusCode::FOUND,
            ),
            (
                vec![("If-Match", "\"other\"")],
                StatusCode::PRECONDITION_FAILED,
            ),
            (vec![("If-Match", etag.as_str())], StatusCode::FOUND),
            (
                vec![("If-Unmodified-Since", second_before.as_str())],
                StatusCode::PRECONDITION_FAILED,
            ),
        ] {
            let (status, h, body) = send(&stack.http, method.clone(), &url, &headers).await;
            assert_eq!(status, want, "{method} with {headers:?}");
            assert!(body.is_empty());
            assert_eq!(
                h.contains_key("location"),
                want == StatusCode::FOUND,
                "{method} with {headers:?}: {h:?}"
            );
            if want == StatusCode::NOT_MODIFIED {
                assert_eq!(header(&h, "etag"), etag);
                assert_eq!(header(&h, "last-modified"), modified);
            }
        }
    }
    // Folders are never redirected (with or without their trailing slash), and PROPFIND is
    // unchanged.
    for folder in ["/media", "/media/"] {
        let (status, h, _) = send(&stack.http, Method::GET, &stack.full_url(folder), &[]).await;
        assert!(status.is_success(), "GET {folder}: {status}");
        assert!(!h.contains_key("location"), "GET {folder}");
    }
    assert_eq!(
        stack.list("/media/all/").await.len(),
        stack.emulator().library().items.len()
    );
}

// ---------------------------------------------------------------- native_proxy

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_proxy_head_and_conditional_get() {
    let stack = stack_with(Policy::NativeProxy).await;
    let (path, item, etag) = pick(&stack, &stack.url, MediaKind::Photo).await;
    let url = stack.full_url(&path);
    let len = item.bytes.len();
    check_served_file(&stack.http, &url, &item, &etag).await;
    // No redirect under this policy.
    let (status, h, _) = send(&stack.http, Method::GET, &url, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!h.contains_key("location"));
    assert_eq!(header(&h, "content-length"), len.to_string());
}

/// What a client checks on a file served with its bytes (the tree under native_proxy, or a
/// signed link on a byte node): HEAD, 304s, If-Range, exact ranges.
async fn check_served_file(http: &reqwest::Client, url: &str, item: &FixtureItem, etag: &str) {
    let len = item.bytes.len();
    let modified = http_date(item);

    let (status, h, body) = send(http, Method::HEAD, url, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(header(&h, "content-length"), len.to_string());
    assert_eq!(header(&h, "etag"), etag);
    assert_eq!(header(&h, "last-modified"), modified);
    assert_eq!(header(&h, "accept-ranges"), "bytes");

    for method in [Method::GET, Method::HEAD] {
        for headers in [
            vec![("If-None-Match", etag)],
            vec![("If-Modified-Since", modified.as_str())],
        ] {
            let (status, _, body) = send(http, method.clone(), url, &headers).await;
            assert_eq!(status, StatusCode::NOT_MODIFIED, "{method} {headers:?}");
            assert!(body.is_empty());
        }
    }

    let (status, h, body) = send(http, Method::GET, url, &[("Range", "bytes=10-19")]).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&h, "content-range"), format!("bytes 10-19/{len}"));
    assert_eq!(body, item.bytes[10..20].to_vec());

    let (status, h, body) = send(http, Method::GET, url, &[("Range", "bytes=-100")]).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&h, "content-range"),
        format!("bytes {}-{}/{len}", len - 100, len - 1)
    );
    assert_eq!(body, item.bytes[len - 100..].to_vec());

    // If-Range: the range when the validator still matches, else the whole file.
    for validator in [etag, modified.as_str()] {
        let (status, h, body) = send(
            http,
            Method::GET,
            url,
            &[("Range", "bytes=1000-"), ("If-Range", validator)],
        )
        .await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "If-Range {validator}");
        assert_eq!(
            header(&h, "content-range"),
            format!("bytes 1000-{}/{len}", len - 1)
        );
        assert_eq!(sha256(&body), sha256(&item.bytes[1000..]));
    }
    let (status, _, body) = send(
        http,
        Method::GET,
        url,
        &[("Range", "bytes=1000-"), ("If-Range", "\"changed\"")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&item.bytes));
}

// ---------------------------------------------------------------- use_proxy_url

/// The link's parts, after checking its exact form.
struct Link {
    url: String,
    exp: u64,
    sign: String,
}

fn parse_link(location: &str, node_url: &str, id: &str, name: &str) -> Link {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let prefix = format!(
        "{node_url}d/{}/{}?exp=",
        percent_encoding::utf8_percent_encode(id, SEGMENT),
        percent_encoding::utf8_percent_encode(name, SEGMENT)
    );
    let rest = location
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{location} does not start with {prefix}"));
    let (exp, sign) = rest.split_once("&sign=").expect("exp then sign");
    assert_eq!(sign.len(), 43, "HMAC-SHA256 in base64url without padding");
    assert!(
        sign.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{sign}"
    );
    Link {
        url: location.to_string(),
        exp: exp.parse().unwrap(),
        sign: sign.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_proxy_url_redirects_to_a_signed_link_the_byte_node_streams() {
    let split = split_with(None).await;
    let node = &split.node;
    for kind in [MediaKind::Photo, MediaKind::Video] {
        let (path, item, etag) = pick(node, &split.front.url, kind).await;
        let name = path.rsplit('/').next().unwrap();
        let before = node.emulator().counters().snapshot();
        let (status, h, body) = send(&node.http, Method::GET, &split.front_url(&path), &[]).await;
        assert_eq!(status, StatusCode::FOUND, "{path}");
        assert!(body.is_empty());
        let link = parse_link(&header(&h, "location"), &node.url, &item.id, name);
        let now = unix_now();
        assert!(
            link.exp >= now + 3600 - 5 && link.exp <= now + 3600 + 5,
            "valid for an hour by default: exp {} now {now}",
            link.exp
        );
        assert_eq!(header(&h, "etag"), etag);
        assert_eq!(header(&h, "last-modified"), http_date(&item));
        let (status, _, _) = send(&node.http, Method::HEAD, &split.front_url(&path), &[]).await;
        assert_eq!(status, StatusCode::FOUND, "HEAD is redirected too");

        // The byte node, cold for this item, streams it with no WebDAV credential.
        let (status, h, bytes) = send(&node.http, Method::GET, &link.url, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(header(&h, "content-length"), item.bytes.len().to_string());
        assert_eq!(sha256(&bytes), sha256(&item.bytes), "{path}");
        assert_eq!(header(&h, "etag"), etag, "the same validators as the tree");
        let after = node.emulator().counters().snapshot();
        let delta =
            |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
        assert_eq!(
            delta("mediaItems.batchGet"),
            1,
            "looked up by id: {after:?}"
        );
        for listing in ["albums.list", "mediaItems.list", "mediaItems.search"] {
            assert_eq!(delta(listing), 0, "{listing}: no listing on the byte node");
        }
        assert_eq!(
            library_api_calls(&before, &after),
            [("mediaItems.batchGet".to_string(), 1)].into(),
            "no other Google call"
        );
        check_served_file(&node.http, &link.url, &item, &etag).await;
        // Only GET and HEAD.
        let (status, _, _) = send(
            &node.http,
            Method::from_bytes(b"PROPFIND").unwrap(),
            &link.url,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_link_read_again_comes_from_the_byte_nodes_content_cache() {
    let split = split_with(None).await;
    let node = &split.node;
    for kind in [MediaKind::Photo, MediaKind::Video] {
        let (path, item, _) = pick(node, &split.front.url, kind).await;
        let name = path.rsplit('/').next().unwrap();
        let (status, h, _) = send(&node.http, Method::GET, &split.front_url(&path), &[]).await;
        assert_eq!(status, StatusCode::FOUND, "{path}");
        let link = parse_link(&header(&h, "location"), &node.url, &item.id, name);
        let c = node.emulator().counters();
        let gets = c.get("content.get");
        let (status, _, bytes) = send(&node.http, Method::GET, &link.url, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(sha256(&bytes), sha256(&item.bytes), "{path}");
        assert_eq!(
            c.get("content.get"),
            gets + 1,
            "{path}: the first read asks Google"
        );
        // Again, whole and as a range: exact bytes, no content request.
        let (status, _, bytes) = send(&node.http, Method::GET, &link.url, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(sha256(&bytes), sha256(&item.bytes), "{path}");
        let (status, _, bytes) = send(
            &node.http,
            Method::GET,
            &link.url,
            &[("Range", "bytes=10-99")],
        )
        .await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{path}");
        assert_eq!(bytes, item.bytes[10..100], "{path}");
        assert_eq!(
            c.get("content.get"),
            gets + 1,
            "{path}: served from the cache"
        );
    }
}

/// A byte node whose download Google refuses answers a status with the reason, as the tree
/// does, never a 200 whose body is cut (its answer waits for the first bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_link_whose_download_is_refused_answers_a_status() {
    let split = split_with(None).await;
    let node = &split.node;
    let (path, item, _) = pick(node, &split.front.url, MediaKind::Photo).await;
    let name = path.rsplit('/').next().unwrap();
    let (status, h, _) = send(&node.http, Method::GET, &split.front_url(&path), &[]).await;
    assert_eq!(status, StatusCode::FOUND, "{path}");
    let link = parse_link(&header(&h, "location"), &node.url, &item.id, name);
    node.emulator()
        .inject("content.get", Fault::Status(404), 1, None);
    let (status, h, body) = send(&node.http, Method::GET, &link.url, &[]).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(h.get("content-range").is_none());
    node.emulator().clear_faults();
    let (status, _, bytes) =
        send(&node.http, Method::GET, &link.url, &[("Range", "bytes=5-")]).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(bytes, item.bytes[5..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_links_refuse_bad_signatures_tampering_and_expiry() {
    let split = split_with(Some(120)).await;
    let node = &split.node;
    let (path, item, _) = pick(node, &split.front.url, MediaKind::Photo).await;
    let name = path.rsplit('/').next().unwrap();
    let (_, h, _) = send(&node.http, Method::GET, &split.front_url(&path), &[]).await;
    let link = parse_link(&header(&h, "location"), &node.url, &item.id, name);
    let now = unix_now();
    assert!(
        link.exp >= now + 115 && link.exp <= now + 125,
        "link_ttl_secs = 120"
    );
    let (status, _, bytes) = send(&node.http, Method::GET, &link.url, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&bytes), sha256(&item.bytes));

    let other = node
        .emulator()
        .library()
        .items
        .iter()
        .find(|i| i.id != item.id && i.kind == MediaKind::Photo)
        .unwrap();
    let mut flipped = link.sign.clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let encoded_name = encode_path(name);
    let tampered = [
        (
            "a changed signature",
            link.url.replace(&link.sign, &flipped),
        ),
        ("a signature of another key", {
            let forged = SignKey::new("another-key-0123456789-abcdefghijklmnop")
                .sign(&item.id, name, link.exp);
            link.url.replace(&link.sign, &forged)
        }),
        (
            "no signature",
            link.url.split("&sign=").next().unwrap().to_string(),
        ),
        ("another name", link.url.replace(&encoded_name, "other.jpg")),
        ("another item", link.url.replace(&item.id, &other.id)),
        (
            "a later expiry",
            link.url.replace(
                &format!("exp={}", link.exp),
                &format!("exp={}", link.exp + 3600),
            ),
        ),
        ("extra path", link.url.replace("?exp", "/x?exp")),
    ];
    for (what, url) in &tampered {
        assert_ne!(url, &link.url, "{what}");
        let (status, _, body) = send(&node.http, Method::GET, url, &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {url}");
        assert_eq!(body, b"forbidden\n", "{what}: no detail");
    }
    // Still valid a minute later on the byte node's clock, refused once past exp.
    node.catalog.clock().advance(MINUTE);
    let (status, _, _) = send(&node.http, Method::GET, &link.url, &[]).await;
    assert_eq!(status, StatusCode::OK);
    node.catalog
        .clock()
        .advance(MINUTE + Duration::from_secs(10));
    let (status, _, body) = send(&node.http, Method::GET, &link.url, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "expired");
    assert_eq!(body, b"forbidden\n");
    let (status, _, _) = send(&node.http, Method::HEAD, &link.url, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // An instance without the key (the default) refuses every link, even a well-signed one.
    let keyless = node.gateway(|_| {}).await;
    let exp = unix_now() + 600;
    let sign = SignKey::new(KEY).sign(&item.id, name, exp);
    let url = format!(
        "{}d/{}/{}?exp={exp}&sign={sign}",
        keyless.url, item.id, encoded_name
    );
    let (status, _, body) = send(&node.http, Method::GET, &url, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, b"forbidden\n");
    // The same link is good on the byte node, which has the key.
    let url = url.replace(&keyless.url, &node.url);
    let (status, _, bytes) = send(&node.http, Method::GET, &url, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&bytes), sha256(&item.bytes));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_d_prefix_is_reserved_and_never_a_folder() {
    let stack = stack_with(Policy::NativeProxy).await;
    let names: Vec<String> = stack.list("/").await.iter().map(|e| e.name()).collect();
    assert!(names.contains(&"album".to_string()), "{names:?}");
    assert!(!names.contains(&"d".to_string()), "{names:?}");
    let (status, _, _) = send(&stack.http, Method::GET, &stack.full_url("/d/"), &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = stack.get("/d/x/y.jpg").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = stack.propfind_raw("/d/", Some("1")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

/// Behind Basic auth and a prefix: the front asks for credentials before it redirects, the
/// link itself needs none (the signature is the credential), and links live under the byte
/// node's prefix like its tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_links_need_no_login_and_live_under_the_prefix() {
    let password = "policies-test-password";
    let users = vec![UserConfig {
        name: "alice".into(),
        password_hash: hash_password(password).unwrap(),
        read_only: true,
        root: None,
    }];
    let node = start_custom(opts(), emulator::REFRESH_TOKEN, |c| {
        c.server.users = users.clone();
        c.webdav.prefix = "/photos".into();
        c.webdav.sign_key = Some(SignKey::new(KEY));
    })
    .await;
    assert!(node.url.ends_with("/photos/"), "{}", node.url);
    let front = node
        .gateway(|c| {
            c.server.users = users.clone();
            c.webdav.policy = Policy::UseProxyUrl;
            c.webdav.down_proxy_url = Some(node.url.clone());
            c.webdav.sign_key = Some(SignKey::new(KEY));
        })
        .await;
    let item = node
        .emulator()
        .library()
        .items
        .iter()
        .find(|i| i.kind == MediaKind::Photo && !i.filename.is_empty())
        .unwrap()
        .clone();
    // `{ID}` names resolve whatever the folder's naming did to duplicates.
    let path = format!("/media/all/{}", common::file_names(&[&item])[0])
        .replace(".", &format!(" {{{}}}.", item.id));
    let url = format!("{}{}", front.url, encode_path(&path[1..]));

    let (status, _, _) = send(&node.http, Method::GET, &url, &[]).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the front asks for a login"
    );
    let resp = node
        .http
        .get(&url)
        .basic_auth("alice", Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{}d/{}/", node.url, item.id)),
        "{location}"
    );
    let (status, _, bytes) = send(&node.http, Method::GET, &location, &[]).await;
    assert_eq!(status, StatusCode::OK, "no login for the link");
    assert_eq!(sha256(&bytes), sha256(&item.bytes));

    // The byte node's tree still asks for a login; `/d/` outside the prefix is not a link.
    let (status, _) = node.propfind_raw("/", Some("1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let outside = location.replace("/photos/d/", "/d/");
    let (status, _, _) = send(&node.http, Method::GET, &outside, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------- URL lifetimes

/// The redirecting policies still hand out working locations 55 and 65 minutes later (past
/// Google's 60-minute baseUrl lifetime), refreshing URLs before they are used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_lead_to_the_right_bytes_past_the_url_lifetime() {
    let stack = stack_with(Policy::Redirect302).await;
    let (path, item, _) = pick(&stack, &stack.url, MediaKind::Photo).await;
    for step in [0, 55, 10] {
        stack.advance(MINUTE * step);
        let (status, h, _) = stack.get(&path).await;
        assert_eq!(status, StatusCode::FOUND, "after {step} more minutes");
        let (status, _, bytes) = send(&stack.http, Method::GET, &header(&h, "location"), &[]).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "302_redirect after {step} more minutes"
        );
        assert_eq!(sha256(&bytes), sha256(&item.bytes));
    }

    let split = split_with(None).await;
    let node = &split.node;
    let (path, item, _) = pick(node, &split.front.url, MediaKind::Photo).await;
    for step in [0, 55, 10] {
        split.advance(MINUTE * step);
        let counters = node.emulator().counters();
        let (before, batch) = (counters.snapshot(), counters.get("mediaItems.batchGet"));
        let (status, h, _) = send(&node.http, Method::GET, &split.front_url(&path), &[]).await;
        assert_eq!(status, StatusCode::FOUND);
        let (status, _, bytes) = send(&node.http, Method::GET, &header(&h, "location"), &[]).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "use_proxy_url after {step} more minutes"
        );
        assert_eq!(sha256(&bytes), sha256(&item.bytes));
        // The byte node lists nothing: it looks the item up at first, and refreshes the URL
        // it holds (by then 55 minutes old) before using it.
        assert_eq!(
            counters.get("mediaItems.batchGet") - batch,
            if step == 10 { 0 } else { 1 },
            "after {step} more minutes"
        );
        // Besides the byte node's batchGet, only the front's stale listing may be fetched
        // again (in the background, so not counted exactly).
        let spent = library_api_calls(&before, &counters.snapshot());
        assert!(
            spent.keys().all(|k| [
                "mediaItems.batchGet",
                "albums.list",
                "mediaItems.search",
                "mediaItems.list"
            ]
            .contains(&k.as_str())),
            "after {step} more minutes: {spent:?}"
        );
    }
}

/// `302_redirect` hands a client only URLs at least 5 minutes younger than
/// `url_max_age_secs`, so the client has time to follow them before Google may end them: two
/// hours of GETs, one every 2 minutes, each Location checked against the time the emulator
/// issued that URL, and followed to the exact bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_302_never_hands_out_a_url_older_than_url_max_age() {
    for max_age in [1500u64, 900] {
        let stack = start_custom(opts(), emulator::REFRESH_TOKEN, |c| {
            c.webdav.policy = Policy::Redirect302;
            c.google.url_max_age_secs = max_age;
            // No background revalidation: URLs age exactly as the clocks move.
            c.cache.listing_ttl = 24 * 3600;
        })
        .await;
        let (path, item, _) = pick(&stack, &stack.url, MediaKind::Photo).await;
        let emu = stack.emulator();
        let limit = chrono::Duration::seconds(max_age as i64 - 5 * 60);
        let mut oldest = chrono::Duration::zero();
        for round in 0..60 {
            stack.advance(MINUTE * 2);
            let (status, h, _) = stack.get(&path).await;
            assert_eq!(status, StatusCode::FOUND, "{max_age} s, round {round}");
            let location = header(&h, "location");
            let issued = emu
                .url_issued_at(&location)
                .unwrap_or_else(|| panic!("{location} was not issued by the emulator"));
            let age = emu.clock().now() - issued;
            assert!(
                age < limit,
                "{max_age} s, round {round}: handed out a URL {} s old",
                age.num_seconds()
            );
            oldest = oldest.max(age);
            let (status, _, bytes) = send(&stack.http, Method::GET, &location, &[]).await;
            assert_eq!(status, StatusCode::OK, "{max_age} s, round {round}");
            assert_eq!(sha256(&bytes), sha256(&item.bytes));
        }
        // The URLs handed out came close to the limit: the rounds crossed it many times.
        assert!(
            oldest >= limit - chrono::Duration::minutes(2),
            "{max_age} s: the oldest URL handed out was {} s old",
            oldest.num_seconds()
        );
        assert_eq!(emu.counters().get("content.expired"), 0);
        assert_eq!(emu.counters().get("mediaItems.get"), 0);
    }
}

/// A URL that dies before its time is refused by the content host; the byte node refreshes it
/// once, through batchGet, and retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_byte_node_refreshes_a_refused_url_once() {
    // The second read must reach Google to meet the dead URL: the content cache, which
    // would serve it from disk, is off on the byte node.
    let split = split_on(None, |c| c.cache.content_max = Some("0".into())).await;
    let node = &split.node;
    let (path, item, _) = pick(node, &split.front.url, MediaKind::Photo).await;
    let (_, h, _) = send(&node.http, Method::GET, &split.front_url(&path), &[]).await;
    let link = header(&h, "location");
    let (status, _, _) = send(&node.http, Method::GET, &link, &[]).await;
    assert_eq!(status, StatusCode::OK);
    // Only Google's clock moves: the byte node's URL is dead, the byte node thinks not.
    node.emulator().clock().advance(MINUTE * 61);
    let counters = node.emulator().counters();
    let (before, batch, downloads) = (
        counters.snapshot(),
        counters.get("mediaItems.batchGet"),
        counters.get("content.get"),
    );
    let (status, _, bytes) = send(&node.http, Method::GET, &link, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&bytes), sha256(&item.bytes));
    assert_eq!(counters.get("mediaItems.batchGet") - batch, 1);
    assert_eq!(
        counters.get("content.get") - downloads,
        2,
        "refused, then served"
    );
    assert_eq!(
        library_api_calls(&before, &counters.snapshot()),
        [("mediaItems.batchGet".to_string(), 1)].into(),
        "no other Google call"
    );
}

// ---------------------------------------------------------------- a real client

/// rclone follows both redirects and copies every file byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_copies_through_both_redirecting_policies() {
    let redirecting = stack_with(Policy::Redirect302).await;
    let split = split_with(None).await;
    for (what, stack, url) in [
        ("302_redirect", &redirecting, redirecting.url.clone()),
        ("use_proxy_url", &split.node, split.front.url.clone()),
    ] {
        let lib = stack.emulator().library();
        let (album, dir) = lib
            .albums
            .iter()
            .zip(common::album_names(lib))
            .find(|(a, _)| a.item_ids.len() >= 3)
            .unwrap();
        let want: BTreeMap<String, String> = by_name(&common::album_items(lib, &album.id))
            .into_iter()
            .map(|(name, item)| (name, sha256(&item.bytes)))
            .collect();
        let dest = tempfile::tempdir().unwrap();
        let remote = format!(":webdav:album/{dir}");
        let out = tokio::process::Command::new("rclone")
            .args(["copy", &remote, dest.path().to_str().unwrap()])
            .args(["--webdav-url", &url, "--webdav-vendor", "other"])
            .args(["--retries", "1", "--low-level-retries", "1"])
            .env("RCLONE_CONFIG", "/nonexistent/rclone.conf")
            .output()
            .await
            .expect("rclone must be installed: run tests/run-all.sh");
        assert!(
            out.status.success(),
            "{what}: rclone copy {remote} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: BTreeMap<String, String> = std::fs::read_dir(dest.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    sha256(&std::fs::read(e.path()).unwrap()),
                )
            })
            .collect();
        assert_eq!(got, want, "{what}: names and sha256 of every file");
    }
}
