//! The WebDAV filesystem: dav-server's `DavFileSystem` over the catalog.
//!
//! This layer knows paths and WebDAV, not Google: it turns a `DavPath` into catalog path
//! segments, catalog answers into `DavMetaData`, and catalog errors into `FsError`s (recording
//! the typed reason for the HTTP layer, see [`failure`]).
//!
//! A folder's `metadata()` loads its whole listing, sizes included. dav-server sends the 207
//! status before it reads a directory and silently skips entries that fail afterwards, so this is
//! the last moment an upstream failure can still become an error status instead of a folder that
//! looks empty.

pub mod by_id;
pub mod failure;
pub mod file;
pub mod local_file;
pub mod meta;
pub mod mounts;
pub mod probes;
pub mod redirect;

use std::sync::Arc;

use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, FsError, FsFuture, FsStream, OpenOptions,
    ReadDirMeta,
};

use crate::catalog::{Catalog, CatalogError, Node};
use crate::upload::local::{self, LocalFiles};
use file::PhotoFile;
use local_file::LocalDavFile;
use meta::{DirEntry, Meta};
use redirect::Redirect;

/// The tree of Google Photos as a WebDAV filesystem: dav-server calls it for every
/// PROPFIND and GET, and it answers from the catalog. It knows nothing of Google; the
/// catalog does. Cheap to clone.
#[derive(Clone)]
pub struct PhotosFs {
    catalog: Catalog,
    redirect: Option<Arc<dyn Redirect>>,
    /// Placeholders and Finder sidecars (writable servers only; see `upload::local`).
    local: Option<LocalFiles>,
    /// The catalog folder that is `/` here: empty, except for the tree of a user rooted
    /// deeper than a library's folder (`root = "/alice/album/Trip"`), whose paths, and so
    /// dav-server's hrefs, are relative to it.
    root: Arc<[String]>,
}

impl PhotosFs {
    pub fn new(catalog: Catalog) -> Self {
        PhotosFs {
            catalog,
            redirect: None,
            local: None,
            root: Arc::new([]),
        }
    }

    /// Serves the catalog folder `root` (decoded segments) as `/`.
    pub fn with_root(mut self, root: &[String]) -> Self {
        self.root = root.into();
        self
    }

    /// The catalog's segments of a path of this filesystem: the root's, then the path's.
    /// What `segs` names, for dav-server's `metadata`. A GET or HEAD that proxies the bytes
    /// (`failure::reading`) lets the catalog learn an unknown size from the download itself,
    /// which the file then streams (`failure::keep_download`): one request, not a probe and a
    /// download. A redirect policy never downloads, so it probes as a listing would.
    async fn stat(&self, segs: &[String]) -> Result<Node, CatalogError> {
        let Some(span) = failure::reading().filter(|_| self.redirect.is_none()) else {
            return self.catalog.stat(segs).await;
        };
        let (node, download) = self.catalog.stat_reading(segs, span).await?;
        if let (Node::File(info), Some(download)) = (&node, download) {
            failure::keep_download(info.id.clone(), download);
        }
        Ok(node)
    }

    fn segments(&self, path: &DavPath) -> Result<Vec<String>, FsError> {
        let mut segs = self.root.to_vec();
        segs.extend(segments(path)?);
        Ok(segs)
    }

    /// Shows the files kept on this server, and lets LOCK create placeholders.
    pub fn with_local(mut self, local: Option<LocalFiles>) -> Self {
        self.local = local;
        self
    }

    fn local_file(&self, segs: &[String]) -> Option<local::LocalFile> {
        self.local.as_ref()?.get(&local::key(segs))
    }

    /// LOCK of a missing name in a folder that takes uploads: an empty placeholder, which
    /// the content PUT then replaces (Explorer's way of creating a file).
    async fn create_placeholder(&self, segs: &[String]) -> Result<Box<dyn DavFile>, FsError> {
        let Some(local) = &self.local else {
            return Err(FsError::Forbidden);
        };
        let Some((name, dir)) = segs.split_last() else {
            return Err(FsError::Forbidden);
        };
        let allowed = local::is_sidecar(name)
            || self
                .catalog
                .upload_dir(dir)
                .await
                .map_err(fs_error)?
                .is_some();
        if !allowed {
            return Err(FsError::Forbidden);
        }
        let key = local::key(segs);
        if local.put(&key, bytes::Bytes::new()).is_none() {
            return Err(FsError::InsufficientStorage);
        }
        let file = local.get(&key).ok_or(FsError::GeneralFailure)?;
        Ok(Box::new(LocalDavFile::new(file)))
    }

    /// Files answer GET and HEAD with a 302 to where `redirect` says (with dav-server's
    /// `.redirect(true)`).
    pub fn with_redirect(mut self, redirect: Option<Arc<dyn Redirect>>) -> Self {
        self.redirect = redirect;
        self
    }
}

/// The decoded, non-empty segments of a path. A segment that is not UTF-8 cannot name anything
/// in the tree (all our names come from UTF-8 JSON).
pub fn segments(path: &DavPath) -> Result<Vec<String>, FsError> {
    path.as_bytes()
        .split(|b| *b == b'/')
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8(s.to_vec()).map_err(|_| FsError::NotFound))
        .collect()
}

