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
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("refresh_token", &"<redacted>")
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
}

pub struct TokenSource {
    oauth: OAuthClient,
    http: reqwest::Client,
    state: Mutex<State>,
}

impl TokenSource {
    pub fn new(
        creds: &Credentials,
        token_url: &str,
        http: reqwest::Client,
    ) -> Result<Self, GoogleError> {
        let token_url = TokenUrl::new(token_url.to_string())
            .map_err(|e| GoogleError::Token(format!("invalid token_url: {e}")))?;
        let oauth = BasicClient::new(ClientId::new(creds.client_id.clone()))
            .set_client_secret(ClientSecret::new(creds.client_secret.clone()))
            .set_token_uri(token_url);
        Ok(TokenSource {
            oauth,
            http,
            state: Mutex::new(State {
                refresh_token: RefreshToken::new(creds.refresh_token.clone()),
                cached: None,
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
        let response = self
            .oauth
            .exchange_refresh_token(&state.refresh_token)
            .request_async(&self.http)
            .await
            .map_err(map_token_error)?;
        let lifetime = response
            .expires_in()
            .unwrap_or(Duration::from_secs(3600))
            .saturating_sub(EXPIRY_MARGIN);
        if let Some(new_refresh) = response.refresh_token() {
            // Google may rotate the refresh token; the new one replaces the old.
            state.refresh_token = new_refresh.clone();
        }
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

fn map_token_error<E: std::error::Error>(
    e: RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
) -> GoogleError {
    match e {
        RequestTokenError::ServerResponse(resp) => match resp.error() {
            BasicErrorResponseType::InvalidGrant => GoogleError::InvalidGrant,
            BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient => {
                GoogleError::InvalidClient(resp.error().to_string())
            }
            other => GoogleError::Token(format!("token endpoint answered error {other}")),
        },
        // The request error's text may name the URL but never a secret; bodies are not shown.
        RequestTokenError::Request(err) => {
            GoogleError::Transport(format!("token endpoint unreachable: {}", source_text(&err)))
        }
        RequestTokenError::Parse(_, _) => {
            GoogleError::Token("the token endpoint's answer could not be parsed".into())
        }
        RequestTokenError::Other(msg) => GoogleError::Token(msg),
    }
}

fn source_text(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cur = err.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}
