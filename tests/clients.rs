//! Real WebDAV clients against the gateway. `tests/run-all.sh` installs them; a missing client
//! fails these tests (it is never skipped).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{album_items, album_names, by_name, sha256, start};

/// Runs rclone with retries off, so its retries cannot hide our errors.
async fn rclone(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new("rclone")
        .args(args)
        .args(["--retries", "1", "--low-level-retries", "1"])
        .env("RCLONE_CONFIG", "/nonexistent/rclone.conf")
        .output()
        .await
        .expect("rclone must be installed: run tests/run-all.sh")
}

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
