//! Step 2 of a PUT: the body goes to a temporary file (mode 0600, deleted when dropped) while
//! it is hashed, counted and sniffed, so that a refusal (not media, too large, shorter or
//! longer than announced) comes before anything is sent to Google, and the upload can be
//! retried from the file without holding the body in memory.

use std::path::Path;

use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::Body;
use super::answer::{Answer, length_mismatch, not_media, too_large};
use super::sniff::{self, Kind};

/// A spooled body.
pub(super) struct Spooled {
    /// Deleted when dropped.
    pub(super) path: tempfile::TempPath,
    pub(super) size: u64,
    pub(super) sha256: String,
    pub(super) kind: Option<(Kind, &'static str)>,
}

/// The length a client announced: `Content-Length`, or Finder's `X-Expected-Entity-Length`
/// with a chunked body.
pub(super) fn announced_length(headers: &HeaderMap) -> Option<u64> {
    ["X-Expected-Entity-Length", "Content-Length"]
        .iter()
        .find_map(|h| headers.get(*h)?.to_str().ok()?.trim().parse().ok())
}

/// Writes the body to a temporary file, hashing, counting and sniffing it (see the
/// module docs for what ends it early).
pub(super) async fn spool(
    spool_dir: &Path,
    mut body: Body,
    announced: Option<u64>,
) -> Result<Spooled, Answer> {
    let tmp = tempfile::Builder::new()
        .prefix(".gphotos-dav-upload-")
        .tempfile_in(spool_dir)
        .map_err(|e| {
            tracing::error!(dir = %spool_dir.display(), "cannot create a spool file: {e}");
            Answer::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "the server cannot spool the upload (see its log)",
            )
        })?;
    let (file, path) = tmp.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut head: Vec<u8> = Vec::with_capacity(sniff::SNIFF_LEN);
    let mut kind: Option<(Kind, &'static str)> = None;
    let disk_error = |e: std::io::Error| {
        tracing::error!("cannot write a spool file: {e}");
        Answer::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "the server cannot spool the upload (see its log)",
        )
    };
    while let Some(frame) = body.frame().await {
        let data = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
            Err(e) => {
                tracing::info!("upload body broke off after {size} bytes: {e}");
                return Err(Answer::new(
                    StatusCode::BAD_REQUEST,
                    "the request body broke off before its end; nothing was uploaded",
                ));
            }
        };
        size += data.len() as u64;
        if announced.is_some_and(|n| size > n) {
            return Err(length_mismatch(size, announced));
        }
        if kind.is_none() && head.len() < sniff::SNIFF_LEN {
            let take = (sniff::SNIFF_LEN - head.len()).min(data.len());
            head.extend_from_slice(&data[..take]);
            if head.len() == sniff::SNIFF_LEN {
                kind = Some(sniff::sniff(&head).ok_or_else(not_media)?);
            }
        }
        if let Some((k, _)) = kind
            && (size > k.max_size() || announced.is_some_and(|n| n > k.max_size()))
        {
            return Err(too_large(k));
        }
        hasher.update(&data);
        file.write_all(&data).await.map_err(disk_error)?;
    }
    if announced.is_some_and(|n| n != size) {
        return Err(length_mismatch(size, announced));
    }
    if kind.is_none() && size > 0 {
        kind = Some(sniff::sniff(&head).ok_or_else(not_media)?);
    }
    file.flush().await.map_err(disk_error)?;
    file.sync_all().await.map_err(disk_error)?;
    Ok(Spooled {
        path,
        size,
        sha256: hex::encode(hasher.finalize()),
        kind,
    })
}
