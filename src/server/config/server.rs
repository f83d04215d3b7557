//! `[server]` and its `[[server.users]]`: where the WebDAV service listens and who may use it.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// Where the server listens when `[server] listen` is not given: loopback only, so a fresh
/// install is never reachable from the network.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// `[server]`: the listening socket, its users and TLS. Its own section because these decide
/// who can reach the photos at all, and are checked together (no anonymous network access).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Refuse every write method.
    pub read_only: bool,
    /// WebDAV users (HTTP Basic). None: anonymous access, allowed on loopback only.
    pub users: Vec<UserConfig>,
    /// Serve without users on a non-loopback address (also `serve --allow-anonymous`).
    pub allow_anonymous: bool,
    /// PEM certificate chain and private key: serve https instead of http.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Serve `/metrics` (Prometheus) and `/healthz` on this address; off when absent.
    pub metrics_listen: Option<SocketAddr>,
}

/// The one place the `[server]` defaults live (serde fills missing keys from here).
impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            read_only: true,
            users: Vec::new(),
            allow_anonymous: false,
            tls_cert: None,
            tls_key: None,
            metrics_listen: None,
        }
    }
}

/// One `[[server.users]]` entry: a WebDAV login. Only the argon2id hash is stored, so the
/// config file never holds a password.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// argon2id PHC string, as printed by `gphotos-dav hash-password`.
    pub password_hash: String,
    /// This user may only read, even when the server allows writes.
    #[serde(default)]
    pub read_only: bool,
    /// On a family server, the library this user's `/` is (`"/<mount>"`): nothing outside it
    /// can be reached. None: the whole tree.
    #[serde(default)]
    pub root: Option<String>,
}

/// Never prints the hash.
impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("read_only", &self.read_only)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// Checks what serde cannot: users' names and hashes, TLS files given in pairs, and no
    /// anonymous access from the network unless asked for.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        for user in &self.users {
            if user.name.is_empty() || user.name.contains(':') {
                return Err(ConfigError::invalid(
                    "server.users",
                    format!(
                        "[[server.users]] name {:?} must be non-empty and contain no ':'",
                        user.name
                    ),
                ));
            }
            if !names.insert(user.name.as_str()) {
                return Err(ConfigError::invalid(
                    "server.users",
                    format!("[[server.users]] name {:?} appears twice", user.name),
                ));
            }
            crate::server::auth::validate_hash(&user.password_hash).map_err(|e| {
                ConfigError::invalid(
                    "server.users",
                    format!(
                        "[[server.users]] {:?}: password_hash is not a valid argon2id hash \
                         ({e}); create one with `gphotos-dav hash-password`",
                        user.name
                    ),
                )
            })?;
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            let missing = if self.tls_key.is_none() {
                "server.tls_key"
            } else {
                "server.tls_cert"
            };
            return Err(ConfigError::invalid(
                missing,
                "[server] tls_cert and tls_key must be given together",
            ));
        }
        if self.users.is_empty() && !self.listen.ip().is_loopback() && !self.allow_anonymous {
            return Err(ConfigError::invalid(
                "server.users",
                format!(
                    "refusing to serve without authentication on {}, which other machines can \
                     reach: add a [[server.users]] entry (its password_hash comes from \
                     `gphotos-dav hash-password`), listen on 127.0.0.1, or pass \
                     --allow-anonymous if the network is trusted",
                    self.listen
                ),
            ));
        }
        Ok(())
    }
}
