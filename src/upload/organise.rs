//! Organising albums from the file manager: COPY of a file into an album folder adds the
//! item to that album, MOVE between two album folders adds it to one and takes it out of
//! the other, DELETE in an album folder takes it out of that album. COPY of a whole album
//! folder to a new name under `/album/` makes a new album with the same members.
//!
//! Google lets an app change the members of the albums it created, with the items it
//! created (`albums.batchAddMediaItems`, `albums.batchRemoveMediaItems`, at most 50 ids a
//! call), and nothing more: items cannot be renamed, deleted or copied, albums cannot be
//! deleted. Every item the Library API shows this app is one it created, so any file outside
//! `/picked` can be added to an album; a picked file is not the app's, and its COPY imports
//! it instead (downloaded and uploaded, as `pick --import-to-album` does, see
//! `crate::pick::upload_picked`).
//!
//! No bytes move: a COPY or MOVE between albums costs one batch call, shared with the other
//! requests arriving at the same time (a selection of files dragged at once). The additions
//! and the removals are collected like uploads ([`super::batcher::Collector`]: the
//! `[upload]` batch window, closing early once no other such request is on its way), one
//! call per album and per 50 ids. A call is all or nothing at Google: one id it refuses (an
//! item deleted in the app meanwhile) fails the whole call, so a refused call of several ids
//! is repeated one id at a time, and only the requests whose own item was refused fail.
//!
//! A MOVE adds first and removes second, so a failure leaves the item in both albums, never
//! in neither, and the answer says which. Afterwards the listings of the albums involved are
//! forgotten, so the next PROPFIND shows them as Google has them.

use std::sync::Arc;

use futures::future::join_all;
use http::StatusCode;

use super::answer::{Answer, CANNOT_DELETE};
use super::batcher::{BatchPolicy, Collector};
use super::{Uploader, local};
use crate::catalog::picked::split_picked_id;
use crate::catalog::{CatalogError, Entry, UploadDir};
use crate::google::{GoogleError, LibraryClient, MediaItem};

/// Google's word for "not an item or album this app may change" (a 400 INVALID_ARGUMENT).
const REFUSED: &str = "Google accepts only items and albums this app created: files \
    uploaded through this server (or another app's own uploads) cannot be added to or taken \
    out of albums made elsewhere, and an item deleted in the Google Photos app meanwhile \
    cannot be added either";

/// Items cannot be renamed: a COPY or MOVE must keep the file's name.
const CANNOT_RENAME: &str = "Google Photos' API cannot rename items: copy or move a file \
    under its own name (the album shows it under that name)";

/// Where organising writes may go.
const ONLY_ALBUMS: &str = "files can be copied or moved only into an album folder \
    (/album/<title>/): an item cannot be put anywhere else, Google fills the other folders";

/// One batch of album additions or removals (see the module docs): album id → item ids.
type AlbumCalls = Collector<String, String, Result<(), GoogleError>>;

/// The two collectors of album changes, one per kind of call.
#[derive(Clone)]
pub(super) struct AlbumBatches {
    adds: AlbumCalls,
    removes: AlbumCalls,
}

/// Which of Google's two album calls.
#[derive(Clone, Copy)]
enum Change {
    Add,
    Remove,
}

impl AlbumBatches {
    /// Starts both collecting tasks on the current runtime.
    pub(super) fn start(library: LibraryClient, policy: BatchPolicy) -> AlbumBatches {
        let policy = BatchPolicy {
            max_items: policy
                .max_items
                .clamp(1, crate::google::library::ALBUM_BATCH_MAX),
            ..policy
        };
        let collector = |change: Change| {
            let library = library.clone();
            Collector::start(policy, move |album: String, ids: Vec<String>| {
                let library = library.clone();
                async move { change_group(&library, change, &album, ids).await }
            })
        };
        AlbumBatches {
            adds: collector(Change::Add),
            removes: collector(Change::Remove),
        }
    }
}

