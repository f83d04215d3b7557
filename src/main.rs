//! The command line: parses arguments, sets up logging, and hands over to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use gphotos_dav::emulator::{self, Emulator, EmulatorOptions};
use gphotos_dav::server::config::Policy;
use gphotos_dav::server::{Config, Server};

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
    /// Run the gateway together with an embedded Google emulator and a sample library.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Seed of the sample library.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Run only the Google emulator (OAuth token endpoint, Library API, content host).
    Emulator {
        #[arg(long)]
        listen: SocketAddr,
        /// Seed of the sample library.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Lifetime of the download URLs (baseUrl) it hands out, in seconds.
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
    },
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
        Command::Demo { listen, seed } => {
            let emu = Emulator::start(
                EmulatorOptions {
                    seed,
                    ..EmulatorOptions::default()
                },
                "127.0.0.1:0".parse()?,
            )
            .await?;
            let mut config = Config::default();
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
        Command::Emulator {
            listen,
            seed,
            baseurl_ttl,
            token_ttl,
            hostile_names,
            big_album,
        } => {
            let emu = Emulator::start(
                EmulatorOptions {
                    seed,
                    baseurl_ttl: Duration::from_secs(baseurl_ttl),
                    access_token_ttl: Duration::from_secs(token_ttl),
                    hostile_names,
                    big_album,
                },
                listen,
            )
            .await?;
            tracing::info!("Google emulator listening on {}/", emu.base_url());
            println!(
                "# Point gphotos-dav at this emulator with:\n\
                 [google]\n\
                 client_id = \"{}\"\n\
                 client_secret = \"{}\"\n\
                 refresh_token = \"{}\"\n\
                 api_base = \"{}\"\n\
                 token_url = \"{}\"\n\
                 picker_base = \"{}\"",
                emulator::CLIENT_ID,
                emulator::CLIENT_SECRET,
                emulator::REFRESH_TOKEN,
                emu.api_base(),
                emu.token_url(),
                emu.picker_base(),
            );
            shutdown_signal().await;
        }
    }
    Ok(())
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
