//! `[upload]`: how PUT bodies reach Google (batching, resumable chunks, the spool).

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// `[upload]`: how uploads (PUT with `read_only = false`) are sent to Google. Its own section
/// because each key trades Google's per-call quota against latency or disk, and a user tunes
/// them together.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadConfig {
    /// Milliseconds the server waits after one upload finished for others to share its
    /// `batchCreate` call (Google's quota counts calls).
    pub batch_window_ms: u64,
    /// Most items created by one batchCreate (1 to 50, Google's limit).
    pub batch_max_items: usize,
    /// Create a batch as soon as no other upload is on its way, instead of waiting out the
    /// window (a client copying one file at a time then never waits).
    pub batch_close_early: bool,
    /// Files of at least this many bytes use Google's resumable upload protocol.
    pub resumable_threshold: u64,
    /// Bytes per resumable chunk (rounded down to a multiple of the granularity Google
    /// announces, 256 KiB).
    pub chunk_size: u64,
    /// Where PUT bodies are spooled while they are checked and sent (default: the system's
    /// temporary directory). Needs room for the largest upload in flight.
    pub spool_dir: Option<PathBuf>,
}

/// The one place the `[upload]` defaults live (serde fills missing keys from here).
impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            batch_window_ms: 2000,
            batch_max_items: 50,
            batch_close_early: true,
            resumable_threshold: 32 * 1024 * 1024,
            chunk_size: 16 * 1024 * 1024,
            spool_dir: None,
        }
    }
}

impl UploadConfig {
    /// The options the write path runs with.
    pub fn options(&self) -> crate::upload::UploadOptions {
        crate::upload::UploadOptions {
            batch_window: std::time::Duration::from_millis(self.batch_window_ms),
            batch_max_items: self.batch_max_items,
            batch_close_early: self.batch_close_early,
            spool_dir: self.spool_dir.clone(),
            tuning: crate::google::UploadTuning {
                resumable_threshold: self.resumable_threshold,
                chunk_size: self.chunk_size,
            },
        }
    }

    /// Checks what serde cannot: Google's batch limit, its chunk granularity, and that the
    /// spool directory exists.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=50).contains(&self.batch_max_items) {
            return Err(ConfigError::invalid(
                "upload.batch_max_items",
                "[upload] batch_max_items must be between 1 and 50 (Google's limit)",
            ));
        }
        if let Some(dir) = &self.spool_dir
            && !dir.is_dir()
        {
            return Err(ConfigError::invalid(
                "upload.spool_dir",
                format!("[upload] spool_dir {} is not a directory", dir.display()),
            ));
        }
        if self.chunk_size < crate::google::upload::CHUNK_GRANULARITY {
            return Err(ConfigError::invalid(
                "upload.chunk_size",
                "[upload] chunk_size must be at least 262144 (256 KiB, Google's granularity)",
            ));
        }
        Ok(())
    }
}
