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
pub mod meta;
pub mod probes;
pub mod redirect;

use std::sync::Arc;

use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, FsError, FsFuture, FsStream, OpenOptions,
    ReadDirMeta,
};

use crate::catalog::{Catalog, CatalogError, Node};
use file::PhotoFile;
use meta::{DirEntry, Meta};
use redirect::Redirect;

#[derive(Clone)]
pub struct PhotosFs {
    catalog: Catalog,
    redirect: Option<Arc<dyn Redirect>>,
}

impl PhotosFs {
    pub fn new(catalog: Catalog) -> Self {
        PhotosFs {
            catalog,
            redirect: None,
        }
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
        CatalogError::Google(_) => {
            failure::record(&e);
            FsError::IsRemote
        }
    }
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
            refuse_writes(&options)?;
            // dav-server called metadata() just before, so this is answered from the cache.
            match self
                .catalog
                .stat(&segments(path)?)
                .await
                .map_err(fs_error)?
            {
                Node::File(info) => Ok(Box::new(
                    PhotoFile::new(self.catalog.clone(), info).with_redirect(self.redirect.clone()),
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
            let entries = self
                .catalog
                .list(&segments(path)?)
                .await
                .map_err(fs_error)?;
            let entries: Vec<_> = entries
                .iter()
                .map(|e| Ok(Box::new(DirEntry::new(e)) as Box<dyn DavDirEntry>))
                .collect();
            Ok(Box::pin(futures::stream::iter(entries)) as FsStream<Box<dyn DavDirEntry>>)
        })
    }

    // Writes: Google's API cannot delete, move or replace items, and uploads are not
    // implemented yet, so every change is refused with 403 (not 501: it is a refusal).
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
            let meta = match self
                .catalog
                .stat(&segments(path)?)
                .await
                .map_err(fs_error)?
            {
                Node::Dir { key, modified } => Meta::dir(&key, modified),
                Node::File(info) => Meta::file(&info),
            };
            Ok(Box::new(meta) as Box<dyn DavMetaData>)
        })
    }
}
