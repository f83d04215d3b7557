//! Issue #18, targets 2 and 4: a library of 100,000 items, in little memory, listed fast.
//!
//! `cargo bench --bench big_library`
//!
//! (a) **Memory.** The emulator holds 100,000 generated items, the first 40,000 of them also in
//!     two albums of 20,000 (Google's maximum). One `gphotos-dav serve` child (its probe budget
//!     and media quota raised to fit 100,000 probes) lists `/media/all` cold, then every folder
//!     of the `by-year` and `by-month` views, then the two albums. Target: the server's peak
//!     RSS (VmHWM) <= 150 MiB. Every listing is checked: each item once, with the exact size
//!     the emulator serves.
//! (b) **Streaming.** A warm 207 of 100,000 entries is written as it is produced: it comes
//!     chunked (no Content-Length), and its first byte arrives before a quarter of the time
//!     the whole answer takes. The server's RSS growth during it is printed too (its peak is
//!     reset just before, through /proc/PID/clear_refs), though memory the allocator kept
//!     from earlier listings hides most of it.
//! (c) **Warm listings.** A warm PROPFIND Depth 1 of `/media/all` against `dufs` listing
//!     100,000 local files of the same names: medians of alternated runs, target ours/dufs
//!     <= 1.0.
//!
//! Figures per 1,000 items (RSS, cold and warm time, store bytes) are printed for the
//! cost-per-item table of docs/performance.md.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use gphotos_dav_emulator::{EmulatorOptions, LIBRARY_ALBUM_PREFIX, LIBRARY_ALBUM_SIZE};
use support::{
    Listed, MIB, Proxy, dufs_binary, listed_entries, median, propfind, verdict, wait_until_up,
};

const ITEMS: usize = 100_000;
const ALBUMS: usize = 2;
const RUNS: usize = 5;
const RSS_TARGET_MIB: f64 = 150.0;

