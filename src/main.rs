//! The command line: parses arguments, sets up logging, and hands over to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use gphotos_dav::google::authorize::{AuthorizeRequest, ScopeSet, authorize};
use gphotos_dav::google::token_file;
use gphotos_dav::server::config::Policy;
use gphotos_dav::server::{Config, Server};
// The emulator is a crate of its own, in the binary only with the `emulator` feature (default).
#[cfg(feature = "emulator")]
use gphotos_dav_emulator::{self as emulator, Emulator, EmulatorOptions};

#[derive(Parser)]
#[command(
    name = "gphotos-dav",
    version,
    about = "Google Photos as a WebDAV network drive"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a Google Photos library over WebDAV.
    Serve {
        /// The configuration file (see webdav.toml.example).
        #[arg(long, short)]
        config: PathBuf,
        /// Listen on this address instead of [server] listen.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Serve without [[server.users]] on an address other machines can reach.
        #[arg(long)]
        allow_anonymous: bool,
        /// How a GET of a file is answered, instead of [webdav] policy:
        /// native_proxy, 302_redirect or use_proxy_url (see docs/policies.md).
        #[arg(long, value_parser = str::parse::<Policy>)]
        policy: Option<Policy>,
    },
    /// Read a password from standard input and print its argon2id hash, for
    /// [[server.users]] password_hash.
    HashPassword,
    /// Sign in with Google (loopback redirect + PKCE) and save the refresh token in
    /// [google] token_file (mode 0600).
    Auth {
        #[arg(long, short)]
        config: PathBuf,
        /// Which access to ask for.
        #[arg(long, value_enum, default_value = "all")]
        scopes: Scopes,
        /// Do not try to open a browser; only print the URL.
        #[arg(long)]
        no_browser: bool,
        /// How long to wait for the browser to come back, in seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// On a family server ([[library]] entries): the library (its mount) to sign in
        /// for; its token goes to that library's token file.
        #[arg(long, value_name = "MOUNT")]
        library: Option<String>,
    },
    /// Pick photos in Google Photos (Picker API) and serve them as /picked/<NAME>/ until the
    /// picking session expires; or list or delete the picked sets.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["name", "list", "delete"])))]
    Pick {
        #[arg(long, short)]
        config: PathBuf,
        /// Name of the picked set (its folder under /picked).
        #[arg(long)]
        name: Option<String>,
        /// Let the user pick at most this many items (1 to 2000).
        #[arg(long, requires = "name")]
        max: Option<u32>,
        /// Show the stored sets and when they expire.
        #[arg(long)]
        list: bool,
        /// End the picking session of this set and forget it.
        #[arg(long, value_name = "NAME")]
        delete: Option<String>,
        /// Copy the set into the app-created album of this title (created if missing), so
        /// its items stay after the session ends. A set named --name that has not expired is
        /// imported as it is; otherwise items are picked first. Reruns skip imported items.
        #[arg(long, value_name = "TITLE", requires = "name")]
        import_to_album: Option<String>,
        /// On a family server ([[library]] entries): the library (its mount) whose account
        /// picks, and whose /picked the set appears in.
        #[arg(long, value_name = "MOUNT")]
        library: Option<String>,
    },
    /// Check the configuration, the token, the scopes, the APIs and the listen settings.
    Doctor {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the gateway together with an embedded Google emulator and a sample library.
    #[cfg(feature = "emulator")]
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Seed of the sample library.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Add an album of this many tiny photos (to try a client on a big folder).
        #[arg(long, default_value_t = 0)]
        big_album: usize,
        /// Add this many tiny photos in no album, spread over five years (a big
        /// `/media/all` and big date views).
        #[arg(long, default_value_t = 0)]
        library_size: usize,
    },
    /// Run only the Google emulator (OAuth token endpoint, Library API, content host).
    #[cfg(feature = "emulator")]
    Emulator {
        #[arg(long)]
        listen: SocketAddr,
        /// Seed of the sample library.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Lifetime of the download URLs (baseUrl) it hands out, in seconds (Google documents
        /// 3600; in the field URLs have died after 1800 to 2400).
        #[arg(long, default_value_t = 3600)]
        baseurl_ttl: u64,
        /// Lifetime of the access tokens it issues, in seconds.
        #[arg(long, default_value_t = 3599)]
        token_ttl: u64,
        /// Add albums and files whose names no file system accepts as they are.
        #[arg(long)]
        hostile_names: bool,
        /// Add an album of this many tiny photos (to try a client on a big folder).
        #[arg(long, default_value_t = 0)]
        big_album: usize,
        /// Add this many tiny photos in no album, spread over five years (a library of a
        /// million starts in seconds; to benchmark or try a client on a big `/media/all`).
        #[arg(long, default_value_t = 0)]
        library_size: usize,
        /// Also put the first of those photos in this many albums of 20,000 each (Google's
        /// maximum), titled "Library album 1", ...: big albums over the library's own items.
        #[arg(long, default_value_t = 0)]
        library_albums: usize,
        /// Add a video of this many bytes, generated while it is sent, in the album
        /// "Big item" (to try big downloads).
        #[arg(long, default_value_t = 0)]
        big_item: u64,
        /// Limit the content host to this many bytes per second in all (0: no limit).
        #[arg(long, default_value_t = 0)]
        content_rate: u64,
        /// Answer every Library API and content request this many milliseconds late.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Scopes {
    /// Read what this app created.
    Read,
    /// Upload, create albums and rename the albums this app created.
    Upload,
    /// Read what you pick in Google Photos.
    Picker,
    /// All of the above.
    All,
}

