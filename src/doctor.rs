//! `gphotos-dav doctor`: checks everything between a config file and a working drive, and
//! says how to fix what fails. Each check prints one line; any failure makes the exit status
//! non-zero. On a family server (`[[library]]`) the Google checks run once per library, each
//! line of a library's block naming it (`[bob] token: ...`), and every library is checked even
//! when one fails.

use std::path::Path;

use crate::google::{Google, GoogleError, RetryPolicy, SCOPES};
use crate::server::Config;

/// How one check ended: fine, worth a look, or failed with the fix to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok(String),
    Warn(String),
    Fail { problem: String, fix: String },
}

/// One line of the doctor's report: what was checked and how it ended.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
    /// The library (a family server's mount) this check is about; None for the server's.
    pub library: Option<String>,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match &self.library {
            Some(mount) => format!("[{mount}] {}", self.name),
            None => self.name.to_string(),
        };
        match &self.outcome {
            Outcome::Ok(detail) => write!(f, "ok    {name}: {detail}"),
            Outcome::Warn(detail) => write!(f, "warn  {name}: {detail}"),
            Outcome::Fail { problem, fix } => {
                write!(f, "FAIL  {name}: {problem}\n      fix: {fix}")
            }
        }
    }
}

fn ok(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        outcome: Outcome::Ok(detail.into()),
        library: None,
    }
}

fn fail(name: &'static str, problem: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        outcome: Outcome::Fail {
            problem: problem.into(),
            fix: fix.into(),
        },
        library: None,
    }
}

/// Runs every check for the config at `path`, printing each line through `report`.
pub async fn run(path: &Path, mut report: impl FnMut(&Check)) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut push = |c: Check, checks: &mut Vec<Check>| {
        report(&c);
        checks.push(c);
    };
    let auth_fix = format!("gphotos-dav auth --config {}", path.display());

    let config = match Config::load(path).and_then(|c| c.validate().map(|_| c)) {
        Ok(c) => {
            push(
                ok("config", format!("{} is valid", path.display())),
                &mut checks,
            );
            c
        }
        Err(e) => {
            let fix = if e.to_string().contains("refresh token") {
                auth_fix.clone()
            } else {
                "edit the file (every key is documented in webdav.toml.example)".into()
            };
            push(fail("config", e.to_string(), fix), &mut checks);
            return checks;
        }
    };

    push(check_listen(&config).await, &mut checks);
    push(check_access(&config), &mut checks);

    if !config.is_family() {
        for c in check_google(&config, &auth_fix).await {
            push(c, &mut checks);
        }
        return checks;
    }
    for lib in &config.libraries {
        let fix = format!("{auth_fix} --library {}", lib.mount);
        for mut c in check_google(&config.library_config(lib), &fix).await {
            c.library = Some(lib.mount.clone());
            push(c, &mut checks);
        }
    }
    checks
}

