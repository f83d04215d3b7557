//! Tests of the emulator through real HTTP (reqwest against `Emulator::start`), plus checks
//! of the fixture facts that gphotos-dav's tests rely on.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use base64::Engine;

use chrono::{Datelike, NaiveDate, Timelike};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, RANGE, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::fixtures::{self, ITEM_COUNT};
use super::*;

const UNAUTHENTICATED_TEXT: &str = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";

async fn start() -> RunningEmulator {
    start_with(EmulatorOptions::default()).await
}

async fn start_with(opts: EmulatorOptions) -> RunningEmulator {
    Emulator::start(opts, "127.0.0.1:0".parse().expect("socket address"))
        .await
        .expect("emulator starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Exchanges `refresh` for an access token with form credentials.
async fn token_for(emu: &RunningEmulator, refresh: &str) -> String {
    let resp = client()
        .post(emu.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("refresh_token", refresh),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("token json");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

async fn token(emu: &RunningEmulator) -> String {
    token_for(emu, REFRESH_TOKEN).await
}

async fn get(emu: &RunningEmulator, token: &str, path: &str) -> (StatusCode, Value) {
    let resp = client()
        .get(format!("{}{path}", emu.api_base()))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = resp.status();
    (status, resp.json().await.expect("json body"))
}

async fn search(emu: &RunningEmulator, token: &str, body: &Value) -> (StatusCode, Value) {
    let resp = client()
        .post(format!("{}/v1/mediaItems:search", emu.api_base()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = resp.status();
    (status, resp.json().await.expect("json body"))
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    list[field]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v["id"].as_str().expect("id").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn assert_google_error(body: &Value, code: u16, status: &str) {
    assert_eq!(body["error"]["code"], json!(code), "{body}");
    assert_eq!(body["error"]["status"], json!(status), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

/// More pages than any listing here has: a listing that goes on past it never ends.
const MAX_PAGES: usize = 1000;

/// Follows nextPageToken through a GET listing, returning the ids of each page.
async fn list_pages(
    emu: &RunningEmulator,
    token: &str,
    path: &str,
    field: &str,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut page_token: Option<String> = None;
    loop {
        assert!(
            pages.len() < MAX_PAGES,
            "{path}: no end after {MAX_PAGES} pages"
        );
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &page_token {
            Some(t) => format!("{path}{sep}pageToken={t}"),
            None => path.to_owned(),
        };
        let (status, body) = get(emu, token, &url).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        pages.push(ids(&body, field));
        match body.get("nextPageToken").and_then(Value::as_str) {
            Some(t) => page_token = Some(t.to_owned()),
            None => return pages,
        }
    }
}

/// Follows nextPageToken through a GET listing, returning ids and the number of pages.
async fn list_all(
    emu: &RunningEmulator,
    token: &str,
    path: &str,
    field: &str,
) -> (Vec<String>, usize) {
    let pages = list_pages(emu, token, path, field).await;
    (pages.concat(), pages.len())
}

/// Follows nextPageToken through a search, returning the ids of each page.
async fn search_pages(emu: &RunningEmulator, token: &str, mut body: Value) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    loop {
        assert!(
            pages.len() < MAX_PAGES,
            "{body}: no end after {MAX_PAGES} pages"
        );
        let (status, page) = search(emu, token, &body).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages.push(ids(&page, "mediaItems"));
        match page.get("nextPageToken").and_then(Value::as_str) {
            Some(t) => body["pageToken"] = json!(t),
            None => return pages,
        }
    }
}

async fn search_all(emu: &RunningEmulator, token: &str, body: Value) -> Vec<String> {
    search_pages(emu, token, body).await.concat()
}

// ---------------------------------------------------------------------------------------
// Token endpoint

#[tokio::test]
async fn token_with_basic_and_with_form_credentials() {
    let emu = start().await;
    let basic = client()
        .post(emu.token_url())
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", REFRESH_TOKEN),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(basic.status(), StatusCode::OK);
    let body: Value = basic.json().await.expect("json");
    assert!(
        body["access_token"]
            .as_str()
            .expect("token")
            .starts_with("ya29.")
    );
    assert_eq!(body["expires_in"], json!(3599));
    assert_eq!(body["token_type"], json!("Bearer"));
    let scopes: BTreeSet<&str> = body["scope"].as_str().expect("scope").split(' ').collect();
    let expected: BTreeSet<&str> = [
        "https://www.googleapis.com/auth/photoslibrary.readonly.appcreateddata",
        "https://www.googleapis.com/auth/photoslibrary.appendonly",
        "https://www.googleapis.com/auth/photospicker.mediaitems.readonly",
        "https://www.googleapis.com/auth/photoslibrary.edit.appcreateddata",
    ]
    .into();
    assert_eq!(scopes, expected);

    let form = client()
        .post(emu.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("refresh_token", REFRESH_TOKEN_NO_SCOPE),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(form.status(), StatusCode::OK);
    let body: Value = form.json().await.expect("json");
    assert_eq!(
        body["scope"],
        json!("https://www.googleapis.com/auth/photoslibrary.appendonly")
    );
    assert_ne!(body["access_token"], json!(null));
    assert_eq!(emu.emulator.counters().get("token"), 2);
}

#[tokio::test]
async fn token_errors() {
    let emu = start().await;
    let post = |params: Vec<(&'static str, &'static str)>| {
        let url = emu.token_url();
        async move {
            let resp = client()
                .post(url)
                .form(&params)
                .send()
                .await
                .expect("request");
            let status = resp.status();
            (status, resp.json::<Value>().await.expect("json"))
        }
    };
    let base = |refresh: &'static str| {
        vec![
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("refresh_token", refresh),
        ]
    };
    for refresh in [REFRESH_TOKEN_REVOKED, "some-unknown-token"] {
        let (status, body) = post(base(refresh)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
        );
    }
    let mut wrong_client = base(REFRESH_TOKEN);
    wrong_client[1] = ("client_id", "someone-else.apps.googleusercontent.com");
    let (status, body) = post(wrong_client).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"error": "invalid_client", "error_description": "The OAuth client was not found."})
    );
    let mut wrong_secret = base(REFRESH_TOKEN);
    wrong_secret[2] = ("client_secret", "nope");
    let (status, body) = post(wrong_secret).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], json!("invalid_client"));

    let (status, body) = post(base(REFRESH_TOKEN)[..3].to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], json!("invalid_request"));
    let (status, body) = post(base(REFRESH_TOKEN)[1..].to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], json!("invalid_request"));
    let mut code_grant = base(REFRESH_TOKEN);
    code_grant[0] = ("grant_type", "authorization_code");
    let (status, body) = post(code_grant).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], json!("invalid_request"), "no code given");
    let mut password_grant = base(REFRESH_TOKEN);
    password_grant[0] = ("grant_type", "password");
    let (status, body) = post(password_grant).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], json!("unsupported_grant_type"));

    // Basic credentials that are wrong are rejected too.
    let resp = client()
        .post(emu.token_url())
        .basic_auth(CLIENT_ID, Some("wrong"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", REFRESH_TOKEN),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(emu.emulator.counters().get("token"), 9);
}

/// Runs the authorization flow for `scope` as whoever signs in now, and returns the code
/// exchange's JSON answer.
async fn code_exchange(emu: &RunningEmulator, scope: &str) -> Value {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let verifier = "v".repeat(50);
    let challenge = b64(&Sha256::digest(verifier.as_bytes()));
    let redirect = "http://127.0.0.1:9/";
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let resp = no_follow
        .get(emu.auth_url())
        .query(&[
            ("client_id", CLIENT_ID),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", scope),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "s"),
        ])
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location =
        url::Url::parse(resp.headers()["location"].to_str().expect("ascii")).expect("a URL");
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .expect("a code")
        .1
        .into_owned();
    let resp = client()
        .post(emu.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .expect("exchange");
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.expect("json")
}

/// The `sub` of an `id_token`'s payload (three base64url parts joined by dots).
fn subject(id_token: &Value) -> String {
    let parts: Vec<&str> = id_token.as_str().expect("a string").split('.').collect();
    assert_eq!(parts.len(), 3, "{id_token}");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .expect("base64url");
    let claims: Value = serde_json::from_slice(&payload).expect("JSON claims");
    assert_eq!(claims["iss"], json!("https://accounts.google.com"));
    assert_eq!(claims["aud"], json!(CLIENT_ID));
    claims["sub"].as_str().expect("sub").to_owned()
}

#[tokio::test]
async fn openid_answers_carry_an_id_token_naming_the_signed_in_account() {
    let emu = start().await;
    let read = "https://www.googleapis.com/auth/photoslibrary.readonly.appcreateddata";

    // With openid: the code exchange and the refreshes name the account that signed in.
    let first = emu.emulator.signed_in_account();
    assert_eq!(first.len(), 21);
    let body = code_exchange(&emu, &format!("openid {read}")).await;
    assert_eq!(body["scope"], json!(format!("openid {read}")));
    assert_eq!(subject(&body["id_token"]), first);
    let refresh = body["refresh_token"].as_str().expect("refresh").to_owned();

    emu.emulator.sign_in_as("200000000000000000002");
    let other = code_exchange(&emu, &format!("openid {read}")).await;
    assert_eq!(subject(&other["id_token"]), "200000000000000000002");
    // The first refresh token stays the first account's.
    let resp = client()
        .post(emu.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await
        .expect("refresh");
    let refreshed: Value = resp.json().await.expect("json");
    assert_eq!(subject(&refreshed["id_token"]), first);

    // Without openid (and for the fixed test tokens): no id_token.
    let plain = code_exchange(&emu, read).await;
    assert_eq!(plain["scope"], json!(read));
    assert_eq!(plain["id_token"], json!(null));
    let fixed = client()
        .post(emu.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("refresh_token", REFRESH_TOKEN),
        ])
        .send()
        .await
        .expect("refresh");
    let fixed: Value = fixed.json().await.expect("json");
    assert_eq!(fixed["id_token"], json!(null));
    // Two emulators are two accounts.
    let second = start().await;
    assert_ne!(second.emulator.signed_in_account(), first);
}

// ---------------------------------------------------------------------------------------
// API authentication and authorisation

#[tokio::test]
async fn unauthenticated_without_or_with_expired_token() {
    let emu = start().await;
    let url = format!("{}/v1/albums", emu.api_base());
    let resp = client().get(&url).send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()[WWW_AUTHENTICATE]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(
        resp.headers()[CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("application/json")
    );
    let body: Value = resp.json().await.expect("json");
    assert_google_error(&body, 401, "UNAUTHENTICATED");
    assert_eq!(body["error"]["message"], json!(UNAUTHENTICATED_TEXT));

    let (status, body) = get(&emu, "ya29.not-a-token", "/v1/albums").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["message"], json!(UNAUTHENTICATED_TEXT));

    let token = token(&emu).await;
    let (status, _) = get(&emu, &token, "/v1/albums").await;
    assert_eq!(status, StatusCode::OK);
    emu.emulator.clock().advance(Duration::from_secs(3598));
    let (status, _) = get(&emu, &token, "/v1/albums").await;
    assert_eq!(status, StatusCode::OK);
    emu.emulator.clock().advance(Duration::from_secs(2));
    let resp = client()
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().contains_key(WWW_AUTHENTICATE));
    let body: Value = resp.json().await.expect("json");
    assert_google_error(&body, 401, "UNAUTHENTICATED");
    // Every attempt counted, failures included.
    assert_eq!(emu.emulator.counters().get("albums.list"), 5);
}

#[tokio::test]
async fn insufficient_scope_and_disabled_api() {
    let emu = start().await;
    let no_scope = token_for(&emu, REFRESH_TOKEN_NO_SCOPE).await;
    for path in ["/v1/albums", "/v1/mediaItems", "/v1/sharedAlbums"] {
        let (status, body) = get(&emu, &no_scope, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_google_error(&body, 403, "PERMISSION_DENIED");
        assert_eq!(
            body["error"]["message"],
            json!("Request had insufficient authentication scopes.")
        );
        assert_eq!(
            body["error"]["details"][0]["reason"],
            json!("ACCESS_TOKEN_SCOPE_INSUFFICIENT")
        );
    }
    let (status, _) = search(&emu, &no_scope, &json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let disabled = token_for(&emu, REFRESH_TOKEN_API_DISABLED).await;
    let (status, body) = get(&emu, &disabled, "/v1/mediaItems").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_google_error(&body, 403, "PERMISSION_DENIED");
    assert_eq!(
        body["error"]["message"],
        json!(
            "Photos Library API has not been used in project 123456789012 before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/photoslibrary.googleapis.com/overview?project=123456789012 then retry."
        )
    );
    let reasons: Vec<&Value> = body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| &d["reason"])
        .collect();
    assert!(reasons.contains(&&json!("SERVICE_DISABLED")), "{body}");

    // With full scopes, sharedAlbums still fails: no grantable scope allows it since 2025.
    let full = token(&emu).await;
    let (status, _) = get(&emu, &full, "/v1/sharedAlbums").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

// ---------------------------------------------------------------------------------------
// Albums

#[tokio::test]
async fn albums_list_paging_and_shapes() {
    let emu = start().await;
    let token = token(&emu).await;
    let library = emu.emulator.library();
    let expected: Vec<String> = library.albums.iter().map(|a| a.id.clone()).collect();

    // pageSize above 50 is clamped, not rejected; 8 albums fit one page, no token.
    let (status, body) = get(&emu, &token, "/v1/albums?pageSize=100").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&body, "albums"), expected);
    assert!(body.get("nextPageToken").is_none());
    let (_, body50) = get(&emu, &token, "/v1/albums?pageSize=50").await;
    assert_eq!(ids(&body50, "albums"), expected);

    let (all, pages) = list_all(&emu, &token, "/v1/albums?pageSize=3", "albums").await;
    assert_eq!(all, expected);
    assert_eq!(pages, 3);
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len());

    for album in body["albums"].as_array().expect("albums") {
        let fixture = library
            .album(album["id"].as_str().expect("id"))
            .expect("known album");
        assert_eq!(album["title"], json!(fixture.title));
        assert_eq!(album["isWriteable"], json!(true));
        assert!(
            album["productUrl"]
                .as_str()
                .expect("productUrl")
                .starts_with("https://")
        );
        if fixture.item_ids.is_empty() {
            assert!(album.get("coverPhotoBaseUrl").is_none());
            assert!(album.get("coverPhotoMediaItemId").is_none());
            assert!(album.get("mediaItemsCount").is_none());
        } else {
            assert_eq!(
                album["mediaItemsCount"],
                json!(fixture.item_ids.len().to_string())
            );
            assert_eq!(album["coverPhotoMediaItemId"], json!(fixture.item_ids[0]));
            let cover = album["coverPhotoBaseUrl"].as_str().expect("cover");
            let resp = client()
                .get(format!("{cover}=w64-h64"))
                .send()
                .await
                .expect("cover");
            assert_eq!(resp.status(), StatusCode::OK);
        }
    }

    let (status, body) = get(&emu, &token, "/v1/albums?pageSize=-1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_google_error(&body, 400, "INVALID_ARGUMENT");
    let (status, _) = get(&emu, &token, "/v1/albums?pageSize=abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = get(&emu, &token, "/v1/albums?pageToken=bogus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_google_error(&body, 400, "INVALID_ARGUMENT");
    let (status, _) = get(&emu, &token, "/v1/albums?pagesize=3").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "unknown parameters are rejected"
    );

    let trip = library.albums_titled("Trip")[1];
    let (status, body) = get(&emu, &token, &format!("/v1/albums/{}", trip.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], json!(trip.id));
    assert_eq!(body["title"], json!("Trip"));
    let (status, body) = get(&emu, &token, "/v1/albums/AF1QipNotAnAlbum").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_google_error(&body, 400, "INVALID_ARGUMENT");
}

// ---------------------------------------------------------------------------------------
// Media items

#[tokio::test]
async fn media_items_list_paging() {
    let emu = start().await;
    let token = token(&emu).await;
    let expected: Vec<String> = emu
        .emulator
        .library()
        .items
        .iter()
        .map(|i| i.id.clone())
        .collect();

    let (status, body) = get(&emu, &token, "/v1/mediaItems?pageSize=100").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&body, "mediaItems"), expected);
    assert!(body.get("nextPageToken").is_none());
    let (_, body) = get(&emu, &token, "/v1/mediaItems?pageSize=1000").await;
    assert_eq!(ids(&body, "mediaItems").len(), ITEM_COUNT);

    let (_, body) = get(&emu, &token, "/v1/mediaItems").await;
    assert_eq!(ids(&body, "mediaItems").len(), 25);
    assert!(body["nextPageToken"].is_string());

    let (all, pages) = list_all(&emu, &token, "/v1/mediaItems?pageSize=7", "mediaItems").await;
    assert_eq!(all, expected);
    assert_eq!(pages, ITEM_COUNT.div_ceil(7));

    // Newest first.
    let library = emu.emulator.library();
    let times: Vec<_> = library.items.iter().map(|i| i.creation_time).collect();
    assert!(times.windows(2).all(|w| w[0] > w[1]));
    assert_eq!(
        emu.emulator.counters().get("mediaItems.list"),
        3 + pages as u64
    );
}

