//! Benchmark 5 of issue #7: the proxy's peak RSS while it serves 100 downloads at once
//! (target < 100 MiB).
//!
//! `cargo bench --bench concurrent_rss`
//!
//! 100 clients start a GET of the same 64 MiB item through one `gphotos-dav serve` child
//! process together and read to the end, checking every byte; the server's VmHWM (from
//! /proc) is its peak resident memory over the whole run, start-up included. A proxy that
//! buffered bodies instead of streaming them would need 100 x 64 MiB here. The item is
//! 64 MiB rather than 512 MiB so the run moves 6.4 GiB, not 51 GiB; what matters for memory
//! is that all 100 downloads are open at the same time, which the benchmark checks.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use gphotos_dav_emulator::EmulatorOptions;
use support::{MIB, Proxy, fetch, verdict};

const SIZE: u64 = 64 * MIB;
const CLIENTS: usize = 100;
const LIMIT_KIB: u64 = 100 * 1024;

#[tokio::main]
async fn main() {
    support::print_machine();
    println!(
        "benchmark 5: peak RSS of the proxy with {CLIENTS} concurrent downloads of a {} MiB item",
        SIZE / MIB
    );
    let emu = support::emulator(EmulatorOptions {
        big_item: SIZE,
        ..EmulatorOptions::default()
    })
    .await;
    let proxy = Proxy::spawn(&emu, "").await;
    let item = Arc::new(emu.emulator.library().big_item.clone().unwrap());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    let url = proxy.big_item_url();
    // Warm: the size is known before the crowd arrives (a cold crowd shares one probe anyway).
    let warm = fetch(&http, &url, Some("bytes=0-0"), None).await;
    assert_eq!(warm.status, 206);
    let idle_kib = proxy.rss_kib();
    println!(
        "server RSS when idle and warm: {:.1} MiB",
        idle_kib as f64 / 1024.0
    );

    // `open` counts downloads whose headers arrived and whose body is not finished; its peak
    // shows how many ran at the same time.
    let open = Arc::new(AtomicUsize::new(0));
    let peak_open = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (http, url, item) = (http.clone(), url.clone(), item.clone());
        let (open, peak_open) = (open.clone(), peak_open.clone());
        tasks.push(tokio::spawn(async move {
            let mut resp = http.get(&url).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            let now = open.fetch_add(1, Ordering::SeqCst) + 1;
            peak_open.fetch_max(now, Ordering::SeqCst);
            let (mut got, mut exact) = (0u64, true);
            let mut expected = Vec::new();
            while let Some(chunk) = resp.chunk().await.unwrap() {
                expected.resize(chunk.len(), 0);
                item.fill(got, &mut expected);
                exact &= expected[..] == chunk[..];
                got += chunk.len() as u64;
            }
            open.fetch_sub(1, Ordering::SeqCst);
            (got, exact)
        }));
    }
    let mut peak_sampled = 0u64;
    let mut done = 0;
    while done < tasks.len() {
        peak_sampled = peak_sampled.max(proxy.rss_kib());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        done = tasks.iter().filter(|t| t.is_finished()).count();
    }
    for t in tasks {
        let (got, exact) = t.await.unwrap();
        assert_eq!(
            (got, exact),
            (SIZE, true),
            "every download is whole and exact"
        );
    }
    let secs = started.elapsed().as_secs_f64();
    let peak = proxy.peak_rss_kib();
    let total = SIZE * CLIENTS as u64;
    println!(
        "{CLIENTS} downloads, {:.1} GiB in {secs:.1} s ({:.0} MB/s in all), all bytes exact; \
         at most {} open at once",
        total as f64 / (1024.0 * MIB as f64),
        support::mb_per_s(total, secs),
        peak_open.load(Ordering::SeqCst)
    );
    println!(
        "server RSS: idle {:.1} MiB, highest sampled during the run {:.1} MiB, VmHWM {:.1} MiB",
        idle_kib as f64 / 1024.0,
        peak_sampled as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    assert_eq!(
        peak_open.load(Ordering::SeqCst),
        CLIENTS,
        "all downloads were open at once"
    );
    verdict(
        &format!("peak RSS with {CLIENTS} concurrent downloads"),
        format!("{:.1} MiB", peak as f64 / 1024.0),
        "< 100 MiB",
        peak < LIMIT_KIB,
    );
}
