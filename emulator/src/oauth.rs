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

use sha2::Digest;

use super::reply::Reply;
use super::{
    CLIENT_ID, CLIENT_SECRET, Inner, REFRESH_TOKEN, REFRESH_TOKEN_API_DISABLED,
    REFRESH_TOKEN_NO_APPEND, REFRESH_TOKEN_NO_EDIT, REFRESH_TOKEN_NO_SCOPE, Req, relock,
};

const SCOPE_PREFIX: &str = "https://www.googleapis.com/auth/";
/// The scope the Library API's read calls require since the 2025 change.
pub(crate) const READ_SCOPE: &str = "photoslibrary.readonly.appcreateddata";
pub(crate) const APPEND_SCOPE: &str = "photoslibrary.appendonly";
pub(crate) const PICKER_SCOPE: &str = "photospicker.mediaitems.readonly";
/// Patching app-created albums and items (albums.patch renames an album).
pub(crate) const EDIT_SCOPE: &str = "photoslibrary.edit.appcreateddata";

/// What an access token was granted, decided by the refresh token it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Grant {
    /// Every scope this project asks for.
    Full,
    /// Only `photoslibrary.appendonly`: reads answer 403 insufficient scopes.
    NoScope,
    /// Every scope, but the Photos Library API is disabled in the client's project.
    ApiDisabled,
    /// Granted through the authorization flow: a bit set of [`SCOPE_BITS`].
    Scopes(u8),
}

/// The scopes a user can grant, one bit each in [`Grant::Scopes`].
const SCOPE_BITS: [&str; 4] = [READ_SCOPE, APPEND_SCOPE, PICKER_SCOPE, EDIT_SCOPE];
/// OpenID Connect's scope (asked for without a URL prefix), the bit after [`SCOPE_BITS`]: with
/// it granted, the token endpoint's answers carry an `id_token` naming the account.
const OPENID_SCOPE: &str = "openid";
const OPENID_BIT: u8 = 1 << SCOPE_BITS.len();

/// A refresh token minted by a code exchange: what it grants, and whose it is.
#[derive(Clone, Debug)]
pub(crate) struct Minted {
    grant: Grant,
    account: String,
}

impl Grant {
    /// Scope names without the URL prefix.
    pub fn scopes(self) -> Vec<&'static str> {
        match self {
            Grant::Full | Grant::ApiDisabled => SCOPE_BITS.to_vec(),
            Grant::NoScope => vec![APPEND_SCOPE],
            Grant::Scopes(bits) => SCOPE_BITS
                .iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, s)| *s)
                .collect(),
        }
    }

    pub fn has_scope(self, scope: &str) -> bool {
        self.scopes().contains(&scope)
    }

    /// Whether `openid` was granted (only ever through the authorization flow).
    fn has_openid(self) -> bool {
        matches!(self, Grant::Scopes(bits) if bits & OPENID_BIT != 0)
    }
}

/// A Google account id: like Google's `sub`, a string of 21 decimal digits.
pub(crate) fn new_account_id() -> String {
    let mut rng = rand::rng();
    std::iter::once(char::from(b'1'))
        .chain((0..20).map(|_| char::from(b'0' + rng.random_range(0..10u8))))
        .collect()
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

    let mut new_refresh_token = None;
    let (grant, account) = match grant_type.as_str() {
        "refresh_token" => {
            let Some(refresh_token) = params.get("refresh_token").filter(|t| !t.is_empty()) else {
                return invalid_request("Missing required parameter: refresh_token");
            };
            match refresh_grant(inner, refresh_token) {
                Some(minted) => minted,
                None => {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "Token has been expired or revoked.",
                    );
                }
            }
        }
        "authorization_code" => match redeem_code(inner, &params) {
            Ok(minted) => {
                let token = format!("1//emu-{}", &new_access_token()[5..60]);
                relock(&inner.refresh_grants).insert(token.clone(), minted.clone());
                new_refresh_token = Some(token);
                (minted.grant, Some(minted.account))
            }
            Err(reply) => return reply,
        },
        other => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("Invalid grant_type: {other}"),
            );
        }
    };
    issue(inner, grant, new_refresh_token, account.as_deref())
}

