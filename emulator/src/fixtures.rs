//! The seeded fixture library: albums, media items and their bytes.
//!
//! Everything here is a pure function of the seed, so a test can start any number of
//! emulators with one seed and see the same ids, names, dates and bytes. The *shape* of the
//! library (which album holds which kind of tricky item) does not depend on the seed at all,
//! so tests may rely on the facts documented on [`Library`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};
use image::ExtendedColorType;
use image::codecs::jpeg::JpegEncoder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

/// Number of media items in every seeded library.
pub(crate) const ITEM_COUNT: usize = 60;
/// The last `VIDEO_COUNT` generated items are videos.
const VIDEO_COUNT: usize = 4;
/// Characters Google uses in its media item and album ids.
const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/// Album titles in creation order; the membership is in [`album_members`].
const ALBUM_TITLES: [&str; 8] = [
    "Friends/Family 2021",
    "Été à Paris — 東京",
    "Trip",
    "Trip",
    "Empty",
    "Old Camera",
    "Pets",
    "Highlights",
];

/// Generation indices of the items that are favorites.
const FAVORITES: [usize; 4] = [5, 10, 20, 57];

/// The whole seeded library.
///
/// Facts that hold for every seed (tests may rely on them):
/// - 60 items (56 `image/jpeg` photos, 3 `video/mp4` videos and 1 `video/quicktime` video),
///   the MP4 videos real, decodable two-second clips padded to their size (see `videos`),
///   stored in `items` newest first, which is the `mediaItems.list` order.
/// - 8 albums in creation order (= `albums.list` order): "Friends/Family 2021" (8 items),
///   "Été à Paris — 東京" (7 items, one a video), "Trip" (6), "Trip" (6, one a video),
///   "Empty" (0), "Old Camera" (8; its first three items are all named `IMG_0001.JPG`),
///   "Pets" (6, including the one item whose filename is empty), "Highlights" (6; four of
///   them are also in another album, one is a video).
/// - 17 items are in no album; 4 are favorites (one of them a video).
/// - One item was created at exactly 2020-12-31T23:30:00Z (in "Highlights"); the others
///   spread over 2015–2025 with at least five items in every one of those years.
/// - Every filename other than the three `IMG_0001.JPG` and the empty one is unique.
#[derive(Debug)]
pub struct Library {
    pub albums: Vec<FixtureAlbum>,
    pub items: Vec<FixtureItem>,
    /// The item whose bytes are generated on demand, if the options asked for one.
    pub big_item: Option<BigItem>,
    /// Lookups by id and the creation-time order, built on first use (see [`Index`]).
    index: OnceLock<Index>,
}

/// What makes a page cost what the page holds rather than what the library holds: item
/// positions sorted by id (a lookup is a binary search, not a scan of a million items) and
/// by creation time, newest first (a date range is a slice found by binary search).
///
/// Derived from `items`, so it is built lazily and never cloned: the API changes a library by
/// cloning it, changing the clone and replacing the whole (see `Inner::replace_library`), and
/// the clone builds its own index on its first lookup.
#[derive(Debug)]
pub(crate) struct Index {
    by_id: Vec<u32>,
    /// Positions newest first; equal times keep the order of `items`.
    pub(crate) by_time: Vec<u32>,
}

impl Clone for Library {
    fn clone(&self) -> Self {
        Library {
            albums: self.albums.clone(),
            items: self.items.clone(),
            big_item: self.big_item.clone(),
            index: OnceLock::new(),
        }
    }
}

/// An item too big to hold in memory (benchmarks: hundreds of MiB), alone in the album
/// [`BIG_ITEM_ALBUM`] and named [`BIG_ITEM_FILENAME`]. Its [`FixtureItem::bytes`] is empty:
/// the content host generates its original with [`BigItem::fill`] while sending it.
#[derive(Clone, Debug)]
pub struct BigItem {
    pub id: String,
    pub size: u64,
    /// Picks the bytes (the library's seed).
    pub seed: u64,
}

impl BigItem {
    /// Writes the bytes at `offset .. offset + buf.len()` of the item.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        super::generated::fill(self.seed, offset, buf);
    }
}

