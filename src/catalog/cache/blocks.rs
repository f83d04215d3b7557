//! Block files: `<content_dir>/<entry>/<block index>`, one file per block of an item's bytes.
//!
//! A block is written to a temporary name in its entry's directory and renamed into place once
//! complete, so a block file is whole or absent. Its checksum lives in the index; a read checks
//! the length and the CRC-32 before any byte is served, so a file damaged later (a power loss
//! before the data reached the disk, a truncation, an edit) is detected and fetched again.
//! Everything here is blocking file I/O, run on tokio's blocking pool.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// Where block `block` of entry `entry` lives.
pub(super) fn path(dir: &Path, entry: &str, block: u64) -> PathBuf {
    dir.join(entry).join(block.to_string())
}

/// Writes a complete block: to a temporary file in the entry's directory, then renamed into
/// place. No fsync: the checksum in the index catches a file the disk lost.
pub(super) async fn write(dir: &Path, entry: &str, block: u64, bytes: Bytes) -> io::Result<()> {
    let (dir, entry) = (dir.to_path_buf(), entry.to_string());
    run(move || {
        let entry_dir = dir.join(&entry);
        std::fs::create_dir_all(&entry_dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&entry_dir)?;
        io::Write::write_all(&mut tmp, &bytes)?;
        tmp.persist(path(&dir, &entry, block))
            .map_err(|e| e.error)?;
        Ok(())
    })
    .await
}

/// Why a block file cannot be served.
#[derive(Debug)]
pub(super) enum Bad {
    /// Missing or unreadable.
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
    let file = path(dir, entry, block);
    let bytes = run(move || std::fs::read(file)).await.map_err(Bad::Io)?;
    if bytes.len() as u64 != len {
        return Err(Bad::Damaged(format!(
            "{} bytes where {len} were stored",
            bytes.len()
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

/// Removes what the index does not know: blocks written before a crash that never got their
/// row, temporary files, entries of a store that was rebuilt. Returns how many files went.
pub(super) async fn sweep(dir: &Path, known: HashSet<(String, u64)>) -> io::Result<usize> {
    let dir = dir.to_path_buf();
    run(move || {
        let mut removed = 0;
        let listing = match std::fs::read_dir(&dir) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        for entry_dir in listing {
            let entry_dir = entry_dir?;
            if !entry_dir.file_type()?.is_dir() {
                continue; // not ours: a cache directory holds entry directories only
            }
            let name = entry_dir.file_name().to_string_lossy().into_owned();
            if !is_entry_name(&name) {
                continue;
            }
            for file in std::fs::read_dir(entry_dir.path())? {
                let file = file?;
                let block = file.file_name().to_string_lossy().parse::<u64>().ok();
                if block.is_none_or(|b| !known.contains(&(name.clone(), b))) {
                    std::fs::remove_file(file.path())?;
                    removed += 1;
                }
            }
            let _ = std::fs::remove_dir(entry_dir.path());
        }
        Ok(removed)
    })
    .await
}

/// Whether a directory name is one of our entries (32 hex digits), so a sweep never touches
/// anything else someone put in the directory.
pub(super) fn is_entry_name(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn run<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e.to_string())))
}
