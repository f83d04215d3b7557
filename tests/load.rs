//! Load, in its own test binary: 100 concurrent clients mix PROPFIND and ranged GETs against a
//! `gphotos-dav serve` child process for a bounded time (30 s, `LOAD_SECS` to change), on
//! loopback only, while the emulator injects faults. Zero wrong bytes, zero 5xx, and the
//! server's peak RSS printed (and bounded).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{by_name, spawn_serve};
use gphotos_dav_emulator::{Emulator, EmulatorOptions, Fault, FixtureItem};
use rand::{Rng, SeedableRng};

#[derive(Default)]
struct Stats {
    propfinds: AtomicU64,
    gets: AtomicU64,
    bytes: AtomicU64,
    wrong: AtomicU64,
    server_errors: AtomicU64,
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_clients_with_faults_get_exact_bytes() {
    let secs: u64 = std::env::var("LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let emu = Emulator::start(EmulatorOptions::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut serve, url) = spawn_serve(dir.path(), &emu).await;
    let pid = serve.id().unwrap();

    let lib = emu.emulator.library();
    let items: Vec<&FixtureItem> = lib.items.iter().collect();
    let files: Arc<Vec<(String, Bytes)>> = Arc::new(
        by_name(&items)
            .into_iter()
            .map(|(name, item)| {
                (
                    format!("{url}media/all/{}", common::encode_path(&name)),
                    item.bytes.clone(),
                )
            })
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect(),
    );
    let folders: Arc<Vec<String>> = Arc::new(
        [
            "",
            "album/",
            "media/all/",
            "media/by-year/",
            "feature/favorites/",
        ]
        .iter()
        .map(|p| format!("{url}{p}"))
        .collect(),
    );

    // Faults on every kind of upstream call.
    let e = &emu.emulator;
    e.inject("content.get", Fault::Reset, 17, None);
    e.inject("content.get", Fault::CutBody, 13, None);
    e.inject("content.get", Fault::Status(503), 29, None);
    e.inject("content.head", Fault::Status(500), 7, None);
    e.inject("mediaItems.list", Fault::Status(502), 3, None);
    e.inject(
        "albums.list",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        4,
        None,
    );

    let stats = Arc::new(Stats::default());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(100)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut clients = Vec::new();
    for n in 0..100u64 {
        let (http, files, folders, stats) =
            (http.clone(), files.clone(), folders.clone(), stats.clone());
        clients.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(n);
            while Instant::now() < deadline {
                if rng.random_bool(0.3) {
                    let folder = &folders[rng.random_range(0..folders.len())];
                    let resp = http
                        .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), folder)
                        .header("Depth", "1")
                        .send()
                        .await
                        .unwrap();
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    if status.is_server_error() {
                        stats.server_errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("PROPFIND {folder}: {status} {body}");
                    } else if status.as_u16() != 207 || !body.contains("</D:multistatus>") {
                        stats.wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    stats.propfinds.fetch_add(1, Ordering::Relaxed);
                } else {
                    let (file, bytes) = &files[rng.random_range(0..files.len())];
                    let len = bytes.len();
                    let start = rng.random_range(0..len);
                    let end = rng.random_range(start..len.min(start + 300_000));
                    let resp = http
                        .get(file)
                        .header("Range", format!("bytes={start}-{end}"))
                        .send()
                        .await
                        .unwrap();
                    let status = resp.status();
                    match resp.bytes().await {
                        _ if status.is_server_error() => {
                            stats.server_errors.fetch_add(1, Ordering::Relaxed);
                            eprintln!("GET {file}: {status}");
                        }
                        Ok(body) if status.as_u16() == 206 && body == bytes.slice(start..=end) => {
                            stats.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                        }
                        other => {
                            stats.wrong.fetch_add(1, Ordering::Relaxed);
                            eprintln!(
                                "GET {file} {start}-{end}: {status} {:?}",
                                other.map(|b| b.len())
                            );
                        }
                    }
                    stats.gets.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let rss_mib = peak_rss_kib(pid) as f64 / 1024.0;
    serve.kill().await.unwrap();
    let s = &stats;
    println!(
        "load: {secs} s, 100 clients, {} PROPFIND + {} ranged GET, {:.1} MiB served, \
         {} wrong, {} 5xx, server peak RSS {rss_mib:.1} MiB, upstream calls {:?}",
        s.propfinds.load(Ordering::Relaxed),
        s.gets.load(Ordering::Relaxed),
        s.bytes.load(Ordering::Relaxed) as f64 / 1048576.0,
        s.wrong.load(Ordering::Relaxed),
        s.server_errors.load(Ordering::Relaxed),
        emu.emulator.counters().snapshot(),
    );
    assert_eq!(s.wrong.load(Ordering::Relaxed), 0, "wrong answers");
    assert_eq!(s.server_errors.load(Ordering::Relaxed), 0, "5xx answers");
    assert!(s.gets.load(Ordering::Relaxed) > 100, "the load ran");
    assert!(rss_mib < 150.0, "peak RSS {rss_mib:.1} MiB");
}
