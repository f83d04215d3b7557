//! Real WebDAV clients against the gateway: rclone, cadaver and curl, run as the commands
//! `docs/clients.md` shows. `tests/run-all.sh` installs them; a missing client fails these
//! tests (it is never skipped).

mod common;

use common::rclone;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use chrono::{DateTime, Datelike, Utc};
use common::{
    Stack, album_items, album_names, by_name, encode_path, parse_multistatus, sha256, start,
};
use gphotos_dav_emulator::{FixtureItem, Library};
use tokio::io::AsyncWriteExt;

fn read_dir(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                sha256(&std::fs::read(e.path()).unwrap()),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_copy_of_an_album_is_byte_identical() {
    let stack = start().await;
    let lib = stack.emulator().library();
    let mut copied = 0;
    for (album, dir) in lib.albums.iter().zip(album_names(lib)) {
        let want = by_name(&album_items(lib, &album.id));
        if want.is_empty() {
            continue;
        }
        let dest = tempfile::tempdir().unwrap();
        let remote = format!(":webdav:album/{dir}");
        let out = rclone(&[
            "copy",
            &remote,
            dest.path().to_str().unwrap(),
            "--webdav-url",
            &stack.url,
            "--webdav-vendor",
            "other",
        ])
        .await;
        assert!(
            out.status.success(),
            "rclone copy {remote} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = read_dir(dest.path());
        let want: BTreeMap<String, String> = want
            .into_iter()
            .map(|(name, item)| (name, sha256(&item.bytes)))
            .collect();
        assert_eq!(got, want, "{remote}: names and sha256 of every file");
        copied += got.len();
    }
    assert!(copied > 10, "copied {copied} files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_lsjson_shows_exact_sizes() {
    let stack = start().await;
    let out = rclone(&[
        "lsjson",
        ":webdav:media/all",
        "--webdav-url",
        &stack.url,
        "--webdav-vendor",
        "other",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let entries = stack.list("/media/all/").await;
    assert_eq!(listed.len(), entries.len());
    let sizes: BTreeMap<String, u64> = entries.iter().map(|e| (e.name(), e.size())).collect();
    let lib = stack.emulator().library();
    let total: u64 = lib.items.iter().map(|i| i.bytes.len() as u64).sum();
    let mut sum = 0;
    for f in listed {
        let name = f["Name"].as_str().unwrap();
        let size = f["Size"].as_u64().unwrap();
        assert_eq!(size, sizes[name], "{name}");
        assert!(size > 0);
        sum += size;
    }
    assert_eq!(sum, total, "rclone sees every byte of the library");
}

/// Every file of the tree (default time zone UTC) → the item it must show, stated from the
/// fixture independently of the server: each view's names follow the naming rules for the
/// items that view holds.
fn expected_tree(lib: &Library) -> BTreeMap<String, &FixtureItem> {
    let mut views: Vec<(String, Vec<&FixtureItem>)> = Vec::new();
    for (album, dir) in lib.albums.iter().zip(album_names(lib)) {
        views.push((format!("album/{dir}"), album_items(lib, &album.id)));
    }
    views.push(("media/all".into(), lib.items.iter().collect()));
    views.push((
        "feature/favorites".into(),
        lib.items.iter().filter(|i| i.favorite).collect(),
    ));
    let mut dated: BTreeMap<String, Vec<&FixtureItem>> = BTreeMap::new();
    for item in &lib.items {
        let d = item.creation_time.date_naive();
        let (y, m, day) = (d.year(), d.month(), d.day());
        for folder in [
            format!("media/by-year/{y:04}"),
            format!("media/by-month/{y:04}/{y:04}-{m:02}"),
            format!("media/by-day/{y:04}/{y:04}-{m:02}-{day:02}"),
        ] {
            dated.entry(folder).or_default().push(item);
        }
    }
    views.extend(dated);
    let mut tree = BTreeMap::new();
    for (folder, items) in views {
        for (name, item) in by_name(&items) {
            tree.insert(format!("{folder}/{name}"), item);
        }
    }
    tree
}

/// The remote spec and flags of an rclone webdav remote on the gateway, as in docs/clients.md.
fn remote_flags(stack: &Stack) -> Vec<String> {
    vec![
        "--webdav-url".into(),
        stack.url.clone(),
        "--webdav-vendor".into(),
        "other".into(),
    ]
}

async fn rclone_ok(stack: &Stack, args: &[&str]) -> Vec<u8> {
    let mut all: Vec<&str> = args.to_vec();
    let flags = remote_flags(stack);
    all.extend(flags.iter().map(String::as_str));
    let out = rclone(&all).await;
    assert!(
        out.status.success(),
        "rclone {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_lsjson_recursive_shows_every_file_with_its_size_and_time() {
    let stack = start().await;
    let lib = stack.emulator().library();
    let out = rclone_ok(&stack, &["lsjson", "-R", ":webdav:"]).await;
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
    let files: BTreeMap<String, &serde_json::Value> = listed
        .iter()
        .filter(|e| !e["IsDir"].as_bool().unwrap())
        .map(|e| (e["Path"].as_str().unwrap().to_string(), e))
        .collect();
    let want = expected_tree(lib);
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "every file of every view, and nothing else"
    );
    for (path, item) in &want {
        let f = files[path];
        assert_eq!(
            f["Size"].as_u64().unwrap(),
            item.bytes.len() as u64,
            "{path}"
        );
        let time: DateTime<Utc> = f["ModTime"].as_str().unwrap().parse().unwrap();
        assert_eq!(time, item.creation_time, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_cat_returns_exact_slices() {
    let stack = start().await;
    let lib = stack.emulator().library();
    let item = lib.items.iter().max_by_key(|i| i.bytes.len()).unwrap();
    let name = by_name(&lib.items.iter().collect::<Vec<_>>())
        .into_iter()
        .find(|(_, i)| i.id == item.id)
        .unwrap()
        .0;
    let remote = format!(":webdav:media/all/{name}");
    let len = item.bytes.len();
    for (offset, count, want) in [
        (0i64, 1i64, &item.bytes[..1]),
        (1000, 5000, &item.bytes[1000..6000]),
        (300_000, -1, &item.bytes[300_000..]),
        (-1000, -1, &item.bytes[len - 1000..]),
        (len as i64 - 10, 100, &item.bytes[len - 10..]),
    ] {
        let (o, c) = (format!("--offset={offset}"), format!("--count={count}"));
        let got = rclone_ok(&stack, &["cat", &remote, &o, &c]).await;
        assert_eq!(sha256(&got), sha256(want), "offset {offset} count {count}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_check_against_a_local_copy_passes_and_catches_a_change() {
    let stack = start().await;
    let lib = stack.emulator().library();
    let (album, dir) = lib
        .albums
        .iter()
        .zip(album_names(lib))
        .find(|(a, _)| a.title == "Old Camera")
        .unwrap();
    let local = tempfile::tempdir().unwrap();
    let files = by_name(&album_items(lib, &album.id));
    for (name, item) in &files {
        std::fs::write(local.path().join(name), &item.bytes).unwrap();
    }
    let remote = format!(":webdav:album/{dir}");
    let dest = local.path().to_str().unwrap();
    // --download compares the bytes: the webdav remote has no hash to compare instead.
    rclone_ok(&stack, &["check", dest, &remote, "--download"]).await;

    // The same check must fail when a byte differs (same size, so only the bytes tell).
    let (name, item) = files.iter().next().unwrap();
    let mut changed = item.bytes.to_vec();
    changed[100] ^= 0xff;
    std::fs::write(local.path().join(name), changed).unwrap();
    let mut args = vec!["check", dest, &remote, "--download"];
    let flags = remote_flags(&stack);
    args.extend(flags.iter().map(String::as_str));
    let out = rclone(&args).await;
    assert!(!out.status.success(), "rclone check missed a changed byte");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 differences found"), "{stderr}");
}

/// Runs cadaver on `url` with `script` on its standard input, as a user would pipe it, with a
/// HOME that has no .netrc (so it never asks for or finds credentials). Returns its output.
async fn cadaver(url: &str, script: &str) -> String {
    let home = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new("cadaver")
        .arg("-t")
        .arg(url)
        .env("HOME", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cadaver must be installed: run tests/run-all.sh");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(script.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "cadaver failed: {out:?}");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cadaver_lists_downloads_and_reads_properties_in_every_view() {
    let stack = start().await;
    let lib = stack.emulator().library();
    let tree = expected_tree(lib);
    let old_camera = album_names(lib)
        .into_iter()
        .find(|n| n == "Old Camera")
        .unwrap();
    for view in [
        format!("album/{old_camera}"),
        "media/all".to_string(),
        "media/by-year/2020".to_string(),
        "feature/favorites".to_string(),
    ] {
        let files: Vec<(String, &FixtureItem)> = tree
            .iter()
            .filter_map(|(path, item)| {
                let name = path.strip_prefix(&format!("{view}/"))?;
                (!name.contains('/')).then(|| (name.to_string(), *item))
            })
            .collect();
        assert!(files.len() >= 4, "{view} has {} files", files.len());
        let local = tempfile::tempdir().unwrap();
        let mut script = format!("cd \"/{view}/\"\nls\n");
        for (i, (name, _)) in files.iter().enumerate() {
            let dest = local.path().join(format!("{i}.bin"));
            script += &format!("get \"{name}\" \"{}\"\n", dest.display());
            script += &format!("propget \"{name}\"\n");
        }
        script += "quit\n";
        let out = cadaver(&stack.url, &script).await;
        assert!(
            out.contains(&format!(
                "Listing collection `/{}/': succeeded.",
                encode_path(&view)
            )) || out.contains(&format!("Listing collection `/{view}/': succeeded.")),
            "{view}: {out}"
        );
        // ls: one line per file with its exact size.
        for (name, item) in &files {
            let size = item.bytes.len().to_string();
            assert!(
                out.lines().any(|l| {
                    l.trim_start().starts_with(name.as_str())
                        && l[l.find(name.as_str()).unwrap() + name.len()..]
                            .split_whitespace()
                            .next()
                            == Some(size.as_str())
                }),
                "{view}: ls shows {name} with {size} bytes: {out}"
            );
        }
        // get: identical bytes.
        for (i, (name, item)) in files.iter().enumerate() {
            let got = std::fs::read(local.path().join(format!("{i}.bin"))).unwrap();
            assert_eq!(sha256(&got), sha256(&item.bytes), "{view}/{name}");
        }
        // propget: the exact size and date of each file.
        let blocks: Vec<&str> = out.split("Fetching properties for `").skip(1).collect();
        assert_eq!(blocks.len(), files.len(), "{view}: {out}");
        for ((name, item), block) in files.iter().zip(blocks) {
            assert!(block.starts_with(&format!("{name}'")), "{name}: {block}");
            assert!(
                block.contains(&format!("DAV: getcontentlength = {}\n", item.bytes.len())),
                "{view}/{name}: {block}"
            );
            let date = httpdate::fmt_http_date(item.creation_time.into());
            assert!(
                block.contains(&format!("DAV: getlastmodified = {date}\n")),
                "{view}/{name}: {block}"
            );
        }
    }
}

/// Runs the real curl binary; returns the status and the body.
async fn curl(args: &[&str]) -> (u16, String) {
    let out = tokio::process::Command::new("curl")
        .args(["--silent", "--show-error", "--write-out", "\n%{http_code}"])
        .args(args)
        .output()
        .await
        .expect("curl must be installed: run tests/run-all.sh");
    assert!(out.status.success(), "curl {args:?}: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

async fn curl_propfind(url: &str, depth: Option<&str>, body: Option<&str>) -> (u16, String) {
    let depth_header = depth.map(|d| format!("Depth: {d}"));
    let mut args = vec!["-X", "PROPFIND", url];
    if let Some(h) = &depth_header {
        args.extend(["-H", h.as_str()]);
    }
    if let Some(b) = body {
        args.extend(["-H", "Content-Type: application/xml", "--data-binary", b]);
    }
    curl(&args).await
}

const ALLPROP: &str =
    r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#;
const PROPNAME: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>"#;
const NAMED: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:getcontentlength/><D:getlastmodified/></D:prop></D:propfind>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_propfind_depths_bodies_and_malformed_xml() {
    let stack = start().await;
    let lib = stack.emulator().library();
    let albums = format!("{}album/", stack.url);
    let n = lib.albums.len();

    // Depth 0, 1, none (= 1) and infinity (refused on a folder).
    for (depth, entries) in [(Some("0"), 1), (Some("1"), n + 1), (None, n + 1)] {
        let (status, body) = curl_propfind(&albums, depth, None).await;
        assert_eq!(status, 207, "Depth {depth:?}");
        let got = parse_multistatus(&body);
        assert_eq!(got.len(), entries, "Depth {depth:?}");
        assert_eq!(got[0].href, "/album/", "the target comes first");
        assert!(got[1..].iter().all(|e| e.href.starts_with("/album/")));
    }
    let (status, body) = curl_propfind(&albums, Some("infinity"), None).await;
    assert_eq!(status, 403);
    assert!(body.contains("<D:propfind-finite-depth/>"), "{body}");

    let all: Vec<&FixtureItem> = lib.items.iter().collect();
    let (name, item) = by_name(&all).into_iter().next().unwrap();
    let file = format!("{}media/all/{}", stack.url, encode_path(&name));
    let (status, body) = curl_propfind(&file, Some("infinity"), None).await;
    assert_eq!(status, 207, "infinity on a file is the file");
    assert_eq!(parse_multistatus(&body).len(), 1);

    // allprop: every live property with its exact value.
    let (status, body) = curl_propfind(&file, Some("0"), Some(ALLPROP)).await;
    assert_eq!(status, 207);
    let e = &parse_multistatus(&body)[0];
    assert_eq!(e.props["getcontentlength"], item.bytes.len().to_string());
    assert_eq!(
        e.props["getlastmodified"],
        httpdate::fmt_http_date(item.creation_time.into())
    );
    assert_eq!(e.props["getcontenttype"], "image/jpeg");
    assert_eq!(
        e.props["creationdate"],
        item.creation_time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    assert!(!e.props["getetag"].is_empty());

    // propname: the names, no values.
    let (status, body) = curl_propfind(&file, Some("0"), Some(PROPNAME)).await;
    assert_eq!(status, 207);
    let e = &parse_multistatus(&body)[0];
    for p in [
        "getcontentlength",
        "getlastmodified",
        "resourcetype",
        "getetag",
    ] {
        assert_eq!(e.props.get(p).map(String::as_str), Some(""), "{p}: {body}");
    }

    // Named properties: exactly those, on the folder and its children.
    let (status, body) =
        curl_propfind(&format!("{}media/all/", stack.url), Some("1"), Some(NAMED)).await;
    assert_eq!(status, 207);
    let entries = parse_multistatus(&body);
    assert_eq!(entries.len(), lib.items.len() + 1);
    assert_eq!(
        entries[0].props.keys().collect::<Vec<_>>(),
        ["getlastmodified"],
        "a folder has no length"
    );
    for e in &entries[1..] {
        assert_eq!(
            e.props.keys().collect::<Vec<_>>(),
            ["getcontentlength", "getlastmodified"]
        );
    }
    let sizes: BTreeMap<String, String> = entries[1..]
        .iter()
        .map(|e| (e.name(), e.props["getcontentlength"].clone()))
        .collect();
    for (name, item) in by_name(&all) {
        assert_eq!(sizes[&name], item.bytes.len().to_string(), "{name}");
    }

    // Malformed XML and a body that is not a propfind are 400.
    for bad in [
        "<D:propfind xmlns:D=\"DAV:\"><D:prop>",
        "not xml at all",
        "<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"/>",
    ] {
        let (status, _) = curl_propfind(&albums, Some("1"), Some(bad)).await;
        assert_eq!(status, 400, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_downloads_whole_files_and_ranges() {
    let stack = start().await;
    let lib = stack.emulator().library();
    let all: Vec<&FixtureItem> = lib.items.iter().collect();
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, item)) in by_name(&all).into_iter().take(5).enumerate() {
        let url = format!("{}media/all/{}", stack.url, encode_path(&name));
        let whole = dir.path().join(format!("{i}"));
        let part = dir.path().join(format!("{i}.part"));
        let (status, _) = curl(&["-o", whole.to_str().unwrap(), &url]).await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(sha256(&std::fs::read(&whole).unwrap()), sha256(&item.bytes));
        let (status, _) = curl(&["-r", "100-1099", "-o", part.to_str().unwrap(), &url]).await;
        assert_eq!(status, 206, "{name}");
        assert_eq!(
            sha256(&std::fs::read(&part).unwrap()),
            sha256(&item.bytes[100..1100])
        );
    }
}
