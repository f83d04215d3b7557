//! What a write request is answered: a status, a message for the user, and for a 503 the
//! seconds to wait. Every refusal of the write path is worded here, once, so that the same
//! failure reads the same whether a PUT, a MKCOL or a MOVE met it.

use http::StatusCode;

use super::sniff::Kind;
use crate::catalog::CatalogError;
use crate::google::GoogleError;

/// What a write request is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// Why, in words for the user (the body of the response; empty on success).
    pub message: String,
    /// Seconds, for 503 answers caused by Google's rate limits.
    pub retry_after: Option<u64>,
}

impl Answer {
    /// An answer without a Retry-After.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Answer {
        Answer {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A failure to look a path up (other than NotFound), worded for the user.
    pub(super) fn catalog(what: &str, e: &CatalogError) -> Answer {
        match e {
            CatalogError::Google(e) => Answer::upstream(what, e),
            CatalogError::Processing { retry_after }
            | CatalogError::ProbeBudgetSpent { retry_after, .. } => Answer {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!("{what}: {e}"),
                retry_after: Some(retry_after.as_secs().max(1)),
            },
            CatalogError::NotFound => Answer::new(StatusCode::NOT_FOUND, format!("{what}: {e}")),
        }
    }

    /// A failure of Google's, worded for the user. A missing scope is 403, as for an album
    /// rename without the edit scope: no retry helps until the user authorizes again, and
    /// the message says how (for an upload, Google's uploads endpoint answers it with a
    /// 401 code 16, which `google::upload` recognises).
    pub(super) fn upstream(what: &str, e: &GoogleError) -> Answer {
        let (status, retry_after) = match e {
            GoogleError::RateLimited { retry_after, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                Some(retry_after.map_or(60, |d| d.as_secs().max(1))),
            ),
            GoogleError::InsufficientScopes => (StatusCode::FORBIDDEN, None),
            GoogleError::GateClosed { retry_after, .. }
            | GoogleError::ProbeBudgetSpent { retry_after } => (
                StatusCode::SERVICE_UNAVAILABLE,
                Some(retry_after.as_secs().max(1)),
            ),
            _ => (StatusCode::BAD_GATEWAY, None),
        };
        let message = match e {
            GoogleError::InsufficientScopes => format!(
                "{what}: {e}. Run `gphotos-dav auth` again to grant them (it asks for every \
                 scope this program uses)"
            ),
            _ => format!("{what}: {e}"),
        };
        Answer {
            status,
            message,
            retry_after,
        }
    }
}

pub(super) const NOT_HERE: &str = "files can only be created in an album folder (/album/<title>/<name>) or \
    in /upload/<name>; the other folders are views Google fills";
pub(super) const CANNOT_REPLACE: &str = "Google Photos cannot replace or change an item once it is \
    uploaded (its API cannot delete or overwrite items), and different bytes were already \
    uploaded under this name. Upload under another name, or delete the item in the Google \
    Photos app first";
pub(super) const CANNOT_DELETE: &str = "Google Photos' API cannot delete items or albums; delete them in \
    the Google Photos app (a file deleted in an album folder, /album/<title>/<name>, is taken \
    out of that album and stays in the library)";
pub(super) const CANNOT_MOVE: &str = "Google Photos' API cannot move or rename folders other than \
    albums: the folder moves it can do are renaming an album folder within /album (MOVE) and \
    copying one to a new album (COPY)";

/// Content that is neither a photo nor a video (415).
pub(super) fn not_media() -> Answer {
    Answer::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Google Photos only takes photos and videos, and these bytes are neither",
    )
}

/// A body over Google's limit for its kind (413).
pub(super) fn too_large(kind: Kind) -> Answer {
    let limit = match kind {
        Kind::Photo => "200 MB",
        Kind::Video => "20 GB",
    };
    Answer::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("Google Photos takes {}s of at most {limit}", kind.noun()),
    )
}

/// A body longer or shorter than announced (400): nothing is created for it.
pub(super) fn length_mismatch(got: u64, announced: Option<u64>) -> Answer {
    Answer::new(
        StatusCode::BAD_REQUEST,
        format!(
            "the body has {}{got} bytes but {} were announced; nothing was uploaded",
            if announced.is_some_and(|n| got > n) {
                "more than "
            } else {
                ""
            },
            announced.unwrap_or(0)
        ),
    )
}
