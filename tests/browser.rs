//! The gallery in a real browser (issue #17): headless Chromium (`/usr/bin/chromium`, Debian's
//! `chromium`) driven through `/usr/bin/chromedriver` (`chromium-driver`), both installed by
//! tests/run-all.sh; missing, these tests fail. One browser session walks the page as a user
//! would: the grid's thumbnails load, the viewer opens and steps with the arrow keys, a video
//! plays from the file's own path and seeks, a file chosen in the upload control becomes an item, a set
//! is picked from the page, and the console stays free of errors. Screenshots go to
//! `target/tmp/browser/` (never into tracked files).

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{Stack, start_custom};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use gphotos_dav_emulator::{self as emulator, EmulatorOptions, MediaKind};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const DEADLINE: Duration = Duration::from_secs(60);

/// chromedriver on a free port, ended with the test.
struct Driver {
    _child: Child,
    url: String,
}

async fn chromedriver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect(
            "/usr/bin/chromedriver runs (Debian's chromium-driver; tests/run-all.sh installs it)",
        );
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    common::wait_for_line(&mut lines, "started successfully", &mut seen).await;
    // Keep reading, so that chromedriver never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Driver {
        _child: child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--autoplay-policy=no-user-gesture-required"],
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    tokio::time::timeout(
        DEADLINE,
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url),
    )
    .await
    .expect("the browser starts in time")
    .expect("chromedriver starts /usr/bin/chromium")
}

/// chromedriver's console log since the last call (its own endpoint; not in W3C WebDriver).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or("")))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// The console's errors (level SEVERE) since the last call, of our pages only: the
/// emulator's stand-in for Google's picking page is not ours (its missing favicon is a 404).
async fn console_errors(c: &Client, ours: &str) -> Vec<String> {
    let log = c.issue_cmd(BrowserLog).await.expect("the console log");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .filter(|m| {
            let theirs = m.split_whitespace().next().unwrap_or("");
            !theirs.starts_with("http") || theirs.contains(ours)
        })
        .collect()
}