impl From<Scopes> for ScopeSet {
    fn from(s: Scopes) -> Self {
        match s {
            Scopes::Read => ScopeSet::Read,
            Scopes::Upload => ScopeSet::Upload,
            Scopes::Picker => ScopeSet::Picker,
            Scopes::All => ScopeSet::All,
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gphotos-dav: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match command {
        Command::Serve {
            config,
            listen,
            allow_anonymous,
            policy,
        } => {
            let mut config = Config::load(&config)?;
            if let Some(addr) = listen {
                config.server.listen = addr;
            }
            config.server.allow_anonymous |= allow_anonymous;
            if let Some(policy) = policy {
                config.webdav.policy = policy;
            }
            config.validate()?;
            let server = Server::bind(&config).await?;
            server.serve(shutdown_signal()).await;
        }
        Command::Auth {
            config: path,
            scopes,
            no_browser,
            timeout,
            library,
        } => {
            let config = for_library(Config::load(&path)?, library.as_deref(), &path)?;
            let g = &config.google;
            let (Some(id), Some(secret)) = (g.client_id.as_deref(), g.client_secret.as_deref())
            else {
                return Err(format!(
                    "{} needs [google] client_id and client_secret (or the environment \
                     variables {} and {}) before you can sign in: create an OAuth client of \
                     type \"Desktop app\" (docs/google-setup.md)",
                    path.display(),
                    gphotos_dav::server::config::ENV_CLIENT_ID,
                    gphotos_dav::server::config::ENV_CLIENT_SECRET
                )
                .into());
            };
            let request = AuthorizeRequest {
                client_id: id,
                client_secret: secret,
                auth_url: &g.auth_url,
                token_url: &g.token_url,
                scopes: scopes.into(),
                timeout: Duration::from_secs(timeout),
            };
            let authorized = authorize(&request, |url| {
                println!("Open this URL in a browser, sign in and allow access:\n\n{url}\n");
                if !no_browser {
                    open_browser(url);
                }
                println!("Waiting for Google to redirect back (up to {timeout} s)...");
            })
            .await?;
            let file = config.token_file_path();
            token_file::write(
                &file,
                &token_file::TokenFile {
                    refresh_token: authorized.refresh_token,
                    scopes: authorized.scopes.clone(),
                    obtained_at: chrono::Utc::now().to_rfc3339(),
                    account: authorized.account.clone(),
                },
            )?;
            println!(
                "Saved the refresh token to {} (mode 0600).\nGranted: {}",
                file.display(),
                authorized.scopes
            );
            match &authorized.account {
                Some(account) => println!(
                    "Google account id: {account} (the metadata cache belongs to this account; \
                     signing in as another account starts a fresh one)"
                ),
                None => println!(
                    "Note: Google sent no id_token, so the account is not recorded; the \
                     metadata cache is then told apart by the OAuth client only"
                ),
            }
            if g.refresh_token.is_some() {
                println!(
                    "Note: [google] refresh_token (or {}) is set and takes precedence over the \
                     token file; remove it to use the new token.",
                    gphotos_dav::server::config::ENV_REFRESH_TOKEN
                );
            }
            println!("Next: gphotos-dav doctor --config {}", path.display());
        }
        Command::Pick {
            config: path,
            name,
            max,
            list,
            delete,
            import_to_album,
            library,
        } => {
            use std::io::IsTerminal;
            let config = for_library(Config::load(&path)?, library.as_deref(), &path)?;
            let store = config.open_store();
            let mut stdout = std::io::stdout();
            if list {
                gphotos_dav::pick::list(&store, &mut stdout).await?;
                return Ok(());
            }
            let google = gphotos_dav::google::Google::new(
                &config.credentials()?,
                &config.endpoints(),
                gphotos_dav::google::RetryPolicy::default(),
            )?;
            if let Some(name) = delete {
                gphotos_dav::pick::delete(&google, &store, &name, &mut stdout).await?;
            } else if let Some(name) = name {
                let terminal = stdout.is_terminal();
                let mut output = gphotos_dav::pick::Output {
                    out: &mut stdout,
                    terminal,
                    quiet: false,
                    done: None,
                };
                let stored = store
                    .picked_sets()
                    .await
                    .into_iter()
                    .find(|s| s.name == name && s.expire_time > chrono::Utc::now());
                let set = match (&import_to_album, stored) {
                    (Some(_), Some(set)) => set,
                    _ => gphotos_dav::pick::pick(&google, &store, &name, max, &mut output).await?,
                };
                if let Some(title) = import_to_album {
                    let url_age =
                        gphotos_dav::catalog::urls::UrlAge::new(config.google.url_max_age());
                    gphotos_dav::pick::import(&google, &store, &set, &title, &url_age, &mut output)
                        .await?;
                }
            }
        }
        Command::Doctor { config } => {
            let checks = gphotos_dav::doctor::run(&config, |c| println!("{c}")).await;
            let failed = checks
                .iter()
                .filter(|c| matches!(c.outcome, gphotos_dav::doctor::Outcome::Fail { .. }))
                .count();
            if failed > 0 {
                return Err(format!("{failed} check(s) failed").into());
            }
            println!("All checks passed.");
        }
        Command::HashPassword => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                return Err("no password on standard input (example: \
                            `printf '%s' 'my password' | gphotos-dav hash-password`)"
                    .into());
            }
            println!("{}", gphotos_dav::server::auth::hash_password(password)?);
        }
        #[cfg(feature = "emulator")]
        Command::Demo {
            listen,
            seed,
            big_album,
            library_size,
        } => {
            let emu = Emulator::start(
                EmulatorOptions {
                    seed,
                    big_album,
                    library_size,
                    ..EmulatorOptions::default()
                },
                "127.0.0.1:0".parse()?,
            )
            .await?;
            let mut config = Config::default();
            // The emulator's library is new on every run: nothing worth remembering.
            config.cache.path = Some(":memory:".into());
            // Its bytes too: the content cache lives in a temporary directory removed on exit
            // (its index is in the in-memory store, so nothing on disk would be reused).
            let content_dir = tempfile::Builder::new()
                .prefix("gphotos-dav-demo-content-")
                .tempdir()?;
            config.cache.content_dir = Some(content_dir.path().to_path_buf());
            config.server.listen = listen;
            config.google.client_id = Some(emulator::CLIENT_ID.into());
            config.google.client_secret = Some(emulator::CLIENT_SECRET.into());
            config.google.refresh_token = Some(emulator::REFRESH_TOKEN.into());
            config.google.api_base = emu.api_base();
            config.google.token_url = emu.token_url();
            config.google.picker_base = emu.picker_base();
            let server = Server::bind(&config).await?;
            let url = format!("http://{}/", server.local_addr());
            println!(
                "gphotos-dav demo: a sample library served by the built-in Google emulator ({})\n\
                 \n\
                 WebDAV: {url}\n\
                 \n\
                 Try it:\n\
                 \x20 curl -X PROPFIND -H 'Depth: 1' {url}album/\n\
                 \x20 rclone lsf -R --webdav-url {url} --webdav-vendor other :webdav:\n\
                 \x20 cadaver {url}\n\
                 \x20 macOS Finder: Go > Connect to Server… > {url}\n\
                 \x20 Linux: gio mount dav://{addr}/   (or davfs2: mount -t davfs {url} /mnt)\n\
                 \x20 Windows Explorer: map a network drive to {url} (read-only, no password)\n\
                 \n\
                 Press Ctrl-C to stop.",
                emu.base_url(),
                addr = server.local_addr(),
            );
            server.serve(shutdown_signal()).await;
        }
        #[cfg(feature = "emulator")]
        Command::Emulator {
            listen,
            seed,
            baseurl_ttl,
            token_ttl,
            hostile_names,
            big_album,
            library_size,
            library_albums,
            big_item,
            content_rate,
            latency_ms,
        } => {
            let emu = Emulator::start(
                EmulatorOptions {
                    seed,
                    baseurl_ttl: Duration::from_secs(baseurl_ttl),
                    access_token_ttl: Duration::from_secs(token_ttl),
                    hostile_names,
                    big_album,
                    library_size,
                    library_albums,
                    big_item,
                    content_rate: (content_rate > 0).then_some(content_rate),
                    latency: Duration::from_millis(latency_ms),
                    ..EmulatorOptions::default()
                },
                listen,
            )
            .await?;
            tracing::info!("Google emulator listening on {}/", emu.base_url());
            print!(
                "# Point gphotos-dav at this emulator with:\n{}",
                emu.google_config()
            );
            shutdown_signal().await;
        }
    }
    Ok(())
}

/// Tries to open `url` in the user's browser; printing it is the fallback that always works.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    let spawned = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if spawned.is_err() {
        tracing::debug!("no browser opener ({opener}); open the URL by hand");
    }
}

/// The configuration a command that works on one account (`auth`, `pick`) uses: the file's
/// own for a single `[google]`, the named library's on a family server (`--library`).
fn for_library(
    config: Config,
    library: Option<&str>,
    path: &std::path::Path,
) -> Result<Config, String> {
    let mounts = || {
        config
            .libraries
            .iter()
            .map(|l| l.mount.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (config.is_family(), library) {
        (false, None) => Ok(config),
        (false, Some(name)) => Err(format!(
            "--library {name}: {} has no [[library]] entries (it serves one [google] account); \
             leave --library out",
            path.display()
        )),
        (true, None) => Err(format!(
            "{} serves several libraries: name one with --library (one of: {})",
            path.display(),
            mounts()
        )),
        (true, Some(name)) => match config.library(name) {
            Some(lib) => Ok(config.library_config(lib)),
            None => Err(format!(
                "--library {name}: no [[library]] mount = {name:?} in {} (there are: {})",
                path.display(),
                mounts()
            )),
        },
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