/// One call for `ids` (at most 50, of one album), each id answered. The same item asked
/// twice (two requests at once) is sent once. A call Google refuses as a whole with a 400 is
/// repeated one id at a time, so one refused item does not fail the others.
async fn change_group(
    library: &LibraryClient,
    change: Change,
    album: &str,
    ids: Vec<String>,
) -> Vec<Result<(), GoogleError>> {
    let mut distinct: Vec<String> = Vec::new();
    for id in &ids {
        if !distinct.contains(id) {
            distinct.push(id.clone());
        }
    }
    let call = |ids: Vec<String>| async move {
        match change {
            Change::Add => library.batch_add_media_items(album, &ids).await,
            Change::Remove => library.batch_remove_media_items(album, &ids).await,
        }
    };
    let verb = match change {
        Change::Add => "adding items to an album (one batchAddMediaItems)",
        Change::Remove => "taking items out of an album (one batchRemoveMediaItems)",
    };
    tracing::info!(items = distinct.len(), album, "{verb}");
    let outcome = call(distinct.clone()).await;
    let results: Vec<(String, Result<(), GoogleError>)> = match outcome {
        Err(GoogleError::Api { code: 400, .. }) if distinct.len() > 1 => {
            tracing::info!(
                album,
                "Google refused the whole batch; asking again one item at a time"
            );
            let mut each = Vec::with_capacity(distinct.len());
            for id in distinct {
                let result = call(vec![id.clone()]).await;
                each.push((id, result));
            }
            each
        }
        outcome => distinct
            .into_iter()
            .map(|id| (id, outcome.clone()))
            .collect(),
    };
    ids.iter()
        .map(|id| {
            results
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, r)| r.clone())
                .unwrap_or_else(|| Err(GoogleError::Protocol("no result for an item".into())))
        })
        .collect()
}

/// A refusal or failure of an album call, worded for the user.
fn album_failure(what: &str, e: &GoogleError) -> Answer {
    match e {
        GoogleError::Api {
            code: 400, message, ..
        } => Answer::new(
            StatusCode::FORBIDDEN,
            format!("{what}: Google refused ({message}). {REFUSED}"),
        ),
        GoogleError::InsufficientScopes => Answer::new(
            StatusCode::FORBIDDEN,
            "changing an album's items needs the photoslibrary.edit.appcreateddata scope, \
             which this refresh token was not granted: run `gphotos-dav auth` again to grant \
             it (it asks for every scope this program uses)",
        ),
        e => Answer::upstream(what, e),
    }
}

/// The parent folder and the last name of a path (None for the root).
fn split(segments: &[String]) -> Option<(&String, &[String])> {
    segments.split_last()
}

/// Whether a destination name keeps the file's name: the name its folder shows, or the
/// item's own file name (compared in NFC, as the tree compares names).
fn keeps_name(to_name: &str, shown: &str, item: &MediaItem) -> bool {
    let to = crate::catalog::naming::nfc(to_name);
    to == crate::catalog::naming::nfc(shown) || to == crate::catalog::naming::nfc(&item.filename)
}

impl Uploader {
    /// Adds or removes `item` in `album` in the next batch, and waits for its own result.
    async fn change(&self, change: Change, album: &str, item: &str) -> Result<(), GoogleError> {
        let calls = match change {
            Change::Add => &self.albums.adds,
            Change::Remove => &self.albums.removes,
        };
        let ticket = calls.ticket();
        calls
            .submit(ticket, album.to_string(), item.to_string())
            .await
            .unwrap_or_else(|| Err(GoogleError::Protocol("the server is shutting down".into())))
    }

    /// PUT of the bytes uploaded at `key` before, whose item has left `album` since: the
    /// item goes back into the album (no upload: Google would make a duplicate).
    pub(super) async fn put_back(&self, key: &str, album: &str, item_id: &str) -> Answer {
        let added = self.change(Change::Add, album, item_id).await;
        self.catalog.forget_album_members(&[album]);
        match added {
            Ok(()) => {
                tracing::info!(path = %key, item = %item_id, "identical bytes were uploaded here before; the item is back in the album");
                Answer::new(StatusCode::CREATED, "")
            }
            Err(e) => album_failure("Google could not put the item back in the album", &e),
        }
    }

