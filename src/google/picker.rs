//! The Photos Picker API client: picking sessions and the items picked in them.
//!
//! Since March 2025 the Picker API is the only way an app reaches photos it did not upload:
//! the app creates a session, the user picks items on Google Photos' own page (the session's
//! `pickerUri`), the app polls the session until `mediaItemsSet`, then lists the picked items.
//! Access lasts until the session's `expireTime`. The items' base URLs need the bearer token
//! (see [`super::content::ContentClient::download_bearer`]) and expire after 60 minutes like
//! the Library API's, but `mediaItems.batchGet` does not know picked items: a fresh URL comes
//! only from listing the session's items again ([`PickerClient::list_items`]).
//!
//! Calls take the same path as the Library client's ([`super::call::Caller`]: its access
//! token, the one refresh on a 401, the retry policy), but not its quota: they count in the Picker bucket (Google: 100,000 requests per minute per
//! project, no daily quota), behind the Picker's own gate.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::RequestBuilder;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::call::{Call, Caller};
use super::error::GoogleError;
use super::library::encode_segment;

/// mediaItems.list takes at most 100 per page.
pub const PICKED_PAGE_SIZE: u32 = 100;
/// The most items one session can hold (Google's cap on `maxItemCount`).
pub const MAX_ITEM_COUNT: u32 = 2000;
/// Google's advice when a session names no poll interval.
const DEFAULT_POLL: Duration = Duration::from_secs(5);

/// The Photos Picker API as typed methods: the only way to reach photos this app did not
/// upload. Calls go through the shared [`Caller`], counted in the Picker's own bucket.
#[derive(Clone)]
pub struct PickerClient {
    http: reqwest::Client,
    /// Base URL without `/v1`, e.g. `https://photospicker.googleapis.com`.
    base: String,
    caller: Caller,
}

/// A picking session as Google describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PickingSession {
    pub id: String,
    /// Where the user picks; append `/autoclose` to have the tab close itself when done.
    pub picker_uri: String,
    #[serde(default)]
    pub polling_config: Option<PollingConfig>,
    pub expire_time: Option<DateTime<Utc>>,
    /// proto3 JSON omits a false bool, so a missing field is false.
    #[serde(default)]
    pub media_items_set: bool,
}

/// How Google wants a session polled (`pollingConfig`): `gphotos-dav pick` follows it
/// instead of guessing an interval.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollingConfig {
    /// A protobuf Duration (`"5s"`, `"0.5s"`).
    pub poll_interval: Option<String>,
    /// How much longer polling makes sense.
    pub timeout_in: Option<String>,
}

impl PickingSession {
    /// How long to wait before the next `sessions.get`.
    pub fn poll_interval(&self) -> Duration {
        self.polling_config
            .as_ref()
            .and_then(|c| c.poll_interval.as_deref())
            .and_then(parse_duration)
            .unwrap_or(DEFAULT_POLL)
    }

    /// How much longer polling makes sense, if Google said.
    pub fn timeout_in(&self) -> Option<Duration> {
        self.polling_config
            .as_ref()
            .and_then(|c| c.timeout_in.as_deref())
            .and_then(parse_duration)
    }

    /// The picker URL that closes its tab once the user is done.
    pub fn autoclose_uri(&self) -> String {
        format!("{}/autoclose", self.picker_uri.trim_end_matches('/'))
    }
}

/// One picked item. Serializable because the picked sets are stored as this JSON.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PickedMediaItem {
    pub id: String,
    #[serde(default)]
    pub create_time: Option<DateTime<Utc>>,
    /// `PHOTO` or `VIDEO` (or `TYPE_UNSPECIFIED`).
    #[serde(default, rename = "type")]
    pub kind: String,
    pub media_file: PickedMediaFile,
}

/// A picked item's file: the bearer-only `baseUrl` its bytes come from, its name and type.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PickedMediaFile {
    pub base_url: String,
    #[serde(default)]
    pub mime_type: String,
    #[serde(default)]
    pub filename: String,
    /// Only the video processing status is read (and stored with the set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_file_metadata: Option<PickedFileMetadata>,
}

/// A picked file's metadata, kept only for the video's processing status.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PickedFileMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_metadata: Option<PickedVideoMetadata>,
}

/// A picked video's metadata: whether Google still processes it (no bytes to serve yet).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PickedVideoMetadata {
    /// `PROCESSING`, `READY`, `FAILED` (or `UNSPECIFIED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_status: Option<String>,
}

impl PickedMediaItem {
    pub fn is_video(&self) -> bool {
        self.kind == "VIDEO" || self.media_file.mime_type.starts_with("video/")
    }

    /// The video's `processingStatus`, if Google stated one (photos: None).
    pub fn processing_status(&self) -> Option<&str> {
        self.media_file
            .media_file_metadata
            .as_ref()?
            .video_metadata
            .as_ref()?
            .processing_status
            .as_deref()
    }

