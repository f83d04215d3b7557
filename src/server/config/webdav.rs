//! `[webdav]`: how the tree is served: the GET policy, the path prefix, and the signed links.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use crate::server::signed::{MIN_KEY_LEN, SignKey};

/// `[webdav]`: what the WebDAV tree looks like from outside. Its own section because the
/// policy and its link keys only make sense together (checked by [`check`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebdavConfig {
    pub policy: Policy,
    /// Serve the tree under this path (behind a reverse proxy), e.g. `/photos`.
    #[serde(deserialize_with = "de_prefix")]
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

/// The one place the `[webdav]` defaults live (serde fills missing keys from here).
impl Default for WebdavConfig {
    fn default() -> Self {
        WebdavConfig {
            policy: Policy::default(),
            prefix: String::new(),
            down_proxy_url: None,
            sign_key: None,
            sign_key_file: None,
            link_ttl_secs: None,
        }
    }
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

/// How a GET of a file is answered (see `server::policy` and docs/policies.md). A config
/// value first (the file and `serve --policy` name it), so it is declared here; what each
/// policy does lives in `server::policy`.
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

impl Policy {
    pub const ALL: [Policy; 3] = [
        Policy::NativeProxy,
        Policy::Redirect302,
        Policy::UseProxyUrl,
    ];

    /// The name used in the config file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::NativeProxy => "native_proxy",
            Policy::Redirect302 => "302_redirect",
            Policy::UseProxyUrl => "use_proxy_url",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Policy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Policy::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown policy {s:?}: use one of {}", names.join(", "))
            })
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks the `[webdav]` keys of the policies (no file is read here).
pub fn check(w: &WebdavConfig) -> Result<(), ConfigError> {
    if w.sign_key.is_some() && w.sign_key_file.is_some() {
        return Err(ConfigError::invalid(
            "webdav.sign_key_file",
            "[webdav] sign_key and sign_key_file are both set: keep one",
        ));
    }
    if let Some(key) = &w.sign_key {
        check_key_len(key, "webdav.sign_key", "[webdav] sign_key")?;
    }
    if let Some(url) = &w.down_proxy_url {
        match url::Url::parse(url) {
            Ok(u)
                if (u.scheme() == "https" || u.scheme() == "http")
                    && u.query().is_none()
                    && u.fragment().is_none() => {}
            _ => {
                return Err(ConfigError::invalid(
                    "webdav.down_proxy_url",
                    format!(
                        "[webdav] down_proxy_url = {url:?} is not an http(s) URL without query \
                         (e.g. \"https://bytes.example.com\")"
                    ),
                ));
            }
        }
    }
    if w.link_ttl_secs == Some(0) {
        return Err(ConfigError::invalid(
            "webdav.link_ttl_secs",
            "[webdav] link_ttl_secs must be at least 1",
        ));
    }
    if w.policy == Policy::UseProxyUrl {
        if w.down_proxy_url.is_none() {
            return Err(ConfigError::invalid(
                "webdav.down_proxy_url",
                "[webdav] policy = \"use_proxy_url\" needs [webdav] down_proxy_url: the public \
                 URL of the byte node that serves the signed /d/ links (this server, or \
                 another gphotos-dav with the same sign_key)",
            ));
        }
        if w.sign_key.is_none() && w.sign_key_file.is_none() {
            return Err(ConfigError::invalid(
                "webdav.sign_key",
                format!(
                    "[webdav] policy = \"use_proxy_url\" needs [webdav] sign_key or \
                     sign_key_file: a secret of at least {MIN_KEY_LEN} bytes shared with the \
                     byte node (e.g. the output of `openssl rand -base64 48`)"
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses a key too short to sign with; `what` names where it came from, never its content.
pub fn check_key_len(key: &SignKey, config_key: &str, what: &str) -> Result<(), ConfigError> {
    if key.len() < MIN_KEY_LEN {
        return Err(ConfigError::invalid(
            config_key,
            format!(
                "{what} is too short ({} bytes): use at least {MIN_KEY_LEN} random bytes, e.g. \
                 the output of `openssl rand -base64 48`",
                key.len()
            ),
        ));
    }
    Ok(())
}
