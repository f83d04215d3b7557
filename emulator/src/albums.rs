//! Album membership: `albums.batchAddMediaItems` and `albums.batchRemoveMediaItems`, with
//! Google's limits and errors (docs/google-fidelity.md, "Organising albums").
//!
//! Google documents: at most 50 ids a call, no repeated ids (removal), app-created albums and
//! app-created items only, an album holds at most 20,000 items, and no partial success: one
//! unacceptable id or album fails the whole call (400 INVALID_ARGUMENT, "Request contains an
//! invalid media item id." for an item, as answered in the field). Every item this emulator's
//! library holds is app-created (it models the Library API after the 2025 scope change, which
//! shows an app only its own items), so an id it does not hold (a picked item's, one made
//! up) is the refused case. Not documented, and modelled as set semantics: adding an item an
//! album already holds changes nothing and succeeds; removing one it does not hold is refused
//! like an invalid id.

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::api::{INVALID_ARGUMENT, INVALID_MEDIA_ITEM_ID, authorize_scope};
use super::fixtures::Library;
use super::oauth::{APPEND_SCOPE, EDIT_SCOPE};
use super::reply::Reply;
use super::{Inner, Req, relock};

/// Ids per call (both methods).
pub(crate) const ALBUM_BATCH_MAX: usize = 50;
/// Items per album.
pub(crate) const ALBUM_ITEMS_MAX: usize = 20_000;

/// Which membership call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Membership {
    Add,
    Remove,
}

impl Membership {
    /// The custom method's name in the path (`/v1/albums/{id}:<name>`).
    pub(crate) fn from_method(name: &str) -> Option<Membership> {
        match name {
            "batchAddMediaItems" => Some(Membership::Add),
            "batchRemoveMediaItems" => Some(Membership::Remove),
            _ => None,
        }
    }

    /// The counter a call increments.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Membership::Add => "albums.batchAddMediaItems",
            Membership::Remove => "albums.batchRemoveMediaItems",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    #[serde(default)]
    media_item_ids: Vec<String>,
}

/// `POST /v1/albums/{id}:batchAddMediaItems` / `:batchRemoveMediaItems`.
pub(crate) fn batch_membership(inner: &Inner, req: &Req, album: &str, call: Membership) -> Reply {
    batch_membership_inner(inner, req, album, call).unwrap_or_else(|e| e)
}

fn batch_membership_inner(
    inner: &Inner,
    req: &Req,
    album: &str,
    call: Membership,
) -> Result<Reply, Reply> {
    match call {
        // Adding takes either scope (Google lists appendonly and edit.appcreateddata).
        Membership::Add => authorize_scope(inner, req, "BatchAddMediaItemsToAlbum", APPEND_SCOPE)
            .or_else(|_| authorize_scope(inner, req, "BatchAddMediaItemsToAlbum", EDIT_SCOPE))
            .map(|_| ())?,
        Membership::Remove => {
            authorize_scope(inner, req, "BatchRemoveMediaItemsFromAlbum", EDIT_SCOPE).map(|_| ())?
        }
    }
    let body: Body = serde_json::from_slice(&req.body)
        .map_err(|e| Reply::invalid_argument(&format!("Invalid JSON payload received. {e}")))?;
    let ids = body.media_item_ids;
    if ids.is_empty() {
        return Err(Reply::invalid_argument(
            "Request must contain at least one media item id.",
        ));
    }
    if ids.len() > ALBUM_BATCH_MAX {
        return Err(Reply::invalid_argument(&format!(
            "Request must not contain more than {ALBUM_BATCH_MAX} media item ids."
        )));
    }
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    if distinct.len() != ids.len() {
        return Err(Reply::invalid_argument(
            "Request must not contain repeated media item ids.",
        ));
    }
    let _write = relock(&inner.write_lock);
    let mut next: Library = (*inner.current()).clone();
    let Some(index) = next.albums.iter().position(|a| a.id == album) else {
        return Err(Reply::invalid_argument(INVALID_ARGUMENT));
    };
    // All or nothing: every id is checked before the album changes.
    if ids.iter().any(|id| next.item(id).is_none()) {
        return Err(Reply::invalid_argument(INVALID_MEDIA_ITEM_ID));
    }
    let members = &mut next.albums[index].item_ids;
    match call {
        Membership::Add => {
            let new: Vec<&String> = ids.iter().filter(|id| !members.contains(id)).collect();
            if members.len() + new.len() > ALBUM_ITEMS_MAX {
                return Err(Reply::invalid_argument(&format!(
                    "The album would hold more than {ALBUM_ITEMS_MAX} media items."
                )));
            }
            // Added to the end, in the order given.
            members.extend(new.into_iter().cloned());
        }
        Membership::Remove => {
            if ids.iter().any(|id| !members.contains(id)) {
                return Err(Reply::invalid_argument(INVALID_MEDIA_ITEM_ID));
            }
            members.retain(|id| !ids.contains(id));
        }
    }
    inner.replace_library(next);
    Ok(Reply::json(StatusCode::OK, &json!({})))
}
