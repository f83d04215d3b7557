//! The token file: where `gphotos-dav auth` keeps the refresh token.
//!
//! It holds a secret that grants access to the user's photos, so it is created with mode 0600
//! (in a directory created 0700) and replaced atomically: a new file is written beside it,
//! flushed, then renamed over the old one, so a crash never leaves a half-written token.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What `gphotos-dav auth` keeps between runs: the refresh token (a secret, so the file is
/// 0600 and replaced atomically), the scopes Google granted with it, and the Google account
/// it belongs to.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenFile {
    pub refresh_token: String,
    /// Space-separated scopes Google granted.
    #[serde(default)]
    pub scopes: String,
    #[serde(default)]
    pub obtained_at: String,
    /// The Google account's stable id (the `sub` of the `id_token` that came with the refresh
    /// token). The metadata store's identity includes it, so that what was learned from one
    /// account (listings, upload records) is never trusted for another: the Photos scopes
    /// alone cannot tell who signed in, and one OAuth client may serve a whole family.
    /// `None` in a file written by an earlier release (no `openid` scope): re-running `auth`
    /// records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile")
            .field("refresh_token", &"<redacted>")
            .field("scopes", &self.scopes)
            .field("obtained_at", &self.obtained_at)
            .field("account", &self.account)
            .finish()
    }
}

/// The default location: `<user config dir>/gphotos-dav/token.json`.
pub fn default_path() -> PathBuf {
    dirs::config_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("gphotos-dav")
        .join("token.json")
}

/// Reads a token file; `Ok(None)` when it does not exist.
pub fn read(path: &Path) -> Result<Option<TokenFile>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("the token file {} is not valid: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "cannot read the token file {}: {e}",
            path.display()
        )),
    }
}

/// Writes `token` to `path` atomically with mode 0600.
pub fn write(path: &Path, token: &TokenFile) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write the token file {}: {e}", path.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(fail)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(&serde_json::to_vec_pretty(token).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_atomically_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("token.json");
        assert!(read(&path).unwrap().is_none());
        let token = TokenFile {
            refresh_token: "1//secret".into(),
            scopes: "a b".into(),
            obtained_at: "now".into(),
            account: Some("1234567890".into()),
        };
        write(&path, &token).unwrap();
        write(&path, &token).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let dir_mode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(dir_mode, 0o700);
        }
        assert_eq!(read(&path).unwrap().unwrap().refresh_token, "1//secret");
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        assert!(!format!("{token:?}").contains("secret"));
        assert_eq!(
            read(&path).unwrap().unwrap().account.as_deref(),
            Some("1234567890")
        );
    }

    /// A token file written before the account was recorded still loads, without one.
    #[test]
    fn an_earlier_file_without_account_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.json");
        std::fs::write(
            &path,
            r#"{"refresh_token":"1//old","scopes":"a","obtained_at":"then"}"#,
        )
        .unwrap();
        let file = read(&path).unwrap().unwrap();
        assert_eq!(file.refresh_token, "1//old");
        assert_eq!(file.account, None);
    }
}
