//! Benchmark 4 of issue #7: a GET of the last 1 MiB of a 512 MiB item through the proxy pulls
//! under 2 MiB from upstream.
//!
//! `cargo bench --bench range_tail`
//!
//! Players and file managers read a video's index at its end before anything else; a proxy
//! that fetched from the start and skipped would pull the whole file for that. Two forms of
//! the request, each on a fresh server (cold: it must also learn the size, by a HEAD that
//! carries no body): a suffix range `bytes=-1048576` and an explicit `bytes=N-1MiB-`. The
//! emulator counts the body bytes its content host sent; every byte received is checked.

mod support;

use gphotos_dav_emulator::EmulatorOptions;
use support::{MIB, Proxy, fetch, verdict};

const SIZE: u64 = 512 * MIB;
const LIMIT: u64 = 2 * MIB;

#[tokio::main]
async fn main() {
    support::print_machine();
    println!(
        "benchmark 4: the last 1 MiB of a {} MiB item through the proxy",
        SIZE / MIB
    );
    let emu = support::emulator(EmulatorOptions {
        big_item: SIZE,
        ..EmulatorOptions::default()
    })
    .await;
    let item = emu.emulator.library().big_item.clone().unwrap();
    let http = reqwest::Client::new();
    let start = SIZE - MIB;
    let mut all = true;
    for range in ["bytes=-1048576".to_owned(), format!("bytes={start}-")] {
        let proxy = Proxy::spawn(&emu, "").await;
        let counters = emu.emulator.counters();
        counters.reset();
        let sent_before = emu.emulator.content_bytes_sent();
        let got = fetch(
            &http,
            &proxy.big_item_url(),
            Some(&range),
            Some((&item, start)),
        )
        .await;
        assert_eq!(
            (got.status, got.bytes, got.exact),
            (206, MIB, Some(true)),
            "{range}: the last MiB, exact"
        );
        assert_eq!(
            got.content_range.as_deref(),
            Some(format!("bytes {start}-{}/{SIZE}", SIZE - 1).as_str())
        );
        let pulled = emu.emulator.content_bytes_sent() - sent_before;
        println!(
            "{range}: 206, {} bytes, all exact; upstream calls {:?}",
            got.bytes,
            counters.snapshot()
        );
        all &= verdict(
            &format!("bytes pulled from upstream for the last MiB ({range})"),
            format!("{pulled} bytes ({:.2} MiB)", pulled as f64 / MIB as f64),
            "< 2 MiB",
            pulled < LIMIT,
        );
    }
    if !all {
        println!("(a MISS is a figure to explain in docs/performance.md)");
    }
}
