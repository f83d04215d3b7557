//! The `picked_sets` and `imports` tables: what the user picked with the Picker API, and which
//! picked items were copied into the library.
//!
//! A Picker session is the only way this server sees items it did not upload itself, and Google
//! lets the picked items be read only until the session expires. `gphotos-dav pick` stores each
//! set here (its session, its expiry and the picked items as JSON) so the server, another
//! process, can serve it under `/picked/<set>` and drop it once it expires. `imports` maps a
//! picked item to the library item it was imported as, so an interrupted
//! `--import-to-album` run does not upload the same item twice when it is run again. Writes are
//! awaited: the command reports a set as stored only once it is on disk.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, time_column};

/// A set of items the user picked with the Picker API (a row of `picked_sets`): stored because
/// `pick` and the server are separate processes, and the server shows the set as a folder.
#[derive(Debug, Clone, PartialEq)]
pub struct PickedSet {
    pub name: String,
    pub session_id: String,
    /// After this Google no longer serves the items.
    pub expire_time: DateTime<Utc>,
    /// The picked items as a JSON array (their shape belongs to the picker module).
    pub items_json: String,
    pub picked_at: DateTime<Utc>,
}

impl Store {
    /// Stores (or replaces) a picked set; durable when this returns.
    pub async fn put_picked_set(&self, set: PickedSet) -> Result<(), StoreError> {
        self.call(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO picked_sets
                 (name, session_id, expire_time, items_json, picked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    set.name,
                    set.session_id,
                    set.expire_time.to_rfc3339(),
                    set.items_json,
                    set.picked_at.to_rfc3339()
                ],
            )
            .map(drop)
        })
        .await
    }

    /// Every stored picked set (expired ones included), by name.
    pub async fn picked_sets(&self) -> Vec<PickedSet> {
        self.call(|conn| {
            let mut stmt = conn.prepare(
                "SELECT name, session_id, expire_time, items_json, picked_at
                 FROM picked_sets ORDER BY name",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(PickedSet {
                    name: r.get(0)?,
                    session_id: r.get(1)?,
                    expire_time: time_column(r, 2)?,
                    items_json: r.get(3)?,
                    picked_at: time_column(r, 4)?,
                })
            })?;
            rows.collect()
        })
        .await
        .unwrap_or_default()
    }

    /// Removes a picked set; durable when this returns.
    pub async fn delete_picked_set(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_string();
        self.call(move |conn| {
            conn.execute("DELETE FROM picked_sets WHERE name = ?1", [name])
                .map(drop)
        })
        .await
    }

    /// The Library item a picked item was imported as, if it was.
    pub async fn imported_copy(&self, picked_id: &str) -> Option<String> {
        let picked_id = picked_id.to_string();
        self.call(move |conn| {
            conn.query_row(
                "SELECT item_id FROM imports WHERE picked_id = ?1",
                [picked_id],
                |r| r.get(0),
            )
            .optional()
        })
        .await
        .ok()
        .flatten()
    }

    /// Records that a picked item was imported as `item_id`; durable when this returns.
    pub async fn record_import(&self, picked_id: &str, item_id: &str) -> Result<(), StoreError> {
        let (picked_id, item_id) = (picked_id.to_string(), item_id.to_string());
        self.call(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO imports (picked_id, item_id) VALUES (?1, ?2)",
                params![picked_id, item_id],
            )
            .map(drop)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn picked_sets_and_imports() {
        let store = Store::in_memory();
        let set = PickedSet {
            name: "trip".into(),
            session_id: "s1".into(),
            expire_time: "2026-12-01T00:00:00Z".parse().unwrap(),
            items_json: "[]".into(),
            picked_at: "2026-11-25T00:00:00Z".parse().unwrap(),
        };
        store.put_picked_set(set.clone()).await.unwrap();
        assert_eq!(store.picked_sets().await, vec![set]);
        store.delete_picked_set("trip").await.unwrap();
        assert!(store.picked_sets().await.is_empty());
        assert_eq!(store.imported_copy("p1").await, None);
        store.record_import("p1", "item9").await.unwrap();
        assert_eq!(store.imported_copy("p1").await.as_deref(), Some("item9"));
    }
}