/// The checks of one account: its token, scopes and APIs (stopping at the first check the
/// others depend on).
async fn check_google(config: &Config, auth_fix: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    let push = |c: Check, checks: &mut Vec<Check>| checks.push(c);
    let auth_fix = auth_fix.to_string();
    let google = match config
        .credentials()
        .map_err(|e| e.to_string())
        .and_then(|c| {
            Google::new(&c, &config.endpoints(), RetryPolicy::default()).map_err(|e| e.to_string())
        }) {
        Ok(g) => g,
        Err(e) => {
            push(fail("google", e, auth_fix), &mut checks);
            return checks;
        }
    };
    let tokens = google.library.tokens().clone();
    match tokens.access_token().await {
        Ok(_) => push(ok("token", "the refresh token works"), &mut checks),
        Err(e) => {
            let fix = match e {
                GoogleError::InvalidClient(_) => {
                    "check [google] client_id and client_secret against the Cloud console".into()
                }
                _ => auth_fix.clone(),
            };
            push(fail("token", e.to_string(), fix), &mut checks);
            return checks;
        }
    }
    let granted = tokens.granted_scopes().await.unwrap_or_default();
    let missing: Vec<&str> = SCOPES
        .iter()
        .copied()
        .filter(|s| !granted.split_whitespace().any(|g| g == *s))
        .collect();
    if missing.is_empty() {
        push(ok("scopes", "all scopes granted"), &mut checks);
    } else if missing.contains(&SCOPES[0]) {
        push(
            fail(
                "scopes",
                format!("not granted: {}", missing.join(" ")),
                format!("{auth_fix} --scopes all"),
            ),
            &mut checks,
        );
    } else {
        push(
            Check {
                name: "scopes",
                outcome: Outcome::Warn(format!(
                    "reading works; not granted: {} (uploads, album renames or picking \
                     need them: {auth_fix} --scopes all)",
                    missing.join(" ")
                )),
                library: None,
            },
            &mut checks,
        );
    }
    push(
        match google.library.list_albums_page().await {
            Ok(n) => ok(
                "library-api",
                format!("enabled ({n} albums on the first page)"),
            ),
            Err(GoogleError::ApiDisabled { enable_url }) => fail(
                "library-api",
                "the Photos Library API is disabled for this OAuth client's project",
                format!("enable it at {enable_url}"),
            ),
            Err(GoogleError::InsufficientScopes) => fail(
                "library-api",
                "the token lacks the read scope",
                format!("{auth_fix} --scopes all"),
            ),
            Err(e) => fail(
                "library-api",
                e.to_string(),
                "check the network and api_base",
            ),
        },
        &mut checks,
    );
    push(check_picker(config, &google).await, &mut checks);
    checks
}

async fn check_listen(config: &Config) -> Check {
    let addr = config.server.listen;
    match tokio::net::TcpListener::bind(addr).await {
        Ok(_) => ok("listen", format!("{addr} is free")),
        Err(e) => fail(
            "listen",
            format!("cannot listen on {addr}: {e}"),
            "stop what uses the port or set [server] listen",
        ),
    }
}

fn check_access(config: &Config) -> Check {
    let s = &config.server;
    let scheme = match (&s.tls_cert, &s.tls_key) {
        (Some(cert), Some(key)) => match crate::server::tls::acceptor(cert, key) {
            Ok(_) => "https",
            Err(e) => {
                return fail(
                    "access",
                    e,
                    "point tls_cert/tls_key at a PEM chain and its key",
                );
            }
        },
        _ => "http",
    };
    let loopback = s.listen.ip().is_loopback();
    match (s.users.len(), scheme, loopback) {
        (0, _, true) => ok("access", format!("anonymous {scheme} on loopback only")),
        (0, _, false) => Check {
            name: "access",
            outcome: Outcome::Warn(format!(
                "anonymous {scheme} on {}: anyone who can reach it reads the library",
                s.listen
            )),
            library: None,
        },
        (n, "http", false) => Check {
            name: "access",
            outcome: Outcome::Warn(format!(
                "{n} user(s), but passwords cross the network in clear over http (Windows \
                 refuses Basic auth over http by default): set tls_cert and tls_key"
            )),
            library: None,
        },
        (n, scheme, _) => ok("access", format!("{n} user(s) over {scheme}")),
    }
}

/// Whether the Picker API answers for this token: any Google answer about an unknown session
/// proves it is reachable and enabled; a 403 tells which of the two is wrong.
async fn check_picker(config: &Config, google: &Google) -> Check {
    let url = format!(
        "{}/v1/sessions/gphotos-dav-doctor",
        config.google.picker_base.trim_end_matches('/')
    );
    match google.library.probe_url(&url).await {
        Ok(status) if status == 401 || status == 403 => fail(
            "picker-api",
            format!("the Picker API answered {status}"),
            "enable the Photos Picker API in the Cloud console and grant the picker scope \
             (gphotos-dav auth --scopes all)",
        ),
        Ok(status) if status < 500 => ok("picker-api", format!("answers (HTTP {status})")),
        Ok(status) => fail(
            "picker-api",
            format!("the Picker API answered {status}"),
            "retry later",
        ),
        Err(e) => fail(
            "picker-api",
            e.to_string(),
            "check the network and picker_base",
        ),
    }
}