    /// Records the upload of `from` (if it was uploaded here) at `to` as well, after a COPY
    /// or MOVE put its item there: the same bytes sent to `to` later are then a repeat (204),
    /// not a conflict.
    async fn carry_record(&self, from: &[String], to: &[String]) {
        let store = self.catalog.store();
        let Some(up) = store.upload_at(&local::key(from)).await else {
            return;
        };
        let to_key = local::key(to);
        if let Err(e) = store
            .record_upload(crate::catalog::store::Upload {
                path: to_key.clone(),
                ..up
            })
            .await
        {
            tracing::warn!(path = %to_key, "could not record the copy in the store: {e}");
        }
    }

    /// Where a file may be copied or moved to: the album behind `to`'s folder and the name,
    /// checked against the source's; or the answer refusing it.
    async fn album_destination(
        &self,
        to: &[String],
        shown: &str,
        item: &MediaItem,
    ) -> Result<String, Answer> {
        let Some((to_name, to_dir)) = split(to) else {
            return Err(Answer::new(StatusCode::FORBIDDEN, ONLY_ALBUMS));
        };
        let album = match self.catalog.upload_dir(to_dir).await {
            Ok(Some(UploadDir::Album(id))) => id,
            Ok(_) => return Err(Answer::new(StatusCode::FORBIDDEN, ONLY_ALBUMS)),
            Err(CatalogError::NotFound) => {
                return Err(Answer::new(
                    StatusCode::CONFLICT,
                    "the destination folder does not exist; create the album with MKCOL \
                     /album/<title> first",
                ));
            }
            Err(e) => return Err(Answer::catalog("cannot list the destination", &e)),
        };
        if !keeps_name(to_name, shown, item) {
            return Err(Answer::new(StatusCode::FORBIDDEN, CANNOT_RENAME));
        }
        Ok(album)
    }

    /// What the destination holds under that name: nothing (`Ok(false)`), the same item
    /// (`Ok(true)`), or another item (409) or a folder (409).
    async fn destination_holds(&self, to: &[String], item_id: &str) -> Result<bool, Answer> {
        match self.catalog.file_item(to).await {
            Ok((_, there)) if there.id == item_id => Ok(true),
            Ok(_) => Err(Answer::new(
                StatusCode::CONFLICT,
                "the album already holds a different item under this name, and Google Photos \
                 cannot replace items",
            )),
            Err(CatalogError::NotFound) => match self.catalog.is_dir(to).await {
                Ok(true) => Err(Answer::new(
                    StatusCode::CONFLICT,
                    "a folder of that name is in the way",
                )),
                _ => Ok(false),
            },
            Err(e) => Err(Answer::catalog("cannot list the destination", &e)),
        }
    }

    /// COPY of `from` to `to` (None: not a place in this tree). A file into an album folder
    /// joins that album (a picked file is imported); an album folder to a new name under
    /// `/album/` becomes a new album with the same members (`depth_infinity` false: Depth 0,
    /// an empty album). Depth is not read for a file (RFC 4918 9.8.3).
    pub async fn copy(
        &self,
        from: &[String],
        to: Option<&[String]>,
        overwrite: bool,
        depth_infinity: bool,
    ) -> Answer {
        let Some(to) = to else {
            return not_here();
        };
        let (shown, item) = match self.catalog.file_item(from).await {
            Ok(found) => found,
            Err(CatalogError::NotFound) => {
                return match self.catalog.is_dir(from).await {
                    Ok(true) => self.copy_album(from, to, overwrite, depth_infinity).await,
                    Ok(false) | Err(CatalogError::NotFound) => {
                        Answer::new(StatusCode::NOT_FOUND, "no such file or folder")
                    }
                    Err(e) => Answer::catalog("cannot list the source", &e),
                };
            }
            Err(e) => return Answer::catalog("cannot list the source", &e),
        };
        let album = match self.album_destination(to, &shown, &item).await {
            Ok(album) => album,
            Err(refused) => return refused,
        };
        let folder = self.folder_gate(&local::key(&to[..to.len() - 1]));
        let _in_folder = folder.read().await;
        if let Some((set, picked)) = split_picked_id(&item.id) {
            return self.import_picked(to, &album, set, picked, &shown).await;
        }
        match self.destination_holds(to, &item.id).await {
            Ok(true) if !overwrite => return already_there(),
            Ok(true) => return Answer::new(StatusCode::NO_CONTENT, ""),
            Ok(false) => {}
            Err(refused) => return refused,
        }
        let added = self.change(Change::Add, &album, &item.id).await;
        self.catalog.forget_album_members(&[&album]);
        match added {
            Ok(()) => {
                tracing::info!(item = %item.id, %album, "added to the album");
                self.carry_record(from, to).await;
                Answer::new(StatusCode::CREATED, "")
            }
            Err(e) => album_failure("Google could not add the item to the album", &e),
        }
    }

