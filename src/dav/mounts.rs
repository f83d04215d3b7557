//! The root of a family server (`[[library]]`, issue #19): one folder per library and nothing
//! else, for the users who see every library. It knows no catalog: each folder's contents are
//! the library's own tree, which the server routes to before dav-server ever looks here, so
//! this filesystem only answers `/` itself (PROPFIND Depth 0 or 1, GET, HEAD, OPTIONS).

use std::sync::Arc;
use std::time::SystemTime;

use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, FsError, FsFuture, FsStream, OpenOptions,
    ReadDirMeta,
};
use sha2::{Digest, Sha256};

/// The folders at `/`: the mounts, in the order of the configuration. Cheap to clone.
#[derive(Clone)]
pub struct MountsFs {
    mounts: Arc<Vec<String>>,
    /// When the server started: the folders' time (their contents change, not they).
    since: SystemTime,
}

impl MountsFs {
    /// The root holding `mounts`.
    pub fn new(mounts: Vec<String>) -> Self {
        MountsFs {
            mounts: Arc::new(mounts),
            since: SystemTime::now(),
        }
    }

    /// The folder `path` names: the root (`None`) or a mount, else not found.
    fn folder(&self, path: &DavPath) -> Result<Option<&str>, FsError> {
        let rel = path.as_rel_ospath();
        let name = rel.to_str().ok_or(FsError::NotFound)?.trim_matches('/');
        if name.is_empty() {
            return Ok(None);
        }
        self.mounts
            .iter()
            .find(|m| m.as_str() == name)
            .map(|m| Some(m.as_str()))
            .ok_or(FsError::NotFound)
    }
}

/// A folder of the root: a mount's folder, or the root itself (`""`).
#[derive(Debug, Clone)]
struct Folder {
    name: String,
    since: SystemTime,
}

impl DavMetaData for Folder {
    fn len(&self) -> u64 {
        0
    }

    fn modified(&self) -> dav_server::fs::FsResult<SystemTime> {
        Ok(self.since)
    }

    fn is_dir(&self) -> bool {
        true
    }

    /// Names the folder and the server's start, like the tree's folders' tags.
    fn etag(&self) -> Option<String> {
        let digest = Sha256::digest(format!("mount:{}", self.name).as_bytes());
        let micros = self
            .since
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        Some(format!("{}-{micros:x}", hex::encode(&digest[..8])))
    }
}

impl DavDirEntry for Folder {
    fn name(&self) -> Vec<u8> {
        self.name.as_bytes().to_vec()
    }

    fn metadata(&self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = self.clone();
        Box::pin(async move { Ok(Box::new(meta) as Box<dyn DavMetaData>) })
    }
}

impl DavFileSystem for MountsFs {
    fn open<'a>(
        &'a self,
        _path: &'a DavPath,
        _options: OpenOptions,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        // Only folders here.
        Box::pin(async { Err(FsError::Forbidden) })
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        Box::pin(async move {
            // A mount's own folder is the library's (never routed here): empty.
            let entries: Vec<Folder> = match self.folder(path)? {
                None => self
                    .mounts
                    .iter()
                    .map(|m| Folder {
                        name: m.clone(),
                        since: self.since,
                    })
                    .collect(),
                Some(_) => Vec::new(),
            };
            let stream = futures::stream::iter(
                entries
                    .into_iter()
                    .map(|f| Ok(Box::new(f) as Box<dyn DavDirEntry>)),
            );
            Ok(Box::pin(stream) as FsStream<Box<dyn DavDirEntry>>)
        })
    }

    fn metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        Box::pin(async move {
            let name = self.folder(path)?.unwrap_or("").to_string();
            Ok(Box::new(Folder {
                name,
                since: self.since,
            }) as Box<dyn DavMetaData>)
        })
    }
}