/// The title of the album that holds the [`BigItem`].
pub const BIG_ITEM_ALBUM: &str = "Big item";
/// The [`BigItem`]'s filename (a video, so the content host serves its original for `=dv`).
pub const BIG_ITEM_FILENAME: &str = "big.mp4";

/// One app-created album.
#[derive(Clone, Debug)]
pub struct FixtureAlbum {
    pub id: String,
    pub title: String,
    /// In album order, which is also the `mediaItems.search` order for this album.
    pub item_ids: Vec<String>,
}

/// Whether an item is a photo or a video.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaKind {
    Photo,
    Video,
}

/// One media item and the bytes its base URL serves.
#[derive(Clone, Debug)]
pub struct FixtureItem {
    pub id: String,
    pub filename: String,
    pub description: String,
    pub mime_type: String,
    pub creation_time: DateTime<Utc>,
    pub width: u32,
    pub height: u32,
    pub kind: MediaKind,
    pub favorite: bool,
    /// Exactly what `=d` (photo) or `=dv` (video) serves.
    pub bytes: Bytes,
}

impl Library {
    /// A library of these albums and items (`items` newest first, as `mediaItems.list`
    /// lists them).
    fn new(albums: Vec<FixtureAlbum>, items: Vec<FixtureItem>) -> Library {
        Library {
            albums,
            items,
            big_item: None,
            index: OnceLock::new(),
        }
    }

    /// The item with this id (a binary search of the index).
    pub fn item(&self, id: &str) -> Option<&FixtureItem> {
        let by_id = &self.index().by_id;
        by_id
            .binary_search_by(|&i| self.items[i as usize].id.as_str().cmp(id))
            .ok()
            .map(|found| &self.items[by_id[found] as usize])
    }

    /// The index of this library, built on first use: O(n log n) once per library version.
    pub(crate) fn index(&self) -> &Index {
        self.index.get_or_init(|| {
            let n = u32::try_from(self.items.len()).expect("fewer than 4 billion items");
            let mut by_id: Vec<u32> = (0..n).collect();
            by_id.sort_unstable_by(|&a, &b| {
                self.items[a as usize].id.cmp(&self.items[b as usize].id)
            });
            let mut by_time: Vec<u32> = (0..n).collect();
            // Stable, and `items` is kept newest first, so this is one pass in practice.
            by_time.sort_by_key(|&i| std::cmp::Reverse(self.items[i as usize].creation_time));
            Index { by_id, by_time }
        })
    }

    /// The album with this id.
    pub fn album(&self, id: &str) -> Option<&FixtureAlbum> {
        self.albums.iter().find(|a| a.id == id)
    }

    /// All albums with exactly this title, in creation order (titles are not unique).
    pub fn albums_titled(&self, title: &str) -> Vec<&FixtureAlbum> {
        self.albums.iter().filter(|a| a.title == title).collect()
    }
}

/// Returns the library for `seed`, generating it on first use.
///
/// JPEG encoding of sixty images is the slowest part of starting an emulator, and test
/// suites start many emulators with the same seed, so libraries are kept for the life of
/// the process. Holding the lock while generating also stops two tests from encoding the
/// same library twice.
///
/// With `hostile` set, the library also holds the names of [`HOSTILE_ALBUMS`]; with `big`
/// above 0, an album of `big` tiny photos (see [`add_big_album`]); with `many` above 0, that
/// many empty albums (see [`add_many_albums`]); with `big_item` above 0, a [`BigItem`] of that
/// many bytes; with `library_size` above 0, that many more items, the first of them in
/// `library_albums` albums of [`LIBRARY_ALBUM_SIZE`] (see [`add_library_items`]).
pub(crate) fn library_for(
    seed: u64,
    hostile: bool,
    big: usize,
    many: usize,
    big_item: u64,
    library_size: usize,
    library_albums: usize,
) -> Arc<Library> {
    type Key = (u64, bool, usize, usize, u64, usize, usize);
    type Libraries = Mutex<HashMap<Key, Arc<Library>>>;
    static LIBRARIES: OnceLock<Libraries> = OnceLock::new();
    let mut libraries = LIBRARIES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    libraries
        .entry((
            seed,
            hostile,
            big,
            many,
            big_item,
            library_size,
            library_albums,
        ))
        .or_insert_with(|| {
            let mut lib = generate(seed);
            if hostile {
                add_hostile(&mut lib, seed);
            }
            if big > 0 {
                add_big_album(&mut lib, seed, big);
            }
            if many > 0 {
                add_many_albums(&mut lib, seed, many);
            }
            if big_item > 0 {
                add_big_item(&mut lib, seed, big_item);
            }
            if library_size > 0 {
                add_library_items(&mut lib, seed, library_size, library_albums);
            }
            // Built now, so that the first page is as fast as the others.
            lib.index();
            Arc::new(lib)
        })
        .clone()
}

