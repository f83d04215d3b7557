//! `[[library]]`: a family server, several Google accounts served as top folders of one tree
//! (issue #19; the user's view is in `docs/family.md`).
//!
//! Each entry is a `mount` (its folder name at `/`) and the `[google]` keys of one account.
//! Everything else of the file (`[server]`, `[webdav]`, `[cache]`, `[upload]`) stays
//! server-wide. The server builds one tree per library from [`super::Config::library_config`]:
//! the whole file's configuration with `[google]` replaced by the library's, its own token file,
//! metadata store and content cache directory, so that the code serving one library is the code
//! that serves a single `[google]` today.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use super::google::GoogleConfig;

/// Mount names the root cannot hold: `d` is where signed links live (`server::signed`), `_`
/// where the web routes of #14 go. A library there would be unreachable.
pub const RESERVED_MOUNTS: [&str; 2] = ["d", "_"];

/// One `[[library]]` entry: a folder at `/` and the Google account behind it.
#[derive(Debug, Clone)]
pub struct LibraryConfig {
    /// The folder's name at `/`: one path segment every client can type (see [`check_mount`]).
    pub mount: String,
    /// The account's `[google]` keys, with their defaults.
    pub google: GoogleConfig,
    /// The part of the Google project's daily quotas this library may spend (`daily_share`,
    /// more than 0, at most 1; None: no bound of its own), so that one person's `rclone check`
    /// cannot spend the day of everyone sharing the OAuth client (see
    /// `google::quota::share`).
    pub daily_share: Option<f64>,
}

/// `mount` plus every `[google]` key, refused strictly like `[google]` itself: the keys other
/// than `mount` are read as a `[google]` table, so an unknown key is named the same way.
impl<'de> Deserialize<'de> for LibraryConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(d)?;
        let mount = match table.remove("mount") {
            Some(toml::Value::String(s)) => s,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "[[library]] mount must be a string (the folder's name at /), not {}",
                    other.type_str()
                )));
            }
            None => {
                return Err(D::Error::custom(
                    "[[library]] needs mount = \"<name>\", the folder this account is served \
                     as at /",
                ));
            }
        };
        let daily_share = match table.remove("daily_share") {
            None => None,
            Some(toml::Value::Float(f)) => Some(f),
            Some(toml::Value::Integer(i)) => Some(i as f64),
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "[[library]] mount = {mount:?}: daily_share must be a number (the part of \
                     the project's daily quotas this library may spend, such as 0.5), not {}",
                    other.type_str()
                )));
            }
        };
        let google: GoogleConfig =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    D::Error::custom(format!("[[library]] mount = {mount:?}: {}", e.message()))
                })?;
        Ok(LibraryConfig {
            mount,
            google,
            daily_share,
        })
    }
}

/// Whether `mount` is one path segment every client and OS takes as it is: ASCII letters,
/// digits, `-`, `_` and `.` (not first), at most 64 bytes, not a reserved name.
pub fn check_mount(mount: &str) -> Result<(), ConfigError> {
    let safe = !mount.is_empty()
        && mount.len() <= 64
        && !mount.starts_with('.')
        && mount
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !safe {
        return Err(ConfigError::invalid(
            "library.mount",
            format!(
                "[[library]] mount = {mount:?} is not one safe path segment: use 1 to 64 ASCII \
                 letters, digits, '-', '_' or '.' (not first), such as \"alice\""
            ),
        ));
    }
    if RESERVED_MOUNTS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(mount))
    {
        return Err(ConfigError::invalid(
            "library.mount",
            format!(
                "[[library]] mount = {mount:?} is reserved ({} are the server's own paths): \
                 choose another name",
                RESERVED_MOUNTS.map(|r| format!("/{r}/")).join(" and ")
            ),
        ));
    }
    Ok(())
}