/// The grant behind a refresh token, and its account when a code exchange minted it (the
/// fixed test tokens have none: they never carry `openid`).
fn refresh_grant(inner: &Inner, refresh_token: &str) -> Option<(Grant, Option<String>)> {
    let grant = match refresh_token {
        REFRESH_TOKEN => Grant::Full,
        REFRESH_TOKEN_NO_SCOPE => Grant::NoScope,
        REFRESH_TOKEN_API_DISABLED => Grant::ApiDisabled,
        // Read, append and picker: what this project asked for before album renames.
        REFRESH_TOKEN_NO_EDIT => Grant::Scopes(0b0111),
        // Read, picker and edit: a grant where the user unticked uploading.
        REFRESH_TOKEN_NO_APPEND => Grant::Scopes(0b1101),
        // REFRESH_TOKEN_REVOKED and every unknown token.
        other => {
            return relock(&inner.refresh_grants)
                .get(other)
                .map(|m| (m.grant, Some(m.account.clone())));
        }
    };
    Some((grant, None))
}

/// Exchanges an authorization code: single use, same redirect_uri, PKCE verifier checked.
fn redeem_code(
    inner: &Inner,
    params: &std::collections::HashMap<String, String>,
) -> Result<Minted, Reply> {
    let bad = |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", d);
    let code = params
        .get("code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| invalid_request("Missing required parameter: code"))?;
    let pending = relock(&inner.auth_codes)
        .remove(code)
        .ok_or_else(|| bad("Malformed auth code."))?;
    if inner.clock.now() - pending.issued_at > chrono::Duration::minutes(10) {
        return Err(bad("Bad Request"));
    }
    if params.get("redirect_uri") != Some(&pending.redirect_uri) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "redirect_uri_mismatch",
            "Bad Request",
        ));
    }
    let verifier = params
        .get("code_verifier")
        .ok_or_else(|| bad("Missing code verifier."))?;
    let digest = sha2::Sha256::digest(verifier.as_bytes());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    if challenge != pending.challenge {
        return Err(bad("Invalid code verifier."));
    }
    Ok(Minted {
        grant: pending.grant,
        account: pending.account,
    })
}

/// A code waiting to be exchanged.
#[derive(Debug, Clone)]
pub(crate) struct PendingCode {
    redirect_uri: String,
    challenge: String,
    grant: Grant,
    /// Who signed in on the consent page.
    account: String,
    issued_at: DateTime<Utc>,
}