/// Album titles and item filenames that no file system accepts as they are (Google does):
/// Windows-illegal characters, control characters, trailing dots and spaces, `.` and `..`,
/// empty titles, names over 255 bytes, names that differ only by case or by Unicode
/// normalisation, and filenames whose extension does not match the mime type.
///
/// Each entry: album title, then its items as (filename, mime type).
pub const HOSTILE_ALBUMS: [(&str, &[(&str, &str)]); 7] = [
    (
        "Wei:rd*Ti?tle\"<x>|y\\z",
        &[
            ("a:b*c?.jpg", "image/jpeg"),
            ("ctrl\u{1}\u{1f}name.jpg", "image/jpeg"),
            ("trailing dot.", "image/jpeg"),
            ("trailing space ", "image/jpeg"),
        ],
    ),
    (
        "..",
        &[("photo.png", "image/jpeg"), ("noext", "image/jpeg")],
    ),
    (".", &[("clip", "video/mp4")]),
    (
        "",
        &[
            ("Caf\u{e9}.jpg", "image/jpeg"),
            ("Cafe\u{301}.jpg", "image/jpeg"),
            ("x.jpg", "image/jpeg"),
            ("X.jpg", "image/jpeg"),
        ],
    ),
    (HOSTILE_LONG_TITLE, &[(HOSTILE_LONG_FILENAME, "image/jpeg")]),
    ("Caf\u{e9}", &[("nfc.jpg", "image/jpeg")]),
    ("Cafe\u{301}", &[("nfd.jpg", "image/jpeg")]),
];

/// 300 bytes: 150 two-byte characters.
pub const HOSTILE_LONG_TITLE: &str = "ÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜ";
/// 300 bytes: 148 two-byte characters and `.jpg`.
pub const HOSTILE_LONG_FILENAME: &str = "éééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé.jpg";

/// Appends the [`HOSTILE_ALBUMS`] to a library: small photos (and one video), created in
/// June 2023, listed after the seeded items by `mediaItems.list`.
fn add_hostile(lib: &mut Library, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6057_11e5);
    let mut counter = 0u32;
    for (title, files) in HOSTILE_ALBUMS {
        let mut item_ids = Vec::new();
        for (filename, mime) in files {
            counter += 1;
            let id = format!("AF1QipHostileItem{counter:02}{seed:x}");
            let creation_time = Utc
                .with_ymd_and_hms(2023, 6, 1 + counter, 12, 0, 0)
                .single()
                .expect("valid June date");
            let payload_seed: u64 = rng.random();
            let video = mime.starts_with("video/");
            let bytes = if video {
                mp4_bytes(false, 50_000, payload_seed)
            } else {
                render_jpeg(64, 48, id_hash(&id), 4, payload_seed, 90).expect("valid size")
            };
            item_ids.push(id.clone());
            lib.items.push(FixtureItem {
                id,
                filename: (*filename).to_owned(),
                description: String::new(),
                mime_type: (*mime).to_owned(),
                creation_time,
                width: 64,
                height: 48,
                kind: if video {
                    MediaKind::Video
                } else {
                    MediaKind::Photo
                },
                favorite: false,
                bytes,
            });
        }
        lib.albums.push(FixtureAlbum {
            id: format!("AF1QipHostileAlbum{:02}{seed:x}", lib.albums.len()),
            title: title.to_owned(),
            item_ids,
        });
    }
    lib.items
        .sort_by_key(|item| std::cmp::Reverse(item.creation_time));
}