/// Fails with the errors when there are any.
async fn no_console_errors(c: &Client, ours: &str) {
    let errors = console_errors(c, ours).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

/// Evaluates `script` (a function body) until it returns something truthy.
async fn until(c: &Client, what: &str, script: &str) -> Value {
    let found = tokio::time::timeout(DEADLINE, async {
        loop {
            let v = c.execute(script, vec![]).await.expect("script runs");
            if !v.is_null() && v != json!(false) && v != json!(0) && v != json!("") {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("in time: {what}"))
}

async fn screenshot(c: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn writable_stack() -> Stack {
    start_custom(
        EmulatorOptions {
            picker_poll_interval: Duration::from_millis(20),
            ..EmulatorOptions::default()
        },
        emulator::REFRESH_TOKEN,
        |c| {
            c.server.read_only = false;
            c.server.users = vec![
                common::user("alice", "alice pw", false),
                common::user("bob", "bob pw", true),
            ];
        },
    )
    .await
}

/// `http://user:pw@host:port/path`: Chromium sends the credentials with the page's own
/// requests to the origin from then on.
fn url_as(stack: &Stack, user: &str, path: &str) -> String {
    stack
        .url
        .replacen("http://", &format!("http://{user}:{user}%20pw@"), 1)
        .trim_end_matches('/')
        .to_string()
        + path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gallery_in_a_browser() {
    let stack = writable_stack().await;
    let driver = chromedriver().await;
    let c = browser(&driver).await;
    let counters = stack.emulator().counters();
    let lib = stack.emulator().library();
    // Our origin as the console names it (with the credentials of the address).
    let ours = stack
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();

    // The grid: one loaded thumbnail per item, and what Google sent were size variants.
    c.goto(&url_as(&stack, "alice", "/media/all/"))
        .await
        .unwrap();
    let items = until(
        &c,
        "the grid",
        "return document.querySelectorAll('#grid img').length",
    )
    .await
    .as_u64()
    .unwrap();
    assert_eq!(items, lib.items.len() as u64);
    screenshot(&c, "gallery").await;
    // Lazy images load as they scroll in: scroll to each.
    let loaded = until(
        &c,
        "every thumbnail loaded",
        "const imgs = Array.from(document.querySelectorAll('#grid img'));
         imgs.forEach(i => { if (!i.complete) i.scrollIntoView(); });
         return imgs.every(i => i.complete && i.naturalWidth > 0) && imgs.length;",
    )
    .await;
    assert_eq!(loaded.as_u64(), Some(items));
    let tiny: u64 = lib
        .items
        .iter()
        .filter(|i| i.kind == MediaKind::Photo && i.width <= 256 && i.height <= 256)
        .map(|i| i.bytes.len() as u64)
        .sum();
    let originals: u64 = lib.items.iter().map(|i| i.bytes.len() as u64).sum();
    let sized = counters.bytes("content.sized");
    assert_eq!(
        counters.bytes("content.original"),
        tiny,
        "no original but the tiny photos"
    );
    assert!(
        sized > 0 && (sized + tiny) * 4 < originals,
        "{sized} + {tiny} of {originals}"
    );
    c.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();

    // The viewer: a plain click opens the photo at screen size; right and left step.
    let first_photo = until(
        &c,
        "a photo tile",
        "const t = document.querySelector('a.tile[data-kind=photo]'); return t && t.getAttribute('href');",
    )
    .await;
    c.find(Locator::Css("a.tile[data-kind=photo]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let src = until(
        &c,
        "the viewer's photo",
        "const i = document.querySelector('#viewer:not([hidden]) #viewer-img');
         return i && i.complete && i.naturalWidth > 0 && i.getAttribute('src');",
    )
    .await;
    assert!(
        src.as_str().unwrap().contains("/_/thumb/") && src.as_str().unwrap().contains("?w="),
        "{src}"
    );
    let download = c
        .execute(
            "return document.getElementById('viewer-download').getAttribute('href')",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        download, first_photo,
        "the download link is the file's own path"
    );
    screenshot(&c, "viewer").await;
    let body = c.find(Locator::Css("body")).await.unwrap();
    let title = || {
        c.execute(
            "return document.querySelector('#viewer .title').textContent",
            vec![],
        )
    };
    let before = title().await.unwrap();
    body.send_keys("\u{E014}").await.unwrap(); // ArrowRight
    let after = title().await.unwrap();
    assert_ne!(before, after);
    body.send_keys("\u{E012}").await.unwrap(); // ArrowLeft
    assert_eq!(title().await.unwrap(), before);
    body.send_keys("\u{E00C}").await.unwrap(); // Escape
    until(
        &c,
        "the viewer closed",
        "return document.getElementById('viewer').hidden",
    )
    .await;

    // A video plays from its own path and seeks: the fixture library's MP4 videos are real
    // two-second clips (padded to their size with a `free` box), which Chromium decodes.
    let clip = lib
        .items
        .iter()
        .find(|i| i.mime_type == "video/mp4")
        .expect("the library has an MP4 video");
    let tile = format!("a.tile[data-kind=video][data-name=\"{}\"]", clip.filename);
    let video_path = c
        .find(Locator::Css(&tile))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .expect("a tile's href");
    c.execute(
        "document.querySelector(arguments[0]).click()",
        vec![json!(tile)],
    )
    .await
    .unwrap();
    let video_src = until(
        &c,
        "the viewer's video",
        "const v = document.getElementById('viewer-video'); return v && v.getAttribute('src');",
    )
    .await;
    assert_eq!(video_src.as_str(), Some(video_path.as_str()));
    let duration = until(
        &c,
        "the video's metadata",
        "const v = document.getElementById('viewer-video');
         if (v && v.error) return 'error ' + v.error.code + ' ' + v.error.message;
         return v && v.readyState >= 1 && v.duration > 0 && v.duration;",
    )
    .await;
    let duration = duration
        .as_f64()
        .unwrap_or_else(|| panic!("the clip decodes: {duration}"));
    assert!(
        (duration - 2.0).abs() < 0.05,
        "a two-second clip: {duration}"
    );
    // Seek past the middle, paused (so only the seek moves the position).
    let target = duration * 0.75;
    c.execute(
        "const v = document.getElementById('viewer-video');
         v.pause();
         window.seekDone = null;
         const start = performance.now();
         v.addEventListener('seeked', () => {
           window.seekDone = { at: v.currentTime, ms: performance.now() - start,
                               ready: v.readyState, paused: v.paused,
                               seekable: v.seekable.length ? v.seekable.end(0) : 0 };
         }, { once: true });
         v.currentTime = arguments[0];",
        vec![json!(target)],
    )
    .await
    .unwrap();
    let seeked = until(&c, "the video seeked", "return window.seekDone;").await;
    println!("video {} seeked to {seeked}", clip.filename);
    let at = seeked["at"].as_f64().unwrap();
    assert!((at - target).abs() < 0.01, "at {at}, asked {target}");
    assert_eq!(seeked["paused"], json!(true));
    assert!(
        seeked["ready"].as_u64().unwrap() >= 2,
        "a frame at the new position: {seeked}"
    );
    assert!(
        seeked["seekable"].as_f64().unwrap() >= duration - 0.01,
        "the whole clip is seekable: {seeked}"
    );
    // The element's Range requests go to the same GET path as any client's: a range of the
    // file is exactly those bytes of Google's original.
    let part = reqwest::Client::new()
        .get(format!("{}{video_path}", stack.url.trim_end_matches('/')))
        .basic_auth("alice", Some("alice pw"))
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), reqwest::StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().await.unwrap(), clip.bytes.slice(1000..2000));
    body.send_keys("\u{E00C}").await.unwrap();
    no_console_errors(&c, &ours).await;

    // Upload: a file chosen in the album's upload control becomes an item of the album.
    c.goto(&url_as(&stack, "alice", "/album/Pets/"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("from-the-browser.jpg");
    std::fs::write(&photo, common::jpeg(320, 240, 7, 90)).unwrap();
    c.find(Locator::Id("upload"))
        .await
        .unwrap()
        .send_keys(photo.to_str().unwrap())
        .await
        .unwrap();
    until(
        &c,
        "the uploaded item in the grid",
        "return Array.from(document.querySelectorAll('a.tile')).some(a => a.dataset.name === 'from-the-browser.jpg')",
    )
    .await;
    assert_eq!(counters.get("mediaItems.batchCreate"), 1);
    no_console_errors(&c, &ours).await;

    // Picking: a set named on the page, picked on Google's page, shown under /picked/.
    c.goto(&url_as(&stack, "alice", "/picked/")).await.unwrap();
    let form = c.find(Locator::Id("pick-form")).await.unwrap();
    form.find(Locator::Css("input[name=name]"))
        .await
        .unwrap()
        .send_keys("From the browser")
        .await
        .unwrap();
    form.find(Locator::Css("button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let link = until(
        &c,
        "the picking link",
        "const a = document.getElementById('picker-link'); return a && a.href;",
    )
    .await;
    until(
        &c,
        "the QR code",
        "const i = document.querySelector('#pick-session img'); return i && i.complete && i.naturalWidth > 0;",
    )
    .await;
    screenshot(&c, "picking").await;
    // The user picks on Google's page (the emulator's stand-in), in another tab.
    let ids: Vec<&str> = lib
        .items
        .iter()
        .filter(|i| i.kind == MediaKind::Photo)
        .take(2)
        .map(|i| i.id.as_str())
        .collect();
    let page = c.window().await.unwrap();
    let tab = c.new_window(true).await.unwrap();
    c.switch_to_window(tab.handle).await.unwrap();
    c.goto(&format!("{}?ids={}", link.as_str().unwrap(), ids.join(",")))
        .await
        .unwrap();
    c.close_window().await.unwrap();
    c.switch_to_window(page).await.unwrap();
    until(
        &c,
        "the new set on the page",
        "return document.querySelector('.folders a[href=\"/picked/From%20the%20browser/\"]') !== null",
    )
    .await;
    no_console_errors(&c, &ours).await;

    // Another site cannot drive the API with this browser's credentials.
    let foreign = reqwest::Client::new()
        .post(stack.full_url("/_/api/picks"))
        .basic_auth("alice", Some("alice pw"))
        .header("origin", "http://evil.example")
        .json(&json!({"name": "evil"}))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), reqwest::StatusCode::FORBIDDEN);

    // A read-only user sees no upload control, and no picking form.
    c.goto(&url_as(&stack, "bob", "/album/Pets/"))
        .await
        .unwrap();
    until(
        &c,
        "bob's page",
        "return document.querySelectorAll('a.tile').length",
    )
    .await;
    assert_eq!(
        c.execute("return document.getElementById('upload') === null", vec![])
            .await
            .unwrap(),
        json!(true)
    );
    c.goto(&url_as(&stack, "bob", "/picked/")).await.unwrap();
    until(
        &c,
        "bob's picked page",
        "return document.querySelector('.crumbs') !== null",
    )
    .await;
    assert_eq!(
        c.execute(
            "return document.getElementById('pick-form') === null",
            vec![]
        )
        .await
        .unwrap(),
        json!(true)
    );
    no_console_errors(&c, &ours).await;
    c.close().await.unwrap();
}
