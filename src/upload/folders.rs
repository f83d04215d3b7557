//! The writes on folders: MKCOL of an album, DELETE (which Google cannot do for its items
//! and albums; a file in an album folder leaves the album, see `organise`), and MOVE, where
//! the one move of a folder Google can do is renaming an album this app created.

use http::StatusCode;

use super::answer::{Answer, CANNOT_MOVE};
use super::{Uploader, local};
use crate::catalog::{CatalogError, Entry, FolderKey, UploadDir};
use crate::google::GoogleError;

impl Uploader {
    /// MKCOL of `segments`: `/album/<title>` creates an album.
    pub async fn mkcol(&self, segments: &[String]) -> Answer {
        // One at a time per path: two clients creating the same folder make one album.
        let gate = self.gate(&local::key(segments));
        let _held = gate.lock().await;
        match self.catalog.is_dir(segments).await {
            Ok(true) => {
                return Answer::new(StatusCode::METHOD_NOT_ALLOWED, "the folder already exists");
            }
            Ok(false) | Err(CatalogError::NotFound) => {}
            Err(e) => return Answer::catalog("cannot list albums", &e),
        }
        let [albums, title] = segments else {
            return Answer::new(
                StatusCode::FORBIDDEN,
                "new folders can only be albums: MKCOL /album/<title>",
            );
        };
        if albums != "album" || self.catalog.upload_dir(&[]).await.ok().flatten().is_some() {
            return Answer::new(
                StatusCode::FORBIDDEN,
                "new folders can only be albums: MKCOL /album/<title>",
            );
        }
        let title = match album_title(title) {
            Ok(title) => title,
            Err(refused) => return refused,
        };
        match self.catalog.google().library.create_album(&title).await {
            Ok(album) => {
                tracing::info!(album = %album.id, %title, "album created");
                self.catalog.forget_albums();
                Answer::new(StatusCode::CREATED, "")
            }
            Err(e) => Answer::upstream("Google could not create the album", &e),
        }
    }

    /// DELETE of `segments`: local files (placeholders, sidecars) go; a file in an album
    /// folder leaves that album (see `organise`); Google's items themselves stay.
    pub async fn delete(&self, segments: &[String]) -> Answer {
        if self.local.remove(&local::key(segments)) {
            return Answer::new(StatusCode::NO_CONTENT, "");
        }
        self.remove_from_album(segments).await
    }

    /// MOVEs of folders other than an album renamed in place.
    pub fn refuse_move(&self) -> Answer {
        Answer::new(StatusCode::FORBIDDEN, CANNOT_MOVE)
    }

    /// MOVE of `from` to `to` (decoded segments of the Destination header, None when it is
    /// not on this server): a file between album folders (see `organise`), or an album
    /// folder renamed ([`Uploader::move_folder`]).
    pub async fn move_to(&self, from: &[String], to: Option<&[String]>, overwrite: bool) -> Answer {
        match self.catalog.file_item(from).await {
            Ok((shown, item)) => self.move_file(from, to, overwrite, shown, item).await,
            Err(CatalogError::NotFound) => self.move_folder(from, to, overwrite).await,
            Err(e) => Answer::catalog("cannot list the source", &e),
        }
    }