/// `GET /o/oauth2/v2/auth`: stands in for Google's consent page *and* the user, who grants
/// every scope asked for. Checks what Google checks (client id, loopback redirect, code
/// response type, S256 PKCE) and redirects back with a code and the state.
pub(crate) fn authorize(inner: &Inner, req: &Req) -> Reply {
    let params: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(req.query.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let page = |status: StatusCode, text: &str| {
        Reply::new(status, "text/html; charset=utf-8", format!("<p>{text}</p>"))
    };
    if params.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return page(StatusCode::UNAUTHORIZED, "Error 401: invalid_client");
    }
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return page(
            StatusCode::BAD_REQUEST,
            "Error 400: redirect_uri is missing",
        );
    };
    let loopback = url::Url::parse(redirect_uri).is_ok_and(|u| {
        u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
    });
    if !loopback {
        return page(StatusCode::BAD_REQUEST, "Error 400: redirect_uri_mismatch");
    }
    if params.get("response_type").map(String::as_str) != Some("code") {
        return page(
            StatusCode::BAD_REQUEST,
            "Error 400: unsupported_response_type",
        );
    }
    let (Some(challenge), Some("S256")) = (
        params.get("code_challenge"),
        params.get("code_challenge_method").map(String::as_str),
    ) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Error 400: PKCE with S256 is required",
        );
    };
    let mut bits = 0u8;
    for scope in params
        .get("scope")
        .map(String::as_str)
        .unwrap_or("")
        .split_whitespace()
    {
        let short = scope.strip_prefix(SCOPE_PREFIX).unwrap_or(scope);
        match SCOPE_BITS.iter().position(|s| *s == short) {
            Some(i) => bits |= 1 << i,
            None if scope == OPENID_SCOPE => bits |= OPENID_BIT,
            None => {
                return page(
                    StatusCode::BAD_REQUEST,
                    &format!("Error 400: invalid_scope {scope}"),
                );
            }
        }
    }
    if bits == 0 {
        return page(
            StatusCode::BAD_REQUEST,
            "Error 400: invalid_request (missing scope)",
        );
    }
    let code = format!("4/emu-{}", &new_access_token()[5..50]);
    relock(&inner.auth_codes).insert(
        code.clone(),
        PendingCode {
            redirect_uri: redirect_uri.clone(),
            challenge: challenge.clone(),
            grant: Grant::Scopes(bits),
            account: relock(&inner.signed_in).clone(),
            issued_at: inner.clock.now(),
        },
    );
    let mut location = url::Url::parse(redirect_uri).expect("checked above");
    {
        let mut q = location.query_pairs_mut();
        if let Some(state) = params.get("state") {
            q.append_pair("state", state);
        }
        q.append_pair("code", &code);
        q.append_pair("scope", &scope_string(Grant::Scopes(bits)));
    }
    Reply::new(StatusCode::FOUND, "text/html; charset=utf-8", "").with_header(
        http::header::LOCATION,
        HeaderValue::from_str(location.as_str()).expect("a URL is a valid header"),
    )
}

fn scope_string(grant: Grant) -> String {
    grant
        .has_openid()
        .then(|| OPENID_SCOPE.to_string())
        .into_iter()
        .chain(grant.scopes().iter().map(|s| format!("{SCOPE_PREFIX}{s}")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An OpenID Connect `id_token` for `account`, shaped as Google's: a JWT (base64url header,
/// payload and signature joined by dots) whose payload names the issuer, the client as
/// audience, and the account as `sub`. The signature is not a real RS256 one: the client
/// reads the token it got from the token endpoint over TLS without verifying it, as Google's
/// guide allows, and nothing here checks it either.
fn id_token(inner: &Inner, account: &str) -> String {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let now = inner.clock.now().timestamp();
    let header = b64(br#"{"alg":"RS256","kid":"emulator","typ":"JWT"}"#);
    let payload = b64(json!({
        "iss": "https://accounts.google.com",
        "azp": CLIENT_ID,
        "aud": CLIENT_ID,
        "sub": account,
        "iat": now,
        "exp": now + 3600,
    })
    .to_string()
    .as_bytes());
    let signature = b64(&sha2::Sha256::digest(format!("{header}.{payload}")));
    format!("{header}.{payload}.{signature}")
}

/// Mints an access token for `grant` (and hands out a new refresh token when there is one);
/// with `openid` granted, the answer also carries an `id_token` naming `account`.
fn issue(
    inner: &Inner,
    grant: Grant,
    refresh_token: Option<String>,
    account: Option<&str>,
) -> Reply {
    let access_token = new_access_token();
    let ttl = inner.opts.access_token_ttl;
    let expires_at =
        inner.clock.now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX / 2);
    inner
        .tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(access_token.clone(), AccessToken { grant, expires_at });
    let mut body = json!({
        "access_token": access_token,
        "expires_in": ttl.as_secs(),
        "scope": scope_string(grant),
        "token_type": "Bearer",
    });
    if let Some(token) = refresh_token {
        body["refresh_token"] = json!(token);
    }
    if let Some(account) = account.filter(|_| grant.has_openid()) {
        body["id_token"] = json!(id_token(inner, account));
    }
    Reply::json(StatusCode::OK, &body)
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
