//! Size variants: an item scaled by Google (`baseUrl=w256-h256-c`), what the gallery shows
//! instead of the item's own bytes (issue #17).
//!
//! A folder of 24 photos drawn as a grid must not pull 24 originals: Google renders any size
//! on its content host from the base URL (`=wW-hH` fits the box, `-c` crops to it; for a video,
//! a still of it), so the gallery asks for that and never scales an original here. A variant is
//! fetched the way an item's bytes are (the media gate, a URL refreshed when old or refused,
//! picked items with the bearer token), kept whole in the content cache under the variant's
//! name, and read from there the next time: a gallery opened again costs no request.
//!
//! No listing states a variant's size, so the cache finds it by item and variant alone
//! (`ContentCache::whole`); the bytes themselves are bounded by [`MAX_VARIANT_BYTES`].

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use super::{Catalog, CatalogError, picked};
use crate::google::GoogleError;
use crate::google::content::Download;

/// The most bytes a size variant may have: a screen-size JPEG is a few hundred KiB; more is
/// a host that ignored the size asked for, and is refused rather than held in memory.
pub const MAX_VARIANT_BYTES: usize = 16 * 1024 * 1024;

/// The largest side a variant may ask for.
pub const MAX_SIDE: u32 = 4096;

/// A size Google renders an item at: `=w{width}-h{height}`, cropped to exactly that box with
/// `crop` (`-c`, square thumbnails), else scaled to fit inside it (never enlarged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeVariant {
    pub width: u32,
    pub height: u32,
    pub crop: bool,
}

impl SizeVariant {
    /// The URL suffix after `=`, also the variant's name in the content cache.
    pub fn suffix(&self) -> String {
        let crop = if self.crop { "-c" } else { "" };
        format!("w{}-h{}{crop}", self.width, self.height)
    }
}

/// A size variant's bytes and their media type, read from the bytes (Google answers JPEG for
/// most, but says so only in a header this path does not keep).
#[derive(Debug, Clone)]
pub struct VariantBytes {
    pub bytes: Bytes,
    pub mime_type: &'static str,
}

impl Catalog {
    /// `variant` of the file at `segments` (decoded path segments): from the content cache
    /// when it holds it whole, else from Google, then kept. NotFound for a folder or nothing.
    pub async fn size_variant(
        &self,
        segments: &[String],
        variant: SizeVariant,
    ) -> Result<VariantBytes, CatalogError> {
        if variant.width == 0
            || variant.height == 0
            || variant.width > MAX_SIDE
            || variant.height > MAX_SIDE
        {
            return Err(CatalogError::NotFound);
        }
        let (_, item) = self.file_item(segments).await?;
        let suffix = variant.suffix();
        let cache = self.inner.content.clone();
        if let Some(cache) = &cache
            && let Some(bytes) = cache.whole(&item.id, &suffix).await
        {
            crate::metrics::get().cache("variant", "hit", 1, self.library());
            return Ok(typed(bytes));
        }
        let content = &self.inner.google.content;
        let download = match picked::split_picked_id(&item.id) {
            Some((set, id)) => {
                self.with_picked_url(set, id, Some(&suffix), |url| async move {
                    content.download_range_bearer(&url, 0, None).await
                })
                .await?
            }
            None => {
                self.media_gate()?;
                self.with_url(&item.id, Some(&suffix), |url| async move {
                    content.download_range(&url, 0, None).await
                })
                .await?
            }
        };
        let bytes = whole(download).await?;
        crate::metrics::get().cache("variant", "miss", 1, self.library());
        if let Some(cache) = &cache {
            cache.keep_whole(&item.id, &suffix, bytes.clone()).await;
        }
        Ok(typed(bytes))
    }
}

/// The whole body of a variant's download, checked against the length the host stated.
async fn whole(download: Download) -> Result<Bytes, CatalogError> {
    let protocol = |m: String| CatalogError::Google(GoogleError::Protocol(m));
    if download.start != 0 {
        return Err(protocol(format!(
            "the content host answered a size variant from byte {}",
            download.start
        )));
    }
    let mut body = download.body;
    let mut out = BytesMut::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
        if out.len() > MAX_VARIANT_BYTES {
            return Err(protocol(format!(
                "a size variant larger than {MAX_VARIANT_BYTES} bytes"
            )));
        }
    }
    if let Some(total) = download.total
        && total != out.len() as u64
    {
        return Err(protocol(format!(
            "a size variant of {} bytes where the host announced {total}",
            out.len()
        )));
    }
    Ok(out.freeze())
}

fn typed(bytes: Bytes) -> VariantBytes {
    let mime_type = infer::get(&bytes)
        .map(|t| t.mime_type())
        .filter(|m| m.starts_with("image/"))
        .unwrap_or("application/octet-stream");
    VariantBytes { bytes, mime_type }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        let thumb = SizeVariant {
            width: 256,
            height: 256,
            crop: true,
        };
        assert_eq!(thumb.suffix(), "w256-h256-c");
        let screen = SizeVariant {
            width: 1920,
            height: 1080,
            crop: false,
        };
        assert_eq!(screen.suffix(), "w1920-h1080");
    }
}
