//! The configuration file (`webdav.toml`), parsed strictly: an unknown key or a bad value stops
//! the start with the key's name and what is allowed (serde's `deny_unknown_fields` and typed
//! fields give exactly those messages).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::signed::SignKey;
use crate::google::{Credentials, Endpoints, token_file};

pub const DEFAULT_API_BASE: &str = "https://photoslibrary.googleapis.com";
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
pub const DEFAULT_PICKER_BASE: &str = "https://photospicker.googleapis.com";
pub const DEFAULT_AUTH_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

pub const ENV_CLIENT_ID: &str = "GPHOTOS_DAV_CLIENT_ID";
pub const ENV_CLIENT_SECRET: &str = "GPHOTOS_DAV_CLIENT_SECRET";
pub const ENV_REFRESH_TOKEN: &str = "GPHOTOS_DAV_REFRESH_TOKEN";

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub google: GoogleConfig,
    #[serde(default)]
    pub webdav: WebdavConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub upload: UploadConfig,
}

/// `[upload]`: how uploads (PUT with `read_only = false`) are sent to Google.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadConfig {
    /// Milliseconds the server waits after one upload finished for others to share its
    /// `batchCreate` call (Google's quota counts calls).
    #[serde(default = "default_batch_window_ms")]
    pub batch_window_ms: u64,
    /// Most items created by one batchCreate (1 to 50, Google's limit).
    #[serde(default = "default_batch_max_items")]
    pub batch_max_items: usize,
    /// Create a batch as soon as no other upload is on its way, instead of waiting out the
    /// window (a client copying one file at a time then never waits).
    #[serde(default = "default_true")]
    pub batch_close_early: bool,
    /// Files of at least this many bytes use Google's resumable upload protocol.
    #[serde(default = "default_resumable_threshold")]
    pub resumable_threshold: u64,
    /// Bytes per resumable chunk (rounded down to a multiple of the granularity Google
    /// announces, 256 KiB).
    #[serde(default = "default_chunk_size")]
    pub chunk_size: u64,
    /// Where PUT bodies are spooled while they are checked and sent (default: the system's
    /// temporary directory). Needs room for the largest upload in flight.
    pub spool_dir: Option<PathBuf>,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            batch_window_ms: default_batch_window_ms(),
            batch_max_items: default_batch_max_items(),
            batch_close_early: true,
            resumable_threshold: default_resumable_threshold(),
            chunk_size: default_chunk_size(),
            spool_dir: None,
        }
    }
}

fn default_batch_window_ms() -> u64 {
    2000
}

fn default_batch_max_items() -> usize {
    50
}

fn default_resumable_threshold() -> u64 {
    32 * 1024 * 1024
}

fn default_chunk_size() -> u64 {
    16 * 1024 * 1024
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
}

/// `[cache]`: how long what Google said is trusted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Seconds a folder listing is fresh; older listings are answered from the cache and
    /// fetched again in the background (stale-while-revalidate).
    #[serde(default = "default_listing_ttl")]
    pub listing_ttl: u64,
    /// How many size probes (HEAD on the content host) run at once while a cold folder is
    /// listed: sizes are not in the API, so a cold listing of N items costs N probes, and at
    /// Google's latency only concurrency makes that quick (docs/performance.md).
    #[serde(default = "default_probe_concurrency")]
    pub probe_concurrency: usize,
    /// The metadata store (SQLite): sizes, listings and quota counts that survive a restart.
    /// Default: `<user cache dir>/gphotos-dav/metadata.sqlite`; `":memory:"` keeps it in
    /// memory (nothing survives a restart).
    pub path: Option<PathBuf>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            listing_ttl: default_listing_ttl(),
            probe_concurrency: default_probe_concurrency(),
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
}

fn default_listing_ttl() -> u64 {
    300
}

