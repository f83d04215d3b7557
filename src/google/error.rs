//! Typed errors for every way a call to Google can fail.
//!
//! Each variant that a user can fix carries a message that says *how*: which scopes to grant,
//! where to enable the API, that the refresh token must be minted again. These messages reach
//! the log and the body of the HTTP error we answer, so they must never contain a secret or a
//! download URL (download URLs work like passwords for an hour).

use std::time::Duration;

/// The scopes this program asks for, as Google spells them.
/// Reading what this app created; uploading and creating albums; the Picker; renaming the
/// albums this app created (albums.patch, for a folder renamed in Finder or Explorer).
pub const SCOPES: [&str; 4] = [
    "https://www.googleapis.com/auth/photoslibrary.readonly.appcreateddata",
    "https://www.googleapis.com/auth/photoslibrary.appendonly",
    "https://www.googleapis.com/auth/photospicker.mediaitems.readonly",
    "https://www.googleapis.com/auth/photoslibrary.edit.appcreateddata",
];

/// Every way a call to Google fails, typed, so that callers decide by kind (retry, refresh a
/// URL, close a gate, answer 503 or 403) and users read the fix in the message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GoogleError {
    /// The refresh token was revoked, expired (7 days for apps in "Testing"), or belongs to
    /// another client.
    #[error(
        "Google rejected the refresh token (invalid_grant: expired or revoked). Authorize again to \
         get a new refresh token; OAuth apps left in \"Testing\" publishing status get refresh \
         tokens that expire after 7 days"
    )]
    InvalidGrant,

    /// client_id / client_secret are wrong.
    #[error("Google rejected the OAuth client ({0}); check client_id and client_secret")]
    InvalidClient(String),

    /// The token endpoint failed in another way.
    #[error("the OAuth token endpoint failed: {0}")]
    Token(String),

    /// The access token lacks a scope the call needs: the Library API's 403, or the uploads
    /// endpoint's code-16 401 to a fresh token (see `google::upload`).
    #[error(
        "Google refused the call for a missing scope (the Library API answers 403 \"Request had \
         insufficient authentication scopes\", the uploads endpoint 401 \"Authentication \
         session is not defined.\"): the refresh token was granted without the needed scopes. \
         Authorize again granting \
         photoslibrary.readonly.appcreateddata, photoslibrary.appendonly, \
         photospicker.mediaitems.readonly and photoslibrary.edit.appcreateddata \
         (https://www.googleapis.com/auth/...)"
    )]
    InsufficientScopes,

    /// The Photos Library API is not enabled in the Cloud project of the OAuth client.
    #[error(
        "the Photos Library API is disabled in the Google Cloud project of this OAuth client: \
         enable it at {enable_url} and retry"
    )]
    ApiDisabled { enable_url: String },

    /// 403 for another reason than scopes or a disabled API: Google does not let this app do
    /// that (for example list shared albums, since 2025).
    #[error("Google refused the call (403 PERMISSION_DENIED): {0}")]
    PermissionDenied(String),

    /// The access token was refused even after one refresh.
    #[error("Google refused the access token (401 UNAUTHENTICATED) even after refreshing it")]
    Unauthenticated,

    /// 429: too many requests. `daily` is set when the per-day quota is used up (see
    /// [`quota_window`]: Google's structured details say so, not the words of the message).
    #[error("Google is rate limiting this project (429 RESOURCE_EXHAUSTED): {message}")]
    RateLimited {
        message: String,
        retry_after: Option<Duration>,
        daily: bool,
    },

    /// sessions.create answered 429 RESOURCE_EXHAUSTED: the user holds too many picking
    /// sessions (Google's documented reason; its per-minute Picker quota of 100,000 requests
    /// is out of reach for one user). Not retried: only deleting sessions helps.
    #[error(
        "Google refused to open another picking session (429 RESOURCE_EXHAUSTED: {0}): this \
         account holds too many picking sessions; sessions that are no longer needed must be \
         deleted first"
    )]
    PickingSessionLimit(String),
    /// A quota gate is closed (a daily quota used up, or a pause after the content host's
    /// 429): refused here, without calling Google. Not retried: `retry_after` is when it opens.
    #[error("{message}")]
    GateClosed {
        message: String,
        retry_after: Duration,
    },

    /// Today's probe budget (`[cache] probe_budget`) is spent: no size probe is sent until the
    /// next Pacific midnight, `retry_after` from now. Not retried; the catalog says how many
    /// items still need a size.
    #[error("today's size-probe budget ([cache] probe_budget) is spent")]
    ProbeBudgetSpent { retry_after: Duration },

    /// A download URL (baseUrl) expired; fetch the item again for a fresh one.
    #[error("the download URL expired (403 from the content host)")]
    UrlExpired,

    /// The item or album does not exist (or is not visible to this app).
    #[error("Google does not know {0}")]
    NotFound(String),

    /// Any other error answered by the API, in Google's JSON error format.
    #[error("Google answered {code} {status}: {message}")]
    Api {
        code: u16,
        status: String,
        message: String,
    },

    /// The content host answered an unexpected status.
    #[error("the content host answered {0}")]
    Content(u16),

    /// Connection, TLS or timeout problems. The text never includes the URL.
    #[error("could not reach Google: {0}")]
    Transport(String),

    /// Google answered something we could not understand.
    #[error("unexpected answer from Google: {0}")]
    Protocol(String),
}

