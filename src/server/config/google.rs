//! `[google]`: the OAuth client, the endpoints, and how the server spends Google's quotas.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_REFRESH_TOKEN};
use crate::google::library::RangeLoading;
use crate::google::token_file;

/// Google's Library API; tests and `demo` point `api_base` at the emulator instead.
pub const DEFAULT_API_BASE: &str = "https://photoslibrary.googleapis.com";
/// Google's OAuth token endpoint (refresh tokens are exchanged here).
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Google's Picker API.
pub const DEFAULT_PICKER_BASE: &str = "https://photospicker.googleapis.com";
/// Google's authorization endpoint, opened by `gphotos-dav auth`.
pub const DEFAULT_AUTH_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";

/// `[google]`: who the server is to Google and where Google is. Its own section because the
/// secrets in it get special care (environment overrides, a redacting `Debug`) and the
/// endpoints are the only thing that differs between Google and the emulator.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GoogleConfig {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub refresh_token: Option<String>,
    pub api_base: String,
    pub token_url: String,
    pub picker_base: String,
    /// Google's authorization endpoint, used by `gphotos-dav auth`.
    pub auth_url: String,
    /// Where `gphotos-dav auth` keeps the refresh token (default: the user's config directory).
    /// Used when `refresh_token` is not given in the file or the environment.
    pub token_file: Option<PathBuf>,
    /// IANA time zone whose calendar dates bucket the date views.
    #[serde(deserialize_with = "de_timezone")]
    pub timezone: chrono_tz::Tz,
    /// `root` for the whole tree, or an album id to show only that album at `/`.
    pub root_folder_id: String,
    /// The project's daily Library API quota (Google's default: 10,000 requests); a warning
    /// is logged once a day when 80% of it is used, and a 429 without Google's structured
    /// details at 90% or more is taken for this quota (see `google::quota`).
    pub daily_quota: u64,
    /// The project's daily quota of download-URL (content) requests (default 75,000). The
    /// content host's 429 says nothing of its window: at 90% of this or more it closes
    /// downloads and probes until Pacific midnight, below it only for a pause.
    pub daily_media_quota: u64,
    /// Seconds a download URL (baseUrl) is used before it is replaced (600 to 3600, default
    /// 1500): Google documents 60 minutes, but has refused URLs after 30 to 40. Redirects
    /// hand out URLs 5 minutes younger; a URL Google refuses earlier shortens it while the
    /// server runs (see `catalog::urls`).
    pub url_max_age_secs: u64,
    /// Pages of `mediaItems.list` (100 items each) read one after the other for `/media/all`
    /// before the rest is listed by concurrent date-range searches (see
    /// `google::library::RangeLoading`; 10 is the tuned value). 0, the default: always one
    /// chain. Off by default because Google's date filters never return items uploaded
    /// without a capture date, so a library holding such items past its first pages would
    /// lose them from `/media/all` and the date views; one chain lists everything.
    pub list_chain_pages: usize,
    /// How many of those date-range searches run at once (1 to 64, default 10).
    pub list_concurrency: usize,
}

/// The one place the `[google]` defaults live (serde fills missing keys from here).
impl Default for GoogleConfig {
    fn default() -> Self {
        GoogleConfig {
            client_id: None,
            client_secret: None,
            refresh_token: None,
            api_base: DEFAULT_API_BASE.into(),
            token_url: DEFAULT_TOKEN_URL.into(),
            picker_base: DEFAULT_PICKER_BASE.into(),
            auth_url: DEFAULT_AUTH_URL.into(),
            token_file: None,
            timezone: chrono_tz::UTC,
            root_folder_id: "root".into(),
            daily_quota: 10_000,
            daily_media_quota: 75_000,
            url_max_age_secs: crate::catalog::urls::DEFAULT_URL_MAX_AGE.as_secs(),
            list_chain_pages: 0,
            list_concurrency: RangeLoading::default().concurrency,
        }
    }
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
            .field("list_chain_pages", &self.list_chain_pages)
            .field("list_concurrency", &self.list_concurrency)
            .finish()
    }
}

