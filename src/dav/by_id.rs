//! A filesystem of single files addressed by item id: `/<item id>/<file name>`.
//!
//! It serves signed download links (`server::signed` checks the signature before a request
//! gets here): the item is looked up by id alone, with no folder listing, so a byte node that
//! never served a PROPFIND answers at once. The bytes stream exactly as in the tree
//! ([`PhotoFile`]: Range, resume, length checks). There are no folders: anything but a
//! `/<id>/<name>` path is 404.

use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, FsError, FsFuture, FsStream, OpenOptions,
    ReadDirMeta,
};

use super::file::PhotoFile;
use super::meta::Meta;
use super::{fs_error, segments};
use crate::catalog::{Catalog, FileInfo};

/// The byte node of signed links: one file per item id, no folders, no listing to walk
/// first. Cheap to clone (it shares the catalog).
#[derive(Clone)]
pub struct ByIdFs {
    catalog: Catalog,
}

impl ByIdFs {
    pub fn new(catalog: Catalog) -> Self {
        ByIdFs { catalog }
    }

    async fn file(&self, path: &DavPath) -> Result<FileInfo, FsError> {
        match segments(path)?.as_slice() {
            [id, name] => self.catalog.file_by_id(id, name).await.map_err(fs_error),
            _ => Err(FsError::NotFound),
        }
    }
}

impl DavFileSystem for ByIdFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        Box::pin(async move {
            super::refuse_writes(&options)?;
            let info = self.file(path).await?;
            Ok(Box::new(PhotoFile::opened(self.catalog.clone(), info)) as Box<dyn DavFile>)
        })
    }

    fn read_dir<'a>(
        &'a self,
        _path: &'a DavPath,
        _meta: ReadDirMeta,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        Box::pin(async { Err(FsError::NotFound) })
    }

    fn metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        Box::pin(async move {
            let info = self.file(path).await?;
            Ok(Box::new(Meta::file(&info)) as Box<dyn DavMetaData>)
        })
    }
}
