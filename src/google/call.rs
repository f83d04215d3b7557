//! The one path every request to Google takes.
//!
//! The Library API, the Picker API, the uploads endpoint and the content host fail in
//! different ways, but what has to happen around a request is the same for all of them, and
//! it is written once, here, in [`Caller`]:
//!
//! 1. **the quota gate** of the call's [`Bucket`]: while it is closed the call fails at once
//!    with [`GoogleError::GateClosed`] and nothing is sent (see [`super::quota`]);
//! 2. **the access token**, when the request needs the token source's: attached as a bearer
//!    token, and a 401 invalidates it and sends the request exactly once more with a fresh one
//!    (an access token can die before its stated expiry; a second 401 is an answer);
//! 3. **counting**: every request sent counts in its bucket (Google counts retries too) and,
//!    with its status, in the metrics;
//! 4. **error classification**, by the [`Host`] that answered: the APIs' JSON errors (a 429's
//!    window read from Google's structured details, or from our own count when they are
//!    missing), the uploads endpoint's bare ones (its code-16 401), the content host's statuses
//!    (its 429 closes or pauses the gate);
//! 5. **the retry policy** ([`RetryPolicy`]) around the attempts of a call, with a predicate
//!    saying which failures a call may be repeated after (batchCreate never after a lost
//!    answer; a resumable chunk after a 400 that tells where to resume);
//! 6. and after the last attempt, an API's daily 429 closes its bucket's gate until Pacific
//!    midnight.
//!
//! A call is [`Caller::run`] (steps 1, 5, 6) around one or more [`Caller::request`]s (steps 2
//! to 4): most calls are one request per attempt, but a size probe is a HEAD and maybe a
//! ranged GET, and a resumed upload chunk is a query and the chunk, each attempt starting over.
//! The transports differ too (reqwest for the APIs, uploads and probes; the bounded-buffer
//! client of [`super::download_http`] for downloads), so a request is anything that is
//! [`Outgoing`], and its answer anything that is an [`Answer`].

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

use super::auth::TokenSource;
use super::error::GoogleError;
use super::quota::{Bucket, QuotaGate, Share};
use super::retry::RetryPolicy;

/// The gRPC code (UNAUTHENTICATED) of the uploads endpoint's bare 401 body.
const CODE_UNAUTHENTICATED: i64 = 16;

/// Which of Google's hosts answers a call: each words its failures in its own way, so each
/// has its own classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// The Library and Picker APIs: JSON errors (`{"error": {...}}`) whose 429s carry the
    /// quota's window in structured details; a daily 429 closes the bucket's gate.
    Api,
    /// The uploads endpoint (`/v1/uploads` and its resumable sessions): bare
    /// `{"code","message"}` errors, and a 401 with code 16 to a *fresh* token for a missing
    /// `appendonly` scope (see [`super::upload`]).
    Uploads,
    /// The content host behind `baseUrl`s: statuses and HTML pages, nothing structured. Its
    /// 429 closes the bucket's gate (for the day or a pause, see
    /// [`QuotaGate::throttled`]), so it is never retried; the gate is checked before each of
    /// its requests, since one request's 429 closes it for the next.
    Content,
    /// Any API, asked by `doctor` whether it answers: every status is the result (the caller
    /// reads it), nothing is classified as a failure.
    Diagnostic,
}

/// What one call is, for the logs, the quota and the classification of its failures.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// The call's name in log lines, retry messages and the metrics (`albums.list`,
    /// `uploads.chunk`, `content.download`).
    pub what: &'static str,
    /// The quota it counts in, whose gate it passes.
    pub bucket: Bucket,
    /// Who answers it.
    pub host: Host,
    /// A size probe: each of its requests in the media bucket is taken from the day's probe
    /// budget first ([`QuotaGate::take_probe`]).
    pub probe: bool,
}

impl Call {
    /// A call of the Photos Library API.
    pub const fn api(what: &'static str) -> Self {
        Call {
            what,
            bucket: Bucket::Api,
            host: Host::Api,
            probe: false,
        }
    }

