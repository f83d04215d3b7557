//! The Photos Library API client: albums, media items, pagination.
//!
//! Every call goes through the call path ([`super::call::Caller`]), the one place that
//! attaches the access token, refreshes it once on a 401, counts and gates the call in the
//! quota, retries it by the policy and turns Google's JSON errors into [`GoogleError`]s.

use std::collections::HashSet;
use std::sync::Arc;

use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;
use serde_json::json;

mod date_ranges;

pub use date_ranges::RangeLoading;

use super::auth::TokenSource;
use super::call::{Auth, Call, Caller};
use super::error::GoogleError;
use super::quota::Bucket;
use super::types::{
    Album, AlbumPage, BatchCreateResponse, BatchGetResponse, Listed, MediaItem, MediaItemPage,
    Page, SharedAlbumPage, Status,
};

/// albums.list allows at most 50 per page; mediaItems.list/search at most 100.
pub const ALBUM_PAGE_SIZE: u32 = 50;
pub const ITEM_PAGE_SIZE: u32 = 100;
/// mediaItems.batchGet takes 1 to 50 ids.
pub const BATCH_GET_MAX: usize = 50;
/// mediaItems.batchCreate takes 1 to 50 new items.
pub const BATCH_CREATE_MAX: usize = 50;
/// albums.batchAddMediaItems and albums.batchRemoveMediaItems take 1 to 50 ids a call.
pub const ALBUM_BATCH_MAX: usize = 50;

/// One item for mediaItems.batchCreate: an upload token and the file name to give it.
#[derive(Debug, Clone)]
pub struct NewItem {
    pub upload_token: String,
    pub file_name: String,
}

/// The Photos Library API as typed methods (albums and media items), so that no other
/// module builds a Library URL or reads its JSON. Every call goes through the shared
/// [`Caller`].
#[derive(Clone)]
pub struct LibraryClient {
    http: reqwest::Client,
    /// Base URL without the `/v1` suffix, e.g. `https://photoslibrary.googleapis.com`.
    api_base: String,
    caller: Caller,
}

impl LibraryClient {
    pub fn new(http: reqwest::Client, api_base: &str, caller: Caller) -> Self {
        LibraryClient {
            http,
            api_base: api_base.trim_end_matches('/').to_string(),
            caller,
        }
    }

    /// The access-token source the calls use (shared with the other clients).
    pub fn tokens(&self) -> &Arc<TokenSource> {
        self.caller.tokens()
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{}", self.api_base, path)
    }

    /// Sends one API request built by `build` through the call path ([`Caller::json`]),
    /// retrying transient failures by the policy.
    async fn send<T: DeserializeOwned>(
        &self,
        what: &'static str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<T, GoogleError> {
        self.caller.json(Call::api(what), build, |_| true).await
    }

    /// Follows `nextPageToken` to the end (its absence is the only reliable end signal).
    /// `request` builds the call for one page, given the page token (None for the first).
    ///
    /// An entry whose id was already listed is dropped: Google at times repeats the last
    /// entry of a page at the top of the next one (rclone's backend drops exactly that
    /// repeat). Kept, the copy would make a unique name look duplicated, so both copies
    /// would get an ` {ID}` suffix and a sync tool would see the file deleted and a new one
    /// created. Any id seen before is dropped, not only the previous page's last, so a
    /// repeat further back costs nothing either.
    async fn all_pages<P: Page>(
        &self,
        what: &'static str,
        request: impl Fn(Option<&str>) -> RequestBuilder,
    ) -> Result<Vec<P::Item>, GoogleError> {
        self.all_pages_into::<P, _>(what, request, |item| item)
            .await
    }