impl GoogleError {
    /// Turns a reqwest error into a transport error without leaking the URL it was for.
    pub fn transport(e: reqwest::Error) -> Self {
        GoogleError::Transport(e.without_url().to_string())
    }

    /// Whether a retry of the same request could succeed (used by callers that retry).
    pub fn is_transient(&self) -> bool {
        match self {
            GoogleError::Transport(_) => true,
            GoogleError::RateLimited { daily, .. } => !daily,
            GoogleError::Api { code, .. } => matches!(code, 500 | 502 | 503 | 504),
            GoogleError::Content(code) => matches!(code, 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// Whether this is a rate limit (Google's 429, or a closed quota gate). Callers that
    /// resume or repeat work on their own (a download's resume loop) must not repeat these:
    /// the retry policy and the gates already decide when to ask Google again.
    pub fn is_rate_limit(&self) -> bool {
        matches!(
            self,
            GoogleError::RateLimited { .. } | GoogleError::GateClosed { .. }
        )
    }

    /// Builds the error for a non-success API answer from its status and JSON body.
    pub fn from_api_response(code: u16, body: &[u8], retry_after: Option<Duration>) -> Self {
        let parsed = parse_body(body);
        let (message, status) = match parsed {
            Some(b) => (b.message.unwrap_or_default(), b.status.unwrap_or_default()),
            None => (String::new(), String::new()),
        };
        match code {
            401 => GoogleError::Unauthenticated,
            403 if message.contains("insufficient authentication scopes") => {
                GoogleError::InsufficientScopes
            }
            403 if message.contains("has not been used in project")
                || message.contains("it is disabled") =>
            {
                GoogleError::ApiDisabled {
                    enable_url: extract_url(&message).unwrap_or_else(|| {
                        "https://console.cloud.google.com/apis/library/photoslibrary.googleapis.com"
                            .to_string()
                    }),
                }
            }
            403 => GoogleError::PermissionDenied(message),
            429 => GoogleError::RateLimited {
                daily: quota_window(body) == Some(QuotaWindow::Day),
                message: if message.is_empty() {
                    "Too many requests".into()
                } else {
                    message
                },
                retry_after,
            },
            404 => GoogleError::NotFound(if message.is_empty() {
                "the requested resource".into()
            } else {
                message
            }),
            _ => GoogleError::Api {
                code,
                status,
                message,
            },
        }
    }
}

#[derive(serde::Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    message: Option<String>,
    status: Option<String>,
    /// `google.rpc.Status.details`: `{"@type": ..., ...}` objects (ErrorInfo, Help, ...).
    #[serde(default)]
    details: Vec<serde_json::Value>,
}

/// Google's JSON error, wrapped in `{"error": ...}` (the APIs) or bare (the uploads endpoint).
fn parse_body(body: &[u8]) -> Option<ErrorBody> {
    serde_json::from_slice::<ErrorEnvelope>(body)
        .map(|e| e.error)
        .ok()
        .or_else(|| serde_json::from_slice::<ErrorBody>(body).ok())
}

/// How long the quota limit behind a 429 lasts, as Google's structured error states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaWindow {
    /// A per-day limit: nothing but Pacific midnight helps.
    Day,
    /// A per-minute (or per-second, per-hour) limit: retrying with backoff helps.
    Short,
}

/// The `@type` of `google.rpc.ErrorInfo` in a JSON error's `details`.
const ERROR_INFO: &str = "type.googleapis.com/google.rpc.ErrorInfo";

/// Reads the quota window from the ErrorInfo in `details` of Google's error (Google's error
/// model, cloud.google.com/apis/design/errors; AIP-193): its `metadata.quota_limit` names the
/// limit (`ApiCallsPerProjectPerDay`, `WritesPerMinutePerUser`, ...), and newer errors add
/// `quota_unit` (`1/d/{project}`, `1/min/{project}/{user}`). `None` when the error carries no
/// such structure: the message's words are never read (they are for people, and they change).
pub fn quota_window(body: &[u8]) -> Option<QuotaWindow> {
    let parsed = parse_body(body)?;
    parsed
        .details
        .iter()
        .filter(|d| d.get("@type").and_then(|t| t.as_str()) == Some(ERROR_INFO))
        .filter_map(|info| info.get("metadata"))
        .find_map(|metadata| {
            let field = |key: &str| metadata.get(key).and_then(|v| v.as_str());
            field("quota_limit")
                .and_then(window_of_limit)
                .or_else(|| field("quota_unit").and_then(window_of_unit))
        })
}

/// `...PerDay...` is a day; `...PerMinute...`, `...PerSecond...`, `...PerHour...` are short.
fn window_of_limit(name: &str) -> Option<QuotaWindow> {
    let name = name.to_ascii_lowercase();
    if name.contains("perday") {
        Some(QuotaWindow::Day)
    } else if ["perminute", "persecond", "perhour", "per100seconds"]
        .iter()
        .any(|w| name.contains(w))
    {
        Some(QuotaWindow::Short)
    } else {
        None
    }
}

/// `1/d/{project}` is a day; `1/min/...`, `1/s/...`, `1/h/...` are short.
fn window_of_unit(unit: &str) -> Option<QuotaWindow> {
    match unit.split('/').nth(1)? {
        "d" => Some(QuotaWindow::Day),
        "min" | "s" | "h" => Some(QuotaWindow::Short),
        _ => None,
    }
}

/// Finds the first https URL in a Google error message (the "enable the API" link).
fn extract_url(message: &str) -> Option<String> {
    let start = message.find("https://")?;
    let rest = &message[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"')
        .unwrap_or(rest.len());
    Some(rest[..end].trim_end_matches(['.', ',']).to_string())
}

/// The `Retry-After` of an answer, when Google gave it in seconds (the only form it uses).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_disabled_message_keeps_the_link() {
        let body = br#"{"error":{"code":403,"message":"Photos Library API has not been used in project 42 before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/photoslibrary.googleapis.com/overview?project=42 then retry.","status":"PERMISSION_DENIED"}}"#;
        match GoogleError::from_api_response(403, body, None) {
            GoogleError::ApiDisabled { enable_url } => assert_eq!(
                enable_url,
                "https://console.developers.google.com/apis/api/photoslibrary.googleapis.com/overview?project=42"
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn scope_error_is_recognised() {
        let body = br#"{"error":{"code":403,"message":"Request had insufficient authentication scopes.","status":"PERMISSION_DENIED"}}"#;
        assert!(matches!(
            GoogleError::from_api_response(403, body, None),
            GoogleError::InsufficientScopes
        ));
    }

    /// A 429 as Google's error model shapes it: ErrorInfo with the limit's name.
    fn throttled(message: &str, metadata: &str) -> Vec<u8> {
        format!(
            r#"{{"error":{{"code":429,"message":"{message}","status":"RESOURCE_EXHAUSTED",
            "details":[{{"@type":"type.googleapis.com/google.rpc.Help","links":[]}},
            {{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED",
            "domain":"googleapis.com","metadata":{metadata}}}]}}}}"#
        )
        .into_bytes()
    }

    fn daily(err: GoogleError) -> bool {
        match err {
            GoogleError::RateLimited { daily, .. } => daily,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_429_is_classified_by_its_structured_details_not_its_words() {
        let per_day = throttled(
            "Quota exceeded for quota metric 'All requests' and limit 'All requests per day'",
            r#"{"quota_metric":"photoslibrary.googleapis.com/all_requests",
                "quota_limit":"ApiCallsPerProjectPerDay","quota_limit_value":"10000",
                "consumer":"projects/123","service":"photoslibrary.googleapis.com"}"#,
        );
        assert_eq!(quota_window(&per_day), Some(QuotaWindow::Day));
        assert!(daily(GoogleError::from_api_response(429, &per_day, None)));

        // The words say "per day", the details say per minute: per minute it is.
        let per_minute = throttled(
            "Quota exceeded ... 'All requests per day'",
            r#"{"quota_metric":"photoslibrary.googleapis.com/write_requests",
                "quota_limit":"WritesPerMinutePerUser","quota_limit_value":"60"}"#,
        );
        assert_eq!(quota_window(&per_minute), Some(QuotaWindow::Short));
        assert!(!daily(GoogleError::from_api_response(
            429,
            &per_minute,
            Some(Duration::from_secs(7))
        )));

        // Only a unit, as newer errors carry.
        let unit = throttled("x", r#"{"quota_unit":"1/d/{project}"}"#);
        assert_eq!(quota_window(&unit), Some(QuotaWindow::Day));
        let unit = throttled("x", r#"{"quota_unit":"1/min/{project}/{user}"}"#);
        assert_eq!(quota_window(&unit), Some(QuotaWindow::Short));

        // No structure: words alone decide nothing (the caller weighs its own count).
        let bare = br#"{"error":{"code":429,"message":"Quota exceeded for quota metric 'All requests' and limit 'All requests per day' of service 'photoslibrary.googleapis.com'","status":"RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(quota_window(bare), None);
        assert!(!daily(GoogleError::from_api_response(429, bare, None)));
        // An ErrorInfo naming no known window, and a body that is no JSON at all.
        let odd = throttled("x", r#"{"quota_limit":"ConcurrentWrites"}"#);
        assert_eq!(quota_window(&odd), None);
        assert_eq!(quota_window(b"<html>429</html>"), None);
    }

    #[test]
    fn rate_limits_are_not_transient_once_a_gate_decides() {
        let closed = GoogleError::GateClosed {
            message: "closed".into(),
            retry_after: Duration::from_secs(60),
        };
        assert!(!closed.is_transient());
        assert!(closed.is_rate_limit());
        let minute = GoogleError::from_api_response(429, b"", None);
        assert!(minute.is_transient() && minute.is_rate_limit());
        assert!(!GoogleError::Content(503).is_rate_limit());
    }

    #[test]
    fn bare_upload_error_is_parsed() {
        let body = br#"{"code":16,"message":"bad token"}"#;
        match GoogleError::from_api_response(400, body, None) {
            GoogleError::Api { code, message, .. } => {
                assert_eq!(code, 400);
                assert_eq!(message, "bad token");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