/// The title of the album [`add_big_album`] adds.
pub const BIG_ALBUM_TITLE: &str = "Big album";

/// How many distinct JPEG bodies the big album's items share.
const BIG_ALBUM_BODIES: usize = 8;

/// Appends an album of `count` photos named `IMG_00001.jpg`, `IMG_00002.jpg`, ..., one
/// a minute from 2019-01-01T00:00:00Z on, each with its own id. Encoding thousands of JPEGs
/// is slow in debug builds, so the items share [`BIG_ALBUM_BODIES`] tiny (16x16) encoded
/// bodies: what such an album measures is listings, not bytes.
fn add_big_album(lib: &mut Library, seed: u64, count: usize) {
    let bodies: Vec<Bytes> = (0..BIG_ALBUM_BODIES as u64)
        .map(|i| render_jpeg(16, 16, seed ^ i, 8, seed.wrapping_add(i), 90).expect("valid size"))
        .collect();
    let start = Utc.with_ymd_and_hms(2019, 1, 1, 0, 0, 0).unwrap();
    let mut item_ids = Vec::with_capacity(count);
    for n in 0..count {
        let id = format!("AF1QipBigAlbumItem{n:06}x{seed:x}");
        item_ids.push(id.clone());
        lib.items.push(FixtureItem {
            id,
            filename: format!("IMG_{:05}.jpg", n + 1),
            description: String::new(),
            mime_type: "image/jpeg".to_owned(),
            creation_time: start + chrono::Duration::minutes(n as i64),
            width: 16,
            height: 16,
            kind: MediaKind::Photo,
            favorite: false,
            bytes: bodies[n % BIG_ALBUM_BODIES].clone(),
        });
    }
    lib.albums.push(FixtureAlbum {
        id: format!("AF1QipBigAlbum{seed:x}"),
        title: BIG_ALBUM_TITLE.to_owned(),
        item_ids,
    });
    lib.items
        .sort_by_key(|item| std::cmp::Reverse(item.creation_time));
}

/// When the items [`add_library_items`] adds begin: their creation times spread evenly over
/// the [`LIBRARY_YEARS`] years from here.
pub const LIBRARY_START: &str = "2018-01-01T00:00:00Z";
/// How many years the items [`add_library_items`] adds spread over.
pub const LIBRARY_YEARS: i64 = 5;
/// How many items each album of [`add_library_items`] holds: Google's maximum per album.
pub const LIBRARY_ALBUM_SIZE: usize = 20_000;
/// How the titles of the albums [`add_library_items`] groups its items into begin.
pub const LIBRARY_ALBUM_PREFIX: &str = "Library album ";

/// Appends `count` tiny photos in no album, named `LIB_0000001.jpg`, ..., each with its own
/// id, created at even steps over [`LIBRARY_YEARS`] years from [`LIBRARY_START`] (the last one
/// a step before the end): what a big library looks like to `mediaItems.list` and to date
/// filters. Like the big album's, the items share a few tiny encoded bodies, and the library
/// is sorted once, so a million items are generated in seconds.
///
/// The first `albums * LIBRARY_ALBUM_SIZE` of them (oldest first) are also grouped into
/// `albums` albums of [`LIBRARY_ALBUM_SIZE`] (Google's maximum), titled
/// [`LIBRARY_ALBUM_PREFIX`] and a number: big albums whose items are in `/media/all` too, as
/// in a real library (the big album's items are extra ones). An album's page is read from its
/// id list, so it costs what the page holds.
fn add_library_items(lib: &mut Library, seed: u64, count: usize, albums: usize) {
    let bodies: Vec<Bytes> = (0..BIG_ALBUM_BODIES as u64)
        .map(|i| render_jpeg(16, 16, seed ^ !i, 8, seed.wrapping_sub(i), 90).expect("valid size"))
        .collect();
    let start: DateTime<Utc> = LIBRARY_START.parse().expect("a valid start");
    let span_ms = chrono::Duration::days(365 * LIBRARY_YEARS + 1).num_milliseconds();
    let step_ms = span_ms / count as i64;
    let mime = "image/jpeg".to_owned();
    lib.items.reserve(count);
    let id = |n: usize| format!("AF1QipLibraryItem{n:07}x{seed:x}");
    for a in 0..albums {
        let first = a * LIBRARY_ALBUM_SIZE;
        let last = count.min(first + LIBRARY_ALBUM_SIZE);
        lib.albums.push(FixtureAlbum {
            id: format!("AF1QipLibraryAlbum{a:03}x{seed:x}"),
            title: format!("{LIBRARY_ALBUM_PREFIX}{}", a + 1),
            item_ids: (first..last).map(id).collect(),
        });
    }
    // Newest first, so that the sort below only merges two sorted runs.
    for n in (0..count).rev() {
        lib.items.push(FixtureItem {
            id: id(n),
            filename: format!("LIB_{:07}.jpg", n + 1),
            description: String::new(),
            mime_type: mime.clone(),
            creation_time: start + chrono::Duration::milliseconds(step_ms * n as i64),
            width: 16,
            height: 16,
            kind: MediaKind::Photo,
            favorite: false,
            bytes: bodies[n % BIG_ALBUM_BODIES].clone(),
        });
    }
    lib.items
        .sort_by_key(|item| std::cmp::Reverse(item.creation_time));
}

