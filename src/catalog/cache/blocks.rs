//! Entry files: `<content_dir>/<entry>`, one sparse file per entry (an item's bytes in one
//! variant and size), block `i` at byte `i * BLOCK`, so a file holds the item's bytes at
//! their own offsets, with holes where nothing was read.
//!
//! # Why one file per entry
//! The first layout was a file per block (written to a temporary name and renamed). Filling
//! the cache then created, renamed and later deleted 4,096 files per GiB: inode allocation
//! and directory updates were the largest part of what a read that fills the cache cost
//! beyond the same read with the cache off (issue #16, `docs/performance.md`). Here a block
//! is one positioned vectored write (`pwritev`, the chunks it came in) into space allocated for
//! it (`fallocate`), in a file that exists once per entry and that a flight's writer opens
//! once (`EntryFile`); an evicted block's space is given back by punching a hole (Linux
//! `fallocate`), a dropped entry's by removing its file.
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

/// An entry's file as a flight's writer holds it: opened once for all the blocks the
/// flight writes (opening it for every block cost an `open` and a `close` per 256 KiB).
pub(super) struct EntryFile {
    path: PathBuf,
    dir: PathBuf,
    file: Option<File>,
}

impl EntryFile {
    pub fn new(dir: &Path, entry: &str) -> EntryFile {
        EntryFile {
            path: path(dir, entry),
            dir: dir.to_path_buf(),
            file: None,
        }
    }

    /// Writes complete blocks `first`, `first + 1`, ... (each as the chunks it came in) at
    /// their offsets, in one positioned vectored write (`pwritev`) where it can, into space
    /// allocated for them first (`fallocate`, Linux: ext4 then does not reserve and allocate
    /// the span one 4 KiB page at a time; only the span being written, so the space the
    /// directory uses is never more than the blocks indexed or being written). No fsync: the
    /// checksum in the index catches bytes the disk lost. On an error the span is punched out
    /// (a full disk may have taken part of it).
    ///
    /// The caller has marked the blocks as being written, so the file cannot be removed (an
    /// entry whose last block left) while they are; between two calls it may have been: a
    /// file held open since is then unlinked, and is opened again by its name.
    pub fn write(&mut self, first: u64, blocks: &[Parts]) -> io::Result<()> {
        let len: u64 = blocks.iter().map(Parts::len).sum();
        let at = first * BLOCK;
        let f = self.open()?;
        let written = allocate(f, at, len).and_then(|()| {
            let chunks: Vec<&[u8]> = blocks
                .iter()
                .flat_map(|b| b.chunks().iter().map(|c| &c[..]))
                .collect();
            write_all_vectored_at(f, &chunks, at)
        });
        written.inspect_err(|_| {
            let _ = punch(f, at, len);
        })
    }

    fn open(&mut self) -> io::Result<&File> {
        let stale = match &self.file {
            None => true,
            Some(f) => unlinked(f)?,
        };
        if stale {
            let open = || {
                let mut opts = OpenOptions::new();
                opts.write(true).create(true).truncate(false);
                // The user's photos: readable by this user only (as the block files of the
                // first layout were, being temporary files, and as the metadata store is).
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                opts.open(&self.path)
            };
            self.file = Some(match open() {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    std::fs::create_dir_all(&self.dir)?;
                    open()?
                }
                other => other?,
            });
        }
        Ok(self.file.as_ref().expect("opened above"))
    }
}

/// Whether an open file was removed from its directory since it was opened.
#[cfg(unix)]
fn unlinked(f: &File) -> io::Result<bool> {
    Ok(std::os::unix::fs::MetadataExt::nlink(&f.metadata()?) == 0)
}

#[cfg(not(unix))]
fn unlinked(_f: &File) -> io::Result<bool> {
    Ok(true) // opened again every time: no cheap way to tell
}

