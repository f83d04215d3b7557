//! `[cache]`: how long what Google said is trusted, and where it is kept.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// `[cache]`: how long what Google said is trusted. Its own section because freshness and
/// probe load are the two knobs between Google's quota and a snappy listing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Seconds a folder listing is fresh; older listings are answered from the cache and
    /// fetched again in the background (stale-while-revalidate).
    pub listing_ttl: u64,
    /// How many size probes (HEAD on the content host) run at once while a cold folder is
    /// listed: sizes are not in the API, so a cold listing of N items costs N probes, and at
    /// Google's latency only concurrency makes that quick (docs/performance.md).
    pub probe_concurrency: usize,
    /// The metadata store (SQLite): sizes, listings and quota counts that survive a restart.
    /// Default: `<user cache dir>/gphotos-dav/metadata.sqlite`; `":memory:"` keeps it in
    /// memory (nothing survives a restart).
    pub path: Option<PathBuf>,
}

/// The one place the `[cache]` defaults live (serde fills missing keys from here).
impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            listing_ttl: 300,
            probe_concurrency: crate::catalog::CatalogOptions::default().probe_concurrency,
            path: None,
        }
    }
}

impl CacheConfig {
    /// Where the metadata store lives (`:memory:` when nowhere).
    pub fn store_path(&self) -> PathBuf {
        match &self.path {
            Some(p) => p.clone(),
            None => match dirs::cache_dir() {
                Some(dir) => dir.join("gphotos-dav").join("metadata.sqlite"),
                None => {
                    tracing::warn!(
                        "no user cache directory (is $HOME set?): the metadata store stays in \
                         memory; set [cache] path to keep it across restarts"
                    );
                    PathBuf::from(":memory:")
                }
            },
        }
    }

    /// Checks the bounds serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listing_ttl == 0 {
            return Err(ConfigError::invalid(
                "cache.listing_ttl",
                "[cache] listing_ttl must be at least 1 (seconds)",
            ));
        }
        if !(1..=256).contains(&self.probe_concurrency) {
            return Err(ConfigError::invalid(
                "cache.probe_concurrency",
                "[cache] probe_concurrency must be between 1 and 256",
            ));
        }
        Ok(())
    }
}
