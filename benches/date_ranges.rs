//! Issue #18, target 3: a cold `/media/all` of 100,000 items spread over five years, every
//! Library API call answered 20 ms late, loaded as concurrent date-range searches
//! (`LibraryClient::list_library`, what the catalog does) against one chain of
//! `mediaItems.list` pages, in the same run against the same emulator.
//!
//! `cargo bench --bench date_ranges`
//!
//! Target: the ranges take at most 0.2x the chain's time. Both must list the same 100,000+
//! items, none twice; the emulator's counters show what each cost.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use gphotos_dav::google::library::RangeLoading;
use gphotos_dav_emulator::EmulatorOptions;
use support::verdict;

const ITEMS: usize = 100_000;
const LATENCY: Duration = Duration::from_millis(20);

#[tokio::main]
async fn main() {
    support::print_machine();
    println!(
        "issue #18 target 3: cold /media/all of {ITEMS} items at {} ms per call, \
         date ranges vs one chain",
        LATENCY.as_millis()
    );
    let emu = support::emulator(EmulatorOptions {
        library_size: ITEMS,
        latency: LATENCY,
        ..EmulatorOptions::default()
    })
    .await;
    let google = support::google_on(&emu);
    let counters = emu.emulator.counters();
    let total = emu.emulator.library().items.len();

    counters.reset();
    let started = Instant::now();
    let ranged = google
        .library
        .list_library(RangeLoading::default())
        .await
        .expect("date ranges");
    let ranges_secs = started.elapsed().as_secs_f64();
    let (lists, searches) = (
        counters.get("mediaItems.list"),
        counters.get("mediaItems.search"),
    );
    println!(
        "date ranges: {ranges_secs:.2} s, {} items, {lists} list + {searches} search calls \
         ({:?})",
        ranged.len(),
        RangeLoading::default()
    );

    counters.reset();
    let started = Instant::now();
    let chain = google.library.list_media_items().await.expect("one chain");
    let chain_secs = started.elapsed().as_secs_f64();
    println!(
        "one chain: {chain_secs:.2} s, {} items, {} list calls",
        chain.len(),
        counters.get("mediaItems.list")
    );

    let ids: HashSet<&str> = ranged.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids.len(), ranged.len(), "an item listed twice");
    assert_eq!(ranged.len(), total, "date ranges missed items");
    assert_eq!(chain.len(), total, "the chain missed items");
    assert!(chain.iter().all(|i| ids.contains(i.id.as_str())));

    let ratio = ranges_secs / chain_secs;
    verdict(
        "cold /media/all by date ranges, relative to one chain",
        format!("{ratio:.3}x"),
        "<= 0.2x",
        ratio <= 0.2,
    );
}
