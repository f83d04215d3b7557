//! The configuration file (`webdav.toml`), parsed strictly: an unknown key or a bad value stops
//! the start with the key's name and what is allowed (serde's `deny_unknown_fields` and typed
//! fields give exactly those messages).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::signed::SignKey;
use crate::google::{Credentials, Endpoints};

pub const DEFAULT_API_BASE: &str = "https://photoslibrary.googleapis.com";
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
pub const DEFAULT_PICKER_BASE: &str = "https://photospicker.googleapis.com";
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            read_only: true,
        }
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
        }
    }
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
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WebdavConfig {
    #[serde(default)]
    pub policy: Policy,
    /// `use_proxy_url`: the public base URL of the byte node serving signed `/d/` links.
    pub down_proxy_url: Option<String>,
    /// The secret that signs `/d/` links (shared by a front and its byte nodes).
    pub sign_key: Option<SignKey>,
    /// A file holding the secret instead, read at start.
    pub sign_key_file: Option<PathBuf>,
    /// How long a signed link stays valid (default 3600).
    pub link_ttl_secs: Option<u64>,
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
    /// Reads and validates a config file, then applies the credential environment variables.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with(path, |_| {})
    }

    /// Like [`Config::load`], with command-line overrides applied before the validation.
    pub fn load_with(path: &Path, adjust: impl FnOnce(&mut Config)) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        })?;
        config.apply_env(|name| std::env::var(name).ok());
        adjust(&mut config);
        config.validate()?;
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

    /// Checks what serde cannot: credentials present, URLs well-formed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let g = &self.google;
        let missing: Vec<String> = [
            ("client_id", ENV_CLIENT_ID, &g.client_id),
            ("client_secret", ENV_CLIENT_SECRET, &g.client_secret),
            ("refresh_token", ENV_REFRESH_TOKEN, &g.refresh_token),
        ]
        .iter()
        .filter(|(_, _, v)| v.as_deref().is_none_or(str::is_empty))
        .map(|(key, env, _)| format!("[google] {key} (or env {env})"))
        .collect();
        if !missing.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "missing Google credentials: {}. Create an OAuth desktop client in the Google \
                 Cloud console and mint a refresh token (see README, \"Using your Google \
                 account\")",
                missing.join(", ")
            )));
        }
        for (key, value) in [
            ("api_base", &g.api_base),
            ("token_url", &g.token_url),
            ("picker_base", &g.picker_base),
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
        super::policy::check(&self.webdav)
    }

    pub fn credentials(&self) -> Credentials {
        let g = &self.google;
        Credentials {
            client_id: g.client_id.clone().unwrap_or_default(),
            client_secret: g.client_secret.clone().unwrap_or_default(),
            refresh_token: g.refresh_token.clone().unwrap_or_default(),
        }
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
    }

    #[test]
    fn unknown_key_is_named() {
        let err =
            Config::parse("[server]\nlisten = \"127.0.0.1:1\"\nreadonly = true\n").unwrap_err();
        assert!(err.contains("unknown field `readonly`"), "{err}");
        assert!(err.contains("read_only"), "{err}");
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
        let mut c = Config::parse("").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("client_id") && err.contains(ENV_REFRESH_TOKEN),
            "{err}"
        );
        c.apply_env(|k| Some(format!("v-{k}")));
        c.validate().unwrap();
        assert_eq!(c.credentials().client_id, format!("v-{ENV_CLIENT_ID}"));
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = Config::parse(full()).unwrap();
        let text = format!("{c:?}");
        assert!(!text.contains("\"s\"") && !text.contains("\"r\""), "{text}");
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../../webdav.toml.example");
        let c = Config::parse(text).unwrap();
        assert_eq!(c.webdav.policy, Policy::NativeProxy);
    }
}