    /// COPY of a picked file into `album`: the picked item is not this app's, so it is
    /// imported (downloaded, uploaded, created in the album) once; a copy imported before is
    /// added to the album instead.
    async fn import_picked(
        &self,
        to: &[String],
        album: &str,
        set: &str,
        picked: &str,
        shown: &str,
    ) -> Answer {
        // One import per picked item at a time: two COPYs of it make one copy.
        let gate = self.gate(&format!("picked:{picked}"));
        let _held = gate.lock().await;
        let store = self.catalog.store();
        if let Some(copy) = store.imported_copy(picked).await {
            match self.destination_holds(to, &copy).await {
                Ok(true) => return Answer::new(StatusCode::NO_CONTENT, ""),
                Ok(false) => {}
                Err(refused) => return refused,
            }
            let added = self.change(Change::Add, album, &copy).await;
            self.catalog.forget_album_members(&[album]);
            return match added {
                Ok(()) => Answer::new(StatusCode::CREATED, ""),
                Err(e) => album_failure(
                    "the picked item was imported before, but Google could not add that copy \
                     to the album",
                    &e,
                ),
            };
        }
        match self.destination_holds(to, "").await {
            Ok(_) => {}
            Err(refused) => return refused,
        }
        let ticket = self.batcher.ticket();
        let google = self.catalog.google();
        let new_item = match crate::pick::upload_picked(
            google,
            &self.upload,
            store,
            set,
            picked,
            shown,
            self.catalog.url_age(),
        )
        .await
        {
            Ok(new_item) => new_item,
            Err(crate::pick::PickError::Google(e)) => {
                return Answer::upstream("could not copy the picked item into the library", &e);
            }
            Err(e) => {
                return Answer::new(
                    StatusCode::CONFLICT,
                    format!("could not copy the picked item: {e}"),
                );
            }
        };
        let created = self
            .batcher
            .create(ticket, Some(album.to_string()), new_item)
            .await;
        match created {
            Ok(created) => {
                tracing::info!(picked, item = %created.id, album, "picked item imported");
                if let Err(e) = store.record_import(picked, &created.id).await {
                    tracing::error!("could not record the import in the store: {e}");
                }
                self.catalog.forget_uploaded(Some(album));
                Answer::new(StatusCode::CREATED, "")
            }
            Err(super::batcher::CreateError::Call(e)) => {
                Answer::upstream("Google could not create the copy of the picked item", &e)
            }
            Err(e) => Answer::new(StatusCode::BAD_GATEWAY, e.to_string()),
        }
    }

