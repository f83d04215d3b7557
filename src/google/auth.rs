//! The access-token source: trades the long-lived refresh token for short-lived access tokens
//! through the `oauth2` crate and shares them between all requests.
//!
//! Why a mutex around the cache: when the token expires, a burst of requests all notice at once.
//! They queue on one async mutex; the first refreshes, the others find the fresh token when their
//! turn comes. So N concurrent requests with an expired token cost exactly one token call.

use std::time::{Duration, Instant};

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AccessToken, ClientId, ClientSecret, EndpointNotSet, EndpointSet, RefreshToken,
    RequestTokenError, TokenResponse, TokenUrl,
};
use tokio::sync::Mutex;

use super::error::GoogleError;
use super::retry::RetryPolicy;

/// Refresh this long before Google's stated expiry, so a token never dies mid-request.
const EXPIRY_MARGIN: Duration = Duration::from_secs(120);

type OAuthClient =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Client credentials and the refresh token. `Debug` never prints the secrets.
#[derive(Clone)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    /// The token file the refresh token came from: a refresh token Google rotates in is
    /// written back there.
    pub persist_to: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("persist_to", &self.persist_to)
            .finish()
    }
}

struct Cached {
    token: AccessToken,
    expires_at: Instant,
}

struct State {
    refresh_token: RefreshToken,
    cached: Option<Cached>,
    /// Space-separated scopes of the last token response.
    granted: Option<String>,
}

/// The one source of access tokens for every client: one refresh shared by concurrent
/// callers, a token refused with a 401 invalidated so the next caller mints a fresh one.
pub struct TokenSource {
    oauth: OAuthClient,
    http: reqwest::Client,
    retry: RetryPolicy,
    persist_to: Option<std::path::PathBuf>,
    state: Mutex<State>,
}

/// What the token endpoint's HTTP exchange can fail with, before OAuth looks at the body.
/// 429 and 5xx answers are errors here (not bodies to parse) so that they can be retried.
#[derive(Debug, thiserror::Error)]
enum TokenHttpError {
    #[error("the token endpoint answered HTTP {0}")]
    Status(u16),
    #[error("{0}")]
    Transport(String),
}

