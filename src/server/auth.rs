//! WebDAV authentication: HTTP Basic against argon2id password hashes.
//!
//! Why a cache: argon2id is deliberately slow (tens of milliseconds), and WebDAV clients send
//! their credentials with every request — a Finder window opening a folder of photos makes
//! hundreds. A successful verification is remembered for a few minutes under a keyed SHA-256
//! of (name, password) with a per-process random key, so the cache never holds anything that
//! could be used outside this process. Failures are never cached and always cost a full
//! verification, also for unknown user names (against a dummy hash), so timing does not tell
//! which names exist.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use sha2::{Digest, Sha256};

/// How long a verified (name, password) pair is trusted without running argon2 again.
const CACHE_TTL: Duration = Duration::from_secs(300);

/// One configured user (`[[server.users]]`), as the [`Authenticator`] keeps it. Its `Debug`
/// never shows the password hash.
#[derive(Clone)]
pub struct User {
    pub name: String,
    /// The PHC string, validated when the configuration was loaded.
    pub password_hash: String,
    pub read_only: bool,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// Who made a request: the authentication stage's finding, kept in the request's extensions
/// for the stages and routes below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No users are configured: everyone is let in (only on loopback unless allowed).
    Anonymous,
    User {
        name: String,
        read_only: bool,
    },
}

/// Why a request was not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization: Basic` header (the normal first request of every client).
    Missing,
    /// Credentials were sent and are wrong, for this user name.
    Wrong { name: String },
    /// The header could not be decoded.
    Malformed,
}

/// The configured users and the cache of recent successful logins: what the authentication
/// stage (`layers::auth`) asks whether a request's `Authorization` header lets it in. One per
/// server, shared by every connection, so that the cache spares argon2 across all of them.
pub struct Authenticator {
    users: HashMap<String, User>,
    /// A hash of a random password, verified for unknown names so they cost the same time.
    dummy_hash: String,
    cache_key: [u8; 32],
    cache: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Authenticator {
    pub fn new(users: Vec<User>) -> Arc<Self> {
        let mut cache_key = [0u8; 32];
        OsRng.fill_bytes(&mut cache_key);
        let mut random = [0u8; 16];
        OsRng.fill_bytes(&mut random);
        let dummy_hash = hash_password(&hex::encode(random)).expect("hashing a random password");
        Arc::new(Authenticator {
            users: users.into_iter().map(|u| (u.name.clone(), u)).collect(),
            dummy_hash,
            cache_key,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Whether any user is configured (if not, every request is anonymous).
    pub fn enabled(&self) -> bool {
        !self.users.is_empty()
    }

    /// Checks an `Authorization` header value.
    pub async fn authenticate(self: &Arc<Self>, header: Option<&str>) -> Result<Identity, Denied> {
        if !self.enabled() {
            return Ok(Identity::Anonymous);
        }
        let header = header.ok_or(Denied::Missing)?;
        let (name, password) = parse_basic(header).ok_or(Denied::Malformed)?;
        let key = self.cache_key(&name, &password);
        let user = self.users.get(&name).cloned();
        if let Some(user) = &user
            && self.cached(&key)
        {
            return Ok(Identity::User {
                name: user.name.clone(),
                read_only: user.read_only,
            });
        }
        let hash = user
            .as_ref()
            .map_or(self.dummy_hash.clone(), |u| u.password_hash.clone());
        // argon2 takes tens of milliseconds of CPU: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        match user {
            Some(user) if ok => {
                self.cache.lock().insert(key, Instant::now());
                Ok(Identity::User {
                    name: user.name,
                    read_only: user.read_only,
                })
            }
            _ => Err(Denied::Wrong { name }),
        }
    }

    fn cache_key(&self, name: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.cache_key);
        h.update((name.len() as u64).to_be_bytes());
        h.update(name.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    fn cached(&self, key: &[u8; 32]) -> bool {
        let mut cache = self.cache.lock();
        match cache.get(key) {
            Some(at) if at.elapsed() < CACHE_TTL => true,
            Some(_) => {
                cache.remove(key);
                false
            }
            None => false,
        }
    }
}

/// The user name an `Authorization: Basic` header claims (for the access log; the password is
/// dropped here).
pub fn basic_user(header: &str) -> Option<String> {
    parse_basic(header).map(|(name, _)| name)
}

/// Decodes `Basic base64(name:password)`.
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_string(), password.to_string()))
}

/// An argon2id PHC string for `password`, with a random salt and the crate's default cost.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Checks that a configured hash is an argon2 PHC string this program can verify.
pub fn validate_hash(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|e| e.to_string())?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err(format!(
            "algorithm {} is not argon2id",
            parsed.algorithm.as_str()
        ));
    }
    Ok(())
}

/// Constant-time comparison happens inside argon2's verifier.
fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(name: &str, pw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{name}:{pw}"))
        )
    }

    #[tokio::test]
    async fn verifies_and_caches() {
        let hash = hash_password("s3cret pass").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        validate_hash(&hash).unwrap();
        let auth = Authenticator::new(vec![User {
            name: "alice".into(),
            password_hash: hash,
            read_only: true,
        }]);
        assert_eq!(auth.authenticate(None).await, Err(Denied::Missing));
        assert_eq!(
            auth.authenticate(Some("Bearer x")).await,
            Err(Denied::Malformed)
        );
        assert_eq!(
            auth.authenticate(Some(&basic("alice", "wrong"))).await,
            Err(Denied::Wrong {
                name: "alice".into()
            })
        );
        assert_eq!(
            auth.authenticate(Some(&basic("bob", "s3cret pass"))).await,
            Err(Denied::Wrong { name: "bob".into() })
        );
        for _ in 0..2 {
            assert_eq!(
                auth.authenticate(Some(&basic("alice", "s3cret pass")))
                    .await,
                Ok(Identity::User {
                    name: "alice".into(),
                    read_only: true
                })
            );
        }
        assert_eq!(auth.cache.lock().len(), 1);
    }

    #[tokio::test]
    async fn no_users_means_anonymous() {
        let auth = Authenticator::new(vec![]);
        assert_eq!(auth.authenticate(None).await, Ok(Identity::Anonymous));
    }

    #[test]
    fn rejects_non_argon2_hashes() {
        assert!(validate_hash("plain").is_err());
        assert!(validate_hash("$2b$12$abcdefghijklmnopqrstuv").is_err());
    }
}