    /// MOVE of `from` to `to` (decoded segments of the Destination header, None when it is
    /// not on this server). The one move Google can do is renaming an album this app created
    /// (albums.patch): `/album/<old>` to `/album/<new>`. That is what Finder's and Explorer's
    /// *New Folder* does right after its MKCOL of "untitled folder" / "New folder".
    pub async fn move_folder(
        &self,
        from: &[String],
        to: Option<&[String]>,
        overwrite: bool,
    ) -> Answer {
        let (Some(to), [albums, old]) = (to, from) else {
            return self.refuse_move();
        };
        let [to_albums, new] = to else {
            return self.refuse_move();
        };
        if albums != "album" || to_albums != "album" {
            return self.refuse_move();
        }
        if self.catalog.upload_dir(&[]).await.ok().flatten().is_some() {
            // Serving one album as the root: there is no album folder to rename.
            return self.refuse_move();
        }
        let id = match self.catalog.upload_dir(from).await {
            Ok(Some(UploadDir::Album(id))) => id,
            Ok(_) => return self.refuse_move(),
            Err(CatalogError::NotFound) => {
                return Answer::new(StatusCode::NOT_FOUND, "no such album");
            }
            Err(e) => return Answer::catalog("cannot list albums", &e),
        };
        let (from_key, to_key) = (local::key(from), local::key(to));
        if from_key == to_key {
            return Answer::new(
                StatusCode::FORBIDDEN,
                "the source and the destination are the same",
            );
        }
        // One at a time per name, in a fixed order: a MKCOL or another rename of either name
        // waits for this one.
        let (first, second) = if from_key < to_key {
            (&from_key, &to_key)
        } else {
            (&to_key, &from_key)
        };
        let (gate1, gate2) = (self.gate(first), self.gate(second));
        let _held = (gate1.lock().await, gate2.lock().await);
        // Uploads into the album finish first (and record themselves under the old name,
        // which moves below); later ones find the old name gone.
        let folder = self.folder_gate(&from_key);
        let _alone = folder.write().await;
        match self.catalog.is_dir(to).await {
            Ok(true) if overwrite => {
                return Answer::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "an album named {new:?} exists, and Google Photos' API cannot delete \
                         albums to replace it; choose a name not in use"
                    ),
                );
            }
            Ok(true) => {
                return Answer::new(
                    StatusCode::PRECONDITION_FAILED,
                    format!("an album named {new:?} exists (Overwrite: F)"),
                );
            }
            Ok(false) | Err(CatalogError::NotFound) => {}
            Err(e) => return Answer::catalog("cannot list albums", &e),
        }
        let title = match album_title(new) {
            Ok(title) => title,
            Err(refused) => return refused,
        };
        match self
            .catalog
            .google()
            .library
            .rename_album(&id, &title)
            .await
        {
            Ok(_) => {}
            Err(GoogleError::InsufficientScopes) => {
                return Answer::new(
                    StatusCode::FORBIDDEN,
                    "renaming an album needs the photoslibrary.edit.appcreateddata scope, which \
                     this refresh token was not granted: run `gphotos-dav auth` again to grant \
                     it (it asks for every scope this program uses)",
                );
            }
            Err(e) => return Answer::upstream("Google could not rename the album", &e),
        }
        tracing::info!(album = %id, from = %old, %title, "album renamed");
        self.catalog.forget_albums();
        // What the album's folder is called now (the naming rules may differ from the title),
        // so the uploads recorded in it keep answering 204 to the same bytes under it.
        let renamed = match self.catalog.list(std::slice::from_ref(albums)).await {
            Ok(entries) => entries.into_iter().find_map(|e| match e {
                Entry::Dir {
                    name,
                    key: FolderKey::Album(a),
                    ..
                } if a == id => Some(name),
                _ => None,
            }),
            Err(e) => {
                tracing::warn!("could not list the albums after a rename: {e}");
                None
            }
        };
        let new_key = format!("/album/{}", renamed.as_deref().unwrap_or(&title));
        self.local.move_folder(&from_key, &new_key);
        if let Err(e) = self.catalog.store().move_uploads(&from_key, &new_key).await {
            tracing::warn!(
                "the album was renamed, but the uploads recorded in it could not be moved \
                 along ({e}): copying the same files into {new_key:?} again will get 409 \
                 instead of 204"
            );
        }
        Answer::new(StatusCode::CREATED, "")
    }
}

/// The album title a folder name asks for (NFC), or why it cannot be one.
fn album_title(name: &str) -> Result<String, Answer> {
    if local::is_sidecar(name) || name.chars().count() > 500 {
        return Err(Answer::new(
            StatusCode::FORBIDDEN,
            "not a usable album title (Google allows up to 500 characters)",
        ));
    }
    Ok(crate::catalog::naming::nfc(name))
}
