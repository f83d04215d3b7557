//! Picker API sessions served as folders (`/picked/<set>/<file>`): creating a session, the
//! user's picking (the emulator's stand-in), listing with exact names, sizes and dates,
//! downloads identical to the fixture's bytes under every policy, URL refresh by listing the
//! session again past the 60-minute lifetime, session expiry, deletion, and the emulator's
//! Picker API rules. Time moves through the clocks, never by sleeping.

mod common;

use std::time::Duration;

use common::{Stack, file_names, sha256, start_custom};
use gphotos_dav::catalog::picked::decode_items;
use gphotos_dav::catalog::store::PickedSet;
use gphotos_dav::catalog::urls::UrlAge;
use gphotos_dav::google::{Google, GoogleError, RetryPolicy};
use gphotos_dav::pick;
use gphotos_dav::server::config::Policy;
use gphotos_dav::server::signed::SignKey;
use gphotos_dav_emulator::{
    self as emulator, EmulatorOptions, FixtureItem, MediaKind, RunningEmulator,
};
use reqwest::StatusCode;

const MINUTE: Duration = Duration::from_secs(60);
const SET: &str = "Summer picks";

/// Tiny poll interval (no test waits on it), tokens that outlive the hours skipped here (so
/// call counts are not blurred by token refreshes), sessions that live two hours.
fn opts() -> EmulatorOptions {
    EmulatorOptions {
        access_token_ttl: Duration::from_secs(30 * 24 * 3600),
        picker_poll_interval: Duration::from_millis(10),
        picker_session_ttl: 120 * MINUTE,
        ..EmulatorOptions::default()
    }
}

async fn stack_with(opts: EmulatorOptions, policy: Policy) -> Stack {
    start_custom(opts, emulator::REFRESH_TOKEN, |c| c.webdav.policy = policy).await
}

/// A stack whose reads all go to Google: for tests that read a file again to watch its
/// download URL age (the content cache would serve the second read with no URL at all).
async fn uncached_stack(opts: EmulatorOptions) -> Stack {
    start_custom(opts, emulator::REFRESH_TOKEN, |c| {
        c.cache.content_max = Some("0".into())
    })
    .await
}

fn google_for(emu: &RunningEmulator, refresh_token: &str) -> Google {
    common::google_with(emu, refresh_token, RetryPolicy::immediate())
}

/// The fixture items these tests pick: the three photos all named `IMG_0001.JPG` (names get
/// their ids), the photo without a filename, a video, and two plain photos.
fn chosen(emu: &RunningEmulator) -> Vec<FixtureItem> {
    let lib = emu.emulator.library();
    let mut out: Vec<FixtureItem> = lib
        .items
        .iter()
        .filter(|i| i.filename == "IMG_0001.JPG")
        .cloned()
        .collect();
    assert_eq!(out.len(), 3);
    out.push(
        lib.items
            .iter()
            .find(|i| i.filename.is_empty())
            .unwrap()
            .clone(),
    );
    out.push(
        lib.items
            .iter()
            .find(|i| i.kind == MediaKind::Video)
            .unwrap()
            .clone(),
    );
    out.extend(
        lib.items
            .iter()
            .filter(|i| i.kind == MediaKind::Photo && !i.filename.is_empty())
            .filter(|i| i.filename != "IMG_0001.JPG")
            .take(2)
            .cloned(),
    );
    out
}

fn ids(items: &[FixtureItem]) -> Vec<String> {
    items.iter().map(|i| i.id.clone()).collect()
}

/// The pick command's flow in process: create the session, the user picks `items`, wait
/// and store the set in the gateway's store. Returns the set and what the command printed.
async fn pick_into(stack: &Stack, name: &str, items: &[FixtureItem]) -> (PickedSet, String) {
    let google = google_for(&stack.emu, emulator::REFRESH_TOKEN);
    let mut printed: Vec<u8> = Vec::new();
    let mut output = pick::Output {
        out: &mut printed,
        terminal: false,
        quiet: true,
        done: None,
    };
    let store = stack.catalog.store();
    let session = pick::begin(&google, store, name, None, &mut output)
        .await
        .unwrap();
    assert_eq!(
        stack.emulator().pick(&session.id, &ids(items)).unwrap(),
        items.len()
    );
    let set = pick::finish(&google, store, name, &session, &mut output)
        .await
        .unwrap();
    (set, String::from_utf8(printed).unwrap())
}

/// name → item, as the tree must name a folder of `items`.
fn expected(items: &[FixtureItem]) -> Vec<(String, FixtureItem)> {
    let refs: Vec<&FixtureItem> = items.iter().collect();
    file_names(&refs)
        .into_iter()
        .zip(items.iter().cloned())
        .collect()
}

fn http_date(item: &FixtureItem) -> String {
    httpdate::fmt_http_date(item.creation_time.into())
}

