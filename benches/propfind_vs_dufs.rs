//! Benchmark 2 of issue #7: a warm PROPFIND Depth 1 of a 10,000-item album, compared with
//! `dufs` (a Rust WebDAV file server) listing 10,000 local files (target: ours/dufs <= 1.0).
//!
//! `cargo bench --bench propfind_vs_dufs`
//!
//! Installs dufs with `cargo install dufs --locked` when it is not on PATH (or in
//! ~/.cargo/bin); that takes minutes once. The same 10,000 names (IMG_00001.jpg, ...) on both
//! sides, the same request (the properties rclone asks for when it lists a folder), the same
//! client; both servers are separate processes on loopback. Ours is warm: the album's listing
//! and every size are known before timing starts (the warm-up listing is checked to carry all
//! 10,000 sizes). Each side is warmed up, then the two are timed alternately; the medians of
//! the latency from request to last byte are compared.

mod support;

use gphotos_dav_emulator::{BIG_ALBUM_TITLE, EmulatorOptions};
use support::{Proxy, dufs_binary, median, verdict, wait_until_up};
use tokio::process::Command;

const ITEMS: usize = 10_000;
const WARMUP: usize = 3;
const RUNS: usize = 15;

#[tokio::main]
async fn main() {
    support::print_machine();
    println!("benchmark 2: warm PROPFIND Depth 1 of {ITEMS} items, gphotos-dav vs dufs");
    let dufs = dufs_binary().await;
    let version = Command::new(&dufs).arg("--version").output().await.unwrap();
    println!("dufs: {}", String::from_utf8_lossy(&version.stdout).trim());

    // dufs side: 10,000 small files with the album's names.
    let dir = tempfile::tempdir().unwrap();
    let body = vec![0x5Au8; 700];
    for n in 1..=ITEMS {
        std::fs::write(dir.path().join(format!("IMG_{n:05}.jpg")), &body).unwrap();
    }
    let (mut dufs_child, dufs_url) = support::spawn_dufs(&dufs, dir.path());

    // Our side.
    let emu = support::emulator(EmulatorOptions {
        big_album: ITEMS,
        ..EmulatorOptions::default()
    })
    .await;
    let proxy = Proxy::spawn(&emu, "").await;
    let ours_url = format!(
        "{}album/{}/",
        proxy.url,
        BIG_ALBUM_TITLE.replace(' ', "%20")
    );

    let http = reqwest::Client::new();
    wait_until_up(&http, &dufs_url).await;
    let probes_before = emu.emulator.counters().get("content.head");
    for (name, url) in [("gphotos-dav", &ours_url), ("dufs", &dufs_url)] {
        for _ in 0..WARMUP {
            let (_, bytes) = propfind(&http, url, true).await;
            println!("{name}: warm-up answer {bytes} bytes, {ITEMS} files with their sizes");
        }
    }
    let probes = emu.emulator.counters().get("content.head") - probes_before;
    println!("gphotos-dav probed {probes} sizes while warming up (none after)");

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        ours.push(propfind(&http, &ours_url, false).await.0);
        theirs.push(propfind(&http, &dufs_url, false).await.0);
    }
    let after = emu.emulator.counters().get("content.head") - probes_before;
    assert_eq!(after, probes, "timed listings were warm: no more probes");
    let (o, t) = (median(ours.clone()), median(theirs.clone()));
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|s| format!("{:.0}", s * 1000.0))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("gphotos-dav ms: {}", fmt(&ours));
    println!("dufs ms:        {}", fmt(&theirs));
    println!(
        "median: gphotos-dav {:.1} ms, dufs {:.1} ms",
        o * 1000.0,
        t * 1000.0
    );
    verdict(
        "warm PROPFIND Depth 1 latency, ours/dufs",
        format!("{:.2}", o / t),
        "<= 1.0",
        o / t <= 1.0,
    );
    dufs_child.kill().await.ok();
}

/// One PROPFIND Depth 1; returns its latency to the last byte and the answer's size. With
/// `check`, the answer must list the folder and all ITEMS files with a size each.
async fn propfind(http: &reqwest::Client, url: &str, check: bool) -> (f64, usize) {
    let listed = support::propfind(http, url).await;
    assert_eq!(listed.status, 207, "{url}");
    if check {
        let entries = support::listed_entries(&listed.body);
        let sizes = entries
            .iter()
            .filter(|(_, s)| s.is_some_and(|s| s > 0))
            .count();
        assert_eq!(entries.len(), ITEMS + 1, "{url}: the folder and every file");
        assert!(sizes >= ITEMS, "{url}: every file has a size");
    }
    (listed.secs, listed.body.len())
}