fn default_probe_concurrency() -> usize {
    crate::catalog::CatalogOptions::default().probe_concurrency
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Refuse every write method.
    #[serde(default = "default_true")]
    pub read_only: bool,
    /// WebDAV users (HTTP Basic). None: anonymous access, allowed on loopback only.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// Serve without users on a non-loopback address (also `serve --allow-anonymous`).
    #[serde(default)]
    pub allow_anonymous: bool,
    /// PEM certificate chain and private key: serve https instead of http.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Serve `/metrics` (Prometheus) and `/healthz` on this address; off when absent.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            read_only: true,
            users: Vec::new(),
            allow_anonymous: false,
            tls_cert: None,
            tls_key: None,
            metrics_listen: None,
        }
    }
}

/// One `[[server.users]]` entry.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// argon2id PHC string, as printed by `gphotos-dav hash-password`.
    pub password_hash: String,
    /// This user may only read, even when the server allows writes.
    #[serde(default)]
    pub read_only: bool,
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleConfig {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub refresh_token: Option<String>,
    #[serde(default = "default_api_base")]
    pub api_base: String,
    #[serde(default = "default_token_url")]
    pub token_url: String,
    #[serde(default = "default_picker_base")]
    pub picker_base: String,
    /// Google's authorization endpoint, used by `gphotos-dav auth`.
    #[serde(default = "default_auth_url")]
    pub auth_url: String,
    /// Where `gphotos-dav auth` keeps the refresh token (default: the user's config directory).
    /// Used when `refresh_token` is not given in the file or the environment.
    pub token_file: Option<PathBuf>,
    /// IANA time zone whose calendar dates bucket the date views.
    #[serde(default = "default_timezone", deserialize_with = "de_timezone")]
    pub timezone: chrono_tz::Tz,
    /// `root` for the whole tree, or an album id to show only that album at `/`.
    #[serde(default = "default_root_folder_id")]
    pub root_folder_id: String,
    /// The project's daily Library API quota (Google's default: 10,000 requests); a warning
    /// is logged once a day when 80% of it is used, and a 429 without Google's structured
    /// details at 90% or more is taken for this quota (see `google::quota`).
    #[serde(default = "default_daily_quota")]
    pub daily_quota: u64,
    /// The project's daily quota of download-URL (content) requests (default 75,000). The
    /// content host's 429 says nothing of its window: at 90% of this or more it closes
    /// downloads and probes until Pacific midnight, below it only for a pause.
    #[serde(default = "default_daily_media_quota")]
    pub daily_media_quota: u64,
    /// Seconds a download URL (baseUrl) is used before it is replaced (600 to 3600, default
    /// 1500): Google documents 60 minutes, but has refused URLs after 30 to 40. Redirects
    /// hand out URLs 5 minutes younger; a URL Google refuses earlier shortens it while the
    /// server runs (see `catalog::urls`).
    #[serde(default = "default_url_max_age_secs")]
    pub url_max_age_secs: u64,
}

fn default_url_max_age_secs() -> u64 {
    crate::catalog::urls::DEFAULT_URL_MAX_AGE.as_secs()
}

impl GoogleConfig {
    /// `url_max_age_secs` as a duration.
    pub fn url_max_age(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.url_max_age_secs)
    }
}

fn default_daily_quota() -> u64 {
    10_000
}

fn default_daily_media_quota() -> u64 {
    75_000
}

impl Default for GoogleConfig {
    fn default() -> Self {
        GoogleConfig {
            client_id: None,
            client_secret: None,
            refresh_token: None,
            api_base: default_api_base(),
            token_url: default_token_url(),
            picker_base: default_picker_base(),
            auth_url: default_auth_url(),
            token_file: None,
            timezone: default_timezone(),
            root_folder_id: default_root_folder_id(),
            daily_quota: default_daily_quota(),
            daily_media_quota: default_daily_media_quota(),
            url_max_age_secs: default_url_max_age_secs(),
        }
    }
}

fn default_auth_url() -> String {
    DEFAULT_AUTH_URL.into()
}

fn default_timezone() -> chrono_tz::Tz {
    chrono_tz::UTC
}