// ------------------------------------------------------------------ create, pick, list

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picked_sets_are_folders_with_exact_names_sizes_and_dates() {
    let stack = stack_with(opts(), Policy::NativeProxy).await;
    let items = chosen(&stack.emu);
    let (set, printed) = pick_into(&stack, SET, &items).await;

    // What the command printed: the link to pick at, then every item under its tree name.
    let uri_line = printed.lines().find(|l| l.contains("/autoclose")).unwrap();
    assert_eq!(
        uri_line,
        format!(
            "{}/pick/{}/autoclose",
            stack.emu.picker_base(),
            set.session_id
        )
    );
    assert!(
        printed.contains(&format!(
            "Picked {} item(s): /picked/{SET}/ until",
            items.len()
        )),
        "{printed}"
    );
    for (name, item) in expected(&items) {
        let kind = if item.kind == MediaKind::Video {
            "VIDEO"
        } else {
            "PHOTO"
        };
        let line = format!(
            "  {name}\t{kind}\t{}",
            item.creation_time.format("%Y-%m-%d %H:%M:%S")
        );
        assert!(printed.contains(&line), "{line:?} not in:\n{printed}");
    }
    // The stored set: the session, its expiry two hours out, every item with its URL.
    let stored = decode_items(&set.items_json).unwrap();
    assert_eq!(
        stored.iter().map(|s| s.item.id.clone()).collect::<Vec<_>>(),
        ids(&items)
    );
    let ttl = set.expire_time - set.picked_at;
    assert!(
        (ttl - chrono::Duration::minutes(120)).num_seconds().abs() <= 5,
        "{ttl}"
    );

    // The root shows `picked`; `/picked` shows the set.
    let root: Vec<String> = stack.list("/").await.iter().map(|e| e.name()).collect();
    assert!(root.contains(&"picked".to_string()), "{root:?}");
    let sets = stack.list("/picked/").await;
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].name(), SET);
    assert!(sets[0].is_collection);

    // The set's folder: every item once, named by the naming rules, exact size and date.
    let listed = stack.list(&format!("/picked/{SET}/")).await;
    let want = expected(&items);
    assert_eq!(listed.len(), want.len());
    for (name, item) in &want {
        let e = listed
            .iter()
            .find(|e| &e.name() == name)
            .unwrap_or_else(|| panic!("{name} not listed: {listed:?}"));
        assert!(!e.is_collection);
        assert_eq!(e.size(), item.bytes.len() as u64, "{name}");
        assert_eq!(e.props["getlastmodified"], http_date(item), "{name}");
        assert_eq!(e.props["getcontenttype"], item.mime_type, "{name}");
    }
    let c = stack.emulator().counters();
    assert_eq!(c.get("picker.sessions.create"), 1);
    assert_eq!(c.get("picker.mediaItems.list"), 1);
    assert!(c.get("picker.sessions.get") >= 1);
    // Sizes were probed on the picked URLs (with the token), not through the Library API.
    assert_eq!(c.get("picker.content.head"), items.len() as u64);
    assert_eq!(c.get("mediaItems.batchGet"), 0);
    assert_eq!(c.get("content.head"), 0);
}

// ------------------------------------------------------------------ downloads

async fn get_all_and_compare(stack: &Stack, base_url: &str, items: &[FixtureItem]) {
    for (name, item) in expected(items) {
        let url = format!(
            "{base_url}{}",
            common::encode_path(&format!("picked/{SET}/{name}"))
        );
        let resp = stack.http.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "GET {name}");
        assert!(resp.headers().get("location").is_none());
        assert_eq!(
            resp.headers()["content-length"].to_str().unwrap(),
            item.bytes.len().to_string()
        );
        let body = resp.bytes().await.unwrap();
        assert_eq!(sha256(&body), sha256(&item.bytes), "bytes of {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_streams_identical_bytes_under_every_policy() {
    // native_proxy and 302_redirect: one gateway each.
    for policy in [Policy::NativeProxy, Policy::Redirect302] {
        let stack = stack_with(opts(), policy).await;
        let items = chosen(&stack.emu);
        pick_into(&stack, SET, &items).await;
        get_all_and_compare(&stack, &stack.url, &items).await;
        let c = stack.emulator().counters();
        assert_eq!(
            c.get("picker.content.get"),
            items.len() as u64,
            "{policy:?}"
        );
        assert_eq!(c.get("content.get"), 0, "{policy:?}");
        // A range is served from the picked bytes too.
        let (name, item) = expected(&items).remove(4);
        let (status, _, body) = stack
            .get_range(&format!("/picked/{SET}/{name}"), "bytes=100-199")
            .await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(body, item.bytes[100..200].to_vec());
    }

    // use_proxy_url: the front would hand out signed links; picked files stream instead.
    let node = start_custom(opts(), emulator::REFRESH_TOKEN, |c| {
        c.webdav.sign_key = Some(SignKey::new("picker-test-key-0123456789-abcdefghijklmnop"));
    })
    .await;
    let down = node.url.trim_end_matches('/').to_string();
    let front = node
        .gateway(|c| {
            c.webdav.policy = Policy::UseProxyUrl;
            c.webdav.down_proxy_url = Some(down);
            c.webdav.sign_key = Some(SignKey::new("picker-test-key-0123456789-abcdefghijklmnop"));
        })
        .await;
    let items = chosen(&node.emu);
    let (set, _) = pick_into(&node, SET, &items).await;
    front.catalog.store().put_picked_set(set).await.unwrap();
    get_all_and_compare(&node, &front.url, &items).await;
}

// ------------------------------------------------------------------ URL lifetime

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_past_their_lifetime_are_refreshed_by_listing_the_session_again() {
    let stack = uncached_stack(opts()).await;
    let items = chosen(&stack.emu);
    let (set, _) = pick_into(&stack, SET, &items).await;
    let want = expected(&items);
    let path = |name: &str| format!("/picked/{SET}/{name}");
    let (status, _, body) = stack.get(&path(&want[0].0)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&want[0].1.bytes));

    // 61 minutes later every stored URL is dead at Google (403).
    stack.advance(61 * MINUTE);
    stack.emulator().counters().reset();
    let paths: Vec<String> = want.iter().map(|(name, _)| path(name)).collect();
    let gets = paths.iter().map(|p| stack.get(p)).collect::<Vec<_>>();
    let answers = futures::future::join_all(gets).await;
    for ((name, item), (status, _, body)) in want.iter().zip(answers) {
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(sha256(&body), sha256(&item.bytes), "{name}");
    }
    let c = stack.emulator().counters();
    // One listing of the session for all concurrent downloads; batchGet cannot help.
    assert_eq!(c.get("picker.mediaItems.list"), 1, "{:?}", c.snapshot());
    assert_eq!(c.get("mediaItems.batchGet"), 0);
    assert_eq!(c.get("picker.content.get"), items.len() as u64);
    // The fresh URLs were written back to the store.
    let now = stored_set(&stack).await;
    let (old, new) = (
        decode_items(&set.items_json).unwrap(),
        decode_items(&now.items_json).unwrap(),
    );
    assert!(new[0].url_fetched_at - old[0].url_fetched_at >= chrono::Duration::minutes(61));
    assert_ne!(
        new[0].item.media_file.base_url,
        old[0].item.media_file.base_url
    );
}

