//! The JSON shapes of the Photos Library API, as documented by Google.
//!
//! Only the fields this program reads are declared; serde ignores the rest, so new fields
//! Google adds never break parsing. int64 values arrive as JSON strings. Media items also
//! serialize (same shape) because the metadata store keeps listings as JSON.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An album as the Library API lists it: what a folder under `/album` is made of.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Album {
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub media_items_count: Option<String>,
}

/// A photo or video as the Library API describes it: what a file is made of (its name, type,
/// time and the expiring `baseUrl` its bytes come from).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaItem {
    pub id: String,
    #[serde(default)]
    pub base_url: String,
    #[serde(default)]
    pub mime_type: String,
    #[serde(default)]
    pub filename: String,
    #[serde(default)]
    pub media_metadata: MediaMetadata,
}

/// An item's `mediaMetadata`: its creation time (the file's date, the date views' bucket)
/// and, for a video, whether Google still processes it.
///
/// Nothing else of it is declared, `photo` (camera make, model, exposure) included: an item
/// is kept in memory for as long as its listing, so every field costs once per item of the
/// library (a parsed `photo` object was about 1 KB of maps and strings per item).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaMetadata {
    pub creation_time: Option<DateTime<Utc>>,
    #[serde(default, with = "int64_string")]
    pub width: Option<u32>,
    #[serde(default, with = "int64_string")]
    pub height: Option<u32>,
    pub video: Option<VideoMetadata>,
}

/// An int64 field as Google writes it, a JSON string (`"1920"`), kept as a number: a
/// `String` per dimension was two allocations per item of the library. Written back as a
/// string, so items kept in the store keep Google's shape; a value that is no number is
/// read as absent (it was never usable as a dimension).
mod int64_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(n) => s.serialize_some(&n.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        /// Google sends a string; a number is accepted too.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Int64 {
            Text(String),
            Number(u64),
        }
        Ok(Option::<Int64>::deserialize(d)?.and_then(|v| match v {
            Int64::Text(t) => t.parse().ok(),
            Int64::Number(n) => u32::try_from(n).ok(),
        }))
    }
}

/// A video's metadata: only its processing `status` is read (a video still processing has no
/// bytes to serve yet).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoMetadata {
    pub status: Option<String>,
}

/// Where a video is in Google's processing (`mediaMetadata.video.status`, or the Picker's
/// `videoMetadata.processingStatus`). Photos are always [`VideoState::Ready`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoState {
    /// READY, or no status at all: the bytes can be downloaded.
    Ready,
    /// PROCESSING (also UNSPECIFIED and any status this build does not know): Google is still
    /// transcoding a new upload, seconds to minutes; its `=dv` URL serves nothing yet.
    Processing,
    /// FAILED: Google will never serve this video's bytes.
    Failed,
}

impl VideoState {
    pub fn of(status: Option<&str>) -> VideoState {
        match status {
            None | Some("READY") => VideoState::Ready,
            Some("FAILED") => VideoState::Failed,
            Some(_) => VideoState::Processing,
        }
    }
}

impl AsRef<MediaItem> for MediaItem {
    fn as_ref(&self) -> &MediaItem {
        self
    }
}

impl MediaItem {
    /// Whether `other` describes the item exactly as this does, its download URL apart
    /// (Google signs a new `baseUrl` every time it sends an item).
    pub fn same_apart_from_url(&self, other: &MediaItem) -> bool {
        self.id == other.id
            && self.mime_type == other.mime_type
            && self.filename == other.filename
            && self.media_metadata == other.media_metadata
    }

    /// Videos are recognised by their metadata, falling back to the mime type.
    pub fn is_video(&self) -> bool {
        self.media_metadata.video.is_some() || self.mime_type.starts_with("video/")
    }

    /// Whether the item's bytes can be downloaded: a video's (`=dv`) exist only once Google
    /// finished processing it.
    pub fn video_state(&self) -> VideoState {
        match &self.media_metadata.video {
            Some(v) => VideoState::of(v.status.as_deref()),
            None => VideoState::Ready,
        }
    }

