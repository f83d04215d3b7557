//! Shared test harness: an in-process emulator and gateway on ephemeral ports, plus a small
//! WebDAV client (PROPFIND parsing, GET, sha256).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};

use gphotos_dav::catalog::Catalog;
use gphotos_dav::google::RetryPolicy;
use gphotos_dav::server::{Config, Server, Tuning};
use gphotos_dav_emulator::{
    self as emulator, Emulator, EmulatorOptions, FixtureItem, Library, RunningEmulator,
};
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

pub struct Stack {
    pub emu: RunningEmulator,
    /// The gateway's root URL, with a trailing slash.
    pub url: String,
    pub http: reqwest::Client,
    /// The gateway's catalog (its clock, its download URLs).
    pub catalog: Catalog,
    _stop: oneshot::Sender<()>,
    _store_dir: tempfile::TempDir,
}

/// One more gateway, serving the same emulator as a [`Stack`] (a byte node, a second front).
pub struct Gateway {
    /// Its root URL, with a trailing slash.
    pub url: String,
    pub catalog: Catalog,
    _stop: oneshot::Sender<()>,
    /// Holds the gateway's metadata store unless the test chose its own `[cache] path`.
    _store_dir: tempfile::TempDir,
}

pub async fn start() -> Stack {
    start_with(EmulatorOptions::default(), emulator::REFRESH_TOKEN).await
}

pub async fn start_with(opts: EmulatorOptions, refresh_token: &str) -> Stack {
    start_custom(opts, refresh_token, |_| {}).await
}

/// Like [`start_with`], with a last say on the gateway's configuration (its policy, ...).
pub async fn start_custom(
    opts: EmulatorOptions,
    refresh_token: &str,
    customize: impl FnOnce(&mut Config),
) -> Stack {
    try_start_custom(opts, refresh_token, customize)
        .await
        .expect("server binds")
}

