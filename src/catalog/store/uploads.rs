//! The `uploads` table: every original this server uploaded, under the path it was written to.
//!
//! Google keeps no record of which file a media item came from, and uploading the same bytes
//! twice makes two items. This table is what makes a PUT idempotent: a client that retries
//! (or rsyncs a folder again) sends bytes whose SHA-256 and size match the record at that path,
//! and nothing is uploaded a second time. The record also gives the size of a video Google is
//! still processing (the API does not say it yet) and follows an album when it is renamed.
//! Writes here are awaited, not fire-and-forget: once a PUT answers, its record is on disk.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, time_column};

/// One uploaded original, recorded under the path it was written to (a row of `uploads`): a
/// client retrying the same PUT must not create a second item in Google Photos.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    /// The path as the tree shows it, e.g. `/album/Trip/a.jpg`.
    pub path: String,
    /// sha256 of the bytes the client sent, lowercase hex.
    pub sha256: String,
    pub size: u64,
    /// The media item Google created for it.
    pub item_id: String,
    pub uploaded_at: DateTime<Utc>,
}

impl Store {
    /// The upload recorded at `path`, if any.
    pub async fn upload_at(&self, path: &str) -> Option<Upload> {
        let path = path.to_string();
        self.call(move |conn| {
            conn.query_row(
                "SELECT path, sha256, size, item_id, uploaded_at FROM uploads WHERE path = ?1",
                [path],
                upload_row,
            )
            .optional()
        })
        .await
        .unwrap_or_else(|e| {
            tracing::warn!("{e}");
            None
        })
    }

    /// Records an upload; durable when this returns.
    pub async fn record_upload(&self, up: Upload) -> Result<(), StoreError> {
        self.call(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO uploads (path, sha256, size, item_id, uploaded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    up.path,
                    up.sha256,
                    up.size as i64,
                    up.item_id,
                    up.uploaded_at.to_rfc3339()
                ],
            )
            .map(drop)
        })
        .await
    }

    /// Moves the uploads recorded below the folder `from` (`/album/<name>`) to the folder
    /// `to`, after the album was renamed; returns how many moved. Durable when it returns.
    pub async fn move_uploads(&self, from: &str, to: &str) -> Result<usize, StoreError> {
        let (from, to) = (format!("{from}/"), format!("{to}/"));
        self.call(move |conn| {
            conn.execute(
                "UPDATE uploads SET path = ?2 || substr(path, length(?1) + 1)
                 WHERE substr(path, 1, length(?1)) = ?1",
                params![from, to],
            )
        })
        .await
    }

    /// Every recorded upload, by path.
    pub async fn uploads(&self) -> Vec<Upload> {
        self.call(|conn| {
            let mut stmt = conn.prepare(
                "SELECT path, sha256, size, item_id, uploaded_at FROM uploads ORDER BY path",
            )?;
            let rows = stmt.query_map([], upload_row)?;
            rows.collect()
        })
        .await
        .unwrap_or_default()
    }
}

fn upload_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Upload> {
    Ok(Upload {
        path: r.get(0)?,
        sha256: r.get(1)?,
        size: r.get::<_, i64>(2)? as u64,
        item_id: r.get(3)?,
        uploaded_at: time_column(r, 4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn uploads_move_with_their_album() {
        let store = Store::in_memory();
        let up = |path: &str| Upload {
            path: path.into(),
            sha256: "ab".into(),
            size: 3,
            item_id: path.into(),
            uploaded_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        };
        for path in [
            "/album/Trip/a.jpg",
            "/album/Trip/b.jpg",
            "/album/Trip 2/c.jpg",
            "/album/Tri%/d.jpg",
            "/upload/e.jpg",
        ] {
            store.record_upload(up(path)).await.unwrap();
        }
        assert_eq!(
            store
                .move_uploads("/album/Trip", "/album/Été")
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            store.move_uploads("/album/Tri%", "/album/X").await.unwrap(),
            1
        );
        let paths: Vec<String> = store.uploads().await.into_iter().map(|u| u.path).collect();
        assert_eq!(
            paths,
            [
                "/album/Trip 2/c.jpg",
                "/album/X/d.jpg",
                "/album/Été/a.jpg",
                "/album/Été/b.jpg",
                "/upload/e.jpg"
            ]
        );
        assert_eq!(
            store.upload_at("/album/Été/a.jpg").await.unwrap().item_id,
            "/album/Trip/a.jpg"
        );
    }
}
