//! TEMPORARY stand-in for the lead's SQLite store (same API, in memory only); replaced by
//! main's `store.rs` at the next merge.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, thiserror::Error)]
#[error("metadata store: {0}")]
pub struct StoreError(String);

#[derive(Debug, Clone, PartialEq)]
pub struct PickedSet {
    pub name: String,
    pub session_id: String,
    pub expire_time: DateTime<Utc>,
    pub items_json: String,
    pub picked_at: DateTime<Utc>,
}

#[derive(Clone, Default)]
pub struct Store {
    sets: Arc<Mutex<BTreeMap<String, PickedSet>>>,
    imports: Arc<Mutex<BTreeMap<String, String>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    pub fn open(_path: &std::path::Path) -> Store {
        Store::default()
    }
    pub fn in_memory() -> Store {
        Store::default()
    }
    pub async fn put_picked_set(&self, set: PickedSet) -> Result<(), StoreError> {
        self.sets.lock().unwrap().insert(set.name.clone(), set);
        Ok(())
    }
    pub async fn picked_sets(&self) -> Vec<PickedSet> {
        self.sets.lock().unwrap().values().cloned().collect()
    }
    pub async fn delete_picked_set(&self, name: &str) -> Result<(), StoreError> {
        self.sets.lock().unwrap().remove(name);
        Ok(())
    }
    pub async fn imported_copy(&self, picked_id: &str) -> Option<String> {
        self.imports.lock().unwrap().get(picked_id).cloned()
    }
    pub async fn record_import(&self, picked_id: &str, item_id: &str) -> Result<(), StoreError> {
        self.imports
            .lock()
            .unwrap()
            .insert(picked_id.into(), item_id.into());
        Ok(())
    }
}