    /// The URL that serves the item's bytes: `=dv` for videos, `=d` for photos (Google serves
    /// picked photos without location metadata).
    pub fn download_url(&self) -> String {
        if self.is_video() {
            format!("{}=dv", self.media_file.base_url)
        } else {
            format!("{}=d", self.media_file.base_url)
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PickedPage {
    #[serde(default)]
    media_items: Vec<PickedMediaItem>,
    next_page_token: Option<String>,
}

/// Parses a protobuf Duration in its JSON form: decimal seconds followed by `s`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let secs: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

impl PickerClient {
    pub fn new(http: reqwest::Client, base: &str, caller: Caller) -> Self {
        PickerClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            caller,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{}", self.base, path)
    }

    /// One Picker API call through the call path, retried after any transient failure.
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<T, GoogleError> {
        self.caller.json(Call::picker(what), build, |_| true).await
    }

    /// sessions.create; `max_items` caps how many items the user may pick (≤ 2000).
    ///
    /// A 429 RESOURCE_EXHAUSTED here means the user holds too many sessions (Google:
    /// "If the client application creates too many sessions per user"); it is not retried,
    /// since only deleting sessions helps, and comes back as
    /// [`GoogleError::PickingSessionLimit`]. 5xx answers are retried by the policy.
    pub async fn create_session(
        &self,
        max_items: Option<u32>,
    ) -> Result<PickingSession, GoogleError> {
        let url = self.url("sessions");
        let body = match max_items {
            Some(n) => json!({"pickingConfig": {"maxItemCount": n.to_string()}}),
            None => json!({}),
        };
        self.caller
            .json(
                Call::picker("picker.sessions.create"),
                || self.http.post(&url).json(&body),
                |e| !matches!(e, GoogleError::RateLimited { .. }),
            )
            .await
            .map_err(|e| match e {
                GoogleError::RateLimited { message, .. } => {
                    GoogleError::PickingSessionLimit(message)
                }
                other => other,
            })
    }

    /// sessions.get: whether the user has finished picking, and how to keep polling.
    pub async fn get_session(&self, id: &str) -> Result<PickingSession, GoogleError> {
        let url = self.url(&format!("sessions/{}", encode_segment(id)));
        self.send("picker.sessions.get", || self.http.get(&url))
            .await
    }

    /// sessions.delete: ends the session and access to its items.
    pub async fn delete_session(&self, id: &str) -> Result<(), GoogleError> {
        let url = self.url(&format!("sessions/{}", encode_segment(id)));
        let _: serde_json::Value = self
            .send("picker.sessions.delete", || self.http.delete(&url))
            .await?;
        Ok(())
    }

    /// mediaItems.list for a session, all pages: the picked items, each with a fresh base
    /// URL. Google answers 400 FAILED_PRECONDITION until the user has finished picking.
    pub async fn list_items(&self, session_id: &str) -> Result<Vec<PickedMediaItem>, GoogleError> {
        let url = self.url("mediaItems");
        let mut out = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let page: PickedPage = self
                .send("picker.mediaItems.list", || {
                    let mut q = vec![
                        ("sessionId", session_id.to_string()),
                        ("pageSize", PICKED_PAGE_SIZE.to_string()),
                    ];
                    if let Some(t) = &page_token {
                        q.push(("pageToken", t.clone()));
                    }
                    self.http.get(&url).query(&q)
                })
                .await?;
            out.extend(page.media_items);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => page_token = Some(t),
                None => return Ok(out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("0.02s"), Some(Duration::from_millis(20)));
        assert_eq!(parse_duration("1800s"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("xs"), None);
    }

    #[test]
    fn a_session_without_media_items_set_is_not_set() {
        let s: PickingSession = serde_json::from_str(
            r#"{"id":"s1","pickerUri":"https://photos.google.com/picker/s1",
                "pollingConfig":{"pollInterval":"2.5s","timeoutIn":"1799s"},
                "expireTime":"2026-01-01T00:00:00Z","pickingConfig":{"maxItemCount":"5"}}"#,
        )
        .unwrap();
        assert!(!s.media_items_set);
        assert_eq!(s.poll_interval(), Duration::from_millis(2500));
        assert_eq!(s.timeout_in(), Some(Duration::from_secs(1799)));
        assert_eq!(
            s.autoclose_uri(),
            "https://photos.google.com/picker/s1/autoclose"
        );
    }

    #[test]
    fn picked_items_parse_and_pick_their_rendition() {
        let item: PickedMediaItem = serde_json::from_str(
            r#"{"id":"a","createTime":"2020-01-02T03:04:05Z","type":"VIDEO",
                "mediaFile":{"baseUrl":"https://x/pk/t","mimeType":"video/mp4",
                "filename":"v.mp4","mediaFileMetadata":{"width":1,"height":2}}}"#,
        )
        .unwrap();
        assert!(item.is_video());
        assert_eq!(item.download_url(), "https://x/pk/t=dv");
        assert_eq!(item.media_file.filename, "v.mp4");
        assert_eq!(item.processing_status(), None);
        let processing: PickedMediaItem = serde_json::from_str(
            r#"{"id":"b","type":"VIDEO","mediaFile":{"baseUrl":"https://x/pk/u",
                "mediaFileMetadata":{"videoMetadata":{"processingStatus":"PROCESSING"}}}}"#,
        )
        .unwrap();
        assert_eq!(processing.processing_status(), Some("PROCESSING"));
        // Stored with the set and read back unchanged.
        let stored = serde_json::to_string(&processing).unwrap();
        assert_eq!(
            serde_json::from_str::<PickedMediaItem>(&stored).unwrap(),
            processing
        );
    }
}
