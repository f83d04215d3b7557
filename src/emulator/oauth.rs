//! The OAuth 2.0 token endpoint (`POST /token`), refresh-token grant only.
//!
//! Each well-known refresh token stands for one account situation the client must cope with
//! (all scopes, missing read scope, API disabled in the Cloud project); the access tokens it
//! mints carry that situation into the Library API handlers through [`Grant`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use http::header::{AUTHORIZATION, CACHE_CONTROL, HeaderValue, PRAGMA};
use http::{Method, StatusCode};
use rand::Rng;
use serde_json::json;

use super::reply::Reply;
use super::{
    CLIENT_ID, CLIENT_SECRET, Inner, REFRESH_TOKEN, REFRESH_TOKEN_API_DISABLED,
    REFRESH_TOKEN_NO_SCOPE, Req,
};

const SCOPE_PREFIX: &str = "https://www.googleapis.com/auth/";
/// The scope the Library API's read calls require since the 2025 change.
pub(crate) const READ_SCOPE: &str = "photoslibrary.readonly.appcreateddata";
const APPEND_SCOPE: &str = "photoslibrary.appendonly";
const PICKER_SCOPE: &str = "photospicker.mediaitems.readonly";

/// What an access token was granted, decided by the refresh token it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Grant {
    /// Every scope this project asks for.
    Full,
    /// Only `photoslibrary.appendonly`: reads answer 403 insufficient scopes.
    NoScope,
    /// Every scope, but the Photos Library API is disabled in the client's project.
    ApiDisabled,
}

impl Grant {
    /// Scope names without the URL prefix.
    pub fn scopes(self) -> &'static [&'static str] {
        match self {
            Grant::Full | Grant::ApiDisabled => &[READ_SCOPE, APPEND_SCOPE, PICKER_SCOPE],
            Grant::NoScope => &[APPEND_SCOPE],
        }
    }

    pub fn has_scope(self, scope: &str) -> bool {
        self.scopes().contains(&scope)
    }
}

/// An access token the emulator issued.
#[derive(Clone, Debug)]
pub(crate) struct AccessToken {
    pub grant: Grant,
    pub expires_at: DateTime<Utc>,
}

/// OAuth errors use their own flat shape, not the API's `{"error":{...}}` envelope.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": error, "error_description": description}),
    )
    .with_header(CACHE_CONTROL, HeaderValue::from_static("no-store"))
}

fn invalid_request(description: &str) -> Reply {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// Client credentials as sent, from HTTP Basic or from the form.
struct ClientCredentials {
    id: Option<String>,
    secret: Option<String>,
}

/// RFC 6749 §2.3.1: the Basic user name and password are each form-urlencoded before being
/// joined with `:` and base64-encoded, so `+` means space and `%3A` a literal colon.
fn basic_credentials(value: &HeaderValue) -> Option<Result<ClientCredentials, ()>> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let parse = || -> Result<ClientCredentials, ()> {
        let decoded = STANDARD.decode(encoded.trim()).map_err(|_| ())?;
        let decoded = String::from_utf8(decoded).map_err(|_| ())?;
        let (id, secret) = decoded.split_once(':').ok_or(())?;
        Ok(ClientCredentials {
            id: Some(form_decode(id)),
            secret: Some(form_decode(secret)),
        })
    };
    Some(parse())
}

fn form_decode(s: &str) -> String {
    let plus_as_space = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

/// Handles `POST /token`.
pub(crate) fn token(inner: &Inner, req: &Req) -> Reply {
    if req.method != Method::POST {
        return invalid_request("Token requests must use POST.")
            .with_status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let mut params = std::collections::HashMap::new();
    for (k, v) in url::form_urlencoded::parse(&req.body) {
        // The first occurrence wins; the client never repeats a parameter.
        params
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    let Some(grant_type) = params.get("grant_type").filter(|g| !g.is_empty()) else {
        return invalid_request("Missing required parameter: grant_type");
    };

    let credentials = match req.headers.get(AUTHORIZATION).and_then(basic_credentials) {
        Some(Ok(c)) => c,
        Some(Err(())) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "The OAuth client was not found.",
            );
        }
        None => ClientCredentials {
            id: params.get("client_id").cloned(),
            secret: params.get("client_secret").cloned(),
        },
    };
    let Some(client_id) = credentials.id.filter(|id| !id.is_empty()) else {
        return invalid_request("Could not determine client ID from request.");
    };
    if client_id != CLIENT_ID {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        );
    }
    let Some(secret) = credentials.secret.filter(|s| !s.is_empty()) else {
        return invalid_request("client_secret is missing.");
    };
    if secret != CLIENT_SECRET {
        // Google answers a wrong secret for a known client id with this terser text.
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized");
    }

    if grant_type != "refresh_token" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {grant_type}"),
        );
    }
    let Some(refresh_token) = params.get("refresh_token").filter(|t| !t.is_empty()) else {
        return invalid_request("Missing required parameter: refresh_token");
    };
    let grant = match refresh_token.as_str() {
        REFRESH_TOKEN => Grant::Full,
        REFRESH_TOKEN_NO_SCOPE => Grant::NoScope,
        REFRESH_TOKEN_API_DISABLED => Grant::ApiDisabled,
        // REFRESH_TOKEN_REVOKED and every unknown token.
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Token has been expired or revoked.",
            );
        }
    };

    let access_token = new_access_token();
    let ttl = inner.opts.access_token_ttl;
    let expires_at =
        inner.clock.now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX / 2);
    inner
        .tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(access_token.clone(), AccessToken { grant, expires_at });
    let scope = grant
        .scopes()
        .iter()
        .map(|s| format!("{SCOPE_PREFIX}{s}"))
        .collect::<Vec<_>>()
        .join(" ");
    Reply::json(
        StatusCode::OK,
        &json!({
            "access_token": access_token,
            "expires_in": ttl.as_secs(),
            "scope": scope,
            "token_type": "Bearer",
        }),
    )
    .with_header(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, max-age=0, must-revalidate"),
    )
    .with_header(PRAGMA, HeaderValue::from_static("no-cache"))
}

/// `ya29.` followed by random URL-safe characters, like Google's access tokens.
fn new_access_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut rng = rand::rng();
    let random: String = (0..150)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("ya29.{random}")
}
