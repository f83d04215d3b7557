//! Entry files: `<content_dir>/<entry>`, one sparse file per entry (an item's bytes in one
//! variant and size), block `i` at byte `i * BLOCK`, so a file holds the item's bytes at
//! their own offsets, with holes where nothing was read.
//!
//! # Why one file per entry
//! The first layout was a file per block (written to a temporary name and renamed). Filling
//! the cache then created, renamed and later deleted 4,096 files per GiB: inode allocation
//! and directory updates were the largest part of what a read that fills the cache cost
//! beyond the same read with the cache off (issue #16, `docs/performance.md`). Here a block
//! is one positioned write (`pwrite`) into a file that exists once per entry; an evicted
//! block's space is given back by punching a hole (Linux `fallocate`), a dropped entry's by
//! removing its file.
//!
//! # Never a short or mixed block
//! A file per block got "whole or absent" from its rename. Here a block exists only through
//! its index entry, added after its write returned; its length and CRC-32 are in the index,
//! and a read checks both before any byte is served. So a crash in the middle of a write
//! leaves bytes no index row names (their range is punched out at the next start), a power
//! loss before the data reached the disk, a truncation or an edit of the file fails the
//! check, and a full disk fails the write (the block is then not indexed, and its range is
//! punched out at once). Everything here is blocking file I/O, run on tokio's blocking pool.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{BLOCK, Parts};

/// Where the file of entry `entry` lives.
pub(super) fn path(dir: &Path, entry: &str) -> PathBuf {
    dir.join(entry)
}

/// Writes a complete block at its offset in its entry's file (created when missing, with the
/// cache directory), chunk by chunk. No fsync: the checksum in the index catches bytes the
/// disk lost.
pub(super) async fn write(dir: &Path, entry: &str, block: u64, bytes: Parts) -> io::Result<()> {
    let file = path(dir, entry);
    let dir = dir.to_path_buf();
    run(move || {
        let open = || {
            let mut opts = OpenOptions::new();
            opts.write(true).create(true).truncate(false);
            // The user's photos: readable by this user only (as the block files of the first
            // layout were, being temporary files, and as the metadata store is).
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            opts.open(&file)
        };
        let f = match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&dir)?;
                open()?
            }
            other => other?,
        };
        let mut at = block * BLOCK;
        for chunk in bytes.chunks() {
            write_all_at(&f, chunk, at).inspect_err(|_| {
                // A full disk may have taken part of it: give back what it took.
                let _ = punch(&f, block * BLOCK, bytes.len());
            })?;
            at += chunk.len() as u64;
        }
        Ok(())
    })
    .await
}

/// Why a block cannot be served.
#[derive(Debug)]
pub(super) enum Bad {
    /// The file is missing or unreadable.
    Io(io::Error),
    /// Another length or checksum than indexed: damaged.
    Damaged(String),
}

/// Reads a block and checks it against its indexed length and CRC-32.
pub(super) async fn read(
    dir: &Path,
    entry: &str,
    block: u64,
    len: u64,
    crc32: u32,
) -> Result<Bytes, Bad> {
    let file = path(dir, entry);
    let (bytes, got) = run(move || {
        let f = File::open(file)?;
        let mut buf = vec![0u8; len as usize];
        let got = read_up_to_at(&f, &mut buf, block * BLOCK)?;
        Ok((buf, got))
    })
    .await
    .map_err(Bad::Io)?;
    if got as u64 != len {
        return Err(Bad::Damaged(format!(
            "the file holds {got} of the block's {len} bytes"
        )));
    }
    let found = crc32fast::hash(&bytes);
    if found != crc32 {
        return Err(Bad::Damaged(format!(
            "CRC-32 {found:08x} where {crc32:08x} was stored"
        )));
    }
    Ok(Bytes::from(bytes))
}

/// Gives back the space of block `block` of `entry` (evicted, expired or damaged): a hole
/// where the filesystem can punch one; elsewhere the space comes back with the whole file.
pub(super) fn release(dir: &Path, entry: &str, block: u64) {
    if let Ok(f) = OpenOptions::new().write(true).open(path(dir, entry)) {
        let _ = punch(&f, block * BLOCK, BLOCK);
    }
}

/// Removes the file of an entry none of whose blocks is indexed any more.
pub(super) fn remove(dir: &Path, entry: &str) {
    let _ = std::fs::remove_file(path(dir, entry));
}

/// What the start-up sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Swept {
    /// Files (and directories of the per-block layout) removed.
    pub files: usize,
    /// Runs of bytes in kept files that no index row names, punched out.
    pub holes: usize,
}