#[tokio::main]
async fn main() {
    support::print_machine();
    let items: usize = std::env::var("BIG_LIBRARY_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ITEMS);
    println!(
        "issue #18 targets 2 and 4: a library of {items} items, albums of {LIBRARY_ALBUM_SIZE}"
    );
    let emu = support::emulator(EmulatorOptions {
        library_size: items,
        library_albums: ALBUMS.min(items.div_ceil(LIBRARY_ALBUM_SIZE)),
        ..EmulatorOptions::default()
    })
    .await;
    // The size each file must be listed with: what the content host serves for it.
    let library = emu.emulator.library();
    let sizes: HashMap<String, u64> = library
        .items
        .iter()
        .filter(|i| i.filename.starts_with("LIB_"))
        .map(|i| (i.filename.clone(), i.bytes.len() as u64))
        .collect();
    let total = library.items.len();

    let proxy = Proxy::spawn_with(
        &emu,
        "daily_media_quota = 1000000\n",
        "probe_budget = 1000000\n",
    )
    .await;
    let http = reqwest::Client::new();
    let base = proxy.url.clone();
    let idle_kib = proxy.rss_kib();
    println!("server idle: {:.1} MiB", idle_kib as f64 / 1024.0);

    // (a) /media/all, cold.
    let all_url = format!("{base}media/all/");
    let (cold, during) = with_rss_samples(&proxy, propfind(&http, &all_url)).await;
    let all = check_files(&cold, &all_url, &sizes, total);
    let cold_kib = proxy.peak_rss_kib();
    println!(
        "cold /media/all: {:.2} s ({:.1} ms per 1,000 items), {} entries, {:.1} MB; \
         RSS at most {:.1} MiB while it ran, peak {:.1} MiB after",
        cold.secs,
        cold.secs * 1000.0 / total as f64 * 1000.0,
        all.len(),
        cold.body.len() as f64 / 1e6,
        during as f64 / 1024.0,
        cold_kib as f64 / 1024.0
    );

    // The date views: every item once in each, with its size. (Only the generated items'
    // names are unique across folders: the sample library repeats a few names.)
    for view in ["by-year", "by-month"] {
        let started = std::time::Instant::now();
        let (mut seen, mut count) = (HashSet::new(), 0);
        for year in folders(&http, &format!("{base}media/{view}/")).await {
            let folders = if view == "by-year" {
                vec![year]
            } else {
                folders(&http, &year).await
            };
            for folder in folders {
                let listed = propfind(&http, &folder).await;
                for name in check_files(&listed, &folder, &sizes, 0) {
                    count += 1;
                    if sizes.contains_key(&name) {
                        assert!(seen.insert(name), "{view}: an item listed twice");
                    }
                }
            }
        }
        assert_eq!(count, total, "{view} lists as many items as /media/all");
        assert_eq!(seen.len(), sizes.len(), "{view} lists every generated item");
        println!(
            "/media/{view}: every folder listed in {:.2} s, {count} items; peak RSS {:.1} MiB",
            started.elapsed().as_secs_f64(),
            proxy.peak_rss_kib() as f64 / 1024.0
        );
    }

    // The albums of 20,000.
    let albums: Vec<String> = folders(&http, &format!("{base}album/"))
        .await
        .into_iter()
        .filter(|u| u.contains(&LIBRARY_ALBUM_PREFIX.replace(' ', "%20")))
        .collect();
    assert_eq!(albums.len(), ALBUMS.min(items.div_ceil(LIBRARY_ALBUM_SIZE)));
    for url in &albums {
        let listed = propfind(&http, url).await;
        let names = check_files(&listed, url, &sizes, 0);
        assert_eq!(names.len(), LIBRARY_ALBUM_SIZE.min(items));
        assert!(names.is_subset(&all));
        println!(
            "album of {}: {:.2} s; peak RSS {:.1} MiB",
            names.len(),
            listed.secs,
            proxy.peak_rss_kib() as f64 / 1024.0
        );
    }
    let peak_kib = proxy.peak_rss_kib();
    let store = proxy.store_bytes();

    // (b) A warm 207 of every item: streamed, not built whole.
    proxy.reset_peak_rss();
    let before_kib = proxy.rss_kib();
    let warm = propfind(&http, &all_url).await;
    check_files(&warm, &all_url, &sizes, total);
    let growth_kib = proxy.peak_rss_kib().saturating_sub(before_kib);
    println!(
        "warm /media/all: {:.3} s, first byte after {:.3} s, {}; RSS grew {:.1} MiB while \
         writing a {:.1} MiB answer",
        warm.secs,
        warm.first_byte_secs,
        if warm.chunked {
            "chunked"
        } else {
            "with a Content-Length"
        },
        growth_kib as f64 / 1024.0,
        warm.body.len() as f64 / MIB as f64
    );

    // (c) Warm /media/all against dufs listing as many local files.
    let (ours, theirs) = against_dufs(&http, &all_url, &all).await;

    println!("\ncost per 1,000 items ({total} items):");
    let per = |v: f64| v / total as f64 * 1000.0;
    println!(
        "  RSS after listing everything: {:.2} MiB (peak {:.1} MiB less idle {:.1} MiB)",
        per((peak_kib - idle_kib) as f64 / 1024.0),
        peak_kib as f64 / 1024.0,
        idle_kib as f64 / 1024.0
    );
    println!("  cold /media/all: {:.1} ms", per(cold.secs * 1000.0));
    println!(
        "  warm /media/all: {:.1} ms (dufs {:.1} ms)",
        per(ours * 1000.0),
        per(theirs * 1000.0)
    );
    println!(
        "  store: {:.1} KB ({:.1} MB in all)",
        per(store as f64 / 1000.0),
        store as f64 / 1e6
    );
    let peak_mib = peak_kib as f64 / 1024.0;
    verdict(
        &format!("(a) peak RSS listing {total} items, their date views and albums"),
        format!("{peak_mib:.1} MiB"),
        &format!("<= {RSS_TARGET_MIB} MiB"),
        peak_mib <= RSS_TARGET_MIB,
    );
    // Built whole before the first byte, an answer would start only once all of it was
    // made; streamed, the first entries leave at once.
    let first = warm.first_byte_secs / warm.secs;
    verdict(
        &format!("(b) a warm 207 of {total} entries streamed (chunked, first byte early)"),
        format!(
            "{}, first byte at {:.0}% of the answer's time",
            if warm.chunked {
                "chunked"
            } else {
                "not chunked"
            },
            first * 100.0
        ),
        "chunked, first byte before 25%",
        warm.chunked && first < 0.25,
    );
    verdict(
        &format!("(c) warm PROPFIND Depth 1 of {total} entries, ours/dufs"),
        format!("{:.2}", ours / theirs),
        "<= 1.0",
        ours / theirs <= 1.0,
    );
}

/// Runs `listing` while sampling the server's RSS every 20 ms; returns its answer and the
/// highest RSS seen (KiB).
async fn with_rss_samples(proxy: &Proxy, listing: impl Future<Output = Listed>) -> (Listed, u64) {
    let (pid, done, high) = (
        proxy.pid,
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let sampler = tokio::spawn({
        let (done, high) = (done.clone(), high.clone());
        async move {
            while !done.load(Ordering::Relaxed) {
                if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    && let Some(kib) = status.lines().find_map(|l| {
                        l.strip_prefix("VmRSS:")
                            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                    })
                {
                    high.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let listed = listing.await;
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    (listed, high.load(Ordering::Relaxed))
}

/// The names of the files a 207 lists, each checked to carry its exact size (the generated
/// `LIB_` items; others must have one above 0), none twice; `expected` of them when above 0.
fn check_files(
    listed: &Listed,
    url: &str,
    sizes: &HashMap<String, u64>,
    expected: usize,
) -> HashSet<String> {
    assert_eq!(listed.status, 207, "{url}");
    let mut names = HashSet::new();
    for (href, size) in listed_entries(&listed.body).into_iter().skip(1) {
        assert!(!href.ends_with('/'), "{url}: a folder among files: {href}");
        let name = percent_encoding::percent_decode_str(href.rsplit('/').next().unwrap())
            .decode_utf8()
            .unwrap()
            .into_owned();
        let size = size.unwrap_or_else(|| panic!("{url}: {name} has no size"));
        match sizes.get(&name) {
            Some(&exact) => assert_eq!(size, exact, "{url}: the size of {name}"),
            None => assert!(size > 0, "{url}: {name} listed with size 0"),
        }
        assert!(names.insert(name), "{url}: a name listed twice");
    }
    if expected > 0 {
        assert_eq!(names.len(), expected, "{url}: every item");
    }
    names
}

/// The URLs of the subfolders a folder lists.
async fn folders(http: &reqwest::Client, url: &str) -> Vec<String> {
    let listed = propfind(http, url).await;
    assert_eq!(listed.status, 207, "{url}");
    let origin = &url[..url[8..].find('/').unwrap() + 8];
    listed_entries(&listed.body)
        .into_iter()
        .skip(1)
        .map(|(href, _)| {
            assert!(href.ends_with('/'), "{url}: a file among folders: {href}");
            format!("{origin}{href}")
        })
        .collect()
}

/// Warm PROPFINDs of `ours` against dufs listing a folder of as many local files with the
/// same names, alternated; returns the medians in seconds (ours, dufs).
async fn against_dufs(http: &reqwest::Client, ours: &str, names: &HashSet<String>) -> (f64, f64) {
    let dufs = dufs_binary().await;
    let dir = tempfile::tempdir().unwrap();
    // Empty files: removing 100,000 files with blocks takes minutes on a disk that discards
    // each freed block, and a listing reads no bytes.
    for name in names {
        std::fs::File::create(dir.path().join(name)).unwrap();
    }
    let (mut child, theirs) = support::spawn_dufs(&dufs, dir.path());
    wait_until_up(http, &theirs).await;
    let check = propfind(http, &theirs).await;
    let listed = listed_entries(&check.body);
    assert_eq!(listed.len(), names.len() + 1, "dufs lists every file");
    let (mut o, mut t) = (Vec::new(), Vec::new());
    for run in 1..=RUNS {
        let a = propfind(http, ours).await;
        let b = propfind(http, &theirs).await;
        assert_eq!((a.status, b.status), (207, 207));
        println!(
            "run {run}: ours {:.0} ms ({:.1} MB), dufs {:.0} ms ({:.1} MB)",
            a.secs * 1000.0,
            a.body.len() as f64 / 1e6,
            b.secs * 1000.0,
            b.body.len() as f64 / 1e6
        );
        o.push(a.secs);
        t.push(b.secs);
    }
    child.kill().await.ok();
    (median(o), median(t))
}
