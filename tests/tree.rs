//! The whole library as a tree: date views in a time zone, favorites, shared albums, a
//! one-album root, a served prefix, and names every OS accepts.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, TimeZone};
use common::{
    DavEntry, Stack, by_name, encode_path, parse_multistatus, sha256, start, start_custom,
    try_start_custom,
};
use gphotos_dav_emulator::{self as emulator, EmulatorOptions, FixtureItem, HOSTILE_LONG_TITLE};
use reqwest::StatusCode;

fn names(entries: &[DavEntry]) -> BTreeSet<String> {
    entries.iter().map(|e| e.name()).collect()
}

/// The local calendar date of an item in `tz`.
fn local_date(item: &FixtureItem, tz: chrono_tz::Tz) -> chrono::NaiveDate {
    item.creation_time.with_timezone(&tz).date_naive()
}

/// Checks the three date views against the library bucketed in `tz`.
async fn check_date_views(stack: &Stack, tz: chrono_tz::Tz) {
    let lib = stack.emulator().library();
    let mut by_day: BTreeMap<chrono::NaiveDate, Vec<&FixtureItem>> = BTreeMap::new();
    for item in &lib.items {
        by_day.entry(local_date(item, tz)).or_default().push(item);
    }
    let years: BTreeSet<String> = by_day.keys().map(|d| format!("{:04}", d.year())).collect();
    for view in ["by-year", "by-month", "by-day"] {
        let listed = names(&stack.list(&format!("/media/{view}/")).await);
        assert_eq!(listed, years, "{view}: exactly the years that hold items");
    }
    for year in &years {
        let y: i32 = year.parse().unwrap();
        // by-year/YYYY: every item of that year.
        let want: Vec<&FixtureItem> = by_day
            .iter()
            .filter(|(d, _)| d.year() == y)
            .flat_map(|(_, items)| items.iter().copied())
            .collect();
        let entries = stack.list(&format!("/media/by-year/{year}/")).await;
        assert_eq!(
            names(&entries),
            by_name(&want).into_keys().collect(),
            "by-year/{year}"
        );
        // by-month/YYYY: exactly the months that hold items.
        let months: BTreeSet<String> = by_day
            .keys()
            .filter(|d| d.year() == y)
            .map(|d| format!("{:04}-{:02}", d.year(), d.month()))
            .collect();
        let listed = names(&stack.list(&format!("/media/by-month/{year}/")).await);
        assert_eq!(listed, months, "by-month/{year}");
        // by-day/YYYY: exactly the days that hold items, each with exactly its items.
        let days: BTreeSet<String> = by_day
            .keys()
            .filter(|d| d.year() == y)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .collect();
        let listed = names(&stack.list(&format!("/media/by-day/{year}/")).await);
        assert_eq!(listed, days, "by-day/{year}");
    }
    for (day, items) in by_day.iter().take(5) {
        let path = format!(
            "/media/by-day/{:04}/{}/",
            day.year(),
            day.format("%Y-%m-%d")
        );
        let entries = stack.list(&path).await;
        assert_eq!(
            names(&entries),
            by_name(items).into_keys().collect(),
            "{path}"
        );
        for e in &entries {
            assert_eq!(e.size(), by_name(items)[&e.name()].bytes.len() as u64);
        }
    }
    // No made-up folders.
    for path in [
        "/media/by-year/1999/",
        "/media/by-month/2030/",
        "/media/by-day/2015/2015-13-01/",
    ] {
        let (status, _) = stack.propfind_raw(path, Some("1")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_views_hold_exactly_the_dates_with_items() {
    let stack = start().await;
    check_date_views(&stack, chrono_tz::UTC).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_are_bucketed_in_the_configured_time_zone() {
    // The fixture has a photo taken at 23:30 UTC on 31 December 2020: in Tokyo it is
    // already 2021, in New York still 2020.
    let lib_item = |stack: &Stack| {
        stack
            .emulator()
            .library()
            .items
            .iter()
            .find(|i| {
                i.creation_time
                    == chrono::Utc
                        .with_ymd_and_hms(2020, 12, 31, 23, 30, 0)
                        .unwrap()
            })
            .unwrap()
            .clone()
    };
    let tokyo = start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.google.timezone = chrono_tz::Asia::Tokyo;
    })
    .await;
    let item = lib_item(&tokyo);
    let day = names(&tokyo.list("/media/by-day/2021/2021-01-01/").await);
    assert!(day.contains(&item.filename), "{day:?}");
    let old = names(&tokyo.list("/media/by-year/2020/").await);
    assert!(!old.contains(&item.filename));
    check_date_views(&tokyo, chrono_tz::Asia::Tokyo).await;

    let new_york = start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.google.timezone = chrono_tz::America::New_York;
    })
    .await;
    let day = names(&new_york.list("/media/by-day/2020/2020-12-31/").await);
    assert!(day.contains(&item.filename), "{day:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn favorites_and_the_empty_shared_albums() {
    let stack = start().await;
    let lib = stack.emulator().library();
    let favorites: Vec<&FixtureItem> = lib.items.iter().filter(|i| i.favorite).collect();
    assert!(!favorites.is_empty());
    let entries = stack.list("/feature/favorites/").await;
    assert_eq!(names(&entries), by_name(&favorites).into_keys().collect());
    for e in &entries {
        let (status, _, body) = stack.get(&e.href).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(sha256(&body), sha256(&by_name(&favorites)[&e.name()].bytes));
    }

    let shared = stack.propfind("/shared-album/", Some("1")).await;
    assert_eq!(shared.len(), 1, "only the folder itself: {shared:?}");
    assert!(shared[0].is_collection);
    assert!(stack.emulator().counters().get("sharedAlbums.list") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_album_at_the_root() {
    let probe = start().await;
    let pets = probe.emulator().library().albums_titled("Pets")[0].clone();
    let items: Vec<FixtureItem> = pets
        .item_ids
        .iter()
        .map(|id| probe.emulator().library().item(id).unwrap().clone())
        .collect();
    let refs: Vec<&FixtureItem> = items.iter().collect();
    let want = by_name(&refs);
    let stack = start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.google.root_folder_id = pets.id.clone();
    })
    .await;
    let entries = stack.list("/").await;
    assert_eq!(names(&entries), want.keys().cloned().collect());
    for e in &entries {
        let (status, _, body) = stack.get(&e.href).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(sha256(&body), sha256(&want[&e.name()].bytes));
    }
    let (status, _) = stack.propfind_raw("/album/", Some("1")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let err = match try_start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.google.root_folder_id = "AF1QipNoSuchAlbum".into();
    })
    .await
    {
        Ok(_) => panic!("an unknown root_folder_id must stop the start"),
        Err(e) => e,
    };
    assert!(
        err.contains("root_folder_id") && err.contains("AF1QipNoSuchAlbum"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_under_a_prefix() {
    let stack = start_custom(EmulatorOptions::default(), emulator::REFRESH_TOKEN, |c| {
        c.webdav.prefix = "/photos".into();
    })
    .await;
    assert!(stack.url.ends_with("/photos/"), "{}", stack.url);
    let base = stack.url.trim_end_matches("/photos/").to_string();
    let propfind = |url: String| {
        stack
            .http
            .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), url)
            .header("Depth", "1")
            .send()
    };
    let resp = propfind(format!("{base}/photos/album/")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::MULTI_STATUS);
    let entries = parse_multistatus(&resp.text().await.unwrap());
    assert_eq!(entries[0].href, "/photos/album/");
    assert!(entries.iter().all(|e| e.href.starts_with("/photos/album/")));
    assert_eq!(entries.len(), stack.emulator().library().albums.len() + 1);
    // A file through the prefix.
    let media = parse_multistatus(
        &propfind(format!("{base}/photos/media/all/"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let resp = stack
        .http
        .get(format!("{base}{}", encode_path(&media[1].href)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().len() as u64, media[1].size());
    // Outside the prefix: 404, but OPTIONS at the host root still answers with DAV.
    let resp = propfind(format!("{base}/album/")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = propfind(format!("{base}/photosalbum/")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = stack
        .http
        .request(reqwest::Method::OPTIONS, format!("{base}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["dav"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_become_names_every_os_accepts() {
    let stack = start_custom(
        EmulatorOptions {
            hostile_names: true,
            ..EmulatorOptions::default()
        },
        emulator::REFRESH_TOKEN,
        |_| {},
    )
    .await;
    let lib = stack.emulator().library();
    let albums = names(&stack.list("/album/").await);
    let empty_title = lib.albums.iter().find(|a| a.title.is_empty()).unwrap();
    for want in [
        "Wei：rd＊Ti？tle＂＜x＞｜y＼z",
        "．．",
        "．",
        empty_title.id.as_str(),
        "Caf\u{e9}",
        "Cafe\u{301}",
    ] {
        assert!(albums.contains(want), "{want:?} in {albums:?}");
    }
    let long = albums
        .iter()
        .find(|n| n.starts_with("ÜÜÜ"))
        .expect("the long title is listed");
    assert!(
        long.len() <= 255 && long.len() > 200,
        "{} bytes",
        long.len()
    );
    assert_ne!(long, HOSTILE_LONG_TITLE);

    let weird = names(&stack.list("/album/Wei：rd＊Ti？tle＂＜x＞｜y＼z/").await);
    let want: BTreeSet<String> = [
        "a：b＊c？.jpg",
        "ctrl␁␟name.jpg",
        "trailing dot..jpg",
        "trailing space .jpg",
    ]
    .map(String::from)
    .into();
    assert_eq!(weird, want);
    let dots = stack.list("/album/．．/").await;
    assert_eq!(
        names(&dots),
        ["noext.jpg", "photo.png.jpg"].map(String::from).into()
    );
    for e in &dots {
        assert_eq!(e.props["getcontenttype"], "image/jpeg", "{}", e.href);
    }
    assert_eq!(
        names(&stack.list("/album/．/").await),
        ["clip.mp4".to_string()].into()
    );

    // Case and normalisation variants stay distinct and each reaches its own item.
    let variants = stack.list(&format!("/album/{}/", empty_title.id)).await;
    let want: BTreeSet<String> = ["Caf\u{e9}.jpg", "Cafe\u{301}.jpg", "x.jpg", "X.jpg"]
        .map(String::from)
        .into();
    assert_eq!(names(&variants), want);
    let album_items: Vec<&FixtureItem> = empty_title
        .item_ids
        .iter()
        .map(|id| lib.item(id).unwrap())
        .collect();
    for item in album_items {
        let (status, _, body) = stack
            .get(&format!("/album/{}/{}", empty_title.id, item.filename))
            .await;
        assert_eq!(status, StatusCode::OK, "{}", item.filename);
        assert_eq!(sha256(&body), sha256(&item.bytes), "{}", item.filename);
    }
    let nfc = stack.list("/album/Caf\u{e9}/").await;
    let nfd = stack.list("/album/Cafe\u{301}/").await;
    assert_eq!(names(&nfc), ["nfc.jpg".to_string()].into());
    assert_eq!(names(&nfd), ["nfd.jpg".to_string()].into());

    // The long file name: shortened, extension kept, and its bytes served.
    let long_files = stack.list(&format!("/album/{long}/")).await;
    assert_eq!(long_files.len(), 1);
    let name = long_files[0].name();
    assert!(name.len() <= 255 && name.ends_with(".jpg"), "{name}");
    let (status, _, body) = stack.get(&long_files[0].href).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len() as u64, long_files[0].size());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_nfd_finds_an_nfc_name() {
    let stack = start().await;
    // macOS sends "Été à Paris" decomposed (E + U+0301 ...); the album title is NFC.
    let nfd = "E\u{301}te\u{301} a\u{300} Paris — 東京";
    let entries = stack.propfind(&format!("/album/{nfd}/"), Some("1")).await;
    let album = &stack
        .emulator()
        .library()
        .albums_titled("Été à Paris — 東京")[0];
    assert_eq!(entries.len(), album.item_ids.len() + 1);
    let file = &entries[1];
    let (status, _, body) = stack.get(&format!("/album/{nfd}/{}", file.name())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len() as u64, file.size());
}
