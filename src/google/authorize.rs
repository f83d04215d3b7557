//! The installed-app OAuth flow that mints a refresh token, through the `oauth2` crate.
//!
//! Google's recommended flow for a desktop program: a loopback redirect
//! (`http://127.0.0.1:PORT/` on an ephemeral port this process listens on), PKCE with S256,
//! `access_type=offline` and `prompt=consent` (without them no refresh token comes back), and a
//! random `state` that must come back unchanged. The user opens the printed URL, consents, and
//! the browser is redirected here with a code, which is exchanged for the tokens.

use std::time::Duration;

use base64::Engine;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, ExtraTokenFields,
    PkceCodeChallenge, RedirectUrl, Scope, StandardRevocableToken, StandardTokenResponse,
    TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::error::{GoogleError, SCOPES};

/// Which scopes to ask for: all of them by default, or fewer for a user who wants a token that
/// cannot, say, upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeSet {
    Read,
    Upload,
    Picker,
    All,
}

/// Asked for with every scope set: Google then answers the code exchange with an `id_token`
/// that names the account (its `sub`), which the Photos scopes cannot tell.
pub const OPENID_SCOPE: &str = "openid";

impl ScopeSet {
    /// The Photos scopes of this set, and `openid`.
    pub fn scopes(self) -> Vec<&'static str> {
        let mut scopes = match self {
            ScopeSet::Read => vec![SCOPES[0]],
            ScopeSet::Upload => vec![SCOPES[1], SCOPES[3]],
            ScopeSet::Picker => vec![SCOPES[2]],
            ScopeSet::All => SCOPES.to_vec(),
        };
        scopes.push(OPENID_SCOPE);
        scopes
    }
}

/// The token response's field beyond OAuth's own: OpenID Connect's `id_token`, present when
/// `openid` was granted.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

type IdTokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;

/// `BasicClient`, but reading the `id_token` of the code exchange.
type IdClient = oauth2::Client<
    BasicErrorResponse,
    IdTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
>;

/// The account (`sub`) an `id_token` names.
///
/// The signature is not verified, on purpose: the token comes straight from Google's token
/// endpoint over TLS in the code exchange this process made, which is the case Google's
/// OpenID Connect guide names as safe without validation ("since you are communicating
/// directly with Google over HTTPS [...] you can be confident that the token you receive
/// really comes from Google",
/// <https://developers.google.com/identity/openid-connect/openid-connect#obtainuserinfo>).
/// An `id_token` from anywhere else (a header, a file) must never be read with this.
pub(crate) fn id_token_subject(id_token: &str) -> Result<String, String> {
    let payload = id_token
        .split('.')
        .nth(1)
        .filter(|_| id_token.split('.').count() == 3)
        .ok_or("the id_token is not a JWT (header.payload.signature)")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "the id_token's payload is not base64url")?;
    #[derive(Deserialize)]
    struct Claims {
        sub: Option<String>,
    }
    let claims: Claims =
        serde_json::from_slice(&bytes).map_err(|_| "the id_token's payload is not JSON")?;
    claims
        .sub
        .filter(|s| !s.is_empty())
        .ok_or_else(|| "the id_token names no account (no sub)".into())
}

/// What `gphotos-dav auth` needs to run the installed-app flow once: the OAuth client, the
/// endpoints (Google's, or the emulator's in tests) and the scopes to ask for.
pub struct AuthorizeRequest<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub auth_url: &'a str,
    pub token_url: &'a str,
    pub scopes: ScopeSet,
    /// How long to wait for the browser to come back.
    pub timeout: Duration,
}

/// What the flow obtained.
pub struct Authorized {
    pub refresh_token: String,
    pub scopes: String,
    /// The Google account's stable id, from the `id_token` (`None` if Google sent none).
    pub account: Option<String>,
}