    /// The URL that serves the item's bytes: `=dv` for videos, `=d` for photos.
    pub fn download_url(&self) -> String {
        if self.is_video() {
            format!("{}=dv", self.base_url)
        } else {
            format!("{}=d", self.base_url)
        }
    }
}

/// One page of albums.list.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AlbumPage {
    #[serde(default)]
    pub albums: Vec<Album>,
    pub next_page_token: Option<String>,
}

/// One page of sharedAlbums.list.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SharedAlbumPage {
    #[serde(default)]
    pub shared_albums: Vec<Album>,
    pub next_page_token: Option<String>,
}

/// One page of mediaItems.list or mediaItems.search.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MediaItemPage {
    #[serde(default)]
    pub media_items: Vec<MediaItem>,
    pub next_page_token: Option<String>,
}

/// The answer of mediaItems.batchGet: one result per id, in request order.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BatchGetResponse {
    #[serde(default)]
    pub media_item_results: Vec<BatchGetResult>,
}

/// One id's result in a batchGet answer: the item, or Google's status for it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BatchGetResult {
    pub media_item: Option<MediaItem>,
    pub status: Option<Status>,
}

/// google.rpc.Status as it appears inside batch answers: why one item of a batch failed, kept
/// per item so that one bad item fails only its own request.
#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub code: i32,
    #[serde(default)]
    pub message: String,
}

/// The answer of mediaItems.batchCreate: one result per new item, in request order.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchCreateResponse {
    #[serde(default)]
    pub new_media_item_results: Vec<NewMediaItemResult>,
}

/// One item's result in a batchCreate answer: the item created, or Google's status saying why
/// not (each upload succeeds or fails on its own).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewMediaItemResult {
    #[serde(default)]
    pub upload_token: String,
    pub status: Option<Status>,
    pub media_item: Option<MediaItem>,
}

/// An entry of a listing, known by its id.
pub(crate) trait Listed {
    fn id(&self) -> &str;
}

impl Listed for Album {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Listed for MediaItem {
    fn id(&self) -> &str {
        &self.id
    }
}

/// One page of a paginated list answer.
pub(crate) trait Page: serde::de::DeserializeOwned {
    type Item: Listed;
    /// The page's entries and its `nextPageToken`.
    fn into_parts(self) -> (Vec<Self::Item>, Option<String>);
}

impl Page for AlbumPage {
    type Item = Album;
    fn into_parts(self) -> (Vec<Album>, Option<String>) {
        (self.albums, self.next_page_token)
    }
}

impl Page for SharedAlbumPage {
    type Item = Album;
    fn into_parts(self) -> (Vec<Album>, Option<String>) {
        (self.shared_albums, self.next_page_token)
    }
}

impl Page for MediaItemPage {
    type Item = MediaItem;
    fn into_parts(self) -> (Vec<MediaItem>, Option<String>) {
        (self.media_items, self.next_page_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dimensions arrive as int64 strings, are kept as numbers and written back as Google
    /// wrote them (the store keeps items in Google's shape); `photo` is not kept.
    #[test]
    fn media_metadata_keeps_dimensions_as_numbers_in_googles_shape() {
        let json = r#"{"creationTime":"2020-01-02T03:04:05Z","width":"4032","height":"3024",
            "photo":{"cameraMake":"Pixel","focalLength":4.4}}"#;
        let meta: MediaMetadata = serde_json::from_str(json).unwrap();
        assert_eq!((meta.width, meta.height), (Some(4032), Some(3024)));
        let back = serde_json::to_value(&meta).unwrap();
        assert_eq!(back["width"], "4032");
        assert_eq!(back["height"], "3024");
        assert!(back.get("photo").is_none());
        let none: MediaMetadata = serde_json::from_str(r#"{"width":"wide"}"#).unwrap();
        assert_eq!((none.width, none.height), (None, None));
    }
}
