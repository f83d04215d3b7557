//! What the benchmarks share: starting the emulator in the benchmark's process and the
//! `gphotos-dav serve` binary as a child process (so its CPU time and peak RSS are the
//! proxy's alone), reading those figures from /proc, one download loop used for every
//! side of a comparison, and the verdict lines.
//!
//! Each benchmark is its own `harness = false` target, run with `cargo bench --bench NAME`
//! (release profile); `cargo test --tests` never runs them. Figures are wall-clock by nature:
//! they are printed, with the target and PASS or MISS, never asserted as a test would.
//! Correctness (exact bytes, counts) is asserted, because a fast wrong answer is no result.

#![allow(dead_code)] // Each benchmark uses part of this module.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use gphotos_dav_emulator::RunningEmulator;
use gphotos_dav_emulator::{
    self as emulator, BIG_ITEM_ALBUM, BIG_ITEM_FILENAME, Emulator, EmulatorOptions,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const MIB: u64 = 1024 * 1024;
pub const GIB: u64 = 1024 * MIB;

/// The release binary cargo built for this benchmark.
pub const BIN: &str = env!("CARGO_BIN_EXE_gphotos-dav");

/// Prints the machine the figures come from.
pub fn print_machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!(
        "machine: {cores} cores ({cpu}), load average {} at start",
        load.join(" ")
    );
}

/// Starts the emulator in this process.
pub async fn emulator(opts: EmulatorOptions) -> RunningEmulator {
    Emulator::start(opts, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("emulator starts")
}

#[path = "../../tests/common/google.rs"]
mod google;

/// The product's Google client on `emu` (the emulator's credentials, default retries), for
/// benchmarks that call the Library API without a server in between.
pub fn google_on(emu: &RunningEmulator) -> gphotos_dav::google::Google {
    google::google_with(
        emu,
        gphotos_dav_emulator::REFRESH_TOKEN,
        gphotos_dav::google::RetryPolicy::default(),
    )
}

/// A `gphotos-dav serve` child process pointed at an emulator.
pub struct Proxy {
    pub child: Child,
    /// `http://127.0.0.1:PORT/`
    pub url: String,
    pub pid: u32,
    /// `http://127.0.0.1:PORT/metrics`: the server's Prometheus figures.
    pub metrics_url: String,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// Writes a config for `emu` (plus `cache`, lines for its `[cache]` table) and starts
    /// the server; returns once it listens. Its metadata store is a new file in its own
    /// temporary directory: every Proxy starts cold.
    pub async fn spawn(emu: &RunningEmulator, cache: &str) -> Proxy {
        Proxy::spawn_with(emu, "", cache).await
    }

    /// [`Proxy::spawn`] with `google`, more lines for its `[google]` table (quotas).
    pub async fn spawn_with(emu: &RunningEmulator, google: &str, cache: &str) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), emu, google, cache);
        let mut child = Command::new(BIN)
            .args(["serve", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "info")
            .kill_on_drop(true)
            .spawn()
            .expect("gphotos-dav serve starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = String::new();
        let mut metrics_url = None;
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                seen.push_str(&line);
                seen.push('\n');
                if let Some(at) = line.find("metrics on http://") {
                    metrics_url = Some(line[at + "metrics on ".len()..].trim().to_owned());
                }
                if let Some(at) = line.find("listening on http://") {
                    return Some(line[at + "listening on ".len()..].trim().to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("gphotos-dav serve did not start:\n{seen}"));
        let metrics_url = metrics_url
            .unwrap_or_else(|| panic!("gphotos-dav serve gave no metrics address:\n{seen}"));
        // Keep draining its log so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let pid = child.id().unwrap();
        Proxy {
            child,
            url,
            pid,
            metrics_url,
            _dir: dir,
        }
    }

    /// The value of the server's metric `name` (the unlabelled series), from `/metrics`.
    pub async fn metric(&self, http: &reqwest::Client, name: &str) -> Option<f64> {
        let text = http
            .get(&self.metrics_url)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    /// User plus system CPU seconds the server has used so far.
    pub fn cpu_secs(&self) -> f64 {
        cpu_secs(self.pid)
    }

    /// System (kernel) CPU seconds the server has used so far.
    pub fn sys_secs(&self) -> f64 {
        sys_secs(self.pid)
    }

    /// The server's peak resident set size (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        status_kib(self.pid, "VmHWM:")
    }

    /// The server's current resident set size (VmRSS) in KiB.
    pub fn rss_kib(&self) -> u64 {
        status_kib(self.pid, "VmRSS:")
    }

    /// Starts the server's peak RSS (VmHWM) again from its current RSS (Linux's
    /// `/proc/PID/clear_refs`), to measure the peak of one phase.
    pub fn reset_peak_rss(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").unwrap();
    }

    /// The metadata store's size on disk in bytes (the SQLite file and its write-ahead log).
    pub fn store_bytes(&self) -> u64 {
        ["metadata.sqlite", "metadata.sqlite-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(self._dir.path().join(f)).ok())
            .map(|m| m.len())
            .sum()
    }

    /// The server's own directory (its store, and its content cache in `content/`).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// The big item through the proxy.
    pub fn big_item_url(&self) -> String {
        format!(
            "{}album/{}/{}",
            self.url,
            BIG_ITEM_ALBUM.replace(' ', "%20"),
            BIG_ITEM_FILENAME
        )
    }
}

fn write_config(dir: &Path, emu: &RunningEmulator, google: &str, cache: &str) -> PathBuf {
    let path = dir.join("webdav.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n{}{google}[cache]\npath = \"{}\"\ncontent_dir = \"{}\"\n{}{cache}\n",
            emu.google_config(),
            dir.join("metadata.sqlite").display(),
            dir.join("content").display(),
            // The proxy's own figures are measured with the content cache off (issue #16).
            if cache.contains("content_max") {
                ""
            } else {
                "content_max = \"0\"\n"
            },
        ),
    )
    .unwrap();
    path
}

/// utime + stime of a process, in seconds (fields 14 and 15 of /proc/PID/stat, in clock
/// ticks; Linux reports them in USER_HZ = 100 per second).
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name (field 2) may hold spaces: count fields after its closing ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// System (kernel) CPU seconds of a process: for a proxy, mostly copying through sockets.
pub fn sys_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[12].parse::<u64>().unwrap() as f64 / 100.0
}

fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The download URL (`baseUrl=dv`) the Library API hands out for the big item: what a
/// client without the proxy would fetch.
pub async fn direct_big_item_url(http: &reqwest::Client, emu: &RunningEmulator) -> String {
    let token: serde_json::Value = http
        .post(emu.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", emulator::CLIENT_ID),
            ("client_secret", emulator::CLIENT_SECRET),
            ("refresh_token", emulator::REFRESH_TOKEN),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().expect("an access token");
    let id = &emu.emulator.library().big_item.as_ref().unwrap().id;
    let item: serde_json::Value = http
        .get(format!("{}/v1/mediaItems/{id}", emu.api_base()))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    format!("{}=dv", item["baseUrl"].as_str().expect("a baseUrl"))
}

/// What one download received.
pub struct Fetched {
    pub status: u16,
    /// The Content-Range header, if any.
    pub content_range: Option<String>,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Whether every byte matched the big item's bytes at its offset (when checked).
    pub exact: Option<bool>,
}

/// GETs `url` (with `range`, if any) and reads the whole body, timing from the request to
/// the last byte. With `check = Some((item, offset))`, compares every byte with the big
/// item's bytes from `offset` on; the comparison costs client CPU, so timed comparisons
/// pass None on both sides.
pub async fn fetch(
    http: &reqwest::Client,
    url: &str,
    range: Option<&str>,
    check: Option<(&emulator::BigItem, u64)>,
) -> Fetched {
    let started = Instant::now();
    let mut req = http.get(url);
    if let Some(range) = range {
        req = req.header("Range", range);
    }
    let mut resp = req.send().await.expect("the request is answered");
    let status = resp.status().as_u16();
    let content_range = resp
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut bytes = 0u64;
    let mut exact = check.map(|_| true);
    let mut expected = Vec::new();
    while let Some(chunk) = resp.chunk().await.expect("the body arrives whole") {
        if let Some((item, offset)) = check {
            expected.resize(chunk.len(), 0);
            item.fill(offset + bytes, &mut expected);
            if expected[..] != chunk[..] {
                exact = Some(false);
            }
        }
        bytes += chunk.len() as u64;
    }
    Fetched {
        status,
        content_range,
        bytes,
        elapsed: started.elapsed(),
        exact,
    }
}

/// The median of some durations or figures.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Prints one result line: `RESULT <name>: <figure> (target <target>) PASS|MISS`, and
/// returns whether it passed.
pub fn verdict(name: &str, figure: String, target: &str, pass: bool) -> bool {
    println!(
        "RESULT {name}: {figure} (target {target}) {}",
        if pass { "PASS" } else { "MISS" }
    );
    pass
}

/// MB/s (10^6 bytes per second) of `bytes` in `secs`.
pub fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

/// dufs from PATH or ~/.cargo/bin, installed with cargo when missing.
/// The program `name` on `PATH`, if there is one.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

pub async fn dufs_binary() -> PathBuf {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|c| c.join("bin").join("dufs"));
    if let Some(found) = on_path("dufs").or_else(|| cargo_bin.clone().filter(|p| p.is_file())) {
        return found;
    }
    println!("dufs is not installed: running `cargo install dufs --locked` (takes minutes)");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["install", "dufs", "--locked"])
        .status()
        .await
        .expect("cargo runs");
    assert!(status.success(), "cargo install dufs --locked failed");
    cargo_bin
        .filter(|p| p.is_file())
        .expect("dufs in ~/.cargo/bin after installing")
}