/// Picked URLs follow `[google] url_max_age_secs` as Library URLs do: by default one 24
/// minutes old is used and one 26 minutes old is replaced first (a listing of the session, no
/// refusal); with 3000 s and Google ending URLs at 35 minutes, the refusal at 36 shortens the
/// age to 31 minutes, after which URLs are replaced in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picked_urls_are_replaced_at_the_same_age_as_library_urls() {
    let path = |name: &str| format!("/picked/{SET}/{name}");
    let stack = uncached_stack(opts()).await;
    let items = chosen(&stack.emu);
    pick_into(&stack, SET, &items).await;
    // Listed: the sizes are known, so the GETs below are the only uses of the URLs.
    stack.list(&format!("/picked/{SET}/")).await;
    let (name, item) = expected(&items).remove(0);
    let c = stack.emulator().counters();
    for (minutes, listings) in [(24, 0), (2, 1)] {
        stack.advance(minutes * MINUTE);
        c.reset();
        let (status, _, body) = stack.get(&path(&name)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(sha256(&body), sha256(&item.bytes));
        assert_eq!(
            c.get("picker.mediaItems.list"),
            listings,
            "{:?}",
            c.snapshot()
        );
        assert_eq!(c.get("picker.content.get"), 1, "{:?}", c.snapshot());
        assert_eq!(c.get("picker.content.expired"), 0);
    }

    let stack = start_custom(
        EmulatorOptions {
            baseurl_ttl: 35 * MINUTE,
            ..opts()
        },
        emulator::REFRESH_TOKEN,
        |c| {
            c.google.url_max_age_secs = 3000;
            c.cache.content_max = Some("0".into());
        },
    )
    .await;
    let items = chosen(&stack.emu);
    pick_into(&stack, SET, &items).await;
    // Listed: the sizes are known, so the GETs below are the only uses of the URLs.
    stack.list(&format!("/picked/{SET}/")).await;
    let want = expected(&items);
    let c = stack.emulator().counters();
    // (minutes later, file, session listings, refusals): refused at 36, then 30 minutes old
    // is still used, 32 minutes old is replaced first.
    for (minutes, file, listings, refused) in [(36, 0, 1, 1), (30, 1, 0, 0), (2, 2, 1, 0)] {
        stack.advance(minutes * MINUTE);
        c.reset();
        let (name, item) = &want[file];
        let (status, _, body) = stack.get(&path(name)).await;
        assert_eq!(status, StatusCode::OK, "{minutes} minutes later");
        assert_eq!(
            sha256(&body),
            sha256(&item.bytes),
            "{minutes} minutes later"
        );
        let snapshot = c.snapshot();
        assert_eq!(c.get("picker.mediaItems.list"), listings, "{snapshot:?}");
        assert_eq!(c.get("picker.content.expired"), refused, "{snapshot:?}");
        assert_eq!(c.get("picker.content.get"), 1 + refused, "{snapshot:?}");
        assert_eq!(stack.catalog.url_age().max(), 31 * MINUTE);
    }
}