fn default_root_folder_id() -> String {
    "root".into()
}

fn de_timezone<'de, D: serde::Deserializer<'de>>(d: D) -> Result<chrono_tz::Tz, D::Error> {
    let name = String::deserialize(d)?;
    name.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "unknown time zone {name:?}: use an IANA name such as \"UTC\", \"Europe/Paris\" \
             or \"America/New_York\""
        ))
    })
}

/// Never prints the secrets.
impl std::fmt::Debug for GoogleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("GoogleConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &redact(&self.client_secret))
            .field("refresh_token", &redact(&self.refresh_token))
            .field("api_base", &self.api_base)
            .field("token_url", &self.token_url)
            .field("picker_base", &self.picker_base)
            .field("auth_url", &self.auth_url)
            .field("token_file", &self.token_file)
            .field("timezone", &self.timezone)
            .field("root_folder_id", &self.root_folder_id)
            .field("daily_quota", &self.daily_quota)
            .field("daily_media_quota", &self.daily_media_quota)
            .field("url_max_age_secs", &self.url_max_age_secs)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebdavConfig {
    #[serde(default)]
    pub policy: Policy,
    /// Serve the tree under this path (behind a reverse proxy), e.g. `/photos`.
    #[serde(default = "default_prefix", deserialize_with = "de_prefix")]
    pub prefix: String,
    /// `use_proxy_url`: the public base URL of the byte node serving signed `/d/` links.
    pub down_proxy_url: Option<String>,
    /// The secret that signs `/d/` links (shared by a front and its byte nodes).
    pub sign_key: Option<SignKey>,
    /// A file holding the secret instead, read at start.
    pub sign_key_file: Option<PathBuf>,
    /// How long a signed link stays valid (default 3600).
    pub link_ttl_secs: Option<u64>,
}

impl Default for WebdavConfig {
    fn default() -> Self {
        WebdavConfig {
            policy: Policy::default(),
            prefix: default_prefix(),
            down_proxy_url: None,
            sign_key: None,
            sign_key_file: None,
            link_ttl_secs: None,
        }
    }
}

fn default_prefix() -> String {
    String::new()
}

/// Normalises a prefix to `""` (for `/`) or `/a/b` (leading slash, no trailing slash).
fn de_prefix<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let raw = String::deserialize(d)?;
    let trimmed = raw.trim_matches('/');
    if trimmed
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
        && !trimmed.is_empty()
        || raw.contains(['?', '#', '%', '\\'])
        || !raw.starts_with('/')
    {
        return Err(serde::de::Error::custom(format!(
            "invalid prefix {raw:?}: use a path such as \"/\" or \"/photos\""
        )));
    }
    Ok(if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    })
}

/// How a GET of a file is answered (see `server::policy` and docs/policies.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum Policy {
    /// Bytes flow through this server, Range honoured.
    #[default]
    #[serde(rename = "native_proxy")]
    NativeProxy,
    /// 302 to a fresh Google download URL.
    #[serde(rename = "302_redirect")]
    Redirect302,
    /// 302 to a signed link on `down_proxy_url`.
    #[serde(rename = "use_proxy_url")]
    UseProxyUrl,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("valid default")
}
fn default_true() -> bool {
    true
}
fn default_api_base() -> String {
    DEFAULT_API_BASE.into()
}
fn default_token_url() -> String {
    DEFAULT_TOKEN_URL.into()
}
fn default_picker_base() -> String {
    DEFAULT_PICKER_BASE.into()
}

