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
    /// How many size probes (requests to the content host) a Pacific-time day may spend. A
    /// listing that needs more than the day has left answers 503 until the next Pacific
    /// midnight, keeping what it probed, rather than eating the quota downloads need.
    /// Unset: `[google] daily_media_quota` less a reserve of 10% for downloads (67,500 of
    /// Google's 75,000: an album of 20,000, Google's maximum, lists on its first day); see
    /// [`super::Config::probe_budget`].
    pub probe_budget: Option<u64>,
    /// The metadata store (SQLite): sizes, listings and quota counts that survive a restart.
    /// Default: `<user cache dir>/gphotos-dav/metadata.sqlite`; `":memory:"` keeps it in
    /// memory (nothing survives a restart).
    pub path: Option<PathBuf>,
    /// Where the content cache keeps the bytes read (blocks of items). Default:
    /// `<user cache dir>/gphotos-dav/content`. One server per directory, like the store.
    pub content_dir: Option<PathBuf>,
    /// The content cache's bound on disk, with a unit (`"10 GiB"`, `"500 MB"`); `"0"` turns
    /// the cache off. Unset: 10 GiB, or a tenth of the filesystem when that is less.
    pub content_max: Option<String>,
    /// Seconds a cached block may be served: an edit made in Google Photos that keeps the
    /// item's size is seen after this at the latest.
    pub content_max_age_secs: u64,
}

/// The content cache's bound when `content_max` is unset, on a filesystem big enough.
const CONTENT_MAX_DEFAULT: u64 = 10 * 1024 * 1024 * 1024;

/// The one place the `[cache]` defaults live (serde fills missing keys from here).
impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            listing_ttl: 300,
            probe_concurrency: crate::catalog::CatalogOptions::default().probe_concurrency,
            probe_budget: None,
            path: None,
            content_dir: None,
            content_max: None,
            content_max_age_secs: 30 * 24 * 3600,
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

    /// The content cache as configured, `None` when it is off (`content_max = "0"`, or no
    /// directory to put it in). The default bound is measured on the directory's filesystem.
    pub fn content_options(&self) -> Option<crate::catalog::cache::ContentOptions> {
        let dir = match &self.content_dir {
            Some(d) => d.clone(),
            None => match dirs::cache_dir() {
                Some(dir) => dir.join("gphotos-dav").join("content"),
                None => {
                    tracing::warn!(
                        "no user cache directory (is $HOME set?): the content cache is off; set \
                         [cache] content_dir to keep the bytes read"
                    );
                    return None;
                }
            },
        };
        let max = match &self.content_max {
            Some(text) => parse_size(text).unwrap_or(0),
            None => default_content_max(&dir),
        };
        (max > 0).then(|| crate::catalog::cache::ContentOptions {
            dir,
            max_bytes: max,
            max_age: std::time::Duration::from_secs(self.content_max_age_secs),
        })
    }

    /// Checks the bounds serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(text) = &self.content_max
            && let Err(reason) = parse_size(text)
        {
            return Err(ConfigError::invalid("cache.content_max", reason));
        }
        if self.content_max_age_secs == 0 {
            return Err(ConfigError::invalid(
                "cache.content_max_age_secs",
                "[cache] content_max_age_secs must be at least 1 (seconds); to turn the content \
                 cache off, set content_max = \"0\"",
            ));
        }
        if self.listing_ttl == 0 {
            return Err(ConfigError::invalid(
                "cache.listing_ttl",
                "[cache] listing_ttl must be at least 1 (seconds)",
            ));
        }
        if self.probe_budget == Some(0) {
            return Err(ConfigError::invalid(
                "cache.probe_budget",
                "[cache] probe_budget must be at least 1 (size probes per Pacific day); leave it \
                 unset for daily_media_quota less 10%",
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

/// Bytes of a size written with a unit (`"10 GiB"`, `"512MB"`, `"0"`).
fn parse_size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| {
            format!(
                "[cache] content_max {text:?} is not a size ({e}): write a number with a unit, \
                 such as \"10 GiB\" or \"500 MB\", or \"0\" to turn the content cache off"
            )
        })
}

/// 10 GiB, or a tenth of the filesystem `dir` is on when that is less (a small disk is not
/// filled by a cache nobody sized). The directory is created to be measured; when it cannot
/// be, the cache will say so itself, so the plain default stands.
fn default_content_max(dir: &std::path::Path) -> u64 {
    let _ = std::fs::create_dir_all(dir);
    match fs4::total_space(dir) {
        Ok(total) if total > 0 => CONTENT_MAX_DEFAULT.min(total / 10),
        _ => CONTENT_MAX_DEFAULT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_max_takes_units_and_zero_turns_the_cache_off() {
        assert_eq!(parse_size("10 GiB"), Ok(10 * 1024 * 1024 * 1024));
        assert_eq!(parse_size("500 MB"), Ok(500_000_000));
        assert_eq!(parse_size("0"), Ok(0));
        let err = parse_size("ten gigs").unwrap_err();
        assert!(err.contains("content_max"), "{err}");
        let off = CacheConfig {
            content_dir: Some("/nonexistent/content".into()),
            content_max: Some("0".into()),
            ..CacheConfig::default()
        };
        assert!(off.content_options().is_none());
        let on = CacheConfig {
            content_max: Some("1 MiB".into()),
            ..off
        };
        let opts = on.content_options().unwrap();
        assert_eq!(opts.max_bytes, 1024 * 1024);
        assert_eq!(opts.max_age.as_secs(), 30 * 24 * 3600);
        let bad = CacheConfig {
            content_max: Some("lots".into()),
            ..CacheConfig::default()
        };
        match bad.validate() {
            Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "cache.content_max"),
            other => panic!("{other:?}"),
        }
    }
}