/// Writes a complete block at its offset in its entry's file (created when missing, with the
/// cache directory), on the blocking pool.
#[cfg(test)]
pub(super) async fn write(dir: &Path, entry: &str, block: u64, bytes: Parts) -> io::Result<()> {
    let mut file = EntryFile::new(dir, entry);
    run(move || file.write(block, &[bytes])).await
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

/// Allocates `len` bytes at `at` (Linux; elsewhere the write allocates as it goes).
#[cfg(target_os = "linux")]
fn allocate(f: &File, at: u64, len: u64) -> io::Result<()> {
    rustix::fs::fallocate(f, rustix::fs::FallocateFlags::empty(), at, len).map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn allocate(_f: &File, _at: u64, _len: u64) -> io::Result<()> {
    Ok(())
}

/// Writes `bufs` one after the other from `at`: `pwritev`, as many buffers per call as the
/// system takes (1,024 on Linux), again for what a short write left.
#[cfg(target_os = "linux")]
fn write_all_vectored_at(f: &File, bufs: &[&[u8]], mut at: u64) -> io::Result<()> {
    use std::io::IoSlice;
    const MAX: usize = 1024;
    let mut bufs: Vec<&[u8]> = bufs.iter().copied().filter(|b| !b.is_empty()).collect();
    let mut from = 0;
    while from < bufs.len() {
        let slices: Vec<IoSlice<'_>> = bufs[from..(from + MAX).min(bufs.len())]
            .iter()
            .map(|b| IoSlice::new(b))
            .collect();
        let mut n = match rustix::io::pwritev(f, &slices, at) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        at += n as u64;
        // Skip what was written: whole buffers, then the written head of the next one.
        while n > 0 {
            let b = bufs[from];
            if n >= b.len() {
                n -= b.len();
                from += 1;
            } else {
                bufs[from] = &b[n..];
                n = 0;
            }
        }
    }
    Ok(())
}

#[cfg(all(unix, not(target_os = "linux")))]
fn write_all_vectored_at(f: &File, bufs: &[&[u8]], mut at: u64) -> io::Result<()> {
    for b in bufs {
        std::os::unix::fs::FileExt::write_all_at(f, b, at)?;
        at += b.len() as u64;
    }
    Ok(())
}

#[cfg(windows)]
fn write_all_vectored_at(f: &File, bufs: &[&[u8]], mut at: u64) -> io::Result<()> {
    for b in bufs {
        write_all_at(f, b, at)?;
        at += b.len() as u64;
    }
    Ok(())
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

    /// A flight's writer: contiguous blocks in one call (each in several chunks) are read back
    /// exactly; the file it holds open, removed meanwhile (its entry's last block evicted), is
    /// created again by its name for the next write rather than written unlinked.
    #[tokio::test]
    async fn an_entry_file_writes_runs_and_opens_again_after_a_removal() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("content");
        let entry = "0123456789abcdef0123456789abcdef";
        let block = |n: u8| Bytes::from(vec![n; BLOCK as usize]);
        let split =
            |b: Bytes| Parts::new(vec![b.slice(..7), b.slice(7..70_000), b.slice(70_000..)]);
        let mut file = EntryFile::new(&d, entry);
        file.write(
            0,
            &[split(block(1)), split(block(2)), Parts::new(vec![block(3)])],
        )
        .unwrap();
        let crc = |n: u8| crc32fast::hash(&block(n));
        for b in 0..3u8 {
            let got = read(&d, entry, b as u64, BLOCK, crc(b + 1)).await.unwrap();
            assert_eq!(got, block(b + 1), "block {b}");
        }
        remove(&d, entry);
        file.write(5, &[split(block(6))]).unwrap();
        assert_eq!(read(&d, entry, 5, BLOCK, crc(6)).await.unwrap(), block(6));
        assert!(matches!(
            read(&d, entry, 0, BLOCK, crc(1)).await,
            Err(Bad::Damaged(_))
        ));
    }
}
