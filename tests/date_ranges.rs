//! `/media/all` by concurrent date-range searches (issue #18): the same items as one chain of
//! `mediaItems.list` pages, none missed at a range's edge and none twice, whatever calendar
//! Google reads items' dates in, and no change at all for a library of a few pages.

use std::collections::HashSet;

use gphotos_dav::google::Google;
use gphotos_dav::google::library::RangeLoading;
use gphotos_dav_emulator::{Emulator, EmulatorOptions, RunningEmulator};

mod common;

async fn setup(opts: EmulatorOptions) -> (RunningEmulator, Google) {
    let emu = Emulator::start(opts, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let google = common::google_on(&emu);
    (emu, google)
}

/// Small sizes so that CI sees every step: 2 pages as one chain, then ranges of about 3
/// pages, 4 searches at once.
const SMALL: RangeLoading = RangeLoading {
    chain_pages: 2,
    range_pages: 3,
    concurrency: 4,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_ranges_list_exactly_the_items_of_one_chain() {
    // 3,000 items a step of about 14.6 hours apart: many fall near midnight, in every zone.
    let (emu, google) = setup(EmulatorOptions {
        library_size: 3_000,
        big_album: 150,
        ..EmulatorOptions::default()
    })
    .await;
    let counters = emu.emulator.counters();
    let chain = google.library.list_media_items().await.unwrap();
    let chain_calls = counters.get("mediaItems.list");
    let want: Vec<&str> = chain.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(want.len(), emu.emulator.library().items.len());

    // UTC, then the calendars furthest east and west of it: Google does not say which one its
    // date filter uses.
    for (east, repeat) in [(0, false), (14 * 3600, false), (-12 * 3600, true)] {
        emu.emulator.set_date_filter_offset(east);
        emu.emulator.set_repeat_last_entry(repeat);
        counters.reset();
        let ranged = google.library.list_library(SMALL).await.unwrap();
        let got: Vec<&str> = ranged.iter().map(|i| i.id.as_str()).collect();
        let unique: HashSet<&str> = got.iter().copied().collect();
        assert_eq!(
            unique.len(),
            got.len(),
            "offset {east}: an item listed twice"
        );
        let mut sorted_got = got.clone();
        let mut sorted_want = want.clone();
        sorted_got.sort_unstable();
        sorted_want.sort_unstable();
        assert_eq!(
            sorted_got, sorted_want,
            "offset {east}: not the chain's items"
        );
        // Newest first, as the chain (every creation time here is distinct).
        assert_eq!(got, want, "offset {east}: not in the chain's order");

        let (lists, searches) = (
            counters.get("mediaItems.list"),
            counters.get("mediaItems.search"),
        );
        println!("offset {east}: {lists} lists + {searches} searches; one chain: {chain_calls}");
        assert_eq!(lists, 2, "offset {east}: the chain's first pages only");
        // Every range's pages, plus the first pages of ranges that were cut again: more
        // calls than the chain, but not many more.
        assert!(
            lists + searches <= chain_calls * 3 / 2 + 2,
            "offset {east}: {lists} lists and {searches} searches for a chain of {chain_calls}"
        );
        assert!(searches > 2, "offset {east}: ranges were searched");
    }
}

/// A library that ends within the chain's first pages costs exactly the calls it always did:
/// no search at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_library_stays_one_chain() {
    let (emu, google) = setup(EmulatorOptions {
        big_album: 250,
        ..EmulatorOptions::default()
    })
    .await;
    let counters = emu.emulator.counters();
    let items = google
        .library
        .list_library(RangeLoading::default())
        .await
        .unwrap();
    let lib = emu.emulator.library();
    assert_eq!(items.len(), lib.items.len());
    assert_eq!(
        counters.get("mediaItems.list"),
        lib.items.len().div_ceil(100) as u64
    );
    assert_eq!(counters.get("mediaItems.search"), 0);
}

/// A library none of whose items a date filter finds (Google: items uploaded without a
/// capture date) is listed by the rest of the chain: nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_chain_pages_is_one_chain() {
    let (emu, google) = setup(EmulatorOptions {
        library_size: 500,
        ..EmulatorOptions::default()
    })
    .await;
    let counters = emu.emulator.counters();
    let items = google
        .library
        .list_library(RangeLoading {
            chain_pages: 0,
            ..SMALL
        })
        .await
        .unwrap();
    assert_eq!(items.len(), emu.emulator.library().items.len());
    assert_eq!(counters.get("mediaItems.search"), 0);
    assert_eq!(counters.get("mediaItems.list"), 6);
}