/// A port nothing listens on right now (dufs takes a port number, not a listener).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn wait_until_up(http: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.head(url).send().await.is_err() {
        assert!(Instant::now() < deadline, "dufs did not start on {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts dufs serving `dir` on a free loopback port; returns the child (killed when dropped)
/// and the server's base URL (`http://127.0.0.1:PORT/`).
pub fn spawn_dufs(dufs: &Path, dir: &Path) -> (Child, String) {
    let port = free_port();
    let child = Command::new(dufs)
        .arg(dir)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("dufs starts");
    (child, format!("http://127.0.0.1:{port}/"))
}

/// What rclone's webdav backend asks for when it lists a folder.
pub const RCLONE_LIST: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<d:propfind xmlns:d=\"DAV:\">\n <d:prop>\n  <d:displayname />\n  <d:getlastmodified />\n  <d:getcontentlength />\n  <d:resourcetype />\n  <d:getcontenttype />\n </d:prop>\n</d:propfind>\n";

/// One PROPFIND answer, read to its last byte.
pub struct Listed {
    pub status: u16,
    /// From the request to the last byte.
    pub secs: f64,
    /// From the request to the first byte of the body.
    pub first_byte_secs: f64,
    /// Whether the answer came without a Content-Length (chunked, streamed as written).
    pub chunked: bool,
    pub body: bytes::Bytes,
}

/// A PROPFIND Depth 1 of `url` asking what rclone asks, read to the end.
pub async fn propfind(http: &reqwest::Client, url: &str) -> Listed {
    let started = Instant::now();
    let mut resp = http
        .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), url)
        .header("Depth", "1")
        .header("Content-Type", "application/xml")
        .body(RCLONE_LIST)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let chunked = resp.headers().get("content-length").is_none();
    let mut body = bytes::BytesMut::new();
    let mut first_byte_secs = None;
    while let Some(chunk) = resp.chunk().await.expect("the answer arrives whole") {
        first_byte_secs.get_or_insert_with(|| started.elapsed().as_secs_f64());
        body.extend_from_slice(&chunk);
    }
    let secs = started.elapsed().as_secs_f64();
    Listed {
        status,
        secs,
        first_byte_secs: first_byte_secs.unwrap_or(secs),
        chunked,
        body: body.freeze(),
    }
}

/// The `(href, getcontentlength)` of every response in a multistatus body (the folder
/// itself first); a size is None when absent or not a number.
pub fn listed_entries(body: &[u8]) -> Vec<(String, Option<u64>)> {
    let text = std::str::from_utf8(body).expect("a UTF-8 answer");
    let doc = roxmltree::Document::parse(text).expect("a well-formed multistatus");
    doc.descendants()
        .filter(|n| n.has_tag_name(("DAV:", "response")))
        .map(|r| {
            let href = r
                .descendants()
                .find(|n| n.has_tag_name(("DAV:", "href")))
                .and_then(|n| n.text())
                .unwrap_or_default()
                .to_owned();
            let size = r
                .descendants()
                .find(|n| n.has_tag_name(("DAV:", "getcontentlength")))
                .and_then(|n| n.text())
                .and_then(|t| t.parse().ok());
            (href, size)
        })
        .collect()
}

/// A folder page for rclone's `http` backend: `GET /` lists one file, `NAME`, as a link, and
/// `/NAME` answers 302 to `target` (the emulator's content URL of the big item), so rclone
/// reads the same bytes from the same content host as ours, Range and all, with no file
/// server of our own in between. (dufs serving a copy from disk would not do: it answers a
/// ranged GET at about 70 MB/s here, five times slower than a whole one.)
pub struct LinkPage {
    /// `http://127.0.0.1:PORT/`
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LinkPage {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LinkPage {
    pub async fn serve(name: &'static str, target: String) -> LinkPage {
        use http_body_util::Full;
        use hyper::{Request, Response, StatusCode, body::Incoming};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let target = target.clone();
                let answer = move |req: Request<Incoming>| {
                    let head = match req.uri().path().trim_start_matches('/') {
                        "" => Response::builder()
                            .header("Content-Type", "text/html")
                            .body(format!(
                                "<html><body><a href=\"{name}\">{name}</a></body></html>"
                            )),
                        path if path == name => Response::builder()
                            .status(StatusCode::FOUND)
                            .header("Location", &target)
                            .body(String::new()),
                        _ => Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(String::new()),
                    };
                    let answer = head.unwrap().map(|b| Full::new(bytes::Bytes::from(b)));
                    std::future::ready(Ok::<_, std::convert::Infallible>(answer))
                };
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                    hyper_util::rt::TokioIo::new(stream),
                    hyper::service::service_fn(answer),
                ));
            }
        });
        LinkPage { base, task }
    }
}