impl Config {
    /// Reads a config file and applies the credential environment variables. Call
    /// [`Config::validate`] once command-line overrides are applied.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        })?;
        config.apply_env(|name| std::env::var(name).ok());
        Ok(config)
    }

    /// Parses TOML text; the error names the offending key and what is allowed.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Credentials from the environment fill in (and override) those of the file.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        let g = &mut self.google;
        for (name, slot) in [
            (ENV_CLIENT_ID, &mut g.client_id),
            (ENV_CLIENT_SECRET, &mut g.client_secret),
            (ENV_REFRESH_TOKEN, &mut g.refresh_token),
        ] {
            if let Some(v) = get(name).filter(|v| !v.is_empty()) {
                *slot = Some(v);
            }
        }
    }

    /// Checks what serde cannot: credentials present, URLs well-formed, users' hashes valid,
    /// TLS files given in pairs, and no anonymous access from the network unless asked for.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_server()?;
        self.validate_google()?;
        super::policy::check(&self.webdav)
    }

    fn validate_server(&self) -> Result<(), ConfigError> {
        if !(1..=50).contains(&self.upload.batch_max_items) {
            return Err(ConfigError::Invalid(
                "[upload] batch_max_items must be between 1 and 50 (Google's limit)".into(),
            ));
        }
        if let Some(dir) = &self.upload.spool_dir
            && !dir.is_dir()
        {
            return Err(ConfigError::Invalid(format!(
                "[upload] spool_dir {} is not a directory",
                dir.display()
            )));
        }
        if self.upload.chunk_size < crate::google::upload::CHUNK_GRANULARITY {
            return Err(ConfigError::Invalid(
                "[upload] chunk_size must be at least 262144 (256 KiB, Google's granularity)"
                    .into(),
            ));
        }
        if self.cache.listing_ttl == 0 {
            return Err(ConfigError::Invalid(
                "[cache] listing_ttl must be at least 1 (seconds)".into(),
            ));
        }
        if !(1..=256).contains(&self.cache.probe_concurrency) {
            return Err(ConfigError::Invalid(
                "[cache] probe_concurrency must be between 1 and 256".into(),
            ));
        }
        if self.google.daily_quota == 0 || self.google.daily_media_quota == 0 {
            return Err(ConfigError::Invalid(
                "[google] daily_quota and daily_media_quota must be at least 1 (requests per \
                 day; Google's defaults are 10000 and 75000)"
                    .into(),
            ));
        }
        let (min, max) = (
            crate::catalog::urls::URL_MIN_AGE.as_secs(),
            crate::catalog::urls::URL_MAX_AGE_LIMIT.as_secs(),
        );
        if !(min..=max).contains(&self.google.url_max_age_secs) {
            return Err(ConfigError::Invalid(format!(
                "[google] url_max_age_secs = {} is out of range: use {min} to {max} seconds \
                 (default {}; Google documents 3600 but has ended URLs after 30 to 40 minutes)",
                self.google.url_max_age_secs,
                default_url_max_age_secs()
            )));
        }
        let s = &self.server;
        let mut names = std::collections::HashSet::new();
        for user in &s.users {
            if user.name.is_empty() || user.name.contains(':') {
                return Err(ConfigError::Invalid(format!(
                    "[[server.users]] name {:?} must be non-empty and contain no ':'",
                    user.name
                )));
            }
            if !names.insert(user.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "[[server.users]] name {:?} appears twice",
                    user.name
                )));
            }
            crate::server::auth::validate_hash(&user.password_hash).map_err(|e| {
                ConfigError::Invalid(format!(
                    "[[server.users]] {:?}: password_hash is not a valid argon2id hash ({e}); \
                     create one with `gphotos-dav hash-password`",
                    user.name
                ))
            })?;
        }
        if s.tls_cert.is_some() != s.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "[server] tls_cert and tls_key must be given together".into(),
            ));
        }
        if s.users.is_empty() && !s.listen.ip().is_loopback() && !s.allow_anonymous {
            return Err(ConfigError::Invalid(format!(
                "refusing to serve without authentication on {}, which other machines can \
                 reach: add a [[server.users]] entry (its password_hash comes from \
                 `gphotos-dav hash-password`), listen on 127.0.0.1, or pass --allow-anonymous \
                 if the network is trusted",
                s.listen
            )));
        }
        Ok(())
    }

    fn validate_google(&self) -> Result<(), ConfigError> {
        let g = &self.google;
        let mut missing: Vec<String> = [
            ("client_id", ENV_CLIENT_ID, &g.client_id),
            ("client_secret", ENV_CLIENT_SECRET, &g.client_secret),
        ]
        .iter()
        .filter(|(_, _, v)| v.as_deref().is_none_or(str::is_empty))
        .map(|(key, env, _)| format!("[google] {key} (or env {env})"))
        .collect();
        if !missing.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "missing Google credentials: {}. Create an OAuth client of type \"Desktop app\" \
                 in the Google Cloud console (see docs/google-setup.md)",
                missing.join(", ")
            )));
        }
        if g.refresh_token.as_deref().is_none_or(str::is_empty) {
            let path = self.token_file_path();
            match token_file::read(&path).map_err(ConfigError::Invalid)? {
                Some(_) => {}
                None => {
                    missing.push(format!(
                        "[google] refresh_token (or env {ENV_REFRESH_TOKEN}, or the token file \
                         {})",
                        path.display()
                    ));
                    return Err(ConfigError::Invalid(format!(
                        "no refresh token: {}. Run `gphotos-dav auth --config <this file>` to \
                         sign in with Google and save one",
                        missing.join(", ")
                    )));
                }
            }
        }
        for (key, value) in [
            ("api_base", &g.api_base),
            ("token_url", &g.token_url),
            ("picker_base", &g.picker_base),
            ("auth_url", &g.auth_url),
        ] {
            match url::Url::parse(value) {
                Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "[google] {key} = {value:?} is not an http(s) URL"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Where the refresh token is kept when not given directly.
    pub fn token_file_path(&self) -> PathBuf {
        self.google
            .token_file
            .clone()
            .unwrap_or_else(token_file::default_path)
    }

    /// The credentials, the refresh token coming from the file or environment, else from the
    /// token file (which then also receives any refresh token Google rotates in).
    pub fn credentials(&self) -> Result<Credentials, ConfigError> {
        let g = &self.google;
        let (refresh_token, persist_to) = match g.refresh_token.clone().filter(|t| !t.is_empty()) {
            Some(token) => (token, None),
            None => {
                let path = self.token_file_path();
                let file = token_file::read(&path)
                    .map_err(ConfigError::Invalid)?
                    .ok_or_else(|| {
                        ConfigError::Invalid(format!(
                            "no refresh token in {}: run `gphotos-dav auth --config <file>`",
                            path.display()
                        ))
                    })?;
                (file.refresh_token, Some(path))
            }
        };
        Ok(Credentials {
            client_id: g.client_id.clone().unwrap_or_default(),
            client_secret: g.client_secret.clone().unwrap_or_default(),
            refresh_token,
            persist_to,
        })
    }

    /// Opens the metadata store for this configuration's Google account and endpoint.
    pub fn open_store(&self) -> crate::catalog::Store {
        let identity = format!(
            "{} {}",
            self.google.api_base,
            self.google
                .client_id
                .clone()
                .or_else(|| std::env::var(ENV_CLIENT_ID).ok())
                .unwrap_or_default()
        );
        crate::catalog::Store::open_for(&self.cache.store_path(), &identity)
    }

    pub fn endpoints(&self) -> Endpoints {
        let g = &self.google;
        Endpoints {
            api_base: g.api_base.clone(),
            token_url: g.token_url.clone(),
            picker_base: g.picker_base.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> &'static str {
        "[google]\nclient_id = \"id\"\nclient_secret = \"s\"\nrefresh_token = \"r\"\n"
    }

    #[test]
    fn defaults() {
        let c = Config::parse(full()).unwrap();
        c.validate().unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert!(c.server.read_only);
        assert_eq!(c.webdav.policy, Policy::NativeProxy);
        assert_eq!(c.google.api_base, DEFAULT_API_BASE);
        assert_eq!(c.google.token_url, DEFAULT_TOKEN_URL);
        assert_eq!(c.google.picker_base, DEFAULT_PICKER_BASE);
        assert_eq!(c.google.auth_url, DEFAULT_AUTH_URL);
    }

    #[test]
    fn probe_concurrency_defaults_to_the_catalogs_and_is_bounded() {
        let c = Config::parse(full()).unwrap();
        assert_eq!(c.cache.probe_concurrency, 64);
        let c = Config::parse(&format!("{}[cache]\nprobe_concurrency = 1\n", full())).unwrap();
        c.validate().unwrap();
        assert_eq!(c.cache.probe_concurrency, 1);
        for bad in [0, 257] {
            let c =
                Config::parse(&format!("{}[cache]\nprobe_concurrency = {bad}\n", full())).unwrap();
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("[cache] probe_concurrency"), "{err}");
        }
    }

    #[test]
    fn url_max_age_defaults_to_25_minutes_and_is_bounded() {
        let c = Config::parse(full()).unwrap();
        assert_eq!(c.google.url_max_age_secs, 1500);
        assert_eq!(c.google.url_max_age(), std::time::Duration::from_secs(1500));
        for ok in [600, 3000, 3600] {
            let text = full().replace(
                "[google]\n",
                &format!("[google]\nurl_max_age_secs = {ok}\n"),
            );
            let c = Config::parse(&text).unwrap();
            c.validate().unwrap();
            assert_eq!(c.google.url_max_age_secs, ok);
        }
        for bad in [0, 599, 3601, 86400] {
            let text = full().replace(
                "[google]\n",
                &format!("[google]\nurl_max_age_secs = {bad}\n"),
            );
            let err = Config::parse(&text)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("[google] url_max_age_secs") && err.contains("600 to 3600"),
                "{bad}: {err}"
            );
        }
        for bad in ["-5", "\"25m\"", "1.5"] {
            let err = Config::parse(&format!("[google]\nurl_max_age_secs = {bad}\n")).unwrap_err();
            assert!(err.contains("url_max_age_secs"), "{bad}: {err}");
        }
        let err = Config::parse("[google]\nurl_max_age = 1500\n").unwrap_err();
        assert!(err.contains("url_max_age_secs"), "{err}");
    }

    #[test]
    fn unknown_key_is_named() {
        let err =
            Config::parse("[server]\nlisten = \"127.0.0.1:1\"\nreadonly = true\n").unwrap_err();
        assert!(err.contains("unknown field `readonly`"), "{err}");
        assert!(err.contains("read_only"), "{err}");
    }

    #[test]
    fn upload_keys_are_checked() {
        let c = Config::parse(full()).unwrap();
        let o = c.upload.options();
        assert_eq!(o.batch_window, std::time::Duration::from_secs(2));
        assert_eq!(o.batch_max_items, 50);
        assert_eq!(o.tuning.resumable_threshold, 32 * 1024 * 1024);
        let text = format!("{}[upload]\nbatch_max_items = 51\n", full());
        let err = Config::parse(&text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("batch_max_items") && err.contains("50"),
            "{err}"
        );
        let text = format!("{}[upload]\nchunk_size = 1000\n", full());
        let err = Config::parse(&text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("chunk_size"), "{err}");
        let text = format!("{}[upload]\nspool_dir = \"/nonexistent/spool\"\n", full());
        let err = Config::parse(&text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("spool_dir") && err.contains("/nonexistent/spool"),
            "{err}"
        );
        let err = Config::parse("[upload]\nbatch_window = 5\n").unwrap_err();
        assert!(err.contains("batch_window_ms"), "{err}");
    }

    #[test]
    fn unknown_policy_lists_allowed() {
        let err = Config::parse("[webdav]\npolicy = \"teleport\"\n").unwrap_err();
        assert!(
            err.contains("teleport") && err.contains("native_proxy"),
            "{err}"
        );
    }

    #[test]
    fn bad_listen_is_named() {
        let err = Config::parse("[server]\nlisten = \"nowhere\"\n").unwrap_err();
        assert!(err.contains("listen"), "{err}");
    }

    #[test]
    fn env_fills_credentials_and_missing_ones_are_named() {
        let mut c = Config::parse("[google]\ntoken_file = \"/nonexistent/token.json\"\n").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("client_id") && err.contains(ENV_CLIENT_SECRET),
            "{err}"
        );
        c.apply_env(|k| (k != ENV_REFRESH_TOKEN).then(|| format!("v-{k}")));
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains(ENV_REFRESH_TOKEN)
                && err.contains("/nonexistent/token.json")
                && err.contains("gphotos-dav auth"),
            "{err}"
        );
        c.apply_env(|k| Some(format!("v-{k}")));
        c.validate().unwrap();
        let creds = c.credentials().unwrap();
        assert_eq!(creds.client_id, format!("v-{ENV_CLIENT_ID}"));
        assert!(creds.persist_to.is_none());
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = Config::parse(full()).unwrap();
        let text = format!("{c:?}");
        assert!(!text.contains("\"s\"") && !text.contains("\"r\""), "{text}");
    }

    #[test]
    fn timezone_root_and_prefix() {
        let c = Config::parse(
            "[google]\ntimezone = \"Europe/Paris\"\nroot_folder_id = \"AF1Qx\"\n\
             [webdav]\nprefix = \"/photos/\"\n",
        )
        .unwrap();
        assert_eq!(c.google.timezone, chrono_tz::Europe::Paris);
        assert_eq!(c.google.root_folder_id, "AF1Qx");
        assert_eq!(c.webdav.prefix, "/photos");
        let c = Config::parse("").unwrap();
        assert_eq!(c.google.timezone, chrono_tz::UTC);
        assert_eq!(c.google.root_folder_id, "root");
        assert_eq!(c.webdav.prefix, "");
        assert_eq!(
            Config::parse("[webdav]\nprefix = \"/\"\n")
                .unwrap()
                .webdav
                .prefix,
            ""
        );
        let err = Config::parse("[google]\ntimezone = \"Mars/Olympus\"\n").unwrap_err();
        assert!(
            err.contains("Mars/Olympus") && err.contains("timezone"),
            "{err}"
        );
        for bad in ["photos", "/a/../b", "/a//b", "/a?b"] {
            let err = Config::parse(&format!("[webdav]\nprefix = \"{bad}\"\n")).unwrap_err();
            assert!(err.contains("prefix"), "{bad}: {err}");
        }
    }

    #[test]
    fn users_tls_and_exposure() {
        let hash = crate::server::auth::hash_password("pw").unwrap();
        let text = format!(
            "{}[server]\nlisten = \"0.0.0.0:8080\"\n[[server.users]]\nname = \"alice\"\n\
             password_hash = \"{hash}\"\nread_only = true\n",
            full()
        );
        let c = Config::parse(&text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.server.users[0].name, "alice");
        assert!(c.server.users[0].read_only);
        assert!(!format!("{c:?}").contains(&hash), "Debug hides hashes");

        let open =
            Config::parse(&format!("{}[server]\nlisten = \"0.0.0.0:8080\"\n", full())).unwrap();
        let err = open.validate().unwrap_err().to_string();
        assert!(
            err.contains("--allow-anonymous") && err.contains("hash-password"),
            "{err}"
        );
        let mut allowed = open.clone();
        allowed.server.allow_anonymous = true;
        allowed.validate().unwrap();

        let bad = Config::parse(&format!(
            "{}[[server.users]]\nname = \"bob\"\npassword_hash = \"secret\"\n",
            full()
        ))
        .unwrap();
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("bob") && err.contains("hash-password"),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");

        let half = Config::parse(&format!("{}[server]\ntls_cert = \"c.pem\"\n", full())).unwrap();
        assert!(half.validate().unwrap_err().to_string().contains("tls_key"));
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../../webdav.toml.example");
        let c = Config::parse(text).unwrap();
        assert_eq!(c.webdav.policy, Policy::NativeProxy);
    }
}