/// Runs the flow. `show_url` receives the URL the user must open (print it, open a browser).
pub async fn authorize(
    req: &AuthorizeRequest<'_>,
    show_url: impl FnOnce(&str),
) -> Result<Authorized, GoogleError> {
    let err = |m: String| GoogleError::Token(m);
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| err(format!("cannot listen on 127.0.0.1 for the redirect: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| err(e.to_string()))?
        .port();
    let redirect = format!("http://127.0.0.1:{port}/");
    let client = IdClient::new(ClientId::new(req.client_id.into()))
        .set_client_secret(ClientSecret::new(req.client_secret.into()))
        .set_auth_uri(AuthUrl::new(req.auth_url.into()).map_err(|e| err(format!("auth_url: {e}")))?)
        .set_token_uri(
            TokenUrl::new(req.token_url.into()).map_err(|e| err(format!("token_url: {e}")))?,
        )
        .set_redirect_uri(RedirectUrl::new(redirect).map_err(|e| err(e.to_string()))?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(
            req.scopes
                .scopes()
                .into_iter()
                .map(|s| Scope::new(s.into())),
        )
        .add_extra_param("access_type", "offline")
        .add_extra_param("prompt", "consent")
        .set_pkce_challenge(challenge)
        .url();
    show_url(url.as_str());

    let answer = tokio::time::timeout(req.timeout, wait_for_redirect(listener))
        .await
        .map_err(|_| {
            err(format!(
                "no answer from the browser within {} s: open the URL above, sign in and allow \
                 access, then run `gphotos-dav auth` again",
                req.timeout.as_secs()
            ))
        })??;
    if let Some(error) = answer.error {
        return Err(err(format!(
            "Google answered \"{error}\" instead of a code{}",
            if error == "access_denied" {
                ": access was declined on the consent page"
            } else {
                ""
            }
        )));
    }
    // Compared in full: a state that does not come back unchanged means the redirect did not
    // come from the flow this process started.
    if answer.state.as_deref() != Some(state.secret().as_str()) {
        return Err(err(
            "the redirect carried the wrong state (not from this authorization); try again".into(),
        ));
    }
    let code = answer
        .code
        .ok_or_else(|| err("the redirect carried no code".into()))?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(GoogleError::transport)?;
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .map_err(|e| match e {
            oauth2::RequestTokenError::ServerResponse(r) => {
                err(format!("the code exchange was refused: {}", r.error()))
            }
            _ => err("the code exchange failed".into()),
        })?;
    let refresh_token = tokens.refresh_token().ok_or_else(|| {
        err(
            "Google returned no refresh token. Remove this app's access at \
             https://myaccount.google.com/permissions and run `gphotos-dav auth` again"
                .into(),
        )
    })?;
    let scopes = super::auth::scope_text(&tokens);
    let account = match &tokens.extra_fields().id_token {
        Some(jwt) => Some(id_token_subject(jwt).map_err(|e| {
            err(format!(
                "{e}: Google's answer to the code exchange could not be read; run \
                 `gphotos-dav auth` again"
            ))
        })?),
        None => None,
    };
    Ok(Authorized {
        refresh_token: refresh_token.secret().clone(),
        scopes,
        account,
    })
}

/// The query of the redirect that ends the flow.
struct Answer {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Serves the loopback redirect until a request carries a code or an error.
async fn wait_for_redirect(listener: TcpListener) -> Result<Answer, GoogleError> {
    let (tx, mut rx) = mpsc::channel::<Answer>(1);
    loop {
        tokio::select! {
            answer = rx.recv() => {
                if let Some(answer) = answer {
                    return Ok(answer);
                }
            }
            accepted = listener.accept() => {
                let (stream, _) = accepted
                    .map_err(|e| GoogleError::Token(format!("redirect listener failed: {e}")))?;
                let tx = tx.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let params: std::collections::HashMap<String, String> =
                                url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                                    .into_owned()
                                    .collect();
                            let done = params.contains_key("code") || params.contains_key("error");
                            let page = if done {
                                let _ = tx
                                    .send(Answer {
                                        code: params.get("code").cloned(),
                                        state: params.get("state").cloned(),
                                        error: params.get("error").cloned(),
                                    })
                                    .await;
                                "<!doctype html><title>gphotos-dav</title><p>gphotos-dav \
                                 received Google's answer. You can close this tab and return \
                                 to the terminal.</p>"
                            } else {
                                "<!doctype html><title>gphotos-dav</title><p>Waiting for \
                                 Google's redirect.</p>"
                            };
                            let mut resp = hyper::Response::new(Full::new(Bytes::from(page)));
                            resp.headers_mut().insert(
                                "content-type",
                                http::HeaderValue::from_static("text/html; charset=utf-8"),
                            );
                            if !done {
                                *resp.status_mut() = http::StatusCode::NOT_FOUND;
                            }
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.c2ln", b64(r#"{"alg":"RS256"}"#), b64(payload))
    }

    #[test]
    fn the_subject_is_read_from_the_payload() {
        let token = jwt(r#"{"iss":"https://accounts.google.com","sub":"110169484474386276334"}"#);
        assert_eq!(id_token_subject(&token).unwrap(), "110169484474386276334");
        assert!(ScopeSet::Read.scopes().contains(&OPENID_SCOPE));
    }

    #[test]
    fn a_malformed_id_token_is_refused() {
        assert!(id_token_subject("not-a-jwt").is_err());
        assert!(id_token_subject("a.!!!.c").is_err());
        assert!(id_token_subject(&jwt("[1]")).is_err());
        assert!(id_token_subject(&jwt(r#"{"sub":""}"#)).is_err());
        assert!(id_token_subject(&jwt(r#"{"email":"x"}"#)).is_err());
    }
}