/// Like [`start_custom`], returning the start-up error instead of panicking.
pub async fn try_start_custom(
    opts: EmulatorOptions,
    refresh_token: &str,
    customize: impl FnOnce(&mut Config),
) -> Result<Stack, String> {
    let emu = Emulator::start(opts, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("emulator starts");
    try_start_on(emu, refresh_token, customize).await
}

/// A stack over an emulator already running, so that its figures (the library's size) can
/// shape the gateway's configuration.
pub async fn start_on(emu: RunningEmulator, customize: impl FnOnce(&mut Config)) -> Stack {
    try_start_on(emu, emulator::REFRESH_TOKEN, customize)
        .await
        .expect("server binds")
}

async fn try_start_on(
    emu: RunningEmulator,
    refresh_token: &str,
    customize: impl FnOnce(&mut Config),
) -> Result<Stack, String> {
    let gateway = try_gateway(&emu, refresh_token, customize).await?;
    Ok(Stack {
        emu,
        url: gateway.url,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        catalog: gateway.catalog,
        _stop: gateway._stop,
        _store_dir: gateway._store_dir,
    })
}

/// Starts a gateway on an ephemeral port against `emu`.
pub async fn try_gateway(
    emu: &RunningEmulator,
    refresh_token: &str,
    customize: impl FnOnce(&mut Config),
) -> Result<Gateway, String> {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.google.client_id = Some(emulator::CLIENT_ID.into());
    config.google.client_secret = Some(emulator::CLIENT_SECRET.into());
    config.google.refresh_token = Some(refresh_token.into());
    config.google.api_base = emu.api_base();
    config.google.token_url = emu.token_url();
    config.google.picker_base = emu.picker_base();
    let store_dir = tempfile::tempdir().unwrap();
    config.cache.path = Some(store_dir.path().join("metadata.sqlite"));
    // The content cache is on, as by default, in a directory of this gateway's own (never
    // the user's cache directory); tests that count downloads see it at work.
    config.cache.content_dir = Some(store_dir.path().join("content"));
    customize(&mut config);
    config.validate().expect("valid config");
    let tuning = Tuning {
        retry: RetryPolicy::immediate(),
    };
    let server = Server::bind_tuned(&config, tuning)
        .await
        .map_err(|e| e.to_string())?;
    let url = server.url();
    let catalog = server.catalog().clone();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(server.serve(async {
        let _ = rx.await;
    }));
    Ok(Gateway {
        url,
        catalog,
        _stop: tx,
        _store_dir: store_dir,
    })
}

impl Stack {
    /// One more gateway on this stack's emulator.
    pub async fn gateway(&self, customize: impl FnOnce(&mut Config)) -> Gateway {
        try_gateway(&self.emu, emulator::REFRESH_TOKEN, customize)
            .await
            .expect("gateway starts")
    }

    /// Moves time forward for Google (the emulator) and for this stack's gateway alike.
    pub fn advance(&self, d: Duration) {
        self.emulator().clock().advance(d);
        self.catalog.clock().advance(d);
    }
}

/// One `<D:response>` of a multistatus, with the properties of its first (200) propstat.
#[derive(Debug, Clone)]
pub struct DavEntry {
    /// The decoded href.
    pub href: String,
    pub props: BTreeMap<String, String>,
    pub is_collection: bool,
}

impl DavEntry {
    pub fn size(&self) -> u64 {
        self.props["getcontentlength"].parse().unwrap()
    }
    /// The last path segment (decoded).
    pub fn name(&self) -> String {
        self.href
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap()
            .to_string()
    }
}

pub fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

pub fn encode_path(path: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(path, SET).to_string()
}

pub fn parse_multistatus(xml: &str) -> Vec<DavEntry> {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("bad XML {e}: {xml}"));
    let mut out = Vec::new();
    for resp in doc
        .descendants()
        .filter(|n| n.has_tag_name(("DAV:", "response")))
    {
        let href = resp
            .children()
            .find(|n| n.has_tag_name(("DAV:", "href")))
            .and_then(|n| n.text())
            .unwrap();
        let propstat = resp
            .children()
            .find(|n| n.has_tag_name(("DAV:", "propstat")))
            .unwrap();
        let prop = propstat
            .children()
            .find(|n| n.has_tag_name(("DAV:", "prop")))
            .unwrap();
        let mut props = BTreeMap::new();
        let mut is_collection = false;
        for p in prop.children().filter(|n| n.is_element()) {
            if p.tag_name().name() == "resourcetype" {
                is_collection = p.children().any(|c| c.has_tag_name(("DAV:", "collection")));
            }
            props.insert(
                p.tag_name().name().to_string(),
                p.text().unwrap_or("").to_string(),
            );
        }
        out.push(DavEntry {
            href: decode(href),
            props,
            is_collection,
        });
    }
    out
}

/// Whether an emulator counter kind is a Library API call (albums, media items, uploads),
/// whichever method it is: not a token, picker or content host request.
pub fn is_library_api(kind: &str) -> bool {
    kind.starts_with("albums.")
        || kind.starts_with("mediaItems.")
        || kind.starts_with("sharedAlbums.")
        || kind == "uploads"
}