    /// A call of the Photos Picker API (its own quota, its own gate).
    pub const fn picker(what: &'static str) -> Self {
        Call {
            what,
            bucket: Bucket::Picker,
            host: Host::Api,
            probe: false,
        }
    }

    /// A diagnostic request of `doctor` to an API, counted in `bucket`: its answer's status,
    /// whatever it is, is the result.
    pub const fn diagnostic(what: &'static str, bucket: Bucket) -> Self {
        Call {
            what,
            bucket,
            host: Host::Diagnostic,
            probe: false,
        }
    }

    /// A request to the uploads endpoint (counted in the Library API's quota).
    pub const fn uploads(what: &'static str) -> Self {
        Call {
            what,
            bucket: Bucket::Api,
            host: Host::Uploads,
            probe: false,
        }
    }

    /// A request to the content host, counted in `bucket` (see `content::bucket_of`).
    pub const fn content(what: &'static str, bucket: Bucket) -> Self {
        Call {
            what,
            bucket,
            host: Host::Content,
            probe: false,
        }
    }

    /// A size probe on the content host, counted in `bucket`; in the media bucket each of its
    /// requests also spends one of the day's probe budget.
    pub const fn probe(what: &'static str, bucket: Bucket) -> Self {
        Call {
            what,
            bucket,
            host: Host::Content,
            probe: true,
        }
    }
}

/// How a request is authorized.
#[derive(Debug, Clone, Copy)]
pub enum Auth {
    /// The token source's access token; a 401 refreshes it once and sends again.
    Token,
    /// Nothing: the URL itself authorizes (a resumable session's URL, a library item's
    /// `baseUrl`).
    None,
}

/// A request ready to be sent: what [`Caller::request`] needs of a transport.
pub trait Outgoing: Send {
    /// What the transport answers.
    type Answer: Answer;
    /// The request with `Authorization: Bearer <token>`.
    fn bearer(self, token: &str) -> Self;
    /// Sends the request, recording each HTTP exchange (redirect hops included) in the
    /// metrics as `kind`.
    fn send(
        self,
        kind: &'static str,
    ) -> impl Future<Output = Result<Self::Answer, GoogleError>> + Send;
}

/// An answer's head, and its body when an error must be read from it.
pub trait Answer: Send + Sized {
    /// The HTTP status.
    fn status(&self) -> StatusCode;
    /// The response headers.
    fn headers(&self) -> &HeaderMap;
    /// The whole body (an error's JSON).
    fn bytes(self) -> impl Future<Output = Result<Bytes, GoogleError>> + Send;
}

impl Outgoing for reqwest::RequestBuilder {
    type Answer = reqwest::Response;

    fn bearer(self, token: &str) -> Self {
        self.bearer_auth(token)
    }

    async fn send(self, kind: &'static str) -> Result<reqwest::Response, GoogleError> {
        super::counted(kind, reqwest::RequestBuilder::send(self).await)
            .map_err(GoogleError::transport)
    }
}

impl Answer for reqwest::Response {
    fn status(&self) -> StatusCode {
        reqwest::Response::status(self)
    }

    fn headers(&self) -> &HeaderMap {
        reqwest::Response::headers(self)
    }

    async fn bytes(self) -> Result<Bytes, GoogleError> {
        reqwest::Response::bytes(self)
            .await
            .map_err(GoogleError::transport)
    }
}

/// Sends every request to Google (see the module docs): one per set of credentials, shared
/// by the Library, Picker, upload and content clients, so they share one token, one retry
/// policy and one set of quota gates.
#[derive(Clone)]
pub struct Caller {
    tokens: Arc<TokenSource>,
    retry: RetryPolicy,
    quota: Arc<QuotaGate>,
    /// A family server library's part of the project's day, checked and counted before the
    /// project's gate (see [`Share`]); None on a single-account server.
    share: Option<Arc<Share>>,
}

impl Caller {
    pub fn new(
        tokens: Arc<TokenSource>,
        retry: RetryPolicy,
        quota: Arc<QuotaGate>,
        share: Option<Arc<Share>>,
    ) -> Self {
        Caller {
            tokens,
            retry,
            quota,
            share,
        }
    }

