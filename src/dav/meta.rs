//! `DavMetaData` and `DavDirEntry` for catalog entries.

use std::time::SystemTime;

use dav_server::fs::{DavDirEntry, DavMetaData, FsFuture, FsResult};
use sha2::{Digest, Sha256};

use crate::catalog::{Entry, FileInfo, FolderKey};

/// What PROPFIND reports of a file or folder (size, times, ETag), built from the catalog's
/// answer. dav-server asks for metadata through a trait object; this is ours.
#[derive(Debug, Clone)]
pub struct Meta {
    len: u64,
    modified: SystemTime,
    created: SystemTime,
    dir: bool,
    etag: Option<String>,
}

impl Meta {
    /// A folder's ETag names the folder (not its path, which a rename of the album changes)
    /// and its time.
    pub fn dir(key: &FolderKey, modified: SystemTime) -> Self {
        let digest = Sha256::digest(format!("{key:?}").as_bytes());
        let micros = modified
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        Meta {
            len: 0,
            modified,
            created: modified,
            dir: true,
            etag: Some(format!("{}-{micros:x}", hex::encode(&digest[..8]))),
        }
    }

    /// A file's ETag depends only on the item id and its size, so it is stable across
    /// listings and restarts, and changes if Google starts serving different bytes.
    pub fn file(info: &FileInfo) -> Self {
        let digest = Sha256::digest(info.id.as_bytes());
        Meta {
            len: info.size,
            modified: info.created,
            created: info.created,
            dir: false,
            etag: Some(format!("{}-{:x}", hex::encode(&digest[..8]), info.size)),
        }
    }

    pub fn of(entry: &Entry) -> Self {
        match entry {
            Entry::Dir { key, modified, .. } => Meta::dir(key, *modified),
            Entry::File(info) => Meta::file(info),
        }
    }
}

impl DavMetaData for Meta {
    fn len(&self) -> u64 {
        self.len
    }

    fn modified(&self) -> FsResult<SystemTime> {
        Ok(self.modified)
    }

    fn created(&self) -> FsResult<SystemTime> {
        Ok(self.created)
    }

    fn is_dir(&self) -> bool {
        self.dir
    }

    fn etag(&self) -> Option<String> {
        self.etag.clone()
    }
}

/// One child in a folder listing as dav-server wants it: a name and its [`Meta`], built from
/// the catalog's entry without another lookup.
pub struct DirEntry {
    name: String,
    meta: Meta,
}

impl DirEntry {
    pub fn new(entry: &Entry) -> Self {
        DirEntry {
            name: entry.name().to_string(),
            meta: Meta::of(entry),
        }
    }
}

impl DavDirEntry for DirEntry {
    fn name(&self) -> Vec<u8> {
        self.name.as_bytes().to_vec()
    }

    fn metadata(&self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = self.meta.clone();
        Box::pin(async move { Ok(Box::new(meta) as Box<dyn DavMetaData>) })
    }
}

impl Meta {
    /// A file that exists only on this server (a placeholder or a Finder sidecar).
    pub fn local(len: u64, modified: SystemTime) -> Self {
        Meta {
            len,
            modified,
            created: modified,
            dir: false,
            etag: None,
        }
    }
}

/// A directory entry for a local file.
pub fn local_entry(name: String, meta: Meta) -> DirEntry {
    DirEntry { name, meta }
}