    /// [`all_pages`](Self::all_pages), each entry passed through `map` as its page arrives:
    /// a caller that keeps entries in another form (shared, or as a copy it already holds)
    /// never holds the whole listing twice.
    async fn all_pages_into<P: Page, T>(
        &self,
        what: &'static str,
        request: impl Fn(Option<&str>) -> RequestBuilder,
        mut map: impl FnMut(P::Item) -> T,
    ) -> Result<Vec<T>, GoogleError> {
        let mut out = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut page_token: Option<String> = None;
        loop {
            let page: P = self.send(what, || request(page_token.as_deref())).await?;
            let (items, next) = page.into_parts();
            let (received, before) = (items.len(), out.len());
            out.extend(
                items
                    .into_iter()
                    .filter(|item| seen.insert(item.id().to_owned()))
                    .map(&mut map),
            );
            let repeated = received - (out.len() - before);
            if repeated > 0 {
                tracing::debug!(
                    call = what,
                    repeated,
                    "dropped entries this listing already had (Google repeated them)"
                );
            }
            match next.filter(|t| !t.is_empty()) {
                Some(t) => page_token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// A GET of a list endpoint taking `pageSize` and `pageToken` as query parameters.
    fn list_request(&self, url: &str, page_size: u32, token: Option<&str>) -> RequestBuilder {
        let mut q = vec![("pageSize", page_size.to_string())];
        if let Some(t) = token {
            q.push(("pageToken", t.to_string()));
        }
        self.http.get(url).query(&q)
    }

    /// albums.list, all pages.
    pub async fn list_albums(&self) -> Result<Vec<Album>, GoogleError> {
        let url = self.url("albums");
        self.all_pages::<AlbumPage>("albums.list", |t| {
            self.list_request(&url, ALBUM_PAGE_SIZE, t)
        })
        .await
    }

    /// sharedAlbums.list, all pages. Since 2025 Google answers 403 to every app.
    pub async fn list_shared_albums(&self) -> Result<Vec<Album>, GoogleError> {
        let url = self.url("sharedAlbums");
        self.all_pages::<SharedAlbumPage>("sharedAlbums.list", |t| {
            self.list_request(&url, ALBUM_PAGE_SIZE, t)
        })
        .await
    }

    /// One page of albums.list (the cheapest call that proves the API works): its size.
    pub async fn list_albums_page(&self) -> Result<usize, GoogleError> {
        let url = self.url("albums");
        let page: AlbumPage = self
            .send("albums.list", || {
                self.http.get(&url).query(&[("pageSize", "1")])
            })
            .await?;
        Ok(page.albums.len())
    }

    /// The HTTP status of an authenticated GET of `url` (for diagnostics of other Google APIs
    /// sharing this token).
    /// One request through the call path (token refreshed once on a 401, counted in the
    /// Picker's bucket, the one API `doctor` asks this way), not retried.
    pub async fn probe_url(&self, url: &str) -> Result<u16, GoogleError> {
        let call = Call::diagnostic("doctor.probe", Bucket::Picker);
        let answer: reqwest::Response = self
            .caller
            .request(call, call.what, Auth::Token, || {
                std::future::ready(Ok(self.http.get(url)))
            })
            .await?;
        Ok(answer.status().as_u16())
    }

    /// albums.get.
    pub async fn get_album(&self, id: &str) -> Result<Album, GoogleError> {
        let url = self.url(&format!("albums/{}", encode_segment(id)));
        self.send("albums.get", || self.http.get(&url)).await
    }

    /// mediaItems.search by album, following pagination to the end (album order).
    pub async fn album_items(&self, album_id: &str) -> Result<Vec<MediaItem>, GoogleError> {
        self.album_items_into(album_id, |item| item).await
    }

    /// [`album_items`](Self::album_items), each item passed through `map` as its page
    /// arrives.
    pub async fn album_items_into<T>(
        &self,
        album_id: &str,
        map: impl FnMut(MediaItem) -> T,
    ) -> Result<Vec<T>, GoogleError> {
        self.search_into(json!({ "albumId": album_id }), map).await
    }

    /// mediaItems.search with an arbitrary body (albumId or filters), all pages.
    pub async fn search(&self, body: serde_json::Value) -> Result<Vec<MediaItem>, GoogleError> {
        self.search_into(body, |item| item).await
    }

    /// [`search`](Self::search), each item passed through `map` as its page arrives.
    pub async fn search_into<T>(
        &self,
        body: serde_json::Value,
        map: impl FnMut(MediaItem) -> T,
    ) -> Result<Vec<T>, GoogleError> {
        let url = self.url("mediaItems:search");
        self.all_pages_into::<MediaItemPage, _>(
            "mediaItems.search",
            |t| {
                let mut request = body.clone();
                request["pageSize"] = json!(ITEM_PAGE_SIZE);
                if let Some(t) = t {
                    request["pageToken"] = json!(t);
                }
                self.http.request(Method::POST, &url).json(&request)
            },
            map,
        )
        .await
    }

    /// mediaItems.list: every item of the library visible to this app, newest first.
    pub async fn list_media_items(&self) -> Result<Vec<MediaItem>, GoogleError> {
        self.list_media_items_into(|item| item).await
    }

    /// [`list_media_items`](Self::list_media_items), each item passed through `map` as its
    /// page arrives.
    pub async fn list_media_items_into<T>(
        &self,
        map: impl FnMut(MediaItem) -> T,
    ) -> Result<Vec<T>, GoogleError> {
        let url = self.url("mediaItems");
        self.all_pages_into::<MediaItemPage, _>(
            "mediaItems.list",
            |t| self.list_request(&url, ITEM_PAGE_SIZE, t),
            map,
        )
        .await
    }

    /// mediaItems.get: one item with a fresh baseUrl.
    pub async fn get_media_item(&self, id: &str) -> Result<MediaItem, GoogleError> {
        let url = self.url(&format!("mediaItems/{}", encode_segment(id)));
        self.send("mediaItems.get", || self.http.get(&url)).await
    }

    /// mediaItems.batchGet in chunks of 50, results in the order of `ids`.
    pub async fn batch_get(
        &self,
        ids: &[String],
    ) -> Result<Vec<Result<MediaItem, Status>>, GoogleError> {
        let url = self.url("mediaItems:batchGet");
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_GET_MAX) {
            let resp: BatchGetResponse = self
                .send("mediaItems.batchGet", || {
                    let q: Vec<(&str, &str)> = chunk
                        .iter()
                        .map(|id| ("mediaItemIds", id.as_str()))
                        .collect();
                    self.http.get(&url).query(&q)
                })
                .await?;
            if resp.media_item_results.len() != chunk.len() {
                return Err(GoogleError::Protocol(format!(
                    "batchGet answered {} results for {} ids",
                    resp.media_item_results.len(),
                    chunk.len()
                )));
            }
            for r in resp.media_item_results {
                out.push(match (r.media_item, r.status) {
                    (Some(item), _) => Ok(item),
                    (None, Some(status)) => Err(status),
                    (None, None) => Err(Status {
                        code: 2,
                        message: "batchGet result without item or status".into(),
                    }),
                });
            }
        }
        Ok(out)
    }

    /// mediaItems.batchCreate of at most [`BATCH_CREATE_MAX`] items, into `album_id` if
    /// given. Each item is answered on its own: the created item or Google's status for it,
    /// in the order of `items`.
    ///
    /// Retried by the policy after a 429 (the per-minute write limit, "Write requests per
    /// minute per user", fires in the field) and after a 5xx: Google advises retrying both
    /// with exponential backoff, since it created nothing when it answered so. Never
    /// retried after a lost answer (a timeout or a connection broken once the request was
    /// sent): Google may have created the items, and a retry would find their upload tokens
    /// used and report errors for items that exist; the batch fails instead. A daily quota
    /// 429 is not retried either: it closes the quota gate like any other call's.
    pub async fn batch_create(
        &self,
        album_id: Option<&str>,
        items: &[NewItem],
    ) -> Result<Vec<Result<MediaItem, Status>>, GoogleError> {
        if items.is_empty() || items.len() > BATCH_CREATE_MAX {
            return Err(GoogleError::Protocol(format!(
                "batchCreate takes 1 to {BATCH_CREATE_MAX} items, not {}",
                items.len()
            )));
        }
        let url = self.url("mediaItems:batchCreate");
        let mut body = json!({
            "newMediaItems": items.iter().map(|i| json!({
                "simpleMediaItem": {"uploadToken": i.upload_token, "fileName": i.file_name}
            })).collect::<Vec<_>>()
        });
        if let Some(album) = album_id {
            body["albumId"] = json!(album);
        }
        let resp: BatchCreateResponse = self
            .caller
            .json(
                Call::api("mediaItems.batchCreate"),
                || self.http.post(&url).json(&body),
                // A lost answer (timeout, reset) may hide items Google created: never resent.
                |e| !matches!(e, GoogleError::Transport(_)),
            )
            .await?;
        if resp.new_media_item_results.len() != items.len() {
            return Err(GoogleError::Protocol(format!(
                "batchCreate answered {} results for {} items",
                resp.new_media_item_results.len(),
                items.len()
            )));
        }
        Ok(resp
            .new_media_item_results
            .into_iter()
            .map(|r| match (r.media_item, r.status) {
                (Some(item), Some(s)) if s.code == 0 => Ok(item),
                (Some(item), None) => Ok(item),
                (_, Some(status)) => Err(status),
                (None, None) => Err(Status {
                    code: 2,
                    message: "batchCreate result without item or status".into(),
                }),
            })
            .collect())
    }

    /// albums.batchAddMediaItems: adds app-created items to an app-created album (at most
    /// [`ALBUM_BATCH_MAX`] distinct ids). All or nothing: Google fails the whole call when
    /// one id or the album is not acceptable (400 INVALID_ARGUMENT, "Request contains an
    /// invalid media item id.": an item this app did not create, or one deleted meanwhile),
    /// and answers an empty body when all were added.
    ///
    /// Retried by the policy after any failure it allows, a lost answer included, unlike
    /// batchCreate: an album holds an item at most once, so repeating an add that did happen
    /// leaves the album as the first call left it, and nothing can be duplicated. The worst
    /// a repeat can do is report a failure for items that were added (should Google refuse
    /// re-adding a member); the caller forgets the album's listing after every failure, so
    /// the client's own retry sees the album as it is.
    pub async fn batch_add_media_items(
        &self,
        album_id: &str,
        ids: &[String],
    ) -> Result<(), GoogleError> {
        self.album_batch(
            "albums.batchAddMediaItems",
            "batchAddMediaItems",
            album_id,
            ids,
        )
        .await
    }

    /// albums.batchRemoveMediaItems: takes app-created items out of an app-created album (at
    /// most [`ALBUM_BATCH_MAX`] distinct ids); the items stay in the library. All or nothing,
    /// like [`LibraryClient::batch_add_media_items`], and needs the
    /// `photoslibrary.edit.appcreateddata` scope (403 insufficient scopes without it).
    ///
    /// Retried after a lost answer too: removing is a set operation, a repeat cannot take out
    /// more than asked. A repeat after a removal that did happen may be refused (the ids are
    /// no longer in the album); the caller then reports a failure and forgets the listing,
    /// and the next PROPFIND shows the truth.
    pub async fn batch_remove_media_items(
        &self,
        album_id: &str,
        ids: &[String],
    ) -> Result<(), GoogleError> {
        self.album_batch(
            "albums.batchRemoveMediaItems",
            "batchRemoveMediaItems",
            album_id,
            ids,
        )
        .await
    }

    /// `POST /v1/albums/{id}:{method}` with `{"mediaItemIds": ids}`; an empty answer.
    async fn album_batch(
        &self,
        what: &'static str,
        method: &str,
        album_id: &str,
        ids: &[String],
    ) -> Result<(), GoogleError> {
        let distinct: HashSet<&String> = ids.iter().collect();
        if ids.is_empty() || ids.len() > ALBUM_BATCH_MAX || distinct.len() != ids.len() {
            return Err(GoogleError::Protocol(format!(
                "{what} takes 1 to {ALBUM_BATCH_MAX} distinct ids, not {} ({} distinct)",
                ids.len(),
                distinct.len()
            )));
        }
        let url = self.url(&format!("albums/{}:{method}", encode_segment(album_id)));
        let body = json!({ "mediaItemIds": ids });
        let _: serde_json::Value = self.send(what, || self.http.post(&url).json(&body)).await?;
        Ok(())
    }

    /// albums.create: a new app-created album (so the app may add items to it).
    pub async fn create_album(&self, title: &str) -> Result<Album, GoogleError> {
        let url = self.url("albums");
        let body = json!({"album": {"title": title}});
        self.send("albums.create", || self.http.post(&url).json(&body))
            .await
    }

    /// albums.patch with `updateMask=title`: renames an album this app created. Needs the
    /// `photoslibrary.edit.appcreateddata` scope (403 insufficient scopes without it). Safe
    /// to retry: setting a title twice leaves the same album.
    pub async fn rename_album(&self, id: &str, title: &str) -> Result<Album, GoogleError> {
        let url = self.url(&format!("albums/{}", encode_segment(id)));
        let body = json!({"id": id, "title": title});
        self.send("albums.patch", || {
            self.http
                .patch(&url)
                .query(&[("updateMask", "title")])
                .json(&body)
        })
        .await
    }
}

/// Ids are URL-safe in practice, but never trust that when building a path.
pub(super) fn encode_segment(id: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(id, SEGMENT).to_string()
}
