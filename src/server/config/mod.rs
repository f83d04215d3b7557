//! The configuration file (`webdav.toml`), parsed strictly: an unknown key or a bad value stops
//! the start with the key's name and what is allowed (serde's `deny_unknown_fields` and typed
//! fields give exactly those messages).
//!
//! One file per section, each holding its struct, its defaults (`impl Default`, which serde
//! fills missing keys from) and its checks; this file keeps the whole file's `Config`, its
//! loading, the environment overrides for credentials, and [`ConfigError`].

mod cache;
mod google;
pub mod library;
mod server;
mod upload;
mod webdav;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use cache::CacheConfig;
pub use google::{
    DEFAULT_API_BASE, DEFAULT_AUTH_URL, DEFAULT_PICKER_BASE, DEFAULT_TOKEN_URL, GoogleConfig,
};
pub use library::LibraryConfig;
pub use server::{DEFAULT_LISTEN, ServerConfig, UserConfig};
pub use upload::UploadConfig;
pub use webdav::{Policy, WebdavConfig, check as check_webdav, check_key_len};

use crate::google::{Credentials, Endpoints, token_file};

/// Environment variables that fill in (and override) the `[google]` credentials, so secrets
/// need not sit in the file.
pub const ENV_CLIENT_ID: &str = "GPHOTOS_DAV_CLIENT_ID";
pub const ENV_CLIENT_SECRET: &str = "GPHOTOS_DAV_CLIENT_SECRET";
pub const ENV_REFRESH_TOKEN: &str = "GPHOTOS_DAV_REFRESH_TOKEN";

/// The whole `webdav.toml`: one field per section, each section optional (its defaults then
/// apply), unknown sections refused.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub google: GoogleConfig,
    pub webdav: WebdavConfig,
    pub cache: CacheConfig,
    pub upload: UploadConfig,
    /// `[[library]]`: several accounts as top folders (a family server, see `library`); empty
    /// for a single `[google]`.
    #[serde(rename = "library")]
    pub libraries: Vec<LibraryConfig>,
    /// Whether the file has a `[google]` section (refused beside `[[library]]`).
    #[serde(skip)]
    pub google_given: bool,
    /// Set in a library's own configuration ([`Config::library_config`]): its mount, which
    /// its metadata store's identity includes (one OAuth client serves the whole family).
    #[serde(skip)]
    pub mount: Option<String>,
}

/// Why a configuration cannot be used. A value that parses but is not allowed is `Invalid`,
/// which carries the key (`google.url_max_age_secs`) so a caller can tell which setting to fix
/// without reading the message; the message itself is what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("{reason}")]
    Invalid {
        /// The offending key, `section.key` (e.g. `server.users`, `webdav.sign_key_file`).
        key: String,
        /// What is wrong and how to fix it, naming the key as it is written in the file.
        reason: String,
    },
}

