//! Everything that talks to Google: the OAuth token source, the Library API client, the
//! content host (download URLs) and the typed errors they share.
//!
//! Nothing outside this module builds a Google URL or parses a Google answer, and every
//! request the clients send takes one path, [`call::Caller`]: quota gate, access token (one
//! refresh on a 401), counting, error classification and the retry policy.

pub mod auth;
pub mod authorize;
pub mod call;
pub mod content;
pub mod download_http;
pub mod error;
pub mod library;
pub mod picker;
pub mod quota;
pub mod retry;
pub mod token_file;
pub mod types;
pub mod upload;

use std::sync::Arc;
use std::time::Duration;

pub use auth::{Credentials, TokenSource};
pub use content::ContentClient;
pub use error::{GoogleError, SCOPES};
pub use library::LibraryClient;
pub use picker::PickerClient;
pub use retry::RetryPolicy;
pub use types::{Album, MediaItem, VideoState};
pub use upload::{UploadClient, UploadTuning};

/// Counts a finished call to Google (by kind and status) in the process metrics, and passes
/// its result through.
pub(crate) fn counted(
    kind: &str,
    result: Result<reqwest::Response, reqwest::Error>,
) -> Result<reqwest::Response, reqwest::Error> {
    let status = result.as_ref().ok().map(|r| r.status().as_u16());
    crate::metrics::get().upstream(kind, status);
    result
}

/// Where the Google endpoints live. Tests and the demo point these at the emulator.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub api_base: String,
    pub token_url: String,
    pub picker_base: String,
}

/// The clients built from one set of credentials, sharing one token source, one call path and
/// one set of quota gates: what the catalog, the write path and the commands are handed.
#[derive(Clone)]
pub struct Google {
    pub library: LibraryClient,
    pub content: ContentClient,
    pub upload: UploadClient,
    /// The project's quotas and their gates, shared by the clients.
    pub quota: Arc<quota::QuotaGate>,
    /// The clock the quota gates read, shared with the catalog (tests move it).
    pub clock: Arc<crate::clock::Clock>,
    /// The Picker API (picking sessions), sharing the library client's access token.
    pub picker: PickerClient,
    /// On a family server, the library's part of the project's day (and its name, the
    /// metrics' `library` label); None on a single-account server.
    pub share: Option<Arc<quota::Share>>,
}

impl Google {
    /// The clients of one account, with quota gates of their own (a project of its own).
    pub fn new(
        creds: &Credentials,
        endpoints: &Endpoints,
        retry: RetryPolicy,
    ) -> Result<Self, GoogleError> {
        let clock = Arc::new(crate::clock::Clock::default());
        let quota = Arc::new(quota::QuotaGate::new(clock));
        Google::with_quota(creds, endpoints, retry, quota)
    }

    /// The clients of one account counted in, and stopped by, `quota`: the gates of the
    /// Google project (the OAuth client) that accounts of a family server share, since Google
    /// counts its quotas per project, not per account. The clock is the quota's.
    pub fn with_quota(
        creds: &Credentials,
        endpoints: &Endpoints,
        retry: RetryPolicy,
        quota: Arc<quota::QuotaGate>,
    ) -> Result<Self, GoogleError> {
        Google::build(creds, endpoints, retry, quota, None)
    }

    /// The clients of one library of a family server: counted in the project's `quota` and
    /// bounded by the library's `share` of it.
    pub fn for_library(
        creds: &Credentials,
        endpoints: &Endpoints,
        retry: RetryPolicy,
        quota: Arc<quota::QuotaGate>,
        share: Arc<quota::Share>,
    ) -> Result<Self, GoogleError> {
        Google::build(creds, endpoints, retry, quota, Some(share))
    }

    /// The library's mount on a family server (the metrics' `library` label).
    pub fn library(&self) -> Option<&str> {
        self.share.as_deref().map(|s| &**s.mount())
    }

    fn build(
        creds: &Credentials,
        endpoints: &Endpoints,
        retry: RetryPolicy,
        quota: Arc<quota::QuotaGate>,
        share: Option<Arc<quota::Share>>,
    ) -> Result<Self, GoogleError> {
        let user_agent = concat!("gphotos-dav/", env!("CARGO_PKG_VERSION"));
        // API and token calls never follow redirects (the oauth2 crate's advice against SSRF).
        let api_http = reqwest::Client::builder()
            .user_agent(user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(20))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(GoogleError::transport)?;
        // Size probes on the content host: redirects are followed by `content` itself, which
        // drops the bearer token on any change of origin (reqwest ignores a scheme change).
        // A read timeout so a stalled answer fails instead of hanging.
        let content_http = reqwest::Client::builder()
            .user_agent(user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(20))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(GoogleError::transport)?;
        let tokens = Arc::new(TokenSource::new(
            creds,
            &endpoints.token_url,
            api_http.clone(),
            retry.clone(),
        )?);
        // Uploads may run for hours (a 20 GB video): no total timeout, a read timeout.
        let upload_http = reqwest::Client::builder()
            .user_agent(user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(20))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(GoogleError::transport)?;
        let clock = quota.clock().clone();
        let caller = call::Caller::new(tokens.clone(), retry.clone(), quota.clone(), share.clone());
        let library = LibraryClient::new(api_http.clone(), &endpoints.api_base, caller.clone());
        Ok(Google {
            upload: UploadClient::new(
                upload_http,
                &endpoints.api_base,
                caller.clone(),
                UploadTuning::default(),
            ),
            content: ContentClient::new(
                content_http,
                download_http::DownloadHttp::new(user_agent)?,
                caller.clone(),
            ),
            picker: PickerClient::new(api_http, &endpoints.picker_base, caller),
            library,
            quota,
            clock,
            share,
        })
    }
}
