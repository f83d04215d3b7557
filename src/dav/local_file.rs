//! `DavFile` for a file kept on this server (see `upload::local`): served from memory.
//!
//! Writes never reach it: PUT is handled before dav-server (`upload`), so the only opener
//! asking to write is LOCK of a missing name, which creates the placeholder and writes nothing.

use std::io::SeekFrom;

use bytes::Bytes;
use dav_server::fs::{DavFile, DavMetaData, FsError, FsFuture};

use super::meta::Meta;
use crate::upload::local::LocalFile;

/// An open placeholder or Finder sidecar (see `upload::local`): bytes that live in this
/// server's memory, never in Google, served with the same `DavFile` interface so that clients
/// can read back what they just wrote.
#[derive(Debug)]
pub struct LocalDavFile {
    file: LocalFile,
    pos: u64,
}

impl LocalDavFile {
    pub fn new(file: LocalFile) -> Self {
        LocalDavFile { file, pos: 0 }
    }
}

impl DavFile for LocalDavFile {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = Meta::local(self.file.bytes.len() as u64, self.file.modified);
        Box::pin(async move { Ok(Box::new(meta) as Box<dyn DavMetaData>) })
    }

    fn write_buf(&mut self, _buf: Box<dyn bytes::Buf + Send>) -> FsFuture<'_, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }

    fn write_bytes(&mut self, _buf: Bytes) -> FsFuture<'_, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }

    fn read_bytes(&mut self, count: usize) -> FsFuture<'_, Bytes> {
        let len = self.file.bytes.len() as u64;
        let start = self.pos.min(len) as usize;
        let end = (start + count).min(len as usize);
        self.pos = end as u64;
        let out = self.file.bytes.slice(start..end);
        Box::pin(async move { Ok(out) })
    }

    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        let len = self.file.bytes.len() as i64;
        let target = match pos {
            SeekFrom::Start(n) => n as i64,
            SeekFrom::End(n) => len + n,
            SeekFrom::Current(n) => self.pos as i64 + n,
        };
        Box::pin(async move {
            if target < 0 {
                return Err(FsError::GeneralFailure);
            }
            self.pos = target as u64;
            Ok(self.pos)
        })
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}