/// The Library API calls made between two counter snapshots, by kind (kinds not called are
/// left out).
pub fn library_api_calls(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|(k, _)| is_library_api(k))
        .filter_map(|(k, v)| {
            let spent = v - before.get(k).copied().unwrap_or(0);
            (spent > 0).then(|| (k.clone(), spent))
        })
        .collect()
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Stack {
    pub fn emulator(&self) -> &Emulator {
        &self.emu.emulator
    }

    pub fn full_url(&self, path: &str) -> String {
        format!("{}{}", self.url, encode_path(path.trim_start_matches('/')))
    }

    /// PROPFIND with an optional Depth header and an empty body (allprop).
    pub async fn propfind_raw(&self, path: &str, depth: Option<&str>) -> (StatusCode, String) {
        let mut req = self.http.request(
            Method::from_bytes(b"PROPFIND").unwrap(),
            self.full_url(path),
        );
        if let Some(d) = depth {
            req = req.header("Depth", d);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.text().await.unwrap())
    }

    /// PROPFIND that must answer 207; returns its entries.
    pub async fn propfind(&self, path: &str, depth: Option<&str>) -> Vec<DavEntry> {
        let (status, body) = self.propfind_raw(path, depth).await;
        assert_eq!(status, StatusCode::MULTI_STATUS, "PROPFIND {path}: {body}");
        parse_multistatus(&body)
    }

    /// The children of a folder (Depth 1, without the folder itself).
    pub async fn list(&self, path: &str) -> Vec<DavEntry> {
        let mut entries = self.propfind(path, Some("1")).await;
        assert!(!entries.is_empty());
        entries.remove(0);
        entries
    }

    pub async fn get(&self, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
        let resp = self.http.get(self.full_url(path)).send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        (status, headers, resp.bytes().await.unwrap().to_vec())
    }

    pub async fn get_range(
        &self,
        path: &str,
        range: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
        let resp = self
            .http
            .get(self.full_url(path))
            .header("Range", range)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        (status, headers, resp.bytes().await.unwrap().to_vec())
    }
}

/// The names the tree must show for `(id, name)` pairs: an independent statement of the
/// naming rules (`/` → `／`, empty → id, duplicates each get ` {ID}` before the extension).
pub fn expected_names(entries: &[(&str, &str)], is_file: bool) -> Vec<String> {
    let bases: Vec<String> = entries
        .iter()
        .map(|(id, n)| {
            if n.is_empty() {
                id.to_string()
            } else {
                n.replace('/', "／")
            }
        })
        .collect();
    let mut counts = HashMap::new();
    for b in &bases {
        *counts.entry(b.clone()).or_insert(0) += 1;
    }
    bases
        .iter()
        .zip(entries)
        .map(|(b, (id, _))| {
            if counts[b] == 1 {
                b.clone()
            } else if is_file && b.rfind('.').is_some_and(|i| i > 0) {
                let i = b.rfind('.').unwrap();
                format!("{} {{{id}}}{}", &b[..i], &b[i..])
            } else {
                format!("{b} {{{id}}}")
            }
        })
        .collect()
}

pub fn album_names(lib: &Library) -> Vec<String> {
    let pairs: Vec<(&str, &str)> = lib
        .albums
        .iter()
        .map(|a| (a.id.as_str(), a.title.as_str()))
        .collect();
    expected_names(&pairs, false)
}

pub fn file_names(items: &[&FixtureItem]) -> Vec<String> {
    // The fixture's filenames all carry a fitting extension; the nameless item is a JPEG.
    let named: Vec<String> = items
        .iter()
        .map(|i| {
            if i.filename.is_empty() {
                assert_eq!(i.mime_type, "image/jpeg");
                format!("{}.jpg", i.id)
            } else {
                i.filename.clone()
            }
        })
        .collect();
    let pairs: Vec<(&str, &str)> = items
        .iter()
        .zip(&named)
        .map(|(i, n)| (i.id.as_str(), n.as_str()))
        .collect();
    expected_names(&pairs, true)
}

pub fn album_items<'a>(lib: &'a Library, album_id: &str) -> Vec<&'a FixtureItem> {
    let album = lib.albums.iter().find(|a| a.id == album_id).unwrap();
    album
        .item_ids
        .iter()
        .map(|id| lib.item(id).unwrap())
        .collect()
}

/// name → item for a folder of `items`.
pub fn by_name<'a>(items: &[&'a FixtureItem]) -> BTreeMap<String, &'a FixtureItem> {
    file_names(items)
        .into_iter()
        .zip(items.iter().copied())
        .collect()
}

/// The gphotos-dav binary built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_gphotos-dav");