    /// The token source (for callers that hold a token themselves: picked items' URLs).
    pub fn tokens(&self) -> &Arc<TokenSource> {
        &self.tokens
    }

    /// The quotas and their gates.
    pub fn quota(&self) -> &Arc<QuotaGate> {
        &self.quota
    }

    /// One call: refused at once while its bucket's gate is closed; `attempt` run until it
    /// succeeds, fails with an error `retry_on` does not accept, or the retry policy gives
    /// up; an API's daily 429 then closes the bucket's gate (and is answered as the closed
    /// gate).
    pub async fn run<T, F, Fut>(
        &self,
        call: Call,
        retry_on: impl Fn(&GoogleError) -> bool,
        attempt: F,
    ) -> Result<T, GoogleError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, GoogleError>>,
    {
        self.quota.check_bucket(call.bucket)?;
        if let Some(share) = &self.share {
            share.check(call.bucket)?;
        }
        match self.retry.run_when(call.what, attempt, retry_on).await {
            Err(GoogleError::RateLimited {
                daily: true,
                message,
                ..
            }) if call.host == Host::Api => Err(self.quota.close_daily(call.bucket, &message)),
            other => other,
        }
    }

    /// One request of `call`, built by `build` and sent as `kind` (the metrics' name; a size
    /// probe's HEAD and GET differ): its token attached and refreshed once on a 401 as
    /// `auth` says, counted in the call's bucket, and its answer classified. Returns a
    /// successful answer (the content host's 416 included: an empty file's probe); any other
    /// is the error it means.
    ///
    /// Its exchanges (the token refresh included) are counted in the metrics under the
    /// caller's library, on a family server.
    pub async fn request<O, B, BFut>(
        &self,
        call: Call,
        kind: &'static str,
        auth: Auth,
        build: B,
    ) -> Result<O::Answer, GoogleError>
    where
        O: Outgoing,
        B: Fn() -> BFut,
        BFut: Future<Output = Result<O, GoogleError>>,
    {
        let library = self.share.as_ref().map(|s| s.mount().clone());
        crate::metrics::with_library(library, self.send_one(call, kind, auth, build)).await
    }

    /// [`Caller::request`], inside its library's metrics scope.
    async fn send_one<O, B, BFut>(
        &self,
        call: Call,
        kind: &'static str,
        auth: Auth,
        build: B,
    ) -> Result<O::Answer, GoogleError>
    where
        O: Outgoing,
        B: Fn() -> BFut,
        BFut: Future<Output = Result<O, GoogleError>>,
    {
        if call.host == Host::Content {
            self.quota.check_bucket(call.bucket)?;
        }
        if call.probe && call.bucket == Bucket::Media {
            if let Some(share) = &self.share {
                share
                    .take_probe()
                    .map_err(|retry_after| GoogleError::ProbeBudgetSpent { retry_after })?;
            }
            self.quota
                .take_probe()
                .map_err(|retry_after| GoogleError::ProbeBudgetSpent { retry_after })?;
        }
        let mut refreshed = false;
        loop {
            let token = match auth {
                Auth::Token => Some(self.tokens.access_token().await?),
                _ => None,
            };
            let mut request = build().await?;
            if let Some(token) = &token {
                request = request.bearer(token.secret());
            }
            if let Some(share) = &self.share {
                share.take(call.bucket)?;
            }
            self.quota.count(call.bucket);
            let answer = request.send(kind).await?;
            if let Some(token) = token
                && answer.status() == StatusCode::UNAUTHORIZED
                && !refreshed
            {
                tracing::debug!(
                    call = call.what,
                    "access token refused (401); refreshing once"
                );
                self.tokens.invalidate(&token).await;
                refreshed = true;
                continue;
            }
            return self.classify(call, refreshed, answer).await;
        }
    }

