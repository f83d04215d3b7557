//! The `listings` table: the entries of each folder as last loaded from Google, with the time
//! they were fetched.
//!
//! Listing a folder can take many Library API calls (100 items a page) and counts against the
//! daily quota. Keeping the body here lets a restarted server answer PROPFIND from disk at once;
//! the fetch time tells the catalog the listing is stale, so it revalidates in the background
//! instead of making the client wait. A write that changes a folder (an upload) forgets its
//! listing, so the next load comes from Google.

use rusqlite::{OptionalExtension, params};

use super::Store;

impl Store {
    /// A folder's stored listing (its JSON body) and when it was fetched (Unix seconds).
    pub async fn listing(&self, folder: &str) -> Option<(String, u64)> {
        let folder = folder.to_string();
        self.call(move |conn| {
            conn.query_row(
                "SELECT body, fetched_at FROM listings WHERE folder = ?1",
                [folder],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)),
            )
            .optional()
        })
        .await
        .unwrap_or_else(|e| {
            tracing::warn!("{e}; loading the folder from Google");
            None
        })
    }

    /// Stores a folder's listing, without waiting.
    pub fn put_listing(&self, folder: String, body: String, fetched_at: u64) {
        self.submit("store a listing", move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO listings (folder, fetched_at, body) VALUES (?1, ?2, ?3)",
                params![folder, fetched_at as i64, body],
            )
            .map(drop)
        });
    }

    /// Forgets a folder's stored listing, without waiting (an upload changed the folder, so
    /// the next load must come from Google). Later calls see it gone: the store's thread
    /// runs them in order.
    pub fn forget_listing(&self, folder: String) {
        self.submit("forget a listing", move |conn| {
            conn.execute("DELETE FROM listings WHERE folder = ?1", [folder])
                .map(drop)
        });
    }
}