/// How the titles of the albums [`add_many_albums`] adds begin.
pub const MANY_ALBUMS_PREFIX: &str = "Album ";

/// Appends `count` empty albums titled `Album 0001`, `Album 0002`, ...: what a library of
/// many albums looks like to albums.list, whose pages hold at most 50. Empty, because what
/// they measure is the album listing, not the albums' contents.
fn add_many_albums(lib: &mut Library, seed: u64, count: usize) {
    for n in 0..count {
        lib.albums.push(FixtureAlbum {
            id: format!("AF1QipManyAlbums{n:05}x{seed:x}"),
            title: format!("{MANY_ALBUMS_PREFIX}{:04}", n + 1),
            item_ids: Vec::new(),
        });
    }
}

/// Appends the [`BigItem`]: a 1920x1080 video of `size` generated bytes, created
/// 2024-01-01T00:00:00Z, alone in the album [`BIG_ITEM_ALBUM`].
fn add_big_item(lib: &mut Library, seed: u64, size: u64) {
    let id = format!("AF1QipBigItem{size:x}x{seed:x}");
    lib.items.push(FixtureItem {
        id: id.clone(),
        filename: BIG_ITEM_FILENAME.to_owned(),
        description: String::new(),
        mime_type: "video/mp4".to_owned(),
        creation_time: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        width: 1920,
        height: 1080,
        kind: MediaKind::Video,
        favorite: false,
        bytes: Bytes::new(),
    });
    lib.albums.push(FixtureAlbum {
        id: format!("AF1QipBigItemAlbum{seed:x}"),
        title: BIG_ITEM_ALBUM.to_owned(),
        item_ids: vec![id.clone()],
    });
    lib.big_item = Some(BigItem { id, size, seed });
    lib.items
        .sort_by_key(|item| std::cmp::Reverse(item.creation_time));
}

/// Generation indices of each album's items, in album order.
fn album_members() -> [Vec<usize>; 8] {
    [
        (6..14).collect(),
        (14..20).chain([56]).collect(),
        (20..26).collect(),
        (26..31).chain([58]).collect(),
        Vec::new(),
        [1, 2, 3].into_iter().chain(31..36).collect(),
        (36..41).chain([4]).collect(),
        vec![0, 6, 14, 20, 26, 57],
    ]
}

const DESCRIPTIONS: [&str; 5] = [
    "Sunset over the bay",
    "Grandma's 80th birthday",
    "Café au lait ☕",
    "Line one\nline two",
    "The \"good\" camera",
];

const VIDEO_SHAPES: [(u32, u32, usize, usize); VIDEO_COUNT] = [
    (1920, 1080, 100_000, 200_000),
    (1280, 720, 400_000, 800_000),
    (1080, 1920, 1_000_000, 1_500_000),
    (3840, 2160, 2_300_000, 2_500_000),
];

