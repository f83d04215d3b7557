//! The server: configuration, the HTTP side, and the accept loop.
//!
//! The HTTP side is a stack of tower layers around a router, assembled in `stack` (its docs
//! list the stages in the order a request meets them), each stage a file of `layers`; the
//! routes are the signed links (`signed`) and the WebDAV tree (dav-server, `handler`). Shared
//! response helpers live in `response`, which imports nothing else from here. This file binds
//! the listeners and runs the connections (hyper-util, HTTP/1 and 2, TLS when configured,
//! graceful shutdown).

pub mod auth;
pub mod config;
pub mod family;
pub mod handler;
pub mod layers;
pub mod policy;
pub mod response;
pub mod router;
pub mod signed;
pub mod stack;
pub mod tls;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::catalog::{Catalog, CatalogOptions};
use crate::google::{Google, GoogleError, RetryPolicy};
pub use config::{Config, ConfigError};
use stack::HttpStack;

/// How long in-flight requests may run after shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's headers (slow-loris protection).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A bound, not yet serving, WebDAV server: binding and serving are two steps so that a
/// caller (a test, `demo`) learns the address, and start-up errors come back as a
/// [`StartError`], before any request is served.
pub struct Server {
    listener: TcpListener,
    /// The HTTP side (see `stack`).
    stack: HttpStack,
    /// `[webdav] prefix`, for [`Server::url`].
    prefix: String,
    catalog: Catalog,
    /// A family server's libraries that started, by mount (empty for a single `[google]`).
    libraries: Vec<(String, Catalog)>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// `[server] metrics_listen`: `/metrics` and `/healthz`, separate from the WebDAV port.
    metrics: Option<TcpListener>,
}

/// Knobs that are not configuration but that tests (and benchmarks) need to turn: they must
/// never wait on the wall clock.
#[derive(Debug, Clone, Default)]
pub struct Tuning {
    pub retry: RetryPolicy,
}

impl Server {
    /// Builds the Google clients and the catalog from `config` and binds its listen address.
    pub async fn bind(config: &Config) -> Result<Server, StartError> {
        Server::bind_tuned(config, Tuning::default()).await
    }

    /// [`Server::bind`] with explicit [`Tuning`].
    pub async fn bind_tuned(config: &Config, tuning: Tuning) -> Result<Server, StartError> {
        tls::install_crypto_provider();
        let tls = match (&config.server.tls_cert, &config.server.tls_key) {
            (Some(cert), Some(key)) => {
                Some(tls::acceptor(cert, key).map_err(|reason| StartError::Tls {
                    cert: cert.clone(),
                    key: key.clone(),
                    reason,
                })?)
            }
            _ => None,
        };
        let users: Vec<auth::User> = config
            .server
            .users
            .iter()
            .map(|u| auth::User {
                name: u.name.clone(),
                password_hash: u.password_hash.clone(),
                read_only: u.read_only,
            })
            .collect();
        let (stack, catalog, libraries) = if config.is_family() {
            family::bind(config, &tuning, users).await?
        } else {
            let google = Google::new(&config.credentials()?, &config.endpoints(), tuning.retry)?;
            let catalog = open_library(config, google, true).await?;
            let delivery = policy::Delivery::from_config(&config.webdav, &catalog, None)?;
            let stack = stack::build(stack::Settings {
                catalog: catalog.clone(),
                read_only: config.server.read_only,
                prefix: config.webdav.prefix.clone(),
                auth: auth::Authenticator::new(users),
                delivery,
                uploads: config.upload.options(),
                tls: tls.is_some(),
            });
            (stack, catalog, Vec::new())
        };
        let listener = TcpListener::bind(config.server.listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: config.server.listen,
                source,
            })?;
        let metrics = match config.server.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::MetricsListen { addr, source })?,
            ),
            None => None,
        };
        Ok(Server {
            listener,
            stack,
            prefix: config.webdav.prefix.clone(),
            catalog,
            libraries,
            tls,
            metrics,
        })
    }

    /// The URL the tree is served at.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{}/", self.local_addr(), self.prefix)
    }

    /// The catalog behind the tree (tests reach its clock through it); on a family server,
    /// the first library's that started (all libraries share one clock).
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// A family server's libraries that started, by mount, in the configuration's order.
    pub fn libraries(&self) -> &[(String, Catalog)] {
        &self.libraries
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (bounded).
    /// Where `/metrics` and `/healthz` are served, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub async fn serve(mut self, shutdown: impl Future<Output = ()>) {
        if let Some(listener) = self.metrics.take() {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!("metrics on http://{addr}/metrics");
            }
            let metrics_task = tokio::spawn(serve_metrics(listener));
            // The task ends with the process; dropping the handle detaches it.
            drop(metrics_task);
        }
        tracing::info!("WebDAV server listening on {}", self.url());
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            // Request line and headers must fit in 64 KiB (hyper answers 431 beyond).
            .max_buf_size(64 * 1024);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!("accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let handler = stack::for_connection(&self.stack, peer);
                    match &self.tls {
                        None => {
                            let conn = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), handler);
                            spawn_connection(graceful.watch(conn.into_owned()), peer);
                        }
                        Some(acceptor) => {
                            // The handshake runs in the connection's task, so a slow client
                            // cannot hold up the accept loop.
                            let acceptor = acceptor.clone();
                            let builder = builder.clone();
                            let watcher = graceful.watcher();
                            tokio::spawn(async move {
                                let handshake = tokio::time::timeout(
                                    HEADER_READ_TIMEOUT,
                                    acceptor.accept(stream),
                                );
                                let tls = match handshake.await {
                                    Ok(Ok(tls)) => tls,
                                    Ok(Err(e)) => {
                                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                                        return;
                                    }
                                    Err(_) => {
                                        tracing::debug!(%peer, "TLS handshake timed out");
                                        return;
                                    }
                                };
                                let conn = builder
                                    .serve_connection_with_upgrades(TokioIo::new(tls), handler);
                                if let Err(e) = watcher.watch(conn.into_owned()).await {
                                    tracing::debug!(%peer, "connection ended with an error: {e}");
                                }
                            });
                        }
                    }
                }
                _ = &mut shutdown => break,
            }
        }
        drop(self.listener);
        tokio::select! {
            _ = graceful.shutdown() => tracing::info!("all connections closed"),
            _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
                tracing::warn!("shutdown grace period over; closing remaining connections");
            }
        }
    }
}

