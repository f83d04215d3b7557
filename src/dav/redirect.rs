//! Where a GET may send a client instead of streaming the bytes through this server.
//!
//! The filesystem does not know the policies (that is configuration, `server::policy`); it
//! asks a [`Redirect`] for a file's location and, with dav-server's `.redirect(true)`, answers
//! 302 to it.

use futures::future::BoxFuture;

use crate::catalog::{CatalogError, FileInfo};

/// The hook through which a delivery policy (302 to Google, or to a signed link) answers a
/// GET with a redirect instead of bytes; `dav` asks it and stays ignorant of the policies.
pub trait Redirect: Send + Sync + 'static {
    /// The URL a client should fetch `file`'s bytes from, or `None` to serve them here.
    fn location<'a>(
        &'a self,
        file: &'a FileInfo,
    ) -> BoxFuture<'a, Result<Option<String>, CatalogError>>;
}