/// Maps a catalog error to dav-server's code, recording the reason for the HTTP layer.
pub(crate) fn fs_error(e: CatalogError) -> FsError {
    match e {
        CatalogError::NotFound => FsError::NotFound,
        CatalogError::Google(_)
        | CatalogError::Processing { .. }
        | CatalogError::ProbeBudgetSpent { .. } => {
            failure::record(&e);
            FsError::IsRemote
        }
    }
}

/// Whether two names are the same entry for a client (exact, or equal in NFC).
fn naming_eq(a: &str, b: &str) -> bool {
    a == b || crate::catalog::naming::nfc(a) == crate::catalog::naming::nfc(b)
}

/// Files open for reading only: Google's API cannot replace an item's bytes.
pub(crate) fn refuse_writes(options: &OpenOptions) -> Result<(), FsError> {
    if options.write || options.append || options.truncate || options.create {
        return Err(FsError::Forbidden);
    }
    Ok(())
}

impl DavFileSystem for PhotosFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        Box::pin(async move {
            let segs = self.segments(path)?;
            if let Some(file) = self.local_file(&segs) {
                return Ok(Box::new(LocalDavFile::new(file)) as Box<dyn DavFile>);
            }
            if options.create && self.local.is_some() {
                return match self.catalog.stat(&segs).await {
                    Err(CatalogError::NotFound) => self.create_placeholder(&segs).await,
                    Err(e) => Err(fs_error(e)),
                    Ok(_) => Err(FsError::Forbidden),
                };
            }
            refuse_writes(&options)?;
            // dav-server called metadata() just before, so this is answered from the cache.
            match self.catalog.stat(&segs).await.map_err(fs_error)? {
                Node::File(info) => Ok(Box::new(
                    PhotoFile::opened(self.catalog.clone(), info)
                        .with_redirect(self.redirect.clone()),
                ) as Box<dyn DavFile>),
                Node::Dir { .. } => Err(FsError::Forbidden),
            }
        })
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        Box::pin(async move {
            let segs = self.segments(path)?;
            let entries = self.catalog.entries_at(&segs).await.map_err(fs_error)?;
            // The files kept on this server that the catalog does not list already.
            let mut local_entries = Vec::new();
            if let Some(local) = &self.local {
                for (name, file) in local.children(&local::key(&segs)) {
                    if entries.names().any(|e| naming_eq(e, &name)) {
                        continue;
                    }
                    let meta = Meta::local(file.bytes.len() as u64, file.modified);
                    local_entries.push(Ok(
                        Box::new(meta::local_entry(name, meta)) as Box<dyn DavDirEntry>
                    ));
                }
            }
            // Each entry is made as dav-server writes it into the streamed 207, so a folder
            // of 100,000 files is never held as 100,000 entries at once.
            let catalog = entries
                .into_iter()
                .map(|e| Ok(Box::new(DirEntry::new(&e)) as Box<dyn DavDirEntry>));
            Ok(
                Box::pin(futures::stream::iter(catalog.chain(local_entries)))
                    as FsStream<Box<dyn DavDirEntry>>,
            )
        })
    }

    // Writes: PUT, MKCOL, DELETE, MOVE and COPY are answered before dav-server (see
    // `upload`), so these are only reached on read-only servers: refused with 403 (not 501:
    // it is a refusal).
    fn create_dir<'a>(&'a self, _path: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }

    fn remove_dir<'a>(&'a self, _path: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }

    fn remove_file<'a>(&'a self, _path: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }

    fn rename<'a>(&'a self, _from: &'a DavPath, _to: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }

    fn copy<'a>(&'a self, _from: &'a DavPath, _to: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }

    /// PROPPATCH of dead properties (any namespace dav-server does not handle itself, such
    /// as a Finder or Explorer extension's): nothing is stored, so each property is refused
    /// with 403 inside the 207, as RFC 4918 (9.2) has it. dav-server's default answers the
    /// whole request 501, which a client takes for a broken server.
    fn patch_props<'a>(
        &'a self,
        _path: &'a DavPath,
        patch: Vec<(bool, dav_server::fs::DavProp)>,
    ) -> FsFuture<'a, Vec<(http::StatusCode, dav_server::fs::DavProp)>> {
        Box::pin(async move {
            Ok(patch
                .into_iter()
                .map(|(_, prop)| (http::StatusCode::FORBIDDEN, prop))
                .collect())
        })
    }

    /// RFC 4331 quota, which Finder asks for when it mounts. Used: the bytes of every item
    /// whose size is known so far ([`Catalog::known_bytes`]), which is the whole library once
    /// `/media/all` has been listed and a lower bound before, never an estimate. Available:
    /// not reported, because the Library API does not tell how much of the Google account's
    /// storage is left. (dav-server reports this total at `/` and a resource's own length
    /// elsewhere.)
    fn get_quota(&self) -> FsFuture<'_, (u64, Option<u64>)> {
        Box::pin(async move { Ok((self.catalog.known_bytes(), None)) })
    }

    fn metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        Box::pin(async move {
            let segs = self.segments(path)?;
            if let Some(file) = self.local_file(&segs) {
                let meta = Meta::local(file.bytes.len() as u64, file.modified);
                return Ok(Box::new(meta) as Box<dyn DavMetaData>);
            }
            let meta = match self.stat(&segs).await.map_err(fs_error)? {
                Node::Dir { key, modified } => Meta::dir(&key, modified),
                Node::File(info) => Meta::file(&info),
            };
            Ok(Box::new(meta) as Box<dyn DavMetaData>)
        })
    }
}