/// Removes what the index does not know: files of entries with no indexed block, the bytes
/// of blocks written before a crash that never got their row (punched out), and the entry
/// directories of the per-block layout that came before (its index rows were dropped by the
/// store's migration 4).
pub(super) async fn sweep(dir: &Path, known: HashMap<String, BTreeSet<u64>>) -> io::Result<Swept> {
    let dir = dir.to_path_buf();
    run(move || {
        let mut swept = Swept::default();
        let listing = match std::fs::read_dir(&dir) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(swept),
            Err(e) => return Err(e),
        };
        for item in listing {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            if !is_entry_name(&name) {
                continue; // not ours: never touch anything else someone put here
            }
            let kind = item.file_type()?;
            if kind.is_dir() {
                std::fs::remove_dir_all(item.path())?;
                swept.files += 1;
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let Some(blocks) = known.get(&name) else {
                std::fs::remove_file(item.path())?;
                swept.files += 1;
                continue;
            };
            let f = OpenOptions::new().write(true).open(item.path())?;
            let end = f.metadata()?.len().div_ceil(BLOCK);
            // Each maximal run of unindexed blocks below the file's end, one punch each.
            let mut from = 0;
            for &b in blocks.iter().chain(std::iter::once(&end)) {
                if b > from {
                    punch(&f, from * BLOCK, (b - from) * BLOCK)?;
                    swept.holes += 1;
                }
                from = from.max(b + 1);
            }
        }
        Ok(swept)
    })
    .await
}

/// Whether a name is one of our entries (32 hex digits), so a sweep never touches anything
/// else someone put in the directory.
pub(super) fn is_entry_name(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Frees `len` bytes at `at`, keeping the file's length (reads there return zeros, which no
/// block's checksum accepts). Linux only; elsewhere a no-op.
#[cfg(target_os = "linux")]
fn punch(f: &File, at: u64, len: u64) -> io::Result<()> {
    use rustix::fs::FallocateFlags;
    rustix::fs::fallocate(
        f,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        at,
        len,
    )
    .map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn punch(_f: &File, _at: u64, _len: u64) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn write_all_at(f: &File, buf: &[u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, at)
}

#[cfg(windows)]
fn write_all_at(f: &File, mut buf: &[u8], mut at: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_write(f, buf, at)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => {
                buf = &buf[n..];
                at += n as u64;
            }
        }
    }
    Ok(())
}

/// Reads into `buf` from `at` until it is full or the file ends; returns the bytes read.
fn read_up_to_at(f: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(f, &mut buf[got..], at + got as u64);
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(f, &mut buf[got..], at + got as u64);
        match n {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

async fn run<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block is read back exactly (also one written in several chunks); a wrong checksum,
    /// a hole and a short file are each refused; the sweep punches out what no row names,
    /// removes unknown entries and the per-block layout's directories, and nothing else.
    #[tokio::test]
    async fn blocks_are_checked_and_the_sweep_keeps_only_indexed_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("content");
        let entry = "0123456789abcdef0123456789abcdef";
        let block = |n: u8| Bytes::from(vec![n; BLOCK as usize]);
        for b in 0..3u8 {
            // Block 1 comes in three chunks, as a download's blocks do.
            let parts = match b {
                1 => {
                    let whole = block(2);
                    vec![
                        whole.slice(..1000),
                        whole.slice(1000..5000),
                        whole.slice(5000..),
                    ]
                }
                _ => vec![block(b + 1)],
            };
            write(&d, entry, b as u64, Parts::new(parts)).await.unwrap();
        }
        let crc = |n: u8| crc32fast::hash(&block(n));
        let got = read(&d, entry, 1, BLOCK, crc(2)).await.unwrap();
        assert_eq!(got, block(2));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path(&d, entry))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "readable by this user only");
        }
        assert!(matches!(
            read(&d, entry, 1, BLOCK, crc(3)).await,
            Err(Bad::Damaged(_))
        ));
        release(&d, entry, 1);
        assert!(matches!(
            read(&d, entry, 1, BLOCK, crc(2)).await,
            Err(Bad::Damaged(_))
        ));
        assert!(matches!(
            read(&d, entry, 3, BLOCK, crc(4)).await,
            Err(Bad::Damaged(_))
        ));

        // A stranger's file stays; an unknown entry goes; block 0 (no row) is punched out.
        std::fs::write(d.join("notes.txt"), b"mine").unwrap();
        let other = "ffffffffffffffffffffffffffffffff";
        write(&d, other, 0, Parts::new(vec![block(9)]))
            .await
            .unwrap();
        // An entry directory of the per-block layout (its rows were dropped by migration 4).
        let old = d.join("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        std::fs::create_dir(&old).unwrap();
        std::fs::write(old.join("0"), block(7)).unwrap();
        let known = HashMap::from([(entry.to_string(), BTreeSet::from([2]))]);
        let swept = sweep(&d, known).await.unwrap();
        assert_eq!(swept, Swept { files: 2, holes: 1 });
        assert!(d.join("notes.txt").exists() && !d.join(other).exists() && !old.exists());
        assert_eq!(read(&d, entry, 2, BLOCK, crc(3)).await.unwrap(), block(3));
        #[cfg(target_os = "linux")]
        assert!(matches!(
            read(&d, entry, 0, BLOCK, crc(1)).await,
            Err(Bad::Damaged(_))
        ));
    }
}