    /// COPY of an album folder to `/album/<new>`: a new album, then its members added.
    async fn copy_album(
        &self,
        from: &[String],
        to: &[String],
        overwrite: bool,
        depth_infinity: bool,
    ) -> Answer {
        let ([a, _], [b, new]) = (from, to) else {
            return Answer::new(
                StatusCode::FORBIDDEN,
                "only an album folder can be copied, to a new album under /album/",
            );
        };
        if a != "album" || b != "album" {
            return Answer::new(
                StatusCode::FORBIDDEN,
                "only an album folder can be copied, to a new album under /album/",
            );
        }
        let source = match self.catalog.upload_dir(from).await {
            Ok(Some(UploadDir::Album(id))) => id,
            Ok(_) => return Answer::new(StatusCode::FORBIDDEN, ONLY_ALBUMS),
            Err(e) => return Answer::catalog("cannot list albums", &e),
        };
        match self.catalog.is_dir(to).await {
            Ok(true) if !overwrite => {
                return Answer::new(
                    StatusCode::PRECONDITION_FAILED,
                    format!("an album named {new:?} exists (Overwrite: F)"),
                );
            }
            Ok(true) => {
                return Answer::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "an album named {new:?} exists, and Google Photos' API cannot delete \
                         albums to replace it; choose a name not in use"
                    ),
                );
            }
            Ok(false) | Err(CatalogError::NotFound) => {}
            Err(e) => return Answer::catalog("cannot list albums", &e),
        }
        let members: Vec<String> = if depth_infinity {
            match self.catalog.list(from).await {
                Ok(entries) => entries
                    .into_iter()
                    .filter_map(|e| match e {
                        Entry::File(f) if split_picked_id(&f.id).is_none() => Some(f.id),
                        _ => None,
                    })
                    .collect(),
                Err(e) => return Answer::catalog("cannot list the album", &e),
            }
        } else {
            Vec::new()
        };
        let created = self.mkcol(to).await;
        if created.status != StatusCode::CREATED {
            return created;
        }
        let album = match self.catalog.upload_dir(to).await {
            Ok(Some(UploadDir::Album(id))) => id,
            _ => {
                return Answer::new(
                    StatusCode::BAD_GATEWAY,
                    format!("the album {new:?} was created but does not show in the album list"),
                );
            }
        };
        // Every member is announced before the first is handed in, so they share calls.
        let calls = &self.albums.adds;
        let tickets: Vec<_> = members.iter().map(|_| calls.ticket()).collect();
        let results = join_all(
            members
                .iter()
                .zip(tickets)
                .map(|(id, t)| calls.submit(t, album.clone(), id.clone())),
        )
        .await;
        self.catalog.forget_album_members(&[&album]);
        let failed: Vec<GoogleError> = results
            .into_iter()
            .filter_map(|r| match r {
                Some(Ok(())) => None,
                Some(Err(e)) => Some(e),
                None => Some(GoogleError::Protocol("the server is shutting down".into())),
            })
            .collect();
        tracing::info!(from = %source, to = %album, items = members.len(), failed = failed.len(), "album copied");
        match failed.first() {
            None => Answer::new(StatusCode::CREATED, ""),
            Some(e) => {
                let mut answer = album_failure(
                    &format!(
                        "the album {new:?} was created, but {} of its {} items could not be \
                         added",
                        failed.len(),
                        members.len()
                    ),
                    e,
                );
                if answer.status.is_client_error() {
                    answer.status = StatusCode::BAD_GATEWAY;
                }
                answer
            }
        }
    }

    /// MOVE of the file `from` to `to`: between two album folders, under its own name, it
    /// joins the destination album and then leaves the source one.
    pub(super) async fn move_file(
        &self,
        from: &[String],
        to: Option<&[String]>,
        overwrite: bool,
        shown: String,
        item: Arc<MediaItem>,
    ) -> Answer {
        let Some(to) = to else {
            return not_here();
        };
        let Some((_, from_dir)) = split(from) else {
            return not_here();
        };
        let source = match self.catalog.upload_dir(from_dir).await {
            Ok(Some(UploadDir::Album(id))) => id,
            Ok(_) => {
                return Answer::new(
                    StatusCode::FORBIDDEN,
                    "only a file in an album folder can be moved (out of the album, into \
                     another): the other folders are views Google fills, and its API cannot \
                     move items out of them. Copy it instead (COPY adds it to an album)",
                );
            }
            Err(e) => return Answer::catalog("cannot list the source", &e),
        };
        if from_dir == &to[..to.len().saturating_sub(1)] {
            return Answer::new(
                StatusCode::FORBIDDEN,
                if from == to {
                    "the source and the destination are the same"
                } else {
                    CANNOT_RENAME
                },
            );
        }
        let target = match self.album_destination(to, &shown, &item).await {
            Ok(album) => album,
            Err(refused) => return refused,
        };
        let (first, second) = {
            let (a, b) = (local::key(from_dir), local::key(&to[..to.len() - 1]));
            if a < b { (a, b) } else { (b, a) }
        };
        let (gate1, gate2) = (self.folder_gate(&first), self.folder_gate(&second));
        let _held = (gate1.read().await, gate2.read().await);
        let was_there = match self.destination_holds(to, &item.id).await {
            Ok(true) if !overwrite => return already_there(),
            Ok(there) => there,
            Err(refused) => return refused,
        };
        if !was_there {
            let added = self.change(Change::Add, &target, &item.id).await;
            if let Err(e) = added {
                self.catalog.forget_album_members(&[&target]);
                return album_failure(
                    "Google could not add the item to the destination album; it stays where \
                     it was",
                    &e,
                );
            }
        }
        let removed = self.change(Change::Remove, &source, &item.id).await;
        self.catalog.forget_album_members(&[&target, &source]);
        match removed {
            Ok(()) => {
                tracing::info!(item = %item.id, from = %source, to = %target, "moved between albums");
                self.carry_record(from, to).await;
                if was_there {
                    Answer::new(StatusCode::NO_CONTENT, "")
                } else {
                    Answer::new(StatusCode::CREATED, "")
                }
            }
            Err(e) => {
                let mut answer = album_failure(
                    "the item was added to the destination album, but Google could not take \
                     it out of the source album: it is in both now (delete it in the source \
                     folder to finish the move)",
                    &e,
                );
                if answer.status.is_client_error() {
                    answer.status = StatusCode::BAD_GATEWAY;
                }
                answer
            }
        }
    }

    /// DELETE of the file `segments` in an album folder: out of the album, still in the
    /// library. Anything else Google cannot delete.
    pub(super) async fn remove_from_album(&self, segments: &[String]) -> Answer {
        let Some((_, dir)) = split(segments) else {
            return Answer::new(StatusCode::FORBIDDEN, CANNOT_DELETE);
        };
        let item = match self.catalog.file_item(segments).await {
            Ok((_, item)) => item,
            Err(CatalogError::NotFound) => {
                return match self.catalog.is_dir(segments).await {
                    Ok(true) => Answer::new(StatusCode::FORBIDDEN, CANNOT_DELETE),
                    _ => Answer::new(StatusCode::NOT_FOUND, "no such file"),
                };
            }
            Err(e) => return Answer::catalog("cannot list the folder", &e),
        };
        let album = match self.catalog.upload_dir(dir).await {
            Ok(Some(UploadDir::Album(id))) => id,
            Ok(_) => return Answer::new(StatusCode::FORBIDDEN, CANNOT_DELETE),
            Err(e) => return Answer::catalog("cannot list the folder", &e),
        };
        let folder = self.folder_gate(&local::key(dir));
        let _in_folder = folder.read().await;
        let removed = self.change(Change::Remove, &album, &item.id).await;
        self.catalog.forget_album_members(&[&album]);
        match removed {
            Ok(()) => {
                tracing::info!(item = %item.id, %album, "taken out of the album");
                Answer::new(
                    StatusCode::OK,
                    "taken out of the album; the item stays in your library (/media/all and \
                     the date folders): Google Photos' API cannot delete items, delete it in \
                     the Google Photos app to remove it for good",
                )
            }
            Err(e) => album_failure("Google could not take the item out of the album", &e),
        }
    }
}

/// The Destination names no place in this tree.
fn not_here() -> Answer {
    Answer::new(
        StatusCode::FORBIDDEN,
        "the Destination is not a place on this server (another host, or outside its tree)",
    )
}

/// The destination holds this very item and the client asked not to overwrite (412).
fn already_there() -> Answer {
    Answer::new(
        StatusCode::PRECONDITION_FAILED,
        "the album already holds this item (Overwrite: F)",
    )
}