/// One library's catalog over `google`: its metadata store, the quota counts it remembers
/// (restored into the quota gates when `restore`: once per gate, since libraries sharing an
/// OAuth client share them), its root album checked, what it remembers loaded.
pub(crate) async fn open_library(
    config: &Config,
    google: Google,
    restore: bool,
) -> Result<Catalog, StartError> {
    // Counting starts before the first call (the root album check below).
    let store = config.open_store();
    google
        .quota
        .set_limits(config.google.daily_quota, config.google.daily_media_quota);
    google.quota.set_probe_budget(config.probe_budget());
    if let Some(share) = &google.share {
        share.set_limits(
            config.google.daily_quota,
            config.google.daily_media_quota,
            config.probe_budget(),
        );
        let today = google.quota.today();
        let used = store.usage(today).await;
        let log = store.clone();
        share.restore(
            today,
            used.share,
            Box::new(move |day, key, n| log.add_usage(day, key, n)),
        );
    }
    if restore {
        let today = google.quota.today();
        let used = store.usage(today).await;
        let log = store.clone();
        google.quota.restore(
            today,
            crate::google::quota::Remembered {
                api: used.api,
                media: used.media,
                picker: used.picker,
                probes: used.probes,
                api_exhausted: used.exhausted,
                media_exhausted: used.media_exhausted,
            },
            Box::new(move |day, bucket, n| log.add_usage(day, bucket, n)),
        );
    }
    let root_album = match config.google.root_folder_id.as_str() {
        "root" | "" => None,
        id => {
            // Checked now: a typo must stop the start, not show an empty drive.
            let album =
                google
                    .library
                    .get_album(id)
                    .await
                    .map_err(|source| StartError::RootAlbum {
                        id: id.to_string(),
                        source,
                    })?;
            tracing::info!(album = %album.title, "serving one album at /");
            Some(album.id)
        }
    };
    let catalog = Catalog::new(
        google,
        CatalogOptions {
            timezone: config.google.timezone,
            root_album,
            listing_ttl: Duration::from_secs(config.cache.listing_ttl),
            probe_concurrency: config.cache.probe_concurrency,
            uploads: !config.server.read_only,
            url_max_age: config.google.url_max_age(),
            content: config.cache.content_options(),
            media_all: config.google.range_loading(),
            store,
        },
    );
    catalog.load_remembered().await;
    Ok(catalog)
}

/// Serves `GET /metrics` (Prometheus text format) and `GET /healthz`.
async fn serve_metrics(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                let (status, content_type, body) = match req.uri().path() {
                    "/metrics" => (
                        200,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        crate::metrics::get().render(),
                    ),
                    "/healthz" => (200, "text/plain; charset=utf-8", "ok\n".to_string()),
                    _ => (404, "text/plain; charset=utf-8", "not found\n".to_string()),
                };
                let mut resp =
                    hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
                *resp.status_mut() = hyper::StatusCode::from_u16(status).expect("valid status");
                resp.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static(content_type),
                );
                Ok::<_, std::convert::Infallible>(resp)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn spawn_connection<F, E>(conn: F, peer: SocketAddr)
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(%peer, "connection ended with an error: {e}");
        }
    });
}

/// Why [`Server::bind`] could not start the server. One variant per step that can fail, each
/// carrying what failed (the file, the album id, the address), so a caller can tell a port in
/// use from a bad certificate without reading the message; the messages are the ones users
/// have always seen, each naming the key or file to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `[server] tls_cert` / `tls_key` cannot be read or do not form a usable pair.
    #[error("{reason}")]
    Tls {
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
        reason: String,
    },
    /// The credentials (token file) or the `[webdav]` policy keys.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The Google clients could not be built.
    #[error(transparent)]
    Google(#[from] GoogleError),
    /// `[google] root_folder_id` names no album this app can read (a typo must stop the
    /// start, not show an empty drive).
    #[error(
        "[google] root_folder_id = {id:?} is not an album this app can read ({source}). Use \
         \"root\" for the whole library, or the id of an album created by this app"
    )]
    RootAlbum { id: String, source: GoogleError },
    /// A family server none of whose `[[library]]` entries could start (each one's reason).
    #[error("no library could be served: {0}")]
    NoLibrary(String),
    /// `[server] listen` cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// `[server] metrics_listen` cannot be bound.
    #[error("cannot listen on [server] metrics_listen {addr}: {source}")]
    MetricsListen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}