impl ConfigError {
    /// An `Invalid` error for `key`.
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// The key an `Invalid` error is about.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
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
        let mut config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.google_given = text
            .parse::<toml::Table>()
            .is_ok_and(|t| t.contains_key("google"));
        Ok(config)
    }

    /// Whether this is a family server (`[[library]]` entries) rather than one `[google]`.
    pub fn is_family(&self) -> bool {
        !self.libraries.is_empty()
    }

    /// The configuration one library is served with: this file's, with `[google]` replaced
    /// by the library's keys, its token file defaulting to `<config
    /// dir>/gphotos-dav/<mount>/token.json`, and its own metadata store
    /// (`metadata-<mount>.sqlite`) and content cache (`<content_dir>/<mount>`).
    pub fn library_config(&self, library: &LibraryConfig) -> Config {
        let mount = &library.mount;
        let mut c = self.clone();
        c.libraries = Vec::new();
        c.google = library.google.clone();
        c.google_given = true;
        c.google.token_file = Some(
            c.google
                .token_file
                .clone()
                .unwrap_or_else(|| library::default_token_file(mount)),
        );
        c.cache.path = Some(library::beside(&self.cache.store_path(), mount));
        match self.cache.content_options() {
            Some(o) => c.cache.content_dir = Some(o.dir.join(mount)),
            // The content cache is off for the server: off for each library too.
            None => c.cache.content_max = Some("0".into()),
        }
        c.mount = Some(mount.clone());
        c
    }

    /// The library mounted as `mount` (compared without case, as clients do).
    pub fn library(&self, mount: &str) -> Option<&LibraryConfig> {
        self.libraries
            .iter()
            .find(|l| l.mount.eq_ignore_ascii_case(mount))
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
    /// Each section checks itself; the order decides which error a file with several shows.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.is_family() {
            return self.validate_family();
        }
        if let Some(user) = self.server.users.iter().find(|u| u.root.is_some()) {
            return Err(ConfigError::invalid(
                "server.users",
                format!(
                    "[[server.users]] {:?} has a root, but the server has no [[library]] \
                     entries: a root names a library (root = \"/<mount>\"); remove it",
                    user.name
                ),
            ));
        }
        self.upload.validate()?;
        self.cache.validate()?;
        self.google.validate_limits()?;
        if let Some(budget) = self.cache.probe_budget
            && budget > self.google.daily_media_quota
        {
            return Err(ConfigError::invalid(
                "cache.probe_budget",
                format!(
                    "[cache] probe_budget = {budget} is more than [google] daily_media_quota = {}: \
                     probes would spend what downloads need; lower it, or leave it unset for the \
                     quota less 10%",
                    self.google.daily_media_quota
                ),
            ));
        }
        self.server.validate()?;
        self.google.validate_access()?;
        webdav::check(&self.webdav)
    }

    /// [`Config::validate`] of a family server: no `[google]` beside `[[library]]`, the
    /// libraries' mounts and limits, each library's client and endpoints (a missing refresh
    /// token is the library's failure at start, not the server's), and users' roots.
    fn validate_family(&self) -> Result<(), ConfigError> {
        if self.google_given {
            return Err(ConfigError::invalid(
                "library",
                "the file has both [google] and [[library]] entries: a family server takes \
                 each account's keys in its [[library]] entry; move the [google] keys into one \
                 (with its mount) and remove [google]",
            ));
        }
        self.upload.validate()?;
        self.cache.validate()?;
        library::check_all(&self.libraries)?;
        for lib in &self.libraries {
            let one = self.library_config(lib);
            if let Some(budget) = self.cache.probe_budget
                && budget > one.google.daily_media_quota
            {
                return Err(ConfigError::invalid(
                    "cache.probe_budget",
                    format!(
                        "[cache] probe_budget = {budget} is more than [[library]] {:?} \
                         daily_media_quota = {}: lower it, or leave it unset",
                        lib.mount, one.google.daily_media_quota
                    ),
                ));
            }
            lib.google
                .validate_client()
                .map_err(|e| library::in_library(&lib.mount, e))?;
        }
        self.server.validate()?;
        for user in &self.server.users {
            if let Some(root) = &user.root {
                library::parse_root(&self.libraries, root).map_err(|why| {
                    ConfigError::invalid(
                        "server.users",
                        format!("[[server.users]] {:?}: root = {root:?} {why}", user.name),
                    )
                })?;
            }
        }
        webdav::check(&self.webdav)
    }

    /// Where each rooted user's `/` is (`root = "/alice/album/Trip"` → `alice` and
    /// `["album", "Trip"]`), by user name.
    pub fn user_roots(&self) -> std::collections::HashMap<String, library::UserRoot> {
        self.server
            .users
            .iter()
            .filter_map(|u| {
                let root = library::parse_root(&self.libraries, u.root.as_deref()?).ok()?;
                Some((u.name.clone(), root))
            })
            .collect()
    }

    /// Size probes a Pacific day may spend: `[cache] probe_budget`, or unset, `[google]
    /// daily_media_quota` less a reserve of 10% for downloads (computed here, where both
    /// sections are known).
    pub fn probe_budget(&self) -> u64 {
        self.cache.probe_budget.unwrap_or_else(|| {
            let quota = self.google.daily_media_quota;
            (quota - quota / 10).max(1)
        })
    }

    /// Where the refresh token is kept when not given directly.
    pub fn token_file_path(&self) -> PathBuf {
        self.google.token_file_path()
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
                    .map_err(|reason| ConfigError::invalid("google.token_file", reason))?
                    .ok_or_else(|| {
                        ConfigError::invalid(
                            "google.refresh_token",
                            format!(
                                "no refresh token in {}: run `gphotos-dav auth --config <file>`",
                                path.display()
                            ),
                        )
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

    /// The Google account (`sub`) `gphotos-dav auth` recorded in the token file, when the
    /// refresh token comes from that file; `None` when the refresh token is given directly
    /// (config or environment: the file may then belong to another sign-in), the file is
    /// missing or unreadable, or it was written by an earlier release without the account.
    pub fn account(&self) -> Option<String> {
        if self
            .google
            .refresh_token
            .as_deref()
            .is_some_and(|t| !t.is_empty())
        {
            return None;
        }
        token_file::read(&self.token_file_path())
            .ok()
            .flatten()
            .and_then(|f| f.account)
    }

    /// Opens the metadata store for this configuration's Google account and endpoint.
    ///
    /// Its identity is the API base, the OAuth client, the library's mount on a family
    /// server, and the account when `auth` recorded it: a store written under another
    /// identity is moved aside and rebuilt, so one account's listings and upload records are
    /// never trusted for another (one client may serve a family; a re-authorization may
    /// sign in as someone else). Without a recorded account the identity is what earlier
    /// releases wrote, so their stores open in place.
    pub fn open_store(&self) -> crate::catalog::Store {
        let mut identity = format!(
            "{} {}",
            self.google.api_base,
            self.google
                .client_id
                .clone()
                .or_else(|| std::env::var(ENV_CLIENT_ID).ok())
                .unwrap_or_default()
        );
        if let Some(mount) = &self.mount {
            // A family shares one OAuth client: the account is told apart by its library.
            identity.push_str(&format!(" library={mount}"));
        }
        if let Some(account) = self.account() {
            identity.push_str(&format!(" account={account}"));
        }
        crate::catalog::Store::open_for(&self.cache.store_path(), &identity)
    }

    /// The Google base URLs the clients call (Google's own, or the emulator's in tests).
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

    /// Why a config that parses fails its checks.
    fn refused(text: &str) -> String {
        Config::parse(text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string()
    }

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
    fn probe_budget_defaults_to_the_media_quota_less_a_tenth_and_is_bounded() {
        let c = Config::parse(full()).unwrap();
        c.validate().unwrap();
        assert_eq!(c.probe_budget(), 67_500);
        let c = Config::parse(&format!("{}daily_media_quota = 1000\n", full())).unwrap();
        assert_eq!(c.probe_budget(), 900);
        let c = Config::parse(&format!("{}[cache]\nprobe_budget = 5\n", full())).unwrap();
        c.validate().unwrap();
        assert_eq!(c.probe_budget(), 5);
        for bad in ["0", "75001"] {
            let c = Config::parse(&format!("{}[cache]\nprobe_budget = {bad}\n", full())).unwrap();
            let err = c.validate().unwrap_err();
            assert_eq!(err.key(), Some("cache.probe_budget"), "{err}");
            assert!(err.to_string().contains("[cache] probe_budget"), "{err}");
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
            let err = refused(&text);
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
        let err = refused(&text);
        assert!(
            err.contains("batch_max_items") && err.contains("50"),
            "{err}"
        );
        let text = format!("{}[upload]\nchunk_size = 1000\n", full());
        let err = refused(&text);
        assert!(err.contains("chunk_size"), "{err}");
        let text = format!("{}[upload]\nspool_dir = \"/nonexistent/spool\"\n", full());
        let err = refused(&text);
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
    fn invalid_values_carry_their_key() {
        let key_of = |text: &str| {
            let err = Config::parse(text).unwrap().validate().unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { .. }), "{err:?}");
            err.key().unwrap().to_string()
        };
        let cases = [
            ("[upload]\nbatch_max_items = 0\n", "upload.batch_max_items"),
            ("[upload]\nchunk_size = 1\n", "upload.chunk_size"),
            ("[cache]\nlisting_ttl = 0\n", "cache.listing_ttl"),
            (
                "[google]\ndaily_media_quota = 0\n",
                "google.daily_media_quota",
            ),
            (
                "[google]\nurl_max_age_secs = 1\n",
                "google.url_max_age_secs",
            ),
            ("[server]\ntls_cert = \"c.pem\"\n", "server.tls_key"),
            ("[server]\nlisten = \"0.0.0.0:1\"\n", "server.users"),
            ("[google]\napi_base = \"ftp://x\"\n", "google.api_base"),
            ("[webdav]\nlink_ttl_secs = 0\n", "webdav.link_ttl_secs"),
        ];
        for (section, key) in cases {
            let text = if section.starts_with("[google]") {
                full().replace("[google]\n", section)
            } else {
                format!("{}{section}", full())
            };
            assert_eq!(key_of(&text), key, "{section}");
        }
        let no_id = "[google]\nclient_secret = \"s\"\nrefresh_token = \"r\"\n";
        assert_eq!(key_of(no_id), "google.client_id");
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../../../webdav.toml.example");
        let c = Config::parse(text).unwrap();
        assert_eq!(c.webdav.policy, Policy::NativeProxy);
    }
}
