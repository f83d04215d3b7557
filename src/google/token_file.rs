//! The token file: where `gphotos-dav auth` keeps the refresh token.
//!
//! It holds a secret that grants access to the user's photos, so it is created with mode 0600
//! (in a directory created 0700) and replaced atomically: a new file is written beside it,
//! flushed, then renamed over the old one, so a crash never leaves a half-written token.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What `gphotos-dav auth` keeps between runs: the refresh token (a secret, so the file is
/// 0600 and replaced atomically) and the scopes Google granted with it.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenFile {
    pub refresh_token: String,
    /// Space-separated scopes Google granted.
    #[serde(default)]
    pub scopes: String,
    #[serde(default)]
    pub obtained_at: String,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile")
            .field("refresh_token", &"<redacted>")
            .field("scopes", &self.scopes)
            .field("obtained_at", &self.obtained_at)
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
    }
}
