//! Benchmark 3 of issue #7: a cold PROPFIND Depth 1 of a 1,000-item album with every Library
//! API and content host call answered 20 ms late, as from a real network.
//!
//! `cargo bench --bench cold_listing`
//!
//! Cold means a fresh `gphotos-dav serve` process for every listing: nothing known, so the
//! listing costs 10 `mediaItems.search` pages of 100 (which must run one after the other:
//! each page's token comes with the previous page) and one size probe per item (Google
//! reports no sizes). The emulator's counters must show exactly 10 searches and at most
//! 1,000 probes. The baseline is the same server with `[cache] probe_concurrency = 1`, i.e.
//! probing one item at a time, against the same emulator in the same run (target: the default
//! configuration at least 20x faster).

mod support;

use std::time::{Duration, Instant};

use gphotos_dav_emulator::{BIG_ALBUM_TITLE, EmulatorOptions, RunningEmulator};
use support::{Proxy, median, verdict};

const ITEMS: usize = 1_000;
const LATENCY: Duration = Duration::from_millis(20);
const RUNS: usize = 3;

#[tokio::main]
async fn main() {
    support::print_machine();
    println!(
        "benchmark 3: cold PROPFIND Depth 1 of a {ITEMS}-item album at {} ms per upstream call",
        LATENCY.as_millis()
    );
    let emu = support::emulator(EmulatorOptions {
        big_album: ITEMS,
        latency: LATENCY,
        ..EmulatorOptions::default()
    })
    .await;

    let mut ours = Vec::new();
    for run in 1..=RUNS {
        let secs = cold_listing(&emu, "", &format!("default, run {run}")).await;
        ours.push(secs);
    }
    let serial = cold_listing(&emu, "probe_concurrency = 1", "one probe at a time").await;
    let ours = median(ours);
    println!("median cold listing: {ours:.3} s; probing one at a time: {serial:.3} s");
    verdict(
        "cold listing speed-up over probing one at a time",
        format!("{:.1}x", serial / ours),
        ">= 20x",
        serial / ours >= 20.0,
    );
}

/// Lists the album on a fresh server configured with `cache`; returns the wall time in
/// seconds after checking the answer and the upstream calls it cost.
async fn cold_listing(emu: &RunningEmulator, cache: &str, label: &str) -> f64 {
    let proxy = Proxy::spawn(emu, cache).await;
    let http = reqwest::Client::new();
    let counters = emu.emulator.counters();
    counters.reset();
    let url = format!(
        "{}album/{}/",
        proxy.url,
        BIG_ALBUM_TITLE.replace(' ', "%20")
    );
    let started = Instant::now();
    let resp = http
        .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), &url)
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(status, 207, "{body}");
    let doc = roxmltree::Document::parse(&body).unwrap();
    let sizes: Vec<u64> = doc
        .descendants()
        .filter(|n| n.has_tag_name(("DAV:", "getcontentlength")))
        .map(|n| n.text().unwrap().parse().unwrap())
        .collect();
    let responses = doc
        .descendants()
        .filter(|n| n.has_tag_name(("DAV:", "response")))
        .count();
    assert_eq!(responses, ITEMS + 1, "the folder and every item");
    assert_eq!(sizes.len(), ITEMS, "every item has its size");
    assert!(sizes.iter().all(|s| *s > 0));
    let searches = counters.get("mediaItems.search");
    let probes = counters.get("content.head") + counters.get("content.get");
    println!(
        "{label}: {secs:.3} s, {searches} searches, {probes} probes, all upstream calls {:?}",
        counters.snapshot()
    );
    assert_eq!(searches, 10, "exactly 10 searches");
    assert!(probes <= ITEMS as u64, "at most {ITEMS} probes");
    secs
}