/// The HTTP client handed to the oauth2 crate: reqwest, with URLs kept out of errors.
async fn exchange(
    http: &reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, TokenHttpError> {
    let (parts, body) = request.into_parts();
    let resp = super::counted(
        "token",
        http.request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await,
    )
    .map_err(|e| TokenHttpError::Transport(e.without_url().to_string()))?;
    let status = resp.status();
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(TokenHttpError::Status(status.as_u16()));
    }
    let headers = resp.headers().clone();
    let body = resp
        .bytes()
        .await
        .map_err(|e| TokenHttpError::Transport(e.without_url().to_string()))?;
    let mut out = http::Response::new(body.to_vec());
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

impl TokenSource {
    pub fn new(
        creds: &Credentials,
        token_url: &str,
        http: reqwest::Client,
        retry: RetryPolicy,
    ) -> Result<Self, GoogleError> {
        let token_url = TokenUrl::new(token_url.to_string())
            .map_err(|e| GoogleError::Token(format!("invalid token_url: {e}")))?;
        let oauth = BasicClient::new(ClientId::new(creds.client_id.clone()))
            .set_client_secret(ClientSecret::new(creds.client_secret.clone()))
            .set_token_uri(token_url);
        Ok(TokenSource {
            oauth,
            http,
            retry,
            persist_to: creds.persist_to.clone(),
            state: Mutex::new(State {
                refresh_token: RefreshToken::new(creds.refresh_token.clone()),
                cached: None,
                granted: None,
            }),
        })
    }

    /// A valid access token, refreshing it first when it is missing or about to expire.
    pub async fn access_token(&self) -> Result<AccessToken, GoogleError> {
        let mut state = self.state.lock().await;
        if let Some(c) = &state.cached
            && Instant::now() < c.expires_at
        {
            return Ok(c.token.clone());
        }
        let refresh_token = state.refresh_token.clone();
        let response = self
            .retry
            .run("token", || {
                Self::refresh_once(self.oauth.clone(), self.http.clone(), refresh_token.clone())
            })
            .await?;
        let lifetime = response
            .expires_in()
            .unwrap_or(Duration::from_secs(3600))
            .saturating_sub(EXPIRY_MARGIN);
        if let Some(new_refresh) = response.refresh_token()
            && new_refresh.secret() != state.refresh_token.secret()
        {
            // Google may rotate the refresh token; the new one replaces the old, on disk too.
            if let Some(path) = &self.persist_to {
                // The account recorded by `auth` stays with the token it was recorded for
                // (the store's identity includes it): kept when the file still holds the
                // token being replaced, else unknown (another `auth` replaced the file).
                let account = super::token_file::read(path)
                    .ok()
                    .flatten()
                    .filter(|f| f.refresh_token == *state.refresh_token.secret())
                    .and_then(|f| f.account);
                let file = super::token_file::TokenFile {
                    refresh_token: new_refresh.secret().clone(),
                    scopes: scope_text(&response),
                    obtained_at: chrono::Utc::now().to_rfc3339(),
                    account,
                };
                match super::token_file::write(path, &file) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "saved the refresh token Google rotated in")
                    }
                    Err(e) => tracing::warn!("{e}; the new refresh token is kept in memory only"),
                }
            }
            state.refresh_token = new_refresh.clone();
        }
        state.granted = Some(scope_text(&response));
        let token = response.access_token().clone();
        tracing::debug!(
            lifetime_secs = lifetime.as_secs(),
            "obtained a new access token"
        );
        state.cached = Some(Cached {
            token: token.clone(),
            expires_at: Instant::now() + lifetime,
        });
        Ok(token)
    }

    /// One refresh-token exchange. It owns its inputs: a future that borrows into a retried
    /// closure defeats the compiler's Send inference (rust-lang/rust#64552).
    async fn refresh_once(
        oauth: OAuthClient,
        http: reqwest::Client,
        refresh_token: RefreshToken,
    ) -> Result<oauth2::basic::BasicTokenResponse, GoogleError> {
        let client = move |req| {
            let http = http.clone();
            async move { exchange(&http, req).await }
        };
        oauth
            .exchange_refresh_token(&refresh_token)
            .request_async(&client)
            .await
            .map_err(map_token_error)
    }

    /// The scopes Google granted with the last access token (None before the first refresh).
    pub async fn granted_scopes(&self) -> Option<String> {
        self.state.lock().await.granted.clone()
    }

    /// Forgets `rejected` after the API answered 401 for it. A token that was already replaced
    /// by a concurrent request is left alone, so a burst of 401s still costs one refresh.
    pub async fn invalidate(&self, rejected: &AccessToken) {
        let mut state = self.state.lock().await;
        if state
            .cached
            .as_ref()
            .is_some_and(|c| c.token.secret() == rejected.secret())
        {
            state.cached = None;
        }
    }
}

/// The space-separated scopes of a token response (empty when Google sent none).
pub(crate) fn scope_text(response: &impl TokenResponse) -> String {
    response
        .scopes()
        .map(|s| {
            s.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn map_token_error(
    e: RequestTokenError<TokenHttpError, oauth2::basic::BasicErrorResponse>,
) -> GoogleError {
    match e {
        RequestTokenError::ServerResponse(resp) => match resp.error() {
            BasicErrorResponseType::InvalidGrant => GoogleError::InvalidGrant,
            BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient => {
                GoogleError::InvalidClient(resp.error().to_string())
            }
            other => GoogleError::Token(format!("token endpoint answered error {other}")),
        },
        RequestTokenError::Request(TokenHttpError::Status(429)) => GoogleError::RateLimited {
            message: "the token endpoint answered 429".into(),
            retry_after: None,
            daily: false,
        },
        RequestTokenError::Request(TokenHttpError::Status(code)) => GoogleError::Api {
            code,
            status: "TOKEN_ENDPOINT".into(),
            message: format!("the token endpoint answered HTTP {code}"),
        },
        // Neither variant carries a body or a URL, so no secret can leak through here.
        RequestTokenError::Request(TokenHttpError::Transport(text)) => {
            GoogleError::Transport(format!("token endpoint unreachable: {text}"))
        }
        RequestTokenError::Parse(_, _) => {
            GoogleError::Token("the token endpoint's answer could not be parsed".into())
        }
        RequestTokenError::Other(msg) => GoogleError::Token(msg),
    }
}