async fn stored_set(stack: &Stack) -> PickedSet {
    stack
        .catalog
        .store()
        .picked_sets()
        .await
        .into_iter()
        .find(|s| s.name == SET)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_url_is_replaced_by_listing_the_session_once() {
    // Google's URLs sometimes die early: here after 10 minutes.
    let stack = stack_with(
        EmulatorOptions {
            baseurl_ttl: 10 * MINUTE,
            ..opts()
        },
        Policy::NativeProxy,
    )
    .await;
    let items = chosen(&stack.emu);
    pick_into(&stack, SET, &items).await;
    let (name, item) = expected(&items).remove(0);
    stack.list(&format!("/picked/{SET}/")).await;
    stack.advance(20 * MINUTE);
    stack.emulator().counters().reset();
    let (status, _, body) = stack.get(&format!("/picked/{SET}/{name}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&item.bytes));
    let c = stack.emulator().counters();
    assert_eq!(c.get("picker.content.get"), 2, "{:?}", c.snapshot());
    assert_eq!(c.get("picker.mediaItems.list"), 1);
}

// ------------------------------------------------------------------ expiry and delete

/// Log output, captured by the one test of this binary that installs the process-wide
/// subscriber.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_set_disappears_with_one_log_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let stack = stack_with(opts(), Policy::NativeProxy).await;
    let items = chosen(&stack.emu);
    pick_into(&stack, SET, &items).await;
    let (name, _) = expected(&items).remove(0);
    assert_eq!(stack.list("/picked/").await.len(), 1);
    assert_eq!(
        stack.list(&format!("/picked/{SET}/")).await.len(),
        items.len()
    );

    stack.advance(121 * MINUTE);
    assert!(stack.list("/picked/").await.is_empty());
    let (status, _) = stack
        .propfind_raw(&format!("/picked/{SET}/"), Some("1"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = stack.get(&format!("/picked/{SET}/{name}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(stack.list("/picked/").await.is_empty());
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let expired: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("picked set expired"))
        .collect();
    assert_eq!(expired.len(), 1, "{logs}");
    assert!(
        expired[0].contains(" INFO ") && expired[0].contains(SET),
        "{}",
        expired[0]
    );
    // Bearer-only URLs and tokens are secrets too: none was logged.
    for secret in stack.emulator().issued_secrets() {
        assert!(!logs.contains(&secret), "a secret reached the logs");
    }
    // Google forgot the session too; the store keeps the set for `pick --list` to report.
    let google = google_for(&stack.emu, emulator::REFRESH_TOKEN);
    let set = stored_set(&stack).await;
    assert!(matches!(
        google.picker.get_session(&set.session_id).await,
        Err(GoogleError::NotFound(_))
    ));
    let mut listed: Vec<u8> = Vec::new();
    pick::list(stack.catalog.store(), &mut listed)
        .await
        .unwrap();
    let listed = String::from_utf8(listed).unwrap();
    // `pick --list` runs on the real clock, where the set has two hours left.
    assert!(
        listed.starts_with(&format!("{SET}\t{} item(s)\t", items.len())),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_ends_the_session_and_removes_the_folder() {
    let stack = stack_with(opts(), Policy::NativeProxy).await;
    let items = chosen(&stack.emu);
    let (first, _) = pick_into(&stack, SET, &items[..2]).await;
    let (_, _) = pick_into(&stack, "Other", &items[2..4]).await;
    assert_eq!(stack.list("/picked/").await.len(), 2);

    // A live name is not picked over.
    let google = google_for(&stack.emu, emulator::REFRESH_TOKEN);
    let mut sink: Vec<u8> = Vec::new();
    let mut output = pick::Output {
        out: &mut sink,
        terminal: false,
        quiet: true,
        done: None,
    };
    let refused = pick::begin(&google, stack.catalog.store(), SET, None, &mut output).await;
    assert!(matches!(refused, Err(pick::PickError::NameTaken(_))));

    let mut printed: Vec<u8> = Vec::new();
    pick::delete(&google, stack.catalog.store(), SET, &mut printed)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(printed).unwrap(),
        format!("Deleted the picked set {SET:?}.\n")
    );
    assert_eq!(stack.emulator().counters().get("picker.sessions.delete"), 1);
    assert!(matches!(
        google.picker.get_session(&first.session_id).await,
        Err(GoogleError::NotFound(_))
    ));
    let left: Vec<String> = stack
        .list("/picked/")
        .await
        .iter()
        .map(|e| e.name())
        .collect();
    assert_eq!(left, vec!["Other".to_string()]);
    let mut again: Vec<u8> = Vec::new();
    assert!(matches!(
        pick::delete(&google, stack.catalog.store(), SET, &mut again).await,
        Err(pick::PickError::Usage(_))
    ));
}

/// An import that copied every item ends the set: `sessions.delete` at Google, the set gone
/// from the store and from `/picked`, and the output says so. The copies stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_import_deletes_the_session_and_the_set() {
    const ALBUM: &str = "All of them";
    let stack = stack_with(opts(), Policy::NativeProxy).await;
    let items: Vec<FixtureItem> = chosen(&stack.emu).into_iter().skip(5).collect();
    let (set, _) = pick_into(&stack, SET, &items).await;
    let google = google_for(&stack.emu, emulator::REFRESH_TOKEN);
    let store = stack.catalog.store();
    let mut printed: Vec<u8> = Vec::new();
    let mut output = pick::Output {
        out: &mut printed,
        terminal: false,
        quiet: true,
        done: None,
    };
    let summary = pick::import(&google, store, &set, ALBUM, &UrlAge::default(), &mut output)
        .await
        .unwrap();
    let printed = String::from_utf8(printed).unwrap();
    assert_eq!(summary.imported, items.len(), "{printed}");
    assert!(
        printed.contains(&format!(
            "Deleted the picked set {SET:?} and ended its picking session: its items are in \
             the album {ALBUM:?} now."
        )),
        "{printed}"
    );
    assert_eq!(stack.emulator().counters().get("picker.sessions.delete"), 1);
    assert!(matches!(
        google.picker.get_session(&set.session_id).await,
        Err(GoogleError::NotFound(_))
    ));
    assert!(store.picked_sets().await.is_empty());
    assert!(stack.list("/picked/").await.is_empty());
    let album = stack.list(&format!("/album/{ALBUM}/")).await;
    assert_eq!(album.len(), items.len());
}

/// Google limits how many picking sessions a user holds (the number is not documented: the
/// emulator's is set to 2 here). One more `pick` is refused once, not retried, with a message
/// naming the commands that end sets; deleting a set ends its session and frees a place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_picking_sessions_say_which_sets_to_end() {
    let stack = stack_with(
        EmulatorOptions {
            picker_session_limit: 2,
            ..opts()
        },
        Policy::NativeProxy,
    )
    .await;
    let items = chosen(&stack.emu);
    let (first, _) = pick_into(&stack, "First", &items[..2]).await;
    pick_into(&stack, "Second", &items[2..4]).await;
    let google = google_for(&stack.emu, emulator::REFRESH_TOKEN);
    let store = stack.catalog.store();
    let mut sink: Vec<u8> = Vec::new();
    let mut output = pick::Output {
        out: &mut sink,
        terminal: false,
        quiet: true,
        done: None,
    };
    let refused = pick::begin(&google, store, "Third", None, &mut output).await;
    let Err(pick::PickError::Usage(message)) = refused else {
        panic!("not refused: {refused:?}");
    };
    assert!(message.contains("RESOURCE_EXHAUSTED"), "{message}");
    assert!(message.contains("too many picking sessions"), "{message}");
    assert!(message.contains("`gphotos-dav pick --list`"), "{message}");
    assert!(
        message.contains("`gphotos-dav pick --delete NAME`"),
        "{message}"
    );
    let c = stack.emulator().counters();
    assert_eq!(
        c.get("picker.sessions.create"),
        3,
        "the refusal is not retried"
    );
    // Both sets are still served: their sessions live.
    assert_eq!(stack.list("/picked/").await.len(), 2);

    // Deleting a set ends its session at Google, which frees a place.
    let mut printed: Vec<u8> = Vec::new();
    pick::delete(&google, store, "First", &mut printed)
        .await
        .unwrap();
    assert_eq!(c.get("picker.sessions.delete"), 1);
    assert!(matches!(
        google.picker.get_session(&first.session_id).await,
        Err(GoogleError::NotFound(_))
    ));
    let session = pick::begin(&google, store, "Third", None, &mut output)
        .await
        .unwrap();
    assert!(!session.id.is_empty());
    assert_eq!(c.get("picker.sessions.create"), 4);
}

// ------------------------------------------------------------------ the emulated Picker API

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_picker_api_keeps_googles_rules() {
    let emu = emulator::Emulator::start(opts(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let google = google_for(&emu, emulator::REFRESH_TOKEN);
    let session = google.picker.create_session(Some(2)).await.unwrap();
    assert!(!session.media_items_set);
    assert_eq!(session.poll_interval(), Duration::from_millis(10));
    let timeout = session.timeout_in().unwrap();
    assert!(timeout <= Duration::from_secs(1800) && timeout > Duration::from_secs(1790));
    let expires = session.expire_time.unwrap() - chrono::Utc::now();
    assert!(
        (expires - chrono::Duration::minutes(120))
            .num_seconds()
            .abs()
            <= 5
    );

    // Listing before the user is done: 400 FAILED_PRECONDITION.
    match google.picker.list_items(&session.id).await {
        Err(GoogleError::Api { code, status, .. }) => {
            assert_eq!((code, status.as_str()), (400, "FAILED_PRECONDITION"))
        }
        other => panic!("unexpected {other:?}"),
    }
    // maxItemCount is enforced on the picking page; the page URL records a pick.
    let lib_ids: Vec<String> = emu.emulator.library().items[..3]
        .iter()
        .map(|i| i.id.clone())
        .collect();
    assert!(emu.emulator.pick(&session.id, &lib_ids).is_err());
    let http = reqwest::Client::new();
    let page = format!(
        "{}?ids={},{}",
        session.autoclose_uri(),
        lib_ids[0],
        lib_ids[1]
    );
    let resp = http.get(&page).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        google
            .picker
            .get_session(&session.id)
            .await
            .unwrap()
            .media_items_set
    );
    let picked = google.picker.list_items(&session.id).await.unwrap();
    assert_eq!(
        picked.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        lib_ids[..2].to_vec()
    );

    // Page sizes: negative is refused, above 100 is clamped.
    let token = google.library.tokens().access_token().await.unwrap();
    let list_url = format!("{}/v1/mediaItems", emu.picker_base());
    let resp = http
        .get(&list_url)
        .bearer_auth(token.secret())
        .query(&[("sessionId", session.id.as_str()), ("pageSize", "-1")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = http
        .get(&list_url)
        .bearer_auth(token.secret())
        .query(&[("sessionId", session.id.as_str()), ("pageSize", "1")])
        .send()
        .await
        .unwrap();
    let page: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(page["mediaItems"].as_array().unwrap().len(), 1);
    assert!(page["nextPageToken"].is_string());

    // Picked bytes: only with the bearer token; 403 once the URL is 60 minutes old.
    let url = picked[0].download_url();
    let item = emu.emulator.library().item(&picked[0].id).unwrap().clone();
    assert_eq!(
        http.get(&url).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let resp = http
        .get(&url)
        .bearer_auth(token.secret())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(sha256(&resp.bytes().await.unwrap()), sha256(&item.bytes));
    // A picked URL is not a Library URL: the capability alone opens nothing at /lh/.
    let as_library = url.replace("/pk/", "/lh/");
    assert_eq!(
        http.get(&as_library).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    emu.emulator.clock().advance(60 * MINUTE);
    assert_eq!(
        http.get(&url)
            .bearer_auth(token.secret())
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    // Listing again gives URLs that work.
    let fresh = google.picker.list_items(&session.id).await.unwrap();
    let resp = http
        .get(fresh[0].download_url())
        .bearer_auth(token.secret())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // Deleted: the session and its URLs are gone.
    google.picker.delete_session(&session.id).await.unwrap();
    assert!(matches!(
        google.picker.get_session(&session.id).await,
        Err(GoogleError::NotFound(_))
    ));
    assert_eq!(
        http.get(fresh[0].download_url())
            .bearer_auth(token.secret())
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    let c = emu.emulator.counters();
    assert_eq!(c.get("picker.sessions.create"), 1);
    assert_eq!(c.get("picker.sessions.delete"), 1);
    assert_eq!(c.get("picker.page"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picker_calls_need_the_picker_scope() {
    let emu = emulator::Emulator::start(opts(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let google = google_for(&emu, emulator::REFRESH_TOKEN_NO_SCOPE);
    assert!(matches!(
        google.picker.create_session(None).await,
        Err(GoogleError::InsufficientScopes)
    ));
}

// ------------------------------------------------------------------ the command line

/// A configuration for `pick` and `serve` child processes on `emu`, sharing one store file.
fn cli_config(dir: &std::path::Path, emu: &RunningEmulator) -> std::path::PathBuf {
    let path = dir.join("webdav.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{}[cache]\npath = \"{}\"\n",
            emu.google_config(),
            dir.join("metadata.sqlite").display(),
        ),
    )
    .unwrap();
    path
}

/// Runs a `gphotos-dav` child to its end (bounded); its exit status and both outputs.
async fn run_cli(args: &[&str]) -> (bool, String, String) {
    let child = common::spawn(args);
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the command ends")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pick_command_creates_waits_stores_lists_and_deletes() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let emu = emulator::Emulator::start(opts(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = cli_config(dir.path(), &emu);
    let cfg = cfg.to_str().unwrap();
    let items: Vec<FixtureItem> = chosen(&emu).into_iter().skip(3).collect();

    let mut child = common::spawn(&["pick", "--config", cfg, "--name", SET, "--max", "5"]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let line = common::wait_for_line(&mut stdout, "/autoclose", &mut seen).await;
    let session = line
        .trim()
        .strip_prefix(&format!("{}/pick/", emu.picker_base()))
        .and_then(|rest| rest.strip_suffix("/autoclose"))
        .unwrap_or_else(|| panic!("not a picker URI: {line}"))
        .to_string();
    // The user picks in the browser: the stand-in page records it.
    let page = format!("{}?ids={}", line.trim(), ids(&items).join(","));
    assert_eq!(reqwest::get(&page).await.unwrap().status(), StatusCode::OK);
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .expect("pick ends once the items are picked")
        .unwrap();
    let mut rest = String::new();
    while let Some(line) = stdout.next_line().await.unwrap() {
        rest.push_str(&line);
        rest.push('\n');
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    assert!(status.success(), "{seen}{rest}{err}");
    assert!(
        rest.contains(&format!(
            "Picked {} item(s): /picked/{SET}/ until",
            items.len()
        )),
        "{rest}"
    );
    for (name, _) in expected(&items) {
        assert!(rest.contains(&format!("  {name}\t")), "{name} in {rest}");
    }
    // Not a terminal: no QR code.
    assert!(!seen.contains('█') && !rest.contains('█'), "{seen}");
    let c = emu.emulator.counters();
    assert_eq!(c.get("picker.sessions.create"), 1);
    assert!(c.get("picker.sessions.get") >= 1);
    assert_eq!(c.get("picker.mediaItems.list"), 1);

    // --list: the set, its size, its expiry.
    let (ok, listed, err) = run_cli(&["pick", "--config", cfg, "--list"]).await;
    assert!(ok, "{err}");
    let first = listed.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("{SET}\t{} item(s)\t", items.len())),
        "{listed}"
    );
    assert!(
        first.ends_with("expires in 1 h 59 min") || first.ends_with("expires in 2 h 0 min"),
        "{first}"
    );

    // A server on the same store shows the set, with exact sizes, and serves its bytes.
    let mut serve = common::spawn(&["serve", "--config", cfg]);
    let mut log = BufReader::new(serve.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let line = common::wait_for_line(&mut log, "listening on http://", &mut seen).await;
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    let url = line[line.find("http://").unwrap()..].trim().to_string();
    let http = reqwest::Client::new();
    let propfind = |path: String| {
        http.request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), path)
            .header("Depth", "1")
            .send()
    };
    let folder = format!("{url}picked/{}/", common::encode_path(SET));
    let resp = propfind(folder.clone()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::MULTI_STATUS);
    let listed = common::parse_multistatus(&resp.text().await.unwrap());
    assert_eq!(listed.len(), items.len() + 1);
    for (name, item) in expected(&items) {
        let e = listed.iter().find(|e| e.name() == name).unwrap();
        assert_eq!(e.size(), item.bytes.len() as u64);
        let body = http
            .get(format!("{folder}{}", common::encode_path(&name)))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(sha256(&body), sha256(&item.bytes), "{name}");
    }

    // --import-to-album on the stored set: no new session, every item copied; then the set
    // has served its purpose: its session ends at Google and the set is removed.
    let import = [
        "pick",
        "--config",
        cfg,
        "--name",
        SET,
        "--import-to-album",
        "From CLI",
    ];
    let (ok, out, err) = run_cli(&import).await;
    assert!(ok, "{err}");
    let n = items.len();
    assert!(
        out.contains(&format!(
            "Imported {n}, skipped 0 (imported before), failed 0."
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Deleted the picked set {SET:?} and ended its picking session: its items are in \
             the album \"From CLI\" now."
        )),
        "{out}"
    );
    let c = emu.emulator.counters();
    assert_eq!(c.get("picker.sessions.create"), 1);
    assert_eq!(c.get("albums.create"), 1);
    assert_eq!(c.get("uploads"), n as u64);
    assert_eq!(c.get("picker.sessions.delete"), 1);

    // The session is gone at Google, the folder at once, and --delete finds nothing left.
    let (ok, _, err) = run_cli(&["pick", "--config", cfg, "--delete", SET]).await;
    assert!(!ok);
    assert!(
        err.contains(&format!("no picked set named {SET:?}")),
        "{err}"
    );
    assert_eq!(emu.emulator.counters().get("picker.sessions.delete"), 1);
    let google = google_for(&emu, emulator::REFRESH_TOKEN);
    assert!(matches!(
        google.picker.get_session(&session).await,
        Err(GoogleError::NotFound(_))
    ));
    let resp = propfind(folder).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let (ok, listed, _) = run_cli(&["pick", "--config", cfg, "--list"]).await;
    assert!(ok);
    assert!(listed.starts_with("No picked sets."), "{listed}");
    let _ = serve.kill().await;

    // Bad input is refused before Google is called.
    let (ok, _, err) = run_cli(&["pick", "--config", cfg, "--name", "a/b"]).await;
    assert!(!ok);
    assert!(err.contains("cannot name a folder"), "{err}");
    let (ok, _, err) = run_cli(&["pick", "--config", cfg, "--name", "x", "--max", "0"]).await;
    assert!(!ok);
    assert!(err.contains("--max must be between 1 and 2000"), "{err}");
    assert_eq!(emu.emulator.counters().get("picker.sessions.create"), 1);
}

// ------------------------------------------------------------------ import

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_copies_a_set_into_an_album_and_a_rerun_skips_what_was_imported() {
    const ALBUM: &str = "Kept picks";
    let stack = stack_with(opts(), Policy::NativeProxy).await;
    let items = chosen(&stack.emu);
    let (set, _) = pick_into(&stack, SET, &items).await;
    let names: Vec<String> = expected(&items).into_iter().map(|(n, _)| n).collect();
    // Google refuses to create one of them (a per-item error of batchCreate).
    let refused = items[5].clone();
    assert!(!refused.filename.is_empty());
    stack.emulator().reject_uploads_named(&refused.filename);
    let google = google_for(&stack.emu, emulator::REFRESH_TOKEN);
    let store = stack.catalog.store();
    stack.emulator().counters().reset();

    let mut printed: Vec<u8> = Vec::new();
    let mut output = pick::Output {
        out: &mut printed,
        terminal: false,
        quiet: true,
        done: None,
    };
    let summary = pick::import(&google, store, &set, ALBUM, &UrlAge::default(), &mut output)
        .await
        .unwrap();
    let printed = String::from_utf8(printed).unwrap();
    assert_eq!(
        summary,
        pick::ImportSummary {
            imported: items.len() - 1,
            skipped: 0,
            failed: 1
        },
        "{printed}"
    );
    let c = stack.emulator().counters();
    assert_eq!(c.get("albums.create"), 1);
    assert_eq!(c.get("picker.content.get"), items.len() as u64);
    assert_eq!(c.get("uploads"), items.len() as u64);
    assert_eq!(c.get("mediaItems.batchCreate"), 1);
    for (i, name) in names.iter().enumerate() {
        let want = if i == 5 {
            format!("  {name}\tfailed: Google refused the item")
        } else {
            format!("  {name}\timported")
        };
        assert!(printed.contains(&want), "{want:?} not in:\n{printed}");
    }
    assert!(printed.contains("no location metadata"), "{printed}");
    // An item failed: the set and its session stay, for a rerun.
    assert!(
        printed.contains(&format!(
            "Kept the picked set {SET:?} and its picking session: run the same command again"
        )),
        "{printed}"
    );
    assert_eq!(c.get("picker.sessions.delete"), 0);
    assert_eq!(stack.list("/picked/").await.len(), 1);

    // Google now has the copies, byte for byte, in an app-created album; the store knows them.
    let lib = stack.emulator().current_library();
    let album = lib.albums.iter().find(|a| a.title == ALBUM).unwrap();
    assert_eq!(album.item_ids.len(), items.len() - 1);
    let mut copies = album.item_ids.iter().map(|id| lib.item(id).unwrap());
    for (i, item) in items.iter().enumerate() {
        let recorded = store.imported_copy(&item.id).await;
        if i == 5 {
            assert_eq!(recorded, None);
            continue;
        }
        let copy = copies.next().unwrap();
        assert_eq!(recorded.as_deref(), Some(copy.id.as_str()));
        let name = if item.filename.is_empty() {
            names[i].clone()
        } else {
            item.filename.clone()
        };
        assert_eq!(copy.filename, name);
        // What Google serves for an upload of exactly the picked bytes (a video: its
        // transcode; a photo: itself, less a location it never had).
        let served = if item.kind == MediaKind::Video {
            emulator::transcode(&item.bytes)
        } else {
            emulator::strip_gps(&item.bytes)
        };
        if item.kind == MediaKind::Photo {
            assert_eq!(served, item.bytes, "{name}");
        }
        assert_eq!(sha256(&copy.bytes), sha256(&served), "{name}");
    }

    // A rerun imports nothing twice: the album is found by title, imported items are
    // skipped, only the refused one is tried again.
    stack.emulator().counters().reset();
    let mut again: Vec<u8> = Vec::new();
    let mut output = pick::Output {
        out: &mut again,
        terminal: false,
        quiet: true,
        done: None,
    };
    let summary = pick::import(&google, store, &set, ALBUM, &UrlAge::default(), &mut output)
        .await
        .unwrap();
    assert_eq!(
        summary,
        pick::ImportSummary {
            imported: 0,
            skipped: items.len() - 1,
            failed: 1
        }
    );
    let c = stack.emulator().counters();
    assert_eq!(c.get("albums.create"), 0);
    assert_eq!(c.get("uploads"), 1);
    assert_eq!(c.get("picker.content.get"), 1);
    let again = String::from_utf8(again).unwrap();
    assert!(
        again.contains(&format!("  {}\tskipped (imported before)", names[0])),
        "{again}"
    );

    // After the session ends the copies stay, served through the Library API.
    let mut sink: Vec<u8> = Vec::new();
    pick::delete(&google, store, SET, &mut sink).await.unwrap();
    assert!(stack.list("/picked/").await.is_empty());
    let photo = &items[6];
    let (status, _, body) = stack
        .get(&format!("/album/{ALBUM}/{}", photo.filename))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), sha256(&photo.bytes));
    // The video's copy is listed once Google has processed it: the import records no size
    // this server could show meanwhile (tests/processing.rs).
    let listed = stack.list(&format!("/album/{ALBUM}/")).await;
    assert_eq!(listed.len(), items.len() - 2);
    stack.advance(emulator::DEFAULT_VIDEO_PROCESSING);
    let listed = stack.list(&format!("/album/{ALBUM}/")).await;
    assert_eq!(listed.len(), items.len() - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picked_photos_come_without_their_location() {
    let stack = stack_with(opts(), Policy::NativeProxy).await;
    let photo = chosen(&stack.emu)[5].clone();
    let with_gps = emulator::jpeg_with_gps(b'N');
    stack
        .emulator()
        .replace_bytes(&photo.id, with_gps.clone().into());
    pick_into(&stack, SET, std::slice::from_ref(&photo)).await;
    let (status, _, body) = stack
        .get(&format!("/picked/{SET}/{}", photo.filename))
        .await;
    assert_eq!(status, StatusCode::OK);
    let stripped = emulator::strip_gps(&with_gps);
    assert_ne!(stripped.as_ref(), with_gps.as_slice());
    assert_eq!(sha256(&body), sha256(&stripped));
    assert!(
        !body.windows(2).any(|w| w == [0x88, 0x25]),
        "no GPS pointer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_picked_file_read_again_comes_from_the_content_cache() {
    // Picked bytes are carried under every policy (bearer_only), so the cache holds under both.
    for policy in [Policy::NativeProxy, Policy::Redirect302] {
        let stack = stack_with(opts(), policy).await;
        let items = chosen(&stack.emu);
        pick_into(&stack, SET, &items).await;
        get_all_and_compare(&stack, &stack.url, &items).await;
        let c = stack.emulator().counters();
        let first = c.get("picker.content.get");
        assert_eq!(first, items.len() as u64, "{policy:?}");
        // Exact bytes again, and no content request at all.
        get_all_and_compare(&stack, &stack.url, &items).await;
        assert_eq!(c.get("picker.content.get"), first, "{policy:?}");
        assert_eq!(c.get("content.get"), 0, "{policy:?}");
    }
}