    /// A JSON call of the Library or Picker API: [`Caller::run`] of one [`Caller::request`]
    /// with the access token, its body parsed as `T`. Only the transient failures
    /// `retryable` accepts are retried.
    pub async fn json<T: DeserializeOwned>(
        &self,
        call: Call,
        build: impl Fn() -> reqwest::RequestBuilder,
        retryable: impl Fn(&GoogleError) -> bool,
    ) -> Result<T, GoogleError> {
        self.run(
            call,
            |e| e.is_transient() && retryable(e),
            || async {
                let answer = self
                    .request(call, call.what, Auth::Token, || {
                        std::future::ready(Ok(build()))
                    })
                    .await?;
                let body = Answer::bytes(answer).await?;
                serde_json::from_slice(&body)
                    .map_err(|e| GoogleError::Protocol(format!("{}: {e}", call.what)))
            },
        )
        .await
    }

    /// The answer if it is a success, else the error it means, read the way its host words
    /// it. `refreshed`: a 401 came back to a freshly minted token.
    async fn classify<A: Answer>(
        &self,
        call: Call,
        refreshed: bool,
        answer: A,
    ) -> Result<A, GoogleError> {
        let status = answer.status();
        match call.host {
            Host::Diagnostic => Ok(answer),
            _ if status.is_success() && call.host != Host::Content => Ok(answer),
            Host::Content => match status {
                s if s.is_success() || s == StatusCode::RANGE_NOT_SATISFIABLE => {
                    self.quota.succeeded(call.bucket);
                    Ok(answer)
                }
                StatusCode::TOO_MANY_REQUESTS => Err(self
                    .quota
                    .throttled(call.bucket, super::error::retry_after(answer.headers()))),
                s => Err(content_error(s)),
            },
            Host::Api => {
                let retry_after = super::error::retry_after(answer.headers());
                let body = answer.bytes().await?;
                let mut err = GoogleError::from_api_response(status.as_u16(), &body, retry_after);
                // A 429 without Google's structured details says nothing of its window: near
                // the day's quota by our own count it is taken for the daily quota, otherwise
                // for a short-lived limit (retried with backoff, bounded by the policy).
                if let GoogleError::RateLimited { daily, .. } = &mut err
                    && !*daily
                    && super::error::quota_window(&body).is_none()
                    && self.quota.near_daily_limit(call.bucket)
                {
                    *daily = true;
                }
                tracing::debug!(call = call.what, status = status.as_u16(), error = %err, "API call failed");
                Err(err)
            }
            Host::Uploads => {
                let retry_after = super::error::retry_after(answer.headers());
                let body = answer.bytes().await.unwrap_or_default();
                if status == StatusCode::UNAUTHORIZED && refreshed {
                    return Err(if is_code_16(&body) {
                        tracing::warn!(
                            "the uploads endpoint refused a fresh access token with code 16 \
                             (\"Authentication session is not defined.\"): the \
                             photoslibrary.appendonly scope is missing"
                        );
                        GoogleError::InsufficientScopes
                    } else {
                        GoogleError::Unauthenticated
                    });
                }
                Err(GoogleError::from_api_response(
                    status.as_u16(),
                    &body,
                    retry_after,
                ))
            }
        }
    }
}

/// Retry after every transient failure (the predicate of most calls).
pub fn transient(e: &GoogleError) -> bool {
    e.is_transient()
}

/// The content host's error for a failed status other than 429.
fn content_error(status: StatusCode) -> GoogleError {
    match status {
        StatusCode::FORBIDDEN => GoogleError::UrlExpired,
        // Only URLs that need the bearer token answer this: the token was refused.
        StatusCode::UNAUTHORIZED => GoogleError::Unauthenticated,
        StatusCode::NOT_FOUND => GoogleError::NotFound("the item's bytes".into()),
        s => GoogleError::Content(s.as_u16()),
    }
}

/// Whether an uploads-endpoint error body is the bare code-16 (UNAUTHENTICATED) answer.
fn is_code_16(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("code").and_then(serde_json::Value::as_i64))
        == Some(CODE_UNAUTHENTICATED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_16_answer_is_recognised() {
        assert!(is_code_16(
            br#"{"code":16,"message":"Authentication session is not defined."}"#
        ));
        assert!(!is_code_16(
            br#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#
        ));
        assert!(!is_code_16(b"<html>401</html>"));
    }
}