/// Reads lines from a child's pipe until one contains `marker`; returns that line.
pub async fn wait_for_line<R: tokio::io::AsyncRead + Unpin>(
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

/// A new, empty directory for one child process's `XDG_CACHE_HOME`, so that every server a
/// test starts has a metadata store of its own (the default store lives in the user's cache
/// directory, and tests run in parallel). Left in the system's temp directory.
pub fn isolated_cache() -> std::path::PathBuf {
    tempfile::Builder::new()
        .prefix("gphotos-dav-test-cache-")
        .tempdir()
        .unwrap()
        .keep()
}

pub fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .env("XDG_CACHE_HOME", isolated_cache())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_LOG", "info")
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Writes a config for a `serve` child process pointed at `emu`, returns its path.
pub fn serve_config(dir: &std::path::Path, emu: &RunningEmulator) -> std::path::PathBuf {
    let path = dir.join("webdav.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{}",
            emu.google_config()
        ),
    )
    .unwrap();
    path
}

/// Starts `gphotos-dav serve` as a child process on `emu`; returns it and its URL.
pub async fn spawn_serve(
    dir: &std::path::Path,
    emu: &RunningEmulator,
) -> (tokio::process::Child, String) {
    let path = serve_config(dir, emu);
    let mut serve = spawn(&["serve", "--config", path.to_str().unwrap()]);
    let mut err = BufReader::new(serve.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let line = wait_for_line(&mut err, "listening on http://", &mut seen).await;
    // Keep draining the log so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = err.next_line().await {} });
    let url = line[line.find("http://").unwrap()..].trim().to_string();
    (serve, url)
}

/// Runs rclone with retries off (one try per request, one pass), so its retries cannot hide
/// our errors, and with no configuration file of the user's.
pub async fn rclone(args: &[&str]) -> std::process::Output {
    Command::new("rclone")
        .args(args)
        .args(["--retries", "1", "--low-level-retries", "1"])
        .env("RCLONE_CONFIG", "/nonexistent/rclone.conf")
        .output()
        .await
        .expect("rclone must be installed: run tests/run-all.sh")
}

mod google;
pub use google::google_with;

/// A Google client (Library, Picker, content) on `emu` with its refresh token, retrying at once.
pub fn google_on(emu: &RunningEmulator) -> gphotos_dav::google::Google {
    google_with(emu, emulator::REFRESH_TOKEN, RetryPolicy::immediate())
}

/// A small MP4 as sniffers see one: `ftyp`, then `mdat` noise.
pub fn mp4(len: usize, seed: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&32u32.to_be_bytes());
    out.extend_from_slice(b"ftypisom\0\0\x02\0isomiso2avc1mp41");
    out.extend_from_slice(&((len - 32) as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    let mut x = seed as u32 | 1;
    while out.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        out.push((x >> 16) as u8);
    }
    out
}

/// Runs cadaver at `path` in `cwd` with `script` on its stdin (and an empty HOME, so no
/// user's .netrc or .cadaverrc counts); returns whether it exited 0, and all it printed.
pub async fn cadaver(
    stack: &Stack,
    path: &str,
    cwd: &std::path::Path,
    script: &[u8],
) -> (bool, String) {
    let home = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new("cadaver")
        .arg("-t")
        .arg(stack.full_url(path))
        .current_dir(cwd)
        .env("HOME", home.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cadaver must be installed: run tests/run-all.sh");
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, script)
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A baseline JPEG of `w`×`h` noise (seeded), without EXIF.
pub fn jpeg(w: u32, h: u32, seed: u64, quality: u8) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2).wrapping_add(1);
    let pixels: Vec<u8> = (0..w * h * 3)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode(&pixels, w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// A `[[server.users]]` entry that sees the whole tree, with `password` hashed.
pub fn user(
    name: &str,
    password: &str,
    read_only: bool,
) -> gphotos_dav::server::config::UserConfig {
    gphotos_dav::server::config::UserConfig {
        name: name.into(),
        password_hash: gphotos_dav::server::auth::hash_password(password).unwrap(),
        read_only,
        root: None,
    }
}
