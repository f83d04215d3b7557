//! TEMPORARY stand-in for the lead's persistent store (SQLite), with the same API for the
//! parts uploads use. Replaced by main's `store.rs` at the next merge.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
#[error("store error: {0}")]
pub struct StoreError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub path: String,
    pub sha256: String,
    pub size: u64,
    pub item_id: String,
    pub uploaded_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone, Default)]
pub struct Store {
    uploads: Arc<Mutex<HashMap<String, Upload>>>,
}

impl Store {
    pub fn open(_path: &std::path::Path) -> Store {
        Store::default()
    }

    pub fn in_memory() -> Store {
        Store::default()
    }

    pub async fn upload_at(&self, path: &str) -> Option<Upload> {
        self.uploads.lock().unwrap().get(path).cloned()
    }

    pub async fn record_upload(&self, up: Upload) -> Result<(), StoreError> {
        self.uploads.lock().unwrap().insert(up.path.clone(), up);
        Ok(())
    }

    pub async fn uploads(&self) -> Vec<Upload> {
        self.uploads.lock().unwrap().values().cloned().collect()
    }
}