impl GoogleConfig {
    /// `url_max_age_secs` as a duration.
    pub fn url_max_age(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.url_max_age_secs)
    }

    /// How `/media/all` is loaded: `list_chain_pages` and `list_concurrency`.
    pub fn range_loading(&self) -> RangeLoading {
        RangeLoading {
            chain_pages: self.list_chain_pages,
            concurrency: self.list_concurrency,
            ..RangeLoading::default()
        }
    }

    /// Where the refresh token is kept when not given directly.
    pub fn token_file_path(&self) -> PathBuf {
        self.token_file
            .clone()
            .unwrap_or_else(token_file::default_path)
    }

    /// Checks the quotas and the download URLs' age (no file is read).
    pub fn validate_limits(&self) -> Result<(), ConfigError> {
        if self.daily_quota == 0 || self.daily_media_quota == 0 {
            let key = if self.daily_quota == 0 {
                "google.daily_quota"
            } else {
                "google.daily_media_quota"
            };
            return Err(ConfigError::invalid(
                key,
                "[google] daily_quota and daily_media_quota must be at least 1 (requests per \
                 day; Google's defaults are 10000 and 75000)",
            ));
        }
        let (min, max) = (
            crate::catalog::urls::URL_MIN_AGE.as_secs(),
            crate::catalog::urls::URL_MAX_AGE_LIMIT.as_secs(),
        );
        if !(min..=max).contains(&self.url_max_age_secs) {
            return Err(ConfigError::invalid(
                "google.url_max_age_secs",
                format!(
                    "[google] url_max_age_secs = {} is out of range: use {min} to {max} seconds \
                     (default {}; Google documents 3600 but has ended URLs after 30 to 40 \
                     minutes)",
                    self.url_max_age_secs,
                    GoogleConfig::default().url_max_age_secs
                ),
            ));
        }
        if !(1..=64).contains(&self.list_concurrency) {
            return Err(ConfigError::invalid(
                "google.list_concurrency",
                format!(
                    "[google] list_concurrency = {} is out of range: use 1 to 64 searches at                      once (default {})",
                    self.list_concurrency,
                    GoogleConfig::default().list_concurrency
                ),
            ));
        }
        Ok(())
    }

    /// Checks that the credentials are there (reading the token file when the refresh token
    /// is not given) and that the endpoints are http(s) URLs.
    pub fn validate_access(&self) -> Result<(), ConfigError> {
        self.validate_client_id()?;
        self.validate_token()?;
        self.validate_urls()
    }

    /// Checks the OAuth client and the endpoints, not the refresh token: what a family
    /// server checks of each library before it starts (a library without its token answers
    /// its own folder with the fix; the others are served).
    pub fn validate_client(&self) -> Result<(), ConfigError> {
        self.validate_client_id()?;
        self.validate_urls()
    }

    fn validate_client_id(&self) -> Result<(), ConfigError> {
        let missing: Vec<(&str, String)> = [
            ("client_id", ENV_CLIENT_ID, &self.client_id),
            ("client_secret", ENV_CLIENT_SECRET, &self.client_secret),
        ]
        .iter()
        .filter(|(_, _, v)| v.as_deref().is_none_or(str::is_empty))
        .map(|(key, env, _)| (*key, format!("[google] {key} (or env {env})")))
        .collect();
        if let Some((first, _)) = missing.first() {
            let named: Vec<&str> = missing.iter().map(|(_, m)| m.as_str()).collect();
            return Err(ConfigError::invalid(
                format!("google.{first}"),
                format!(
                    "missing Google credentials: {}. Create an OAuth client of type \"Desktop \
                     app\" in the Google Cloud console (see docs/google-setup.md)",
                    named.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// Checks that a refresh token is given, or in the token file.
    pub fn validate_token(&self) -> Result<(), ConfigError> {
        if self.refresh_token.as_deref().is_none_or(str::is_empty) {
            let path = self.token_file_path();
            let file = token_file::read(&path)
                .map_err(|reason| ConfigError::invalid("google.token_file", reason))?;
            if file.is_none() {
                return Err(ConfigError::invalid(
                    "google.refresh_token",
                    format!(
                        "no refresh token: [google] refresh_token (or env {ENV_REFRESH_TOKEN}, \
                         or the token file {}). Run `gphotos-dav auth --config <this file>` to \
                         sign in with Google and save one",
                        path.display()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_urls(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("api_base", &self.api_base),
            ("token_url", &self.token_url),
            ("picker_base", &self.picker_base),
            ("auth_url", &self.auth_url),
        ] {
            match url::Url::parse(value) {
                Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
                _ => {
                    return Err(ConfigError::invalid(
                        format!("google.{key}"),
                        format!("[google] {key} = {value:?} is not an http(s) URL"),
                    ));
                }
            }
        }
        Ok(())
    }
}