pub(crate) fn generate(seed: u64) -> Library {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ids = HashSet::new();
    let mut new_id = |rng: &mut StdRng| loop {
        let id: String = "AF1Qip"
            .chars()
            .chain((0..60).map(|_| ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())] as char))
            .collect();
        if ids.insert(id.clone()) {
            return id;
        }
    };

    let album_ids: Vec<String> = ALBUM_TITLES.iter().map(|_| new_id(&mut rng)).collect();
    let mut times = HashSet::new();
    let mut generated = Vec::with_capacity(ITEM_COUNT);
    for index in 0..ITEM_COUNT {
        let id = new_id(&mut rng);
        let creation_time = loop {
            let t = creation_time(index, &mut rng);
            if times.insert(t) {
                break t;
            }
        };
        generated.push(make_item(index, id, creation_time, &mut rng));
    }

    let albums = ALBUM_TITLES
        .iter()
        .zip(album_ids)
        .zip(album_members())
        .map(|((title, id), members)| FixtureAlbum {
            id,
            title: (*title).to_owned(),
            item_ids: members.iter().map(|&i| generated[i].id.clone()).collect(),
        })
        .collect();
    let mut items = generated;
    items.sort_by_key(|item| std::cmp::Reverse(item.creation_time));
    Library::new(albums, items)
}

/// Item 0 sits at 23:30 on New Year's Eve so that clients that convert to local time put
/// it in the wrong year; the rest cycle through 2015–2025 so every year has items.
fn creation_time(index: usize, rng: &mut StdRng) -> DateTime<Utc> {
    if index == 0 {
        return Utc.with_ymd_and_hms(2020, 12, 31, 23, 30, 0).unwrap();
    }
    let year = 2015 + (index % 11) as i32;
    // Keep 2025 in its first five months so no fixture lies in the future.
    let last_day = if year == 2025 { 150 } else { 365 };
    let date = NaiveDate::from_yo_opt(year, rng.random_range(1..=last_day))
        .expect("day of year within 1..=365 is valid");
    let time = date
        .and_hms_opt(
            rng.random_range(0..24),
            rng.random_range(0..60),
            rng.random_range(0..60),
        )
        .expect("valid time of day");
    Utc.from_utc_datetime(&time)
}

fn make_item(
    index: usize,
    id: String,
    creation_time: DateTime<Utc>,
    rng: &mut StdRng,
) -> FixtureItem {
    let favorite = FAVORITES.contains(&index);
    let description = if index % 7 == 2 {
        DESCRIPTIONS[(index / 7) % DESCRIPTIONS.len()].to_owned()
    } else {
        String::new()
    };
    let stamp = format!(
        "{:04}{:02}{:02}_{:02}{:02}{:02}",
        creation_time.year(),
        creation_time.month(),
        creation_time.day(),
        creation_time.hour(),
        creation_time.minute(),
        creation_time.second()
    );
    let payload_seed: u64 = rng.random();

    if let Some(video) = index.checked_sub(ITEM_COUNT - VIDEO_COUNT) {
        let (width, height, min, max) = VIDEO_SHAPES[video];
        let len = rng.random_range(min..=max);
        let quicktime = video == VIDEO_COUNT - 1;
        let (filename, mime_type) = if quicktime {
            (format!("IMG_{:04}.MOV", 100 + index), "video/quicktime")
        } else {
            (format!("VID_{stamp}.mp4"), "video/mp4")
        };
        return FixtureItem {
            id,
            filename,
            description,
            mime_type: mime_type.to_owned(),
            creation_time,
            width,
            height,
            kind: MediaKind::Video,
            favorite,
            bytes: if quicktime {
                mp4_bytes(true, len, payload_seed)
            } else {
                // A real clip (see `videos`), so a browser can play and seek it.
                let mut noise = Noise::new(payload_seed);
                super::videos::padded(width, height, len, || noise.next())
                    .expect("every MP4 shape has a clip smaller than its size")
            },
        };
    }

    let (width, height, noise) = match index {
        // Guarantee both ends of the size range whatever the seed.
        7 => (64, 48, 30),
        8 => (800, 600, 14),
        _ => {
            let w = rng.random_range(64..=800);
            let h = rng.random_range(48..=600);
            // Per-pixel noise is what makes JPEGs big: 14 at 800x600 is about 250 KB.
            let noise = rng.random_range(2..=14);
            if rng.random_bool(0.25) {
                (h, w, noise)
            } else {
                (w, h, noise)
            }
        }
    };
    let filename = match index {
        1..=3 => "IMG_0001.JPG".to_owned(),
        4 => String::new(),
        i if i % 3 == 0 && i != 0 => format!("IMG_{:04}.JPG", 100 + i),
        _ => format!("IMG_{stamp}.jpg"),
    };
    FixtureItem {
        bytes: render_jpeg(width, height, id_hash(&id), noise, payload_seed, 90)
            .expect("fixture dimensions are valid"),
        id,
        filename,
        description,
        mime_type: "image/jpeg".to_owned(),
        creation_time,
        width,
        height,
        kind: MediaKind::Photo,
        favorite,
    }
}