#[tokio::test]
async fn media_item_shapes() {
    let emu = start().await;
    let token = token(&emu).await;
    let library = emu.emulator.library();
    let (_, body) = get(&emu, &token, "/v1/mediaItems?pageSize=100").await;
    for json_item in body["mediaItems"].as_array().expect("items") {
        let item = library
            .item(json_item["id"].as_str().expect("id"))
            .expect("known");
        assert_eq!(json_item["mimeType"], json!(item.mime_type));
        if item.filename.is_empty() {
            assert!(
                json_item.get("filename").is_none(),
                "proto3 omits empty strings"
            );
        } else {
            assert_eq!(json_item["filename"], json!(item.filename));
        }
        if item.description.is_empty() {
            assert!(json_item.get("description").is_none());
        } else {
            assert_eq!(json_item["description"], json!(item.description));
        }
        assert!(
            json_item["baseUrl"]
                .as_str()
                .expect("baseUrl")
                .starts_with(&emu.base_url())
        );
        assert!(json_item["productUrl"].is_string());
        let meta = &json_item["mediaMetadata"];
        assert_eq!(meta["width"], json!(item.width.to_string()));
        assert_eq!(meta["height"], json!(item.height.to_string()));
        let created = meta["creationTime"].as_str().expect("creationTime");
        assert!(created.ends_with('Z'));
        assert_eq!(
            chrono::DateTime::parse_from_rfc3339(created).expect("rfc3339"),
            item.creation_time
        );
        match item.kind {
            MediaKind::Photo => {
                let photo = &meta["photo"];
                for field in ["cameraMake", "cameraModel", "exposureTime"] {
                    assert!(photo[field].is_string(), "{field}");
                }
                for field in ["focalLength", "apertureFNumber", "isoEquivalent"] {
                    assert!(photo[field].is_number(), "{field}");
                }
                assert!(meta.get("video").is_none());
            }
            MediaKind::Video => {
                assert_eq!(meta["video"]["status"], json!("READY"));
                assert!(meta["video"]["fps"].is_number());
                assert!(meta.get("photo").is_none());
            }
        }
    }

    let item = &library.items[3];
    let (status, body) = get(&emu, &token, &format!("/v1/mediaItems/{}", item.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], json!(item.id));
    let (status, body) = get(&emu, &token, "/v1/mediaItems/AF1QipUnknown").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_google_error(&body, 400, "INVALID_ARGUMENT");
    assert_eq!(
        body["error"]["message"],
        json!("Request contains an invalid media item id.")
    );
    let (status, _) = get(&emu, &token, "/v1/nothingHere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn search_by_album() {
    let emu = start().await;
    let token = token(&emu).await;
    let library = emu.emulator.library();
    for album in &library.albums {
        let found = search_all(&emu, &token, json!({"albumId": album.id, "pageSize": 3})).await;
        assert_eq!(found, album.item_ids, "album {}", album.title);
    }
    let empty = &library.albums_titled("Empty")[0];
    let (status, body) = search(&emu, &token, &json!({"albumId": empty.id})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({}), "an empty result is an empty object");

    // pageSize as a string is valid proto3 JSON.
    let old_camera = &library.albums_titled("Old Camera")[0];
    let (status, body) = search(
        &emu,
        &token,
        &json!({"albumId": old_camera.id, "pageSize": "2"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&body, "mediaItems").len(), 2);
    // A page token only works for the search that made it.
    let page_token = body["nextPageToken"].as_str().expect("token");
    let other = &library.albums_titled("Pets")[0];
    let (status, _) = search(
        &emu,
        &token,
        &json!({"albumId": other.id, "pageToken": page_token}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Checks pages of `size` against the listing `expected` when each page after the first
/// begins with the previous page's last entry: the repeat takes one of the `size` places.
fn assert_repeating_pages(pages: &[Vec<String>], expected: &[String], size: usize, what: &str) {
    assert!(expected.len() > size, "{what}: needs more than one page");
    assert_eq!(
        pages[0],
        expected[..size],
        "{what}: the first page repeats nothing"
    );
    for (k, pair) in pages.windows(2).enumerate() {
        assert_eq!(
            pair[1].first(),
            pair[0].last(),
            "{what}: page {} begins with the last entry of page {}",
            k + 2,
            k + 1
        );
        assert!(pair[1].len() <= size, "{what}: page {} too long", k + 2);
    }
    let without_repeats: Vec<String> = pages
        .iter()
        .enumerate()
        .flat_map(|(k, page)| page.iter().skip(usize::from(k > 0)).cloned())
        .collect();
    assert_eq!(without_repeats, expected, "{what}: nothing else changes");
    assert_eq!(
        pages.len(),
        1 + (expected.len() - size).div_ceil(size - 1),
        "{what}: pages"
    );
}

#[tokio::test]
async fn pages_repeat_the_previous_last_entry_while_the_knob_is_on() {
    let emu = start().await;
    let token = token(&emu).await;
    let library = emu.emulator.library();
    let albums: Vec<String> = library.albums.iter().map(|a| a.id.clone()).collect();
    let items: Vec<String> = library.items.iter().map(|i| i.id.clone()).collect();
    let friends = &library.albums_titled("Friends/Family 2021")[0];
    emu.emulator.set_repeat_last_entry(true);

    let pages = list_pages(&emu, &token, "/v1/albums?pageSize=3", "albums").await;
    assert_repeating_pages(&pages, &albums, 3, "albums.list");
    let pages = list_pages(&emu, &token, "/v1/mediaItems?pageSize=7", "mediaItems").await;
    assert_repeating_pages(&pages, &items, 7, "mediaItems.list");
    let pages = search_pages(&emu, &token, json!({"albumId": friends.id, "pageSize": 3})).await;
    assert_repeating_pages(&pages, &friends.item_ids, 3, "mediaItems.search");
    let pages = search_pages(&emu, &token, json!({"pageSize": 25})).await;
    assert_repeating_pages(&pages, &items, 25, "mediaItems.search of the library");

    // Pages of one entry cannot hold a repeat and something new: they repeat nothing, and
    // the listing still ends.
    let (all, pages) = list_all(&emu, &token, "/v1/albums?pageSize=1", "albums").await;
    assert_eq!(all, albums);
    assert_eq!(pages, albums.len());

    emu.emulator.set_repeat_last_entry(false);
    let (all, pages) = list_all(&emu, &token, "/v1/albums?pageSize=3", "albums").await;
    assert_eq!(all, albums);
    assert_eq!(pages, albums.len().div_ceil(3));
}

#[tokio::test]
async fn search_rejects_bad_requests() {
    let emu = start().await;
    let token = token(&emu).await;
    let album = emu.emulator.library().albums[0].id.clone();
    let bad = [
        json!({"albumId": album, "filters": {"mediaTypeFilter": {"mediaTypes": ["PHOTO"]}}}),
        json!({"albumId": "AF1QipNoSuchAlbum"}),
        json!({"orderBy": "MediaMetadata.creation_time"}),
        json!({"filters": {"featureFilter": {"includedFeatures": ["FAVORITES"]}}, "orderBy": "MediaMetadata.creation_time"}),
        json!({"filters": {"dateFilter": {"dates": [{"year": 2020}]}}, "orderBy": "creation_time"}),
        json!({"filters": {"mediaTypeFilter": {"mediaTypes": ["PHOTO", "VIDEO"]}}}),
        json!({"filters": {"mediaTypeFilter": {"mediaTypes": ["GIF"]}}}),
        json!({"filters": {"featureFilter": {"includedFeatures": ["SHARED"]}}}),
        json!({"filters": {"dateFilter": {"dates": [{"year": 2015}, {"year": 2016}, {"year": 2017}, {"year": 2018}, {"year": 2019}, {"year": 2020}]}}}),
        json!({"filters": {"dateFilter": {"dates": [{"day": 3}]}}}),
        json!({"filters": {"dateFilter": {"dates": [{"year": 2021, "month": 2, "day": 30}]}}}),
        json!({"filters": {"dateFilter": {"ranges": [{"startDate": {"year": 2020}, "endDate": {"year": 2019}}]}}}),
        json!({"filters": {"dateFilter": {"ranges": [{"startDate": {"year": 2020}}]}}}),
        json!({"pageSize": -5}),
        json!({"pageToken": "garbage"}),
        json!({"albumID": album}),
    ];
    for body in &bad {
        let (status, answer) = search(&emu, &token, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        assert_google_error(&answer, 400, "INVALID_ARGUMENT");
    }
    let resp = client()
        .post(format!("{}/v1/mediaItems:search", emu.api_base()))
        .bearer_auth(&token)
        .header(CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let answer: Value = resp.json().await.expect("json");
    assert_google_error(&answer, 400, "INVALID_ARGUMENT");
    assert_eq!(
        emu.emulator.counters().get("mediaItems.search"),
        bad.len() as u64 + 1
    );
}

#[tokio::test]
async fn search_filters() {
    let emu = start().await;
    let token = token(&emu).await;
    let library = emu.emulator.library();
    let expect = |pred: &dyn Fn(&FixtureItem) -> bool| -> Vec<String> {
        library
            .items
            .iter()
            .filter(|i| pred(i))
            .map(|i| i.id.clone())
            .collect()
    };

    let all = search_all(&emu, &token, json!({"pageSize": 100})).await;
    assert_eq!(all, expect(&|_| true));

    let nye = search_all(
        &emu,
        &token,
        json!({"filters": {"dateFilter": {"dates": [{"year": 2020, "month": 12, "day": 31}]}}}),
    )
    .await;
    assert_eq!(
        nye,
        expect(&|i| i.creation_time.date_naive()
            == NaiveDate::from_ymd_opt(2020, 12, 31).expect("date"))
    );
    assert!(!nye.is_empty());

    let year_2018 = search_all(
        &emu,
        &token,
        json!({"filters": {"dateFilter": {"dates": [{"year": 2018}]}}}),
    )
    .await;
    assert_eq!(year_2018, expect(&|i| i.creation_time.year() == 2018));
    assert!(year_2018.len() >= 5);

    let range = json!({"filters": {"dateFilter": {"ranges": [{
        "startDate": {"year": 2016, "month": 3, "day": 1},
        "endDate": {"year": 2017, "month": 12, "day": 31},
    }]}}});
    let in_range = |i: &FixtureItem| {
        let d = i.creation_time.date_naive();
        d >= NaiveDate::from_ymd_opt(2016, 3, 1).expect("date")
            && d <= NaiveDate::from_ymd_opt(2017, 12, 31).expect("date")
    };
    let ranged = search_all(&emu, &token, range.clone()).await;
    assert_eq!(ranged, expect(&in_range));
    assert!(!ranged.is_empty());
    let mut ascending = range.clone();
    ascending["orderBy"] = json!("MediaMetadata.creation_time");
    let mut reversed = expect(&in_range);
    reversed.reverse();
    assert_eq!(search_all(&emu, &token, ascending).await, reversed);
    let mut descending = range;
    descending["orderBy"] = json!("MediaMetadata.creation_time desc");
    assert_eq!(
        search_all(&emu, &token, descending).await,
        expect(&in_range)
    );

    let videos = search_all(
        &emu,
        &token,
        json!({"filters": {"mediaTypeFilter": {"mediaTypes": ["VIDEO"]}}}),
    )
    .await;
    assert_eq!(videos, expect(&|i| i.kind == MediaKind::Video));
    assert_eq!(videos.len(), 4);
    let photos = search_all(
        &emu,
        &token,
        json!({"filters": {"mediaTypeFilter": {"mediaTypes": ["PHOTO"]}}}),
    )
    .await;
    assert_eq!(photos.len(), ITEM_COUNT - 4);
    let everything = search_all(
        &emu,
        &token,
        json!({"filters": {"mediaTypeFilter": {"mediaTypes": ["ALL_MEDIA"]}}}),
    )
    .await;
    assert_eq!(everything.len(), ITEM_COUNT);

    let favorites = search_all(
        &emu,
        &token,
        json!({"filters": {"featureFilter": {"includedFeatures": ["FAVORITES"]}}}),
    )
    .await;
    assert_eq!(favorites, expect(&|i| i.favorite));
    assert_eq!(favorites.len(), 4);

    // Filters combine with AND.
    let favorite_videos = search_all(
        &emu,
        &token,
        json!({"filters": {
            "featureFilter": {"includedFeatures": ["FAVORITES"]},
            "mediaTypeFilter": {"mediaTypes": ["VIDEO"]},
        }}),
    )
    .await;
    assert_eq!(
        favorite_videos,
        expect(&|i| i.favorite && i.kind == MediaKind::Video)
    );
    assert_eq!(favorite_videos.len(), 1);
}

#[tokio::test]
async fn batch_get() {
    let emu = start().await;
    let token = token(&emu).await;
    let library = emu.emulator.library();
    let wanted = [
        library.items[10].id.as_str(),
        "AF1QipUnknownItem",
        library.items[2].id.as_str(),
        library.items[40].id.as_str(),
    ];
    let query: Vec<String> = wanted
        .iter()
        .map(|id| format!("mediaItemIds={id}"))
        .collect();
    let (status, body) = get(
        &emu,
        &token,
        &format!("/v1/mediaItems:batchGet?{}", query.join("&")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["mediaItemResults"].as_array().expect("results");
    assert_eq!(results.len(), 4);
    for (result, id) in results.iter().zip(wanted) {
        if id == "AF1QipUnknownItem" {
            assert_eq!(
                result["status"],
                json!({"code": 3, "message": "Request contains an invalid media item id."})
            );
            assert!(result.get("mediaItem").is_none());
        } else {
            assert_eq!(result["mediaItem"]["id"], json!(id));
        }
    }

    let many: Vec<String> = library.items[..51]
        .iter()
        .map(|i| format!("mediaItemIds={}", i.id))
        .collect();
    let (status, body) = get(
        &emu,
        &token,
        &format!("/v1/mediaItems:batchGet?{}", many.join("&")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_google_error(&body, 400, "INVALID_ARGUMENT");
    let (status, _) = get(
        &emu,
        &token,
        &format!("/v1/mediaItems:batchGet?{}", many[..50].join("&")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let dup = format!(
        "/v1/mediaItems:batchGet?mediaItemIds={0}&mediaItemIds={0}",
        library.items[0].id
    );
    let (status, body) = get(&emu, &token, &dup).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_google_error(&body, 400, "INVALID_ARGUMENT");
    let (status, _) = get(&emu, &token, "/v1/mediaItems:batchGet").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(emu.emulator.counters().get("mediaItems.batchGet"), 5);
}

// ---------------------------------------------------------------------------------------
// Content host

/// A fresh base URL for `id`, via mediaItems.get.
async fn base_url(emu: &RunningEmulator, token: &str, id: &str) -> String {
    let (status, body) = get(emu, token, &format!("/v1/mediaItems/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    body["baseUrl"].as_str().expect("baseUrl").to_owned()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test]
async fn content_bytes_head_and_kinds() {
    let emu = start().await;
    let token = token(&emu).await;
    let library = emu.emulator.library();
    let photo = library
        .items
        .iter()
        .find(|i| i.kind == MediaKind::Photo)
        .expect("photo");
    let video = library
        .items
        .iter()
        .find(|i| i.mime_type == "video/mp4")
        .expect("video");

    let url = base_url(&emu, &token, &photo.id).await;
    let resp = client().get(format!("{url}=d")).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CONTENT_TYPE], "image/jpeg");
    assert_eq!(resp.headers()["accept-ranges"], "bytes");
    assert!(resp.headers().contains_key(ETAG));
    let etag = resp.headers()[ETAG].clone();
    assert_eq!(sha(&resp.bytes().await.expect("body")), sha(&photo.bytes));

    let head = client()
        .head(format!("{url}=d"))
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()[CONTENT_LENGTH].to_str().expect("ascii"),
        photo.bytes.len().to_string()
    );
    assert_eq!(head.headers()[ETAG], etag);
    assert!(head.bytes().await.expect("body").is_empty());

    let resp = client().get(format!("{url}=dv")).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "=dv on a photo");

    let thumb = client()
        .get(format!("{url}=w32-h32"))
        .send()
        .await
        .expect("get");
    assert_eq!(thumb.status(), StatusCode::OK);
    assert_eq!(thumb.headers()[CONTENT_TYPE], "image/jpeg");
    let img = image::load_from_memory(&thumb.bytes().await.expect("body")).expect("jpeg");
    assert!(img.width() <= 32 && img.height() <= 32);
    let cropped = client()
        .get(format!("{url}=w40-h30-c"))
        .send()
        .await
        .expect("get");
    let img = image::load_from_memory(&cropped.bytes().await.expect("body")).expect("jpeg");
    assert_eq!(
        (img.width(), img.height()),
        (40.min(photo.width), 30.min(photo.height))
    );

    let vurl = base_url(&emu, &token, &video.id).await;
    let resp = client()
        .get(format!("{vurl}=dv"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CONTENT_TYPE], "video/mp4");
    let bytes = resp.bytes().await.expect("body");
    assert_eq!(sha(&bytes), sha(&video.bytes));
    assert_eq!(&bytes[4..8], b"ftyp");
    let resp = client().get(format!("{vurl}=d")).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CONTENT_TYPE], "image/jpeg");
    let thumb = resp.bytes().await.expect("body");
    assert_eq!(&thumb[..2], &[0xFF, 0xD8]);
    assert_ne!(sha(&thumb), sha(&video.bytes));

    let resp = client()
        .get(format!("{}/lh/AAAAunknownToken=d", emu.base_url()))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn content_ranges() {
    let emu = start().await;
    let token = token(&emu).await;
    let video = emu
        .emulator
        .library()
        .items
        .iter()
        .find(|i| i.kind == MediaKind::Video)
        .expect("video")
        .clone();
    let total = video.bytes.len();
    let url = format!("{}=dv", base_url(&emu, &token, &video.id).await);
    let ranged = |range: &'static str| {
        let url = url.clone();
        async move {
            client()
                .get(url)
                .header(RANGE, range)
                .send()
                .await
                .expect("get")
        }
    };
    let cases: [(&'static str, usize, usize); 4] = [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, total - 1),
        ("bytes=-500", total - 500, total - 1),
        ("bytes=10-99999999", 10, total - 1),
    ];
    for (range, start, end) in cases {
        let resp = ranged(range).await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            resp.headers()[CONTENT_RANGE].to_str().expect("ascii"),
            format!("bytes {start}-{end}/{total}")
        );
        assert_eq!(
            resp.headers()[CONTENT_LENGTH].to_str().expect("ascii"),
            (end - start + 1).to_string()
        );
        let body = resp.bytes().await.expect("body");
        assert_eq!(&body[..], &video.bytes[start..=end], "{range}");
    }
    let resp = ranged("bytes=99999999-").await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        resp.headers()[CONTENT_RANGE].to_str().expect("ascii"),
        format!("bytes */{total}")
    );
    let resp = ranged("bytes=0-1,5-9").await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "multi-range answers the whole body"
    );
    assert_eq!(resp.bytes().await.expect("body").len(), total);

    let head = client()
        .head(&url)
        .header(RANGE, "bytes=0-0")
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        head.headers()[CONTENT_RANGE].to_str().expect("ascii"),
        format!("bytes 0-0/{total}")
    );

    emu.emulator.set_ignore_range(true);
    let resp = ranged("bytes=0-99").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!resp.headers().contains_key(CONTENT_RANGE));
    assert_eq!(sha(&resp.bytes().await.expect("body")), sha(&video.bytes));
    emu.emulator.set_ignore_range(false);
    assert_eq!(
        ranged("bytes=0-99").await.status(),
        StatusCode::PARTIAL_CONTENT
    );
}

#[tokio::test]
async fn base_urls_expire() {
    let emu = start_with(EmulatorOptions {
        baseurl_ttl: Duration::from_secs(600),
        access_token_ttl: Duration::from_secs(7200),
        ..Default::default()
    })
    .await;
    let token = token(&emu).await;
    let item = emu.emulator.library().items[0].clone();
    let url = format!("{}=d", base_url(&emu, &token, &item.id).await);
    assert_eq!(
        client().get(&url).send().await.expect("get").status(),
        StatusCode::OK
    );
    emu.emulator.clock().advance(Duration::from_secs(599));
    assert_eq!(
        client().head(&url).send().await.expect("head").status(),
        StatusCode::OK
    );
    emu.emulator.clock().advance(Duration::from_secs(1));
    assert_eq!(
        client().get(&url).send().await.expect("get").status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        client().head(&url).send().await.expect("head").status(),
        StatusCode::FORBIDDEN
    );
    // A fresh fetch of the item gives a working URL again.
    let fresh = format!("{}=d", base_url(&emu, &token, &item.id).await);
    assert_eq!(
        client().get(&fresh).send().await.expect("get").status(),
        StatusCode::OK
    );
    let counters = emu.emulator.counters();
    assert_eq!(counters.get("content.get"), 3);
    assert_eq!(counters.get("content.head"), 2);
    assert_eq!(counters.get("mediaItems.get"), 2);
}

#[tokio::test]
async fn counters_count_every_kind() {
    let emu = start().await;
    let token = token(&emu).await;
    let counters = emu.emulator.counters();
    counters.reset();
    assert!(counters.snapshot().is_empty());
    let id = emu.emulator.library().items[0].id.clone();
    let album = emu.emulator.library().albums[0].id.clone();
    get(&emu, &token, "/v1/albums").await;
    get(&emu, &token, &format!("/v1/albums/{album}")).await;
    get(&emu, &token, "/v1/mediaItems").await;
    get(&emu, &token, "/v1/mediaItems?pageSize=-3").await;
    search(&emu, &token, &json!({})).await;
    let url = base_url(&emu, &token, &id).await;
    get(
        &emu,
        &token,
        &format!("/v1/mediaItems:batchGet?mediaItemIds={id}"),
    )
    .await;
    client().get(format!("{url}=d")).send().await.expect("get");
    client()
        .head(format!("{url}=d"))
        .send()
        .await
        .expect("head");
    token_for(&emu, REFRESH_TOKEN).await;
    let snapshot = counters.snapshot();
    let expected: std::collections::BTreeMap<String, u64> = [
        ("albums.list", 1),
        ("albums.get", 1),
        ("mediaItems.list", 2),
        ("mediaItems.search", 1),
        ("mediaItems.get", 1),
        ("mediaItems.batchGet", 1),
        ("content.get", 1),
        ("content.head", 1),
        ("token", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(snapshot, expected);
    assert_eq!(counters.get("never.called"), 0);
}

#[tokio::test]
async fn serves_http2() {
    let emu = start().await;
    let token = token(&emu).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let resp = h2
        .get(format!("{}/v1/albums", emu.api_base()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("h2 request");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    let cover = body["albums"][0]["coverPhotoBaseUrl"]
        .as_str()
        .expect("cover")
        .to_owned();
    assert!(cover.starts_with(&emu.base_url()), "{cover}");
    let head = h2.head(format!("{cover}=d")).send().await.expect("head");
    assert_eq!(head.status(), StatusCode::OK);
    let id = body["albums"][0]["coverPhotoMediaItemId"]
        .as_str()
        .expect("id");
    let item = emu.emulator.library().item(id).expect("item");
    assert_eq!(
        head.headers()[CONTENT_LENGTH].to_str().expect("ascii"),
        item.bytes.len().to_string()
    );
}

#[tokio::test]
async fn dropping_stops_the_server() {
    let emu = start().await;
    let url = emu.token_url();
    drop(emu);
    tokio::task::yield_now().await;
    let fresh = reqwest::Client::new();
    assert!(fresh.post(url).send().await.is_err());
}

// ---------------------------------------------------------------------------------------
// Fixtures

#[test]
fn same_seed_same_library_other_seed_other_ids() {
    let a = fixtures::generate(1);
    let b = fixtures::library_for(1, false, 0, 0, 0, 0, 0);
    assert_eq!(a.albums.len(), b.albums.len());
    for (x, y) in a.items.iter().zip(&b.items) {
        assert_eq!(x.id, y.id);
        assert_eq!(x.filename, y.filename);
        assert_eq!(x.creation_time, y.creation_time);
        assert_eq!(x.bytes, y.bytes);
    }
    for (x, y) in a.albums.iter().zip(&b.albums) {
        assert_eq!(x.id, y.id);
        assert_eq!(x.item_ids, y.item_ids);
    }
    let c = fixtures::library_for(2, false, 0, 0, 0, 0, 0);
    let ids_a: HashSet<&str> = a.items.iter().map(|i| i.id.as_str()).collect();
    assert!(c.items.iter().all(|i| !ids_a.contains(i.id.as_str())));
    assert_ne!(a.albums[0].id, c.albums[0].id);
}

#[test]
fn fixture_facts() {
    for seed in [1, 2] {
        let lib = fixtures::library_for(seed, false, 0, 0, 0, 0, 0);
        assert_eq!(lib.items.len(), 60);
        assert_eq!(lib.albums.len(), 8);
        let titles: Vec<&str> = lib.albums.iter().map(|a| a.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "Friends/Family 2021",
                "Été à Paris — 東京",
                "Trip",
                "Trip",
                "Empty",
                "Old Camera",
                "Pets",
                "Highlights"
            ]
        );
        let sizes: Vec<usize> = lib.albums.iter().map(|a| a.item_ids.len()).collect();
        assert_eq!(sizes, [8, 7, 6, 6, 0, 8, 6, 6]);

        let id_ok = |id: &str| {
            id.starts_with("AF1Qip")
                && id.len() == 66
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        let mut all_ids = HashSet::new();
        for id in lib
            .items
            .iter()
            .map(|i| &i.id)
            .chain(lib.albums.iter().map(|a| &a.id))
        {
            assert!(id_ok(id), "{id}");
            assert!(all_ids.insert(id.clone()), "duplicate id {id}");
        }

        let old_camera = lib.albums_titled("Old Camera")[0];
        let names: Vec<&str> = old_camera.item_ids[..3]
            .iter()
            .map(|id| lib.item(id).expect("item").filename.as_str())
            .collect();
        assert_eq!(names, ["IMG_0001.JPG"; 3]);
        let same_named = lib
            .items
            .iter()
            .filter(|i| i.filename == "IMG_0001.JPG")
            .count();
        assert_eq!(same_named, 3);
        let others: Vec<&str> = lib
            .items
            .iter()
            .map(|i| i.filename.as_str())
            .filter(|f| !f.is_empty() && *f != "IMG_0001.JPG")
            .collect();
        let unique: HashSet<&str> = others.iter().copied().collect();
        assert_eq!(unique.len(), others.len(), "other filenames are unique");

        let unnamed: Vec<&FixtureItem> =
            lib.items.iter().filter(|i| i.filename.is_empty()).collect();
        assert_eq!(unnamed.len(), 1);
        assert!(
            lib.albums_titled("Pets")[0]
                .item_ids
                .contains(&unnamed[0].id)
        );

        let nye: Vec<&FixtureItem> = lib
            .items
            .iter()
            .filter(|i| i.creation_time.to_rfc3339() == "2020-12-31T23:30:00+00:00")
            .collect();
        assert_eq!(nye.len(), 1);
        assert!(
            lib.albums_titled("Highlights")[0]
                .item_ids
                .contains(&nye[0].id)
        );
        assert_eq!(
            (nye[0].creation_time.hour(), nye[0].creation_time.minute()),
            (23, 30)
        );
        for year in 2015..=2025 {
            let n = lib
                .items
                .iter()
                .filter(|i| i.creation_time.year() == year)
                .count();
            assert!(n >= 5, "{year}: {n}");
        }

        let videos: Vec<&FixtureItem> = lib
            .items
            .iter()
            .filter(|i| i.kind == MediaKind::Video)
            .collect();
        assert_eq!(videos.len(), 4);
        assert_eq!(
            videos
                .iter()
                .filter(|v| v.mime_type == "video/quicktime")
                .count(),
            1
        );
        assert_eq!(
            videos.iter().filter(|v| v.mime_type == "video/mp4").count(),
            3
        );
        for v in &videos {
            assert_eq!(&v.bytes[4..8], b"ftyp");
            assert!(
                (100_000..=2_500_000).contains(&v.bytes.len()),
                "{}",
                v.bytes.len()
            );
        }
        assert!(videos.iter().any(|v| v.favorite));
        assert_eq!(lib.items.iter().filter(|i| i.favorite).count(), 4);

        let mut membership = std::collections::HashMap::<&str, usize>::new();
        for album in &lib.albums {
            for id in &album.item_ids {
                *membership.entry(id.as_str()).or_default() += 1;
            }
        }
        assert_eq!(
            lib.items
                .iter()
                .filter(|i| !membership.contains_key(i.id.as_str()))
                .count(),
            17
        );
        assert_eq!(membership.values().filter(|n| **n == 2).count(), 4);

        let photo_sizes: Vec<usize> = lib
            .items
            .iter()
            .filter(|i| i.kind == MediaKind::Photo)
            .map(|i| i.bytes.len())
            .collect();
        let (min, max) = (
            *photo_sizes.iter().min().expect("min"),
            *photo_sizes.iter().max().expect("max"),
        );
        assert!(
            min < 6_000 && max > 150_000 && max < 300_000,
            "photo sizes {min}..{max}"
        );
    }
}

#[test]
fn many_albums_are_empty_and_come_after_the_seeded_ones() {
    let seeded = fixtures::library_for(1, false, 0, 0, 0, 0, 0);
    let lib = fixtures::library_for(1, false, 0, 60, 0, 0, 0);
    assert_eq!(lib.albums.len(), seeded.albums.len() + 60);
    assert_eq!(lib.items.len(), seeded.items.len());
    for (a, b) in seeded.albums.iter().zip(&lib.albums) {
        assert_eq!((&a.id, &a.title), (&b.id, &b.title));
    }
    let extra = &lib.albums[seeded.albums.len()..];
    assert_eq!(extra[0].title, format!("{MANY_ALBUMS_PREFIX}0001"));
    assert_eq!(extra[59].title, format!("{MANY_ALBUMS_PREFIX}0060"));
    assert!(extra.iter().all(|a| a.item_ids.is_empty()));
    let ids: HashSet<&str> = lib.albums.iter().map(|a| a.id.as_str()).collect();
    let titles: HashSet<&str> = extra.iter().map(|a| a.title.as_str()).collect();
    assert_eq!(ids.len(), lib.albums.len());
    assert_eq!(titles.len(), 60);
}

#[test]
fn library_albums_hold_library_items_up_to_googles_maximum() {
    let seeded = fixtures::library_for(1, false, 0, 0, 0, 0, 0);
    let lib = fixtures::library_for(1, false, 0, 0, 0, 25_000, 2);
    assert_eq!(lib.items.len(), seeded.items.len() + 25_000);
    let extra = &lib.albums[seeded.albums.len()..];
    let sizes: Vec<usize> = extra.iter().map(|a| a.item_ids.len()).collect();
    assert_eq!(sizes, [LIBRARY_ALBUM_SIZE, 25_000 - LIBRARY_ALBUM_SIZE]);
    assert_eq!(extra[1].title, format!("{LIBRARY_ALBUM_PREFIX}2"));
    // Every member is an item of the library, and no item is in both albums.
    let members: HashSet<&str> = extra
        .iter()
        .flat_map(|a| a.item_ids.iter().map(String::as_str))
        .collect();
    assert_eq!(members.len(), 25_000);
    assert!(members.iter().all(|id| lib.item(id).is_some()));
}

#[test]
fn photos_are_baseline_jpegs_of_their_stated_size() {
    let lib = fixtures::library_for(1, false, 0, 0, 0, 0, 0);
    for item in lib.items.iter().filter(|i| i.kind == MediaKind::Photo) {
        assert_eq!(item.mime_type, "image/jpeg");
        let img = image::load_from_memory(&item.bytes).expect("decodes");
        assert_eq!(
            (img.width(), img.height()),
            (item.width, item.height),
            "{}",
            item.id
        );
        // SOF0 (baseline) present, SOF2 (progressive) absent.
        let has = |marker: u8| item.bytes.windows(2).any(|w| w == [0xFF, marker]);
        assert!(has(0xC0) && !has(0xC2), "{}", item.id);
        assert!((64..=800).contains(&item.width.max(item.height)));
    }
}

/// The big item (benchmarks): its original is generated while sent, honours ranges, matches
/// `BigItem::fill` byte for byte, and every body byte of a download is counted.
#[tokio::test]
async fn big_item_is_generated_ranged_and_counted() {
    const SIZE: u64 = 3 * 1024 * 1024 + 5;
    let emu = start_with(EmulatorOptions {
        big_item: SIZE,
        ..Default::default()
    })
    .await;
    let token = token(&emu).await;
    let library = emu.emulator.library();
    let big = library.big_item.clone().expect("a big item");
    let album = &library.albums_titled(BIG_ITEM_ALBUM)[0];
    assert_eq!(album.item_ids, vec![big.id.clone()]);
    assert_eq!(library.item(&big.id).unwrap().filename, BIG_ITEM_FILENAME);
    let url = format!("{}=dv", base_url(&emu, &token, &big.id).await);
    let mut whole = vec![0u8; SIZE as usize];
    big.fill(0, &mut whole);

    let head = client().head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()[CONTENT_LENGTH], SIZE.to_string().as_str());
    assert_eq!(emu.emulator.content_bytes_sent(), 0, "HEAD sends no body");

    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CONTENT_TYPE], "video/mp4");
    let body = resp.bytes().await.unwrap();
    assert_eq!(sha(&body), sha(&whole));
    assert_eq!(emu.emulator.content_bytes_sent(), SIZE);

    let resp = client()
        .get(&url)
        .header(RANGE, "bytes=-1000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        resp.headers()[CONTENT_RANGE],
        format!("bytes {}-{}/{SIZE}", SIZE - 1000, SIZE - 1).as_str()
    );
    let body = resp.bytes().await.unwrap();
    assert_eq!(body[..], whole[(SIZE - 1000) as usize..]);
    assert_eq!(emu.emulator.content_bytes_sent(), SIZE + 1000);

    let resp = client()
        .get(&url)
        .header(RANGE, format!("bytes={SIZE}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let page = resp.bytes().await.unwrap();
    // Every body a content GET sends counts, error pages included.
    assert_eq!(
        emu.emulator.content_bytes_sent(),
        SIZE + 1000 + page.len() as u64
    );
}

// ---------------------------------------------------------------------------------------
// Uploads

async fn raw_upload(emu: &RunningEmulator, token: &str, bytes: &[u8]) -> (StatusCode, String) {
    let resp = client()
        .post(format!("{}/v1/uploads", emu.api_base()))
        .bearer_auth(token)
        .header("Content-Type", "application/octet-stream")
        .header("X-Goog-Upload-Protocol", "raw")
        .header("X-Goog-Upload-Content-Type", "image/jpeg")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("upload");
    let status = resp.status();
    (status, resp.text().await.expect("text"))
}

async fn batch_create(emu: &RunningEmulator, token: &str, body: &Value) -> (StatusCode, Value) {
    let resp = client()
        .post(format!("{}/v1/mediaItems:batchCreate", emu.api_base()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("batchCreate");
    let status = resp.status();
    (status, resp.json().await.expect("json"))
}

fn new_item(upload_token: &str, name: &str) -> Value {
    json!({"simpleMediaItem": {"uploadToken": upload_token, "fileName": name}})
}

#[tokio::test]
async fn raw_upload_then_batch_create_into_an_album() {
    let emu = start().await;
    let token = token(&emu).await;
    let photo = fixtures::render_jpeg(20, 10, 1, 4, 2, 90).expect("jpeg");
    let (status, upload_token) = raw_upload(&emu, &token, &photo).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!upload_token.is_empty() && !upload_token.contains('{'));

    let album = emu.emulator.library().albums_titled("Empty")[0].id.clone();
    let body = json!({"albumId": album, "newMediaItems": [new_item(&upload_token, "new.jpg")]});
    let (status, answer) = batch_create(&emu, &token, &body).await;
    assert_eq!(status, StatusCode::OK);
    let result = &answer["newMediaItemResults"][0];
    assert_eq!(result["uploadToken"], upload_token.as_str());
    assert_eq!(result["status"]["message"], "Success");
    let item = &result["mediaItem"];
    assert_eq!(item["filename"], "new.jpg");
    assert_eq!(item["mimeType"], "image/jpeg");
    assert_eq!(item["mediaMetadata"]["width"], "20");
    let id = item["id"].as_str().expect("id").to_owned();

    // Listed first (newest) and in the album; the base URL serves the bytes.
    let (_, list) = get(&emu, &token, "/v1/mediaItems?pageSize=1").await;
    assert_eq!(ids(&list, "mediaItems"), vec![id.clone()]);
    let in_album = search_all(&emu, &token, json!({"albumId": album})).await;
    assert_eq!(in_album, vec![id.clone()]);
    let (_, got) = get(&emu, &token, &format!("/v1/mediaItems/{id}")).await;
    let base = got["baseUrl"].as_str().expect("baseUrl");
    let bytes = client()
        .get(format!("{base}=d"))
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(
        bytes.as_ref(),
        photo.as_ref(),
        "no EXIF: served as uploaded"
    );

    // A token works once.
    let (_, again) = batch_create(&emu, &token, &body).await;
    assert_eq!(again["newMediaItemResults"][0]["status"]["code"], 3);
    assert!(again["newMediaItemResults"][0].get("mediaItem").is_none());
    assert_eq!(emu.emulator.counters().get("uploads"), 1);
    assert_eq!(emu.emulator.counters().get("mediaItems.batchCreate"), 2);
}

#[tokio::test]
async fn batch_create_answers_each_item_and_enforces_its_limits() {
    let emu = start().await;
    let token = token(&emu).await;
    let photo = fixtures::render_jpeg(8, 8, 1, 4, 2, 90).expect("jpeg");
    let (_, stale) = raw_upload(&emu, &token, &photo).await;
    emu.emulator.clock().advance(Duration::from_secs(23 * 3600));
    let token = token_for(&emu, REFRESH_TOKEN).await;
    let (_, fresh) = raw_upload(&emu, &token, &photo).await;
    emu.emulator.clock().advance(Duration::from_secs(2 * 3600));
    let token = token_for(&emu, REFRESH_TOKEN).await;
    // `stale` is now 25 hours old: expired.
    let body = json!({"newMediaItems": [
        new_item(&fresh, "a.jpg"),
        new_item("no-such-token", "b.jpg"),
        new_item(&stale, "c.jpg"),
    ]});
    let (status, answer) = batch_create(&emu, &token, &body).await;
    assert_eq!(status, StatusCode::OK);
    let results = answer["newMediaItemResults"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["mediaItem"]["filename"], "a.jpg");
    for failed in &results[1..] {
        assert_eq!(failed["status"]["code"], 3);
        assert!(failed.get("mediaItem").is_none());
    }

    let many: Vec<Value> = (0..51)
        .map(|i| new_item("t", &format!("{i}.jpg")))
        .collect();
    let (status, answer) = batch_create(&emu, &token, &json!({"newMediaItems": many})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_google_error(&answer, 400, "INVALID_ARGUMENT");
    let (status, _) = batch_create(
        &emu,
        &token,
        &json!({"albumId": "nope", "newMediaItems": [new_item(&fresh, "x.jpg")]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Faults can be injected on the new kinds.
    emu.emulator
        .inject("mediaItems.batchCreate", Fault::Status(503), 1, Some(1));
    let (status, _) = batch_create(&emu, &token, &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // The per-minute write limit: Google's envelope with the ErrorInfo naming the limit.
    emu.emulator.inject(
        "mediaItems.batchCreate",
        Fault::WriteRateLimited,
        1,
        Some(1),
    );
    let (status, answer) = batch_create(&emu, &token, &body).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_google_error(&answer, 429, "RESOURCE_EXHAUSTED");
    let info = &answer["error"]["details"][0];
    assert_eq!(info["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
    assert_eq!(info["reason"], "RATE_LIMIT_EXCEEDED");
    assert_eq!(info["metadata"]["quota_limit"], "WritesPerMinutePerUser");
    assert_eq!(
        info["metadata"]["quota_metric"],
        "photoslibrary.googleapis.com/write_requests"
    );
    emu.emulator
        .inject("uploads", Fault::Status(500), 1, Some(1));
    let (status, text) = raw_upload(&emu, &token, &photo).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{text}");
}

#[tokio::test]
async fn resumable_upload_protocol() {
    let emu = start().await;
    let token = token(&emu).await;
    let granularity = upload::CHUNK_GRANULARITY;
    let video: Vec<u8> = {
        let mut v = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41".to_vec();
        v.resize(granularity * 2 + 1000, 7);
        v
    };
    let start = client()
        .post(format!("{}/v1/uploads", emu.api_base()))
        .bearer_auth(&token)
        .header("Content-Length", "0")
        .header("X-Goog-Upload-Command", "start")
        .header("X-Goog-Upload-Content-Type", "video/mp4")
        .header("X-Goog-Upload-Protocol", "resumable")
        .header("X-Goog-Upload-Raw-Size", video.len().to_string())
        .send()
        .await
        .expect("start");
    assert_eq!(start.status(), StatusCode::OK);
    assert_eq!(
        start.headers()["X-Goog-Upload-Chunk-Granularity"],
        granularity.to_string().as_str()
    );
    let url = start.headers()["X-Goog-Upload-URL"]
        .to_str()
        .expect("url")
        .to_owned();
    let send = |command: &'static str, offset: usize, body: Vec<u8>| {
        client()
            .post(&url)
            .header("X-Goog-Upload-Command", command)
            .header("X-Goog-Upload-Offset", offset.to_string())
            .body(body)
            .send()
    };
    let first = send("upload", 0, video[..granularity].to_vec())
        .await
        .expect("chunk");
    assert_eq!(first.status(), StatusCode::OK);
    // A chunk at the wrong offset is refused with what was received.
    let wrong = send("upload", 10, video[10..granularity].to_vec())
        .await
        .expect("chunk");
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        wrong.headers()["X-Goog-Upload-Size-Received"],
        granularity.to_string().as_str()
    );
    let query = send("query", 0, Vec::new()).await.expect("query");
    assert_eq!(
        query.headers()["X-Goog-Upload-Size-Received"],
        granularity.to_string().as_str()
    );
    let last = send(
        "upload, finalize",
        granularity,
        video[granularity..].to_vec(),
    )
    .await
    .expect("last chunk");
    assert_eq!(last.status(), StatusCode::OK);
    let upload_token = last.text().await.expect("token");
    let (_, answer) = batch_create(
        &emu,
        &token,
        &json!({"newMediaItems": [new_item(&upload_token, "clip.mp4")]}),
    )
    .await;
    let item = &answer["newMediaItemResults"][0]["mediaItem"];
    assert_eq!(item["mimeType"], "video/mp4");
    // Google processes a new video first: the status alone, and no `=dv` yet.
    assert_eq!(
        item["mediaMetadata"]["video"],
        json!({"status": "PROCESSING"})
    );
    let id = item["id"].as_str().expect("id").to_owned();
    let created = emu
        .emulator
        .current_library()
        .item(&id)
        .expect("created")
        .clone();
    assert_eq!(
        created.bytes,
        upload::transcode(&video),
        "=dv is a transcode"
    );
    assert_ne!(created.bytes.as_ref(), video.as_slice());
    let dv = |url: String| async move {
        let resp = client().get(format!("{url}=dv")).send().await.expect("=dv");
        (resp.status(), resp.bytes().await.expect("body"))
    };
    let (status, _) = dv(base_url(&emu, &token, &id).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "=dv while processing");
    // A thumbnail is served meanwhile.
    let thumb = client()
        .get(format!("{}=w64-h64", base_url(&emu, &token, &id).await))
        .send()
        .await
        .expect("thumbnail");
    assert_eq!(thumb.status(), StatusCode::OK);
    emu.emulator
        .clock()
        .advance(DEFAULT_VIDEO_PROCESSING - Duration::from_secs(1));
    let (_, body) = get(&emu, &token, &format!("/v1/mediaItems/{id}")).await;
    assert_eq!(body["mediaMetadata"]["video"]["status"], "PROCESSING");
    emu.emulator.clock().advance(Duration::from_secs(1));
    let (_, body) = get(
        &emu,
        &token,
        &format!("/v1/mediaItems:batchGet?mediaItemIds={id}"),
    )
    .await;
    let ready = &body["mediaItemResults"][0]["mediaItem"];
    assert_eq!(ready["mediaMetadata"]["video"]["status"], "READY");
    assert!(ready["mediaMetadata"]["video"]["fps"].is_number());
    let (status, bytes) = dv(ready["baseUrl"].as_str().expect("baseUrl").to_owned()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha(&bytes), sha(&upload::transcode(&video)));
}

#[tokio::test]
async fn videos_are_ready_at_once_when_processing_takes_no_time() {
    let emu = start_with(EmulatorOptions {
        video_processing: Duration::ZERO,
        ..EmulatorOptions::default()
    })
    .await;
    let token = token(&emu).await;
    let video = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41 and some bytes".to_vec();
    let (status, upload_token) = raw_upload(&emu, &token, &video).await;
    assert_eq!(status, StatusCode::OK);
    let (_, answer) = batch_create(
        &emu,
        &token,
        &json!({"newMediaItems": [new_item(&upload_token, "now.mp4")]}),
    )
    .await;
    let item = &answer["newMediaItemResults"][0]["mediaItem"];
    assert_eq!(item["mediaMetadata"]["video"]["status"], "READY");
}

#[tokio::test]
async fn albums_create_makes_a_writeable_album() {
    let emu = start().await;
    let token = token(&emu).await;
    let create = |title: String| {
        client()
            .post(format!("{}/v1/albums", emu.api_base()))
            .bearer_auth(&token)
            .json(&json!({"album": {"title": title}}))
            .send()
    };
    let resp = create("Summer".into()).await.expect("create");
    assert_eq!(resp.status(), StatusCode::OK);
    let album: Value = resp.json().await.expect("json");
    assert_eq!(album["title"], "Summer");
    assert_eq!(album["isWriteable"], true);
    assert!(album.get("mediaItemsCount").is_none());
    let id = album["id"].as_str().expect("id");
    let (status, got) = get(&emu, &token, &format!("/v1/albums/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["title"], "Summer");
    let resp = create("x".repeat(501)).await.expect("create");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(emu.emulator.counters().get("albums.create"), 2);
    assert_eq!(
        emu.emulator.current_library().albums.len(),
        emu.emulator.library().albums.len() + 1
    );
}

#[tokio::test]
async fn albums_patch_renames_with_the_edit_scope_only() {
    let emu = start().await;
    let id = emu.emulator.library().albums[0].id.clone();
    let patch = |token: String, query: &'static str, body: Value| {
        let url = format!("{}/v1/albums/{id}{query}", emu.api_base());
        async move {
            let resp = client()
                .patch(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("patch");
            let status = resp.status();
            (status, resp.json::<Value>().await.expect("json"))
        }
    };
    let token = token(&emu).await;
    let renamed = json!({"id": id, "title": "Renamed"});
    for (query, body) in [
        ("", renamed.clone()),
        ("?updateMask=description", renamed.clone()),
        ("?updateMask=title", json!({"title": "x".repeat(501)})),
        ("?updateMask=title", json!({"title": "  "})),
    ] {
        let (status, got) = patch(token.clone(), query, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {got}");
        assert_eq!(got["error"]["status"], "INVALID_ARGUMENT");
    }
    let no_edit = token_for(&emu, super::REFRESH_TOKEN_NO_EDIT).await;
    let (status, got) = patch(no_edit, "?updateMask=title", renamed.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        got["error"]["message"],
        "Request had insufficient authentication scopes."
    );
    assert_eq!(
        emu.emulator.current_library().albums[0].title,
        emu.emulator.library().albums[0].title
    );

    let (status, got) = patch(token.clone(), "?updateMask=title", renamed).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["id"], id.as_str());
    assert_eq!(got["title"], "Renamed");
    let (_, listed) = get(&emu, &token, &format!("/v1/albums/{id}")).await;
    assert_eq!(listed["title"], "Renamed");
    let lib = emu.emulator.current_library();
    assert_eq!(
        lib.albums[0].item_ids,
        emu.emulator.library().albums[0].item_ids
    );
    assert_eq!(emu.emulator.counters().get("albums.patch"), 6);
}

#[test]
fn gps_is_stripped_big_endian_too() {
    // A big-endian TIFF whose GPS IFD is not last: the pointer goes, the IFD is zeroed.
    let jpeg = upload::jpeg_with_gps(b'S');
    let t_len = jpeg.len() - 14;
    let stripped = upload::strip_gps(&jpeg);
    assert_eq!(stripped.len(), jpeg.len());
    let tiff = &stripped[12..12 + t_len];
    assert_eq!(&tiff[8..10], &[0, 0], "IFD0 has no entries left");
    assert!(tiff[26..44].iter().all(|b| *b == 0), "the GPS IFD is gone");
    assert_eq!(&tiff[44..], b"tail");
    assert!(!stripped.windows(2).any(|w| w == [0x88, 0x25]));
    // Not a JPEG with EXIF: unchanged.
    assert_eq!(upload::strip_gps(b"plain").as_ref(), b"plain");
}

/// Google's daily quotas, counted per Pacific day: past them the APIs answer a structured
/// daily 429 and the content host an HTML 429, until Pacific midnight on the emulator's clock.
#[tokio::test]
async fn daily_quotas_are_counted_and_refused_until_pacific_midnight() {
    let emu = start_with(EmulatorOptions {
        daily_quota: Some(2),
        ..EmulatorOptions::default()
    })
    .await;
    let token = token(&emu).await;
    for _ in 0..2 {
        assert_eq!(get(&emu, &token, "/v1/albums").await.0, StatusCode::OK);
    }
    let (status, body) = get(&emu, &token, "/v1/albums").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    let info = &body["error"]["details"][0];
    assert_eq!(info["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
    assert_eq!(info["reason"], "RATE_LIMIT_EXCEEDED");
    assert_eq!(info["metadata"]["quota_limit"], "ApiCallsPerProjectPerDay");
    assert_eq!(emu.emulator.daily_counts().0, 3, "refused calls count too");

    // The content host: its own count, an HTML 429 past it.
    emu.emulator.set_daily_quotas(None, None);
    let id = emu.emulator.library().items[0].id.clone();
    let url = base_url(&emu, &token, &id).await;
    emu.emulator.set_daily_quotas(None, Some(1));
    let (api, media) = emu.emulator.daily_counts();
    assert_eq!(media, 0);
    let resp = client().head(format!("{url}=d")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = client().get(format!("{url}=d")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        resp.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(emu.emulator.daily_counts(), (api, 2));

    // A new Pacific day: both counts start again.
    emu.emulator.clock().advance(Duration::from_secs(24 * 3600));
    assert_eq!(emu.emulator.daily_counts(), (0, 0));
    let resp = client().get(format!("{url}=d")).send().await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "the URL expired meanwhile"
    );
    assert_eq!(
        get(&emu, &token, "/v1/albums").await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// Injected 429s carry the structure the client classifies by; the content host's none.
#[tokio::test]
async fn injected_429s_carry_googles_structured_details() {
    let emu = start().await;
    let token = token(&emu).await;
    emu.emulator.inject(
        "albums.list",
        Fault::RateLimited {
            retry_after_secs: 3,
        },
        1,
        Some(1),
    );
    let resp = client()
        .get(format!("{}/v1/albums", emu.api_base()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "3");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["details"][0]["metadata"]["quota_limit"],
        "ApiCallsPerMinutePerUser"
    );
    emu.emulator.inject(
        "albums.list",
        Fault::Throttled {
            message: "Too many requests".into(),
            quota_limit: None,
            retry_after_secs: None,
        },
        1,
        Some(1),
    );
    let (status, body) = get(&emu, &token, "/v1/albums").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["message"], "Too many requests");
    assert!(body["error"].get("details").is_none());
    assert_eq!(get(&emu, &token, "/v1/albums").await.0, StatusCode::OK);
}
