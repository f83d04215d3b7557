//! Files that exist only on this server, in memory: placeholders and Finder's sidecars.
//!
//! - **Placeholders.** Finder and Explorer create a file in several steps: an empty PUT (or a
//!   LOCK of a missing name), then the real content. Google cannot hold an empty item and
//!   cannot replace one later, so the empty file is kept here, shown in listings as a 0-byte
//!   file, and replaced by the uploaded item when the content arrives.
//! - **Sidecars.** Finder writes `._name` (AppleDouble: extended attributes) and `.DS_Store`
//!   next to what it copies and fails the whole copy if those writes fail. They are not
//!   photos, so they are kept here (up to [`SIDECAR_MAX`] bytes each; larger ones are
//!   accepted and dropped) and never uploaded.
//!
//! Both are lost when the server restarts; nothing of value is: a placeholder is rewritten
//! by the client's next step, and sidecars only hold Finder's view settings and tags.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

/// Largest sidecar kept.
pub const SIDECAR_MAX: usize = 1024 * 1024;
/// Most local files kept at once (a runaway client cannot exhaust memory).
pub const MAX_FILES: usize = 10_000;

/// One local file.
#[derive(Debug, Clone)]
pub struct LocalFile {
    pub bytes: Bytes,
    pub modified: SystemTime,
}

/// The local files, keyed by tree path (`/album/Trip/a.jpg`, names in NFC).
#[derive(Clone, Default)]
pub struct LocalFiles {
    files: Arc<Mutex<BTreeMap<String, LocalFile>>>,
}

/// Whether a name is a Finder sidecar (AppleDouble or folder settings).
pub fn is_sidecar(name: &str) -> bool {
    name.starts_with("._") || name == ".DS_Store"
}

/// The key of a path given as decoded segments: `/` + the NFC segments joined by `/`.
pub fn key(segments: &[String]) -> String {
    let mut out = String::new();
    for s in segments {
        out.push('/');
        out.push_str(&crate::catalog::naming::nfc(s));
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

impl LocalFiles {
    pub fn get(&self, key: &str) -> Option<LocalFile> {
        self.files.lock().get(key).cloned()
    }

    /// Stores `bytes` at `key`; returns whether a file was there before. False (and nothing
    /// stored) when the store is full.
    pub fn put(&self, key: &str, bytes: Bytes) -> Option<bool> {
        let mut files = self.files.lock();
        if files.len() >= MAX_FILES && !files.contains_key(key) {
            return None;
        }
        let existed = files
            .insert(
                key.to_string(),
                LocalFile {
                    bytes,
                    modified: SystemTime::now(),
                },
            )
            .is_some();
        Some(existed)
    }

    pub fn remove(&self, key: &str) -> bool {
        self.files.lock().remove(key).is_some()
    }

    /// Moves every local file below the folder `from` (a key) to the folder `to`: an album
    /// renamed keeps Finder's sidecars and the placeholders written into it.
    pub fn move_folder(&self, from: &str, to: &str) {
        let (from, to) = (format!("{from}/"), format!("{to}/"));
        let mut files = self.files.lock();
        let moving: Vec<String> = files
            .range(from.clone()..)
            .take_while(|(k, _)| k.starts_with(&from))
            .map(|(k, _)| k.clone())
            .collect();
        for key in moving {
            if let Some(file) = files.remove(&key) {
                files.insert(format!("{to}{}", &key[from.len()..]), file);
            }
        }
    }

    /// The local files directly inside the folder `dir_key`, as (name, file).
    pub fn children(&self, dir_key: &str) -> Vec<(String, LocalFile)> {
        let prefix = if dir_key.ends_with('/') {
            dir_key.to_string()
        } else {
            format!("{dir_key}/")
        };
        self.files
            .lock()
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| !k[prefix.len()..].contains('/'))
            .map(|(k, f)| (k[prefix.len()..].to_string(), f.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_are_direct_only() {
        let local = LocalFiles::default();
        local.put("/album/Trip/a.jpg", Bytes::new());
        local.put("/album/Trip/._a.jpg", Bytes::from_static(b"x"));
        local.put("/album/Trip2/b.jpg", Bytes::new());
        local.put("/album/Trip/sub/c.jpg", Bytes::new());
        let names: Vec<String> = local
            .children("/album/Trip")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, vec!["._a.jpg".to_string(), "a.jpg".to_string()]);
        local.move_folder("/album/Trip", "/album/Road trip");
        assert!(local.children("/album/Trip").is_empty());
        assert_eq!(local.children("/album/Road trip").len(), 2);
        assert!(local.get("/album/Road trip/sub/c.jpg").is_some());
        assert_eq!(
            local.children("/album/Trip2").len(),
            1,
            "a longer name is not below"
        );
        assert_eq!(
            key(&["album".into(), "Cafe\u{301}".into()]),
            "/album/Caf\u{e9}"
        );
    }
}