/// A stable 64-bit digest of an id; picks an item's colours so that thumbnails generated
/// later on demand look like the full-size photo.
pub(crate) fn id_hash(id: &str) -> u64 {
    let digest = Sha256::digest(id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// Cheap xorshift64* generator for per-pixel noise and video payloads: StdRng is far too
/// slow per byte in unoptimised test builds, and this only needs to look random.
struct Noise(u64);

impl Noise {
    fn new(seed: u64) -> Noise {
        Noise(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A baseline JPEG: a diagonal gradient between two colours chosen by `colour_seed`, with
/// per-pixel noise of amplitude `noise` (more noise compresses worse, so sizes vary).
pub(crate) fn render_jpeg(
    width: u32,
    height: u32,
    colour_seed: u64,
    noise: u8,
    noise_seed: u64,
    quality: u8,
) -> Result<Bytes, image::ImageError> {
    let c0 = colour_seed.to_le_bytes();
    let c1 = colour_seed.rotate_left(24).to_le_bytes();
    let mut noise_gen = Noise::new(noise_seed);
    let amplitude = i32::from(noise);
    let span = (width + height).max(1) as i32;
    let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height {
        for x in 0..width {
            let t = (x + y) as i32;
            let r = noise_gen.next();
            for channel in 0..3 {
                let base =
                    (i32::from(c0[channel]) * (span - t) + i32::from(c1[channel]) * t) / span;
                let jitter = if amplitude == 0 {
                    0
                } else {
                    ((r >> (channel * 16)) & 0xffff) as i32 % (2 * amplitude + 1) - amplitude
                };
                pixels.push((base + jitter).clamp(0, 255) as u8);
            }
        }
    }
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality).encode(
        &pixels,
        width,
        height,
        ExtendedColorType::Rgb8,
    )?;
    Ok(Bytes::from(out))
}

/// An MP4 (or QuickTime) file as far as sniffers care: an `ftyp` box, then an `mdat` box
/// whose payload is seeded noise, `len` bytes in all.
fn mp4_bytes(quicktime: bool, len: usize, seed: u64) -> Bytes {
    let mut out = Vec::with_capacity(len);
    if quicktime {
        out.extend_from_slice(&20u32.to_be_bytes());
        out.extend_from_slice(b"ftypqt  ");
        out.extend_from_slice(&[0x20, 0x05, 0x03, 0x00]);
        out.extend_from_slice(b"qt  ");
    } else {
        out.extend_from_slice(&32u32.to_be_bytes());
        out.extend_from_slice(b"ftypisom");
        out.extend_from_slice(&[0, 0, 2, 0]);
        out.extend_from_slice(b"isomiso2avc1mp41");
    }
    let mdat_len = u32::try_from(len - out.len()).expect("video fixtures are small");
    out.extend_from_slice(&mdat_len.to_be_bytes());
    out.extend_from_slice(b"mdat");
    let mut noise = Noise::new(seed);
    while out.len() < len {
        let chunk = noise.next().to_le_bytes();
        let take = chunk.len().min(len - out.len());
        out.extend_from_slice(&chunk[..take]);
    }
    Bytes::from(out)
}
