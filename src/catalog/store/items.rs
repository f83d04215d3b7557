//! The `items` table: what Google serves for each media item, above all its size in bytes.
//!
//! The Library API never says how big an item's bytes are, yet a WebDAV client wants
//! `getcontentlength` for every file it lists. Learning a size costs a probe of the content host
//! (a HEAD on the item's download URL), so each size learned is written here and loaded at
//! start: a restarted server lists a folder of thousands of photos without probing again. A
//! size that turns out wrong (the bytes Google served were not that long) is forgotten, so the
//! next listing probes it afresh.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::Store;

/// What Google serves for one item, as remembered (a row of `items`): above all its size, which
/// only a probe of the content host can learn.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemMeta {
    pub id: String,
    pub size: u64,
    pub mime_type: String,
    pub filename: String,
    pub creation_time: Option<DateTime<Utc>>,
    pub width: Option<u64>,
    pub height: Option<u64>,
}

impl Store {
    /// Every remembered item.
    pub async fn items(&self) -> Vec<ItemMeta> {
        self.call(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, size, mime_type, filename, creation_time, width, height FROM items",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(ItemMeta {
                    id: r.get(0)?,
                    size: r.get::<_, i64>(1)? as u64,
                    mime_type: r.get(2)?,
                    filename: r.get(3)?,
                    creation_time: r
                        .get::<_, Option<String>>(4)?
                        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                        .map(|t| t.with_timezone(&Utc)),
                    width: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
                    height: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
                })
            })?;
            rows.collect()
        })
        .await
        .unwrap_or_else(|e| {
            tracing::warn!("{e}; starting without remembered sizes");
            Vec::new()
        })
    }

    /// Remembers items (sizes learned), in one transaction, without waiting.
    pub fn put_items(&self, items: Vec<ItemMeta>) {
        if items.is_empty() {
            return;
        }
        self.submit("remember sizes", move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR REPLACE INTO items
                     (id, size, mime_type, filename, creation_time, width, height)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for i in &items {
                    stmt.execute(params![
                        i.id,
                        i.size as i64,
                        i.mime_type,
                        i.filename,
                        i.creation_time.map(|t| t.to_rfc3339()),
                        i.width.map(|v| v as i64),
                        i.height.map(|v| v as i64),
                    ])?;
                }
            }
            tx.commit()
        });
    }

    /// Forgets an item whose remembered size turned out wrong.
    pub fn forget_item(&self, id: &str) {
        let id = id.to_string();
        self.submit("forget a size", move |conn| {
            conn.execute("DELETE FROM items WHERE id = ?1", [id])
                .map(drop)
        });
    }
}