/// Checks the libraries together: safe, distinct mounts (compared without case: Windows and
/// macOS clients fold it), each library's quota and URL limits, and one set of quota values
/// per OAuth client (the quotas belong to the Google project, which the libraries sharing a
/// client share).
pub fn check_all(libraries: &[LibraryConfig]) -> Result<(), ConfigError> {
    let mut seen: HashMap<String, &str> = HashMap::new();
    let mut quotas: HashMap<&str, (&str, u64, u64)> = HashMap::new();
    for lib in libraries {
        check_mount(&lib.mount)?;
        if let Some(first) = seen.insert(lib.mount.to_ascii_lowercase(), &lib.mount) {
            return Err(ConfigError::invalid(
                "library.mount",
                format!(
                    "[[library]] mount = {:?} appears twice (as {first:?} and {:?}; clients \
                     ignore case): give each library its own folder name",
                    lib.mount, lib.mount
                ),
            ));
        }
        lib.google
            .validate_limits()
            .map_err(|e| in_library(&lib.mount, e))?;
        if let Some(share) = lib.daily_share
            && !(share > 0.0 && share <= 1.0)
        {
            return Err(ConfigError::invalid(
                "library.daily_share",
                format!(
                    "[[library]] mount = {:?}: daily_share = {share} is not a part of the \
                     project's daily quotas: give a number more than 0 and at most 1 (0.5: \
                     half of each day's quotas), or leave it out for no bound of its own",
                    lib.mount
                ),
            ));
        }
        let client = lib.google.client_id.as_deref().unwrap_or("");
        let g = &lib.google;
        match quotas.get(client) {
            None => {
                quotas.insert(client, (&lib.mount, g.daily_quota, g.daily_media_quota));
            }
            Some(&(other, api, media)) => {
                let key = if api != g.daily_quota {
                    "daily_quota"
                } else if media != g.daily_media_quota {
                    "daily_media_quota"
                } else {
                    continue;
                };
                return Err(ConfigError::invalid(
                    format!("library.{key}"),
                    format!(
                        "[[library]] {:?} and {other:?} share the OAuth client {client:?} but \
                         give it different {key} values: the quota belongs to the Google \
                         project, give both the same value (or leave it out of both)",
                        lib.mount
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Where a rooted user's `/` is (`[[server.users]] root`): a library and a folder inside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserRoot {
    /// The library's mount, as its `[[library]]` entry spells it.
    pub mount: String,
    /// The folder inside the library's tree, as decoded path segments (`root =
    /// "/alice/album/Trip"` → `["album", "Trip"]`); empty for the library's own folder.
    pub path: Vec<String>,
}

/// Reads a user's `root`: `/<mount>` of one of `libraries`, then any folder inside it. What
/// it is not, as the end of a sentence that starts with the key.
pub fn parse_root(libraries: &[LibraryConfig], root: &str) -> Result<UserRoot, String> {
    let mounts = || {
        libraries
            .iter()
            .map(|l| format!("/{}", l.mount))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(rest) = root.strip_prefix('/') else {
        return Err(format!(
            "is not an absolute path: start it with a library's folder, one of {}",
            mounts()
        ));
    };
    let mut segments = rest.trim_end_matches('/').split('/');
    let first = segments.next().unwrap_or("");
    let Some(lib) = libraries
        .iter()
        .find(|l| l.mount.eq_ignore_ascii_case(first))
    else {
        return Err(format!(
            "does not start with a library's folder: use one of {} (or a folder inside one, \
             such as \"/{}/album/Trip\")",
            mounts(),
            libraries.first().map_or("alice", |l| l.mount.as_str())
        ));
    };
    let path: Vec<String> = segments.map(str::to_string).collect();
    if let Some(bad) = path.iter().find(|s| {
        s.is_empty()
            || *s == "."
            || *s == ".."
            || s.contains('\\')
            || s.chars().any(char::is_control)
    }) {
        return Err(format!(
            "has the segment {bad:?}: a root is a plain path of folder names, without empty, \
             '.' or '..' segments"
        ));
    }
    Ok(UserRoot {
        mount: lib.mount.clone(),
        path,
    })
}

/// An error of a library's `[google]` keys, told as the `[[library]]` entry's.
pub fn in_library(mount: &str, e: ConfigError) -> ConfigError {
    match e {
        ConfigError::Invalid { key, reason } => ConfigError::Invalid {
            key: key.replacen("google.", "library.", 1),
            reason: format!(
                "[[library]] mount = {mount:?}: {}",
                reason.replace("[google] ", "")
            ),
        },
        other => other,
    }
}

/// A library's token file when `token_file` is not given: `<user config
/// dir>/gphotos-dav/<mount>/token.json`, one per account.
pub fn default_token_file(mount: &str) -> PathBuf {
    dirs::config_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("gphotos-dav")
        .join(mount)
        .join("token.json")
}

/// `path` with `-<mount>` added to its file stem (`metadata.sqlite` → `metadata-alice.sqlite`):
/// each library's store is a file of its own beside where a single library's would be.
pub fn beside(path: &std::path::Path, mount: &str) -> PathBuf {
    if path.as_os_str() == ":memory:" {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{mount}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{mount}"),
    };
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    fn lib(mount: &str) -> String {
        format!(
            "[[library]]\nmount = \"{mount}\"\nclient_id = \"id\"\nclient_secret = \"s\"\n\
             refresh_token = \"r-{mount}\"\n"
        )
    }

    /// The key and message of the start error of `text`.
    fn refused(text: &str) -> (String, String) {
        let err = Config::parse(text).unwrap().validate().unwrap_err();
        (err.key().unwrap_or("").to_string(), err.to_string())
    }

    #[test]
    fn libraries_parse_with_their_google_keys_and_defaults() {
        let text = format!(
            "{}timezone = \"Europe/Paris\"\ntoken_file = \"/t/alice.json\"\n{}",
            lib("alice"),
            lib("bob")
        );
        let c = Config::parse(&text).unwrap();
        c.validate().unwrap();
        assert!(c.is_family());
        assert_eq!(c.libraries.len(), 2);
        assert_eq!(c.libraries[0].mount, "alice");
        assert_eq!(c.libraries[0].google.timezone, chrono_tz::Europe::Paris);
        assert_eq!(c.libraries[1].google.timezone, chrono_tz::UTC);
        assert_eq!(
            c.libraries[1].google.refresh_token.as_deref(),
            Some("r-bob")
        );
        assert_eq!(c.libraries[1].google.daily_quota, 10_000);
        // Each library's own configuration: its keys, token file, store and content cache.
        let mut c = c;
        c.cache.path = Some("/cache/metadata.sqlite".into());
        c.cache.content_dir = Some("/cache/content".into());
        c.cache.content_max = Some("1 GiB".into());
        let alice = c.library_config(&c.libraries[0]);
        let bob = c.library_config(&c.libraries[1]);
        assert_eq!(alice.google.timezone, chrono_tz::Europe::Paris);
        assert_eq!(
            alice.token_file_path(),
            std::path::PathBuf::from("/t/alice.json")
        );
        assert!(
            bob.token_file_path()
                .ends_with("gphotos-dav/bob/token.json"),
            "{:?}",
            bob.token_file_path()
        );
        assert_eq!(
            alice.cache.store_path(),
            std::path::PathBuf::from("/cache/metadata-alice.sqlite")
        );
        assert_eq!(
            bob.cache.content_dir,
            Some(std::path::PathBuf::from("/cache/content/bob"))
        );
        assert_eq!(alice.mount.as_deref(), Some("alice"));
        assert!(!alice.is_family());
        assert_eq!(c.library("BOB").unwrap().mount, "bob");
    }

    #[test]
    fn google_and_library_together_are_refused() {
        let text = format!(
            "[google]\nclient_id = \"id\"\nclient_secret = \"s\"\nrefresh_token = \"r\"\n{}",
            lib("alice")
        );
        let (key, msg) = refused(&text);
        assert_eq!(key, "library", "{msg}");
        assert!(
            msg.contains("[google]") && msg.contains("[[library]]"),
            "{msg}"
        );
        // A file with [google] only is not a family server.
        let c = Config::parse("[google]\nclient_id = \"id\"\n").unwrap();
        assert!(c.google_given && !c.is_family());
    }

    #[test]
    fn mounts_must_be_safe_distinct_and_not_reserved() {
        for bad in [
            "",
            "a/b",
            "..",
            ".hidden",
            "a b",
            "été",
            "a%2fb",
            "x?y",
            &"a".repeat(65),
        ] {
            let (key, msg) = refused(&lib(bad));
            assert_eq!(key, "library.mount", "{bad:?}: {msg}");
            assert!(msg.contains("safe path segment"), "{bad:?}: {msg}");
        }
        for reserved in ["d", "_", "D"] {
            let (key, msg) = refused(&lib(reserved));
            assert_eq!(key, "library.mount", "{reserved}: {msg}");
            assert!(msg.contains("reserved") && msg.contains("/d/"), "{msg}");
        }
        let (key, msg) = refused(&format!("{}{}", lib("kids"), lib("Kids")));
        assert_eq!(key, "library.mount");
        assert!(msg.contains("appears twice"), "{msg}");
        let err = Config::parse("[[library]]\nclient_id = \"id\"\n").unwrap_err();
        assert!(err.contains("mount"), "{err}");
        let err = Config::parse("[[library]]\nmount = 3\n").unwrap_err();
        assert!(err.contains("mount must be a string"), "{err}");
        let err = Config::parse(&format!("{}clientid = \"x\"\n", lib("a"))).unwrap_err();
        assert!(
            err.contains("unknown field `clientid`") && err.contains("\"a\""),
            "{err}"
        );
        for ok in ["alice", "Bob-2", "kids_photos", "a.b"] {
            Config::parse(&lib(ok)).unwrap().validate().unwrap();
        }
    }

    #[test]
    fn one_client_has_one_set_of_quotas() {
        let text = format!("{}daily_quota = 500\n{}", lib("alice"), lib("bob"));
        let (key, msg) = refused(&text);
        assert_eq!(key, "library.daily_quota", "{msg}");
        assert!(
            msg.contains("\"bob\"") && msg.contains("\"alice\""),
            "{msg}"
        );
        let text = format!(
            "{}daily_media_quota = 500\n{}daily_media_quota = 600\n",
            lib("alice"),
            lib("bob")
        );
        assert_eq!(refused(&text).0, "library.daily_media_quota");
        // The same values, or another client: fine.
        let same = format!(
            "{}daily_quota = 500\n{}daily_quota = 500\n",
            lib("alice"),
            lib("bob")
        );
        Config::parse(&same).unwrap().validate().unwrap();
        let other = format!(
            "{}daily_quota = 500\n{}",
            lib("alice"),
            lib("bob").replace("\"id\"", "\"other\"")
        );
        Config::parse(&other).unwrap().validate().unwrap();
        // A library's own limits are checked and named as the library's.
        let (key, msg) = refused(&format!("{}url_max_age_secs = 1\n", lib("alice")));
        assert_eq!(key, "library.url_max_age_secs");
        assert!(msg.contains("\"alice\""), "{msg}");
        let (key, _) = refused(&format!("{}api_base = \"ftp://x\"\n", lib("alice")));
        assert_eq!(key, "library.api_base");
        let no_secret = lib("alice").replace("client_secret = \"s\"\n", "");
        assert_eq!(refused(&no_secret).0, "library.client_secret");
    }

    #[test]
    fn a_daily_share_is_a_part_of_the_day() {
        let text = format!(
            "{}daily_share = 0.25\n{}daily_share = 1\n",
            lib("alice"),
            lib("bob")
        );
        let c = Config::parse(&text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.libraries[0].daily_share, Some(0.25));
        assert_eq!(c.libraries[1].daily_share, Some(1.0));
        assert_eq!(
            Config::parse(&lib("carol")).unwrap().libraries[0].daily_share,
            None
        );
        for bad in ["0", "-0.5", "1.5", "nan", "inf"] {
            let (key, msg) = refused(&format!("{}daily_share = {bad}\n", lib("alice")));
            assert_eq!(key, "library.daily_share", "{bad}: {msg}");
            assert!(
                msg.contains("\"alice\"") && msg.contains("at most 1"),
                "{bad}: {msg}"
            );
        }
        let err = Config::parse(&format!("{}daily_share = \"half\"\n", lib("alice"))).unwrap_err();
        assert!(err.contains("daily_share must be a number"), "{err}");
    }

    #[test]
    fn a_library_without_its_token_is_not_a_start_error() {
        let text = lib("alice").replace(
            "refresh_token = \"r-alice\"\n",
            "token_file = \"/nonexistent/alice.json\"\n",
        );
        Config::parse(&text).unwrap().validate().unwrap();
    }

    #[test]
    fn users_roots_name_a_library() {
        let hash = crate::server::auth::hash_password("pw").unwrap();
        let user = |root: &str| {
            format!(
                "[[server.users]]\nname = \"u\"\npassword_hash = \"{hash}\"\nroot = \"{root}\"\n"
            )
        };
        let text = format!("{}{}{}", user("/alice"), lib("alice"), lib("bob"));
        let c = Config::parse(&text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.user_roots()["u"].mount, "alice");
        assert!(c.user_roots()["u"].path.is_empty());
        // Deeper roots: a folder inside the library, the mount as configured.
        for (root, path) in [
            ("/alice/album/Trip 2024", vec!["album", "Trip 2024"]),
            ("/ALICE/media/", vec!["media"]),
        ] {
            let c = Config::parse(&format!("{}{}", user(root), lib("alice"))).unwrap();
            c.validate().unwrap();
            assert_eq!(c.user_roots()["u"].mount, "alice", "{root}");
            assert_eq!(c.user_roots()["u"].path, path, "{root}");
        }
        for bad in ["/alice/../bob", "/alice//album", "/alice/./album"] {
            let (key, msg) = refused(&format!("{}{}", user(bad), lib("alice")));
            assert_eq!(key, "server.users", "{bad}: {msg}");
            assert!(msg.contains("segment"), "{bad}: {msg}");
        }
        for bad in ["/carol", "alice", "/carol/album", "/"] {
            let text = format!("{}{}", user(bad), lib("alice"));
            let (key, msg) = refused(&text);
            assert_eq!(key, "server.users", "{bad}: {msg}");
            assert!(msg.contains("/alice"), "{bad}: {msg}");
        }
        let single = format!(
            "[google]\nclient_id = \"id\"\nclient_secret = \"s\"\nrefresh_token = \"r\"\n{}",
            user("/alice")
        );
        let (key, msg) = refused(&single);
        assert_eq!(key, "server.users");
        assert!(msg.contains("[[library]]"), "{msg}");
    }
}
