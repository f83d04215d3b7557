//! The gallery's JSON API for picking (`<prefix>/_/api/picks`), the page's way to run what
//! `gphotos-dav pick` runs in a terminal: the same functions of `crate::pick` (begin, finish,
//! delete, import), in tasks of the server instead of a terminal's foreground.
//!
//! | method and path | answer |
//! |---|---|
//! | `POST picks` `{"name"}` | 201 `{"name","pickerUri","expireTime"}`; 409 name taken; 400 bad name |
//! | `GET picks` | 200: every set, `state` `waiting` / `ready` / `expired` (and `failed`) |
//! | `GET picks/<name>` | 200 one set, with an import's progress; 404 unknown |
//! | `DELETE picks/<name>` | 204 (ends the picking session); 404 unknown |
//! | `POST picks/<name>/import` `{"album"}` | 202; progress in `GET picks/<name>`; 403 on a read-only server |
//! | `GET picks/<name>/qr.svg` | the picking link of a waiting set as a QR code |
//!
//! A set is `waiting` from its session's creation until the user pressed Done in Google
//! Photos (the task that follows the session, `pick::finish`, then stores it, and the tree
//! shows it under `/picked/`). Only the waiting sets and the imports live in memory here; a
//! set picked is in the store, where `gphotos-dav pick --list` sees it too.
//!
//! POST and DELETE pass the origin check of `security` first (403), and the authentication
//! stage in front of the route refuses them to read-only users (403).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::security::{self, Foreign};
use super::{Web, json_response};
use crate::catalog::picked::{PICKED_ROOT, decode_items};
use crate::catalog::store::PickedSet;
use crate::google::GoogleError;
use crate::google::picker::PickingSession;
use crate::pick::{self, Output, PickError};
use crate::server::layers::stage::{Req, Res};
use crate::server::response::text_response;

/// The largest request body the API reads (a name and an album title).
const MAX_BODY: usize = 16 * 1024;

/// The picking sessions followed and the imports running or done, by set name.
#[derive(Default)]
pub struct Picks {
    waiting: Mutex<HashMap<String, Waiting>>,
    imports: Mutex<HashMap<String, Import>>,
}

/// A session the user has not finished picking in yet.
struct Waiting {
    session: PickingSession,
    /// The task following it (`pick::finish`), ended when the set is deleted.
    task: tokio::task::AbortHandle,
    /// Why following it failed (a timeout, Google), once it did.
    failed: Option<String>,
}

/// An import of a set into an album.
struct Import {
    album: String,
    total: usize,
    done: Arc<AtomicUsize>,
    outcome: Option<Result<pick::ImportSummary, String>>,
}

impl Import {
    fn json(&self) -> Value {
        let mut v = json!({
            "album": self.album,
            "total": self.total,
            "done": self.done.load(Ordering::Relaxed),
        });
        match &self.outcome {
            None => v["state"] = json!("running"),
            Some(Ok(s)) => {
                v["state"] = json!("done");
                v["imported"] = json!(s.imported);
                v["skipped"] = json!(s.skipped);
                v["failed"] = json!(s.failed);
            }
            Some(Err(message)) => {
                v["state"] = json!("failed");
                v["message"] = json!(message);
            }
        }
        v
    }
}

/// A request under `_/api/` (`rest` is the path after it).
pub async fn handle(web: &Web, req: Req, rest: &str) -> Res {
    let method = req.method().clone();
    if security::changes_state(&method) {
        let mut headers = req.headers().clone();
        if !headers.contains_key(http::header::HOST)
            && let Some(authority) = req.uri().authority()
            && let Ok(v) = http::HeaderValue::from_str(authority.as_str())
        {
            headers.insert(http::header::HOST, v);
        }
        if let Err(foreign) = security::same_origin(&headers, web.inner.tls) {
            let why = match foreign {
                Foreign::Unsaid => "the request says neither Origin nor Referer".to_string(),
                Foreign::Other(o) => format!("the request comes from another origin ({o})"),
                Foreign::NoHost => "the request has no Host".to_string(),
            };
            tracing::warn!(%method, path = %req.uri().path(), "API call refused: {why}");
            return text_response(
                StatusCode::FORBIDDEN,
                &format!(
                    "gphotos-dav: refused: {why}; the gallery's API answers its own pages only\n"
                ),
            );
        }
    }
    let Some(picks) = rest.strip_prefix("picks") else {
        return not_found();
    };
    let parts: Vec<String> = picks
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    match (&method, parts.as_slice()) {
        (&Method::GET, []) => list(web).await,
        (&Method::POST, []) => match body(req).await {
            Ok(v) => create(web, &v).await,
            Err(resp) => resp,
        },
        (&Method::GET, [name]) => match one(web, name).await {
            Some(v) => json_response(StatusCode::OK, &v),
            None => not_found(),
        },
        (&Method::DELETE, [name]) => delete(web, name).await,
        (&Method::POST, [name, "import"]) => match body(req).await {
            Ok(v) => import(web, name, &v).await,
            Err(resp) => resp,
        },
        (&Method::GET, [name, "qr.svg"]) => qr(web, name),
        (_, [] | [_] | [_, "import"] | [_, "qr.svg"]) => text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "gphotos-dav: method not allowed here\n",
        ),
        _ => not_found(),
    }
}

fn not_found() -> Res {
    error(StatusCode::NOT_FOUND, "no such picked set")
}

fn error(status: StatusCode, message: &str) -> Res {
    json_response(status, &json!({ "error": message }))
}

/// The request's JSON body (at most [`MAX_BODY`] bytes).
async fn body(req: Req) -> Result<Value, Res> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY);
    let bytes = match limited.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is too long or broke off",
            ));
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("the body is not JSON: {e}"),
        )
    })
}

/// Now on the catalog's clock (tests move it), as the tree judges expiry.
fn now(web: &Web) -> DateTime<Utc> {
    DateTime::<Utc>::from(web.catalog().clock().system_now())
}

/// A stored set as the API shows it.
fn stored_json(web: &Web, set: &PickedSet) -> Value {
    let expired = set.expire_time <= now(web);
    let mut v = json!({
        "name": set.name,
        "state": if expired { "expired" } else { "ready" },
        "expireTime": set.expire_time.to_rfc3339(),
        "items": decode_items(&set.items_json).map_or(0, |i| i.len()),
        "path": format!("{}/{PICKED_ROOT}/{}/",
            web.inner.prefix.as_str(),
            super::page::encode_path(std::slice::from_ref(&set.name)).trim_start_matches('/')),
    });
    if let Some(import) = web.inner.picks.imports.lock().get(&set.name) {
        v["import"] = import.json();
    }
    v
}

fn waiting_json(name: &str, w: &Waiting) -> Value {
    json!({
        "name": name,
        "state": if w.failed.is_some() { "failed" } else { "waiting" },
        "pickerUri": w.session.autoclose_uri(),
        "expireTime": w.session.expire_time.map(|t| t.to_rfc3339()),
        "message": w.failed,
    })
}

async fn list(web: &Web) -> Res {
    let sets = web.catalog().store().picked_sets().await;
    let mut out: Vec<Value> = sets.iter().map(|s| stored_json(web, s)).collect();
    let waiting = web.inner.picks.waiting.lock();
    let mut names: Vec<&String> = waiting.keys().collect();
    names.sort();
    for name in names {
        if !sets.iter().any(|s| &s.name == name) {
            out.push(waiting_json(name, &waiting[name]));
        }
    }
    json_response(StatusCode::OK, &Value::Array(out))
}

async fn one(web: &Web, name: &str) -> Option<Value> {
    if let Some(set) = stored(web, name).await {
        return Some(stored_json(web, &set));
    }
    let waiting = web.inner.picks.waiting.lock();
    waiting.get(name).map(|w| waiting_json(name, w))
}

async fn stored(web: &Web, name: &str) -> Option<PickedSet> {
    web.catalog()
        .store()
        .picked_sets()
        .await
        .into_iter()
        .find(|s| s.name == name)
}

/// `POST picks`: `pick::begin` (the name checked, the session created), then
/// `pick::finish` in a task of its own that stores the set once the user is done.
async fn create(web: &Web, body: &Value) -> Res {
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, "the body needs a \"name\"");
    };
    let name = name.to_string();
    if web.inner.picks.waiting.lock().contains_key(&name) {
        return error(
            StatusCode::CONFLICT,
            &format!("a picking session named {name:?} is waiting already"),
        );
    }
    let catalog = web.catalog().clone();
    let google = catalog.google().clone();
    let mut sink = Vec::new();
    let mut output = quiet(&mut sink, None);
    let session = match pick::begin(&google, catalog.store(), &name, None, &mut output).await {
        Ok(session) => session,
        Err(e) => return pick_error(&e),
    };
    let answer = json!({
        "name": name,
        "pickerUri": session.autoclose_uri(),
        "expireTime": session.expire_time.map(|t| t.to_rfc3339()),
    });
    let mut waiting = web.inner.picks.waiting.lock();
    let follow = {
        let (web, name, session) = (web.clone(), name.clone(), session.clone());
        tokio::spawn(async move {
            let mut sink = Vec::new();
            let mut output = quiet(&mut sink, None);
            let store = web.catalog().store().clone();
            let google = web.catalog().google().clone();
            let result = pick::finish(&google, &store, &name, &session, &mut output).await;
            let mut waiting = web.inner.picks.waiting.lock();
            match result {
                Ok(set) => {
                    tracing::info!(set = %name, "picked set stored (from the gallery)");
                    drop(set);
                    waiting.remove(&name);
                }
                Err(e) => {
                    tracing::warn!(set = %name, "picking from the gallery failed: {e}");
                    if let Some(w) = waiting.get_mut(&name) {
                        w.failed = Some(e.to_string());
                    }
                }
            }
        })
    };
    waiting.insert(
        name,
        Waiting {
            session,
            task: follow.abort_handle(),
            failed: None,
        },
    );
    json_response(StatusCode::CREATED, &answer)
}

/// `DELETE picks/<name>`: a waiting session is ended at Google and forgotten; a stored set
/// goes through `pick::delete` (its session ended, the set removed).
async fn delete(web: &Web, name: &str) -> Res {
    let google = web.catalog().google().clone();
    let waiting = web.inner.picks.waiting.lock().remove(name);
    if let Some(w) = waiting {
        w.task.abort();
        match google.picker.delete_session(&w.session.id).await {
            Ok(()) | Err(GoogleError::NotFound(_)) => {}
            Err(e) => tracing::warn!(set = name, "could not end the picking session: {e}"),
        }
        if stored(web, name).await.is_none() {
            return no_content();
        }
    }
    if stored(web, name).await.is_none() {
        return not_found();
    }
    let mut sink = Vec::new();
    match pick::delete(&google, web.catalog().store(), name, &mut sink).await {
        Ok(()) => {
            web.inner.picks.imports.lock().remove(name);
            no_content()
        }
        Err(e) => pick_error(&e),
    }
}

fn no_content() -> Res {
    let mut resp = text_response(StatusCode::NO_CONTENT, "");
    resp.headers_mut().remove(http::header::CONTENT_TYPE);
    resp
}

/// `POST picks/<name>/import`: `pick::import` in a task; its progress in the set's JSON.
async fn import(web: &Web, name: &str, body: &Value) -> Res {
    if !web.inner.writable {
        return error(
            StatusCode::FORBIDDEN,
            "this server is read-only ([server] read_only): nothing can be imported",
        );
    }
    let Some(album) = body.get("album").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, "the body needs an \"album\"");
    };
    if album.trim().is_empty() || album.chars().count() > 500 {
        return error(
            StatusCode::BAD_REQUEST,
            "an album title has 1 to 500 characters",
        );
    }
    let Some(set) = stored(web, name).await else {
        let waiting = web.inner.picks.waiting.lock().contains_key(name);
        return if waiting {
            error(
                StatusCode::CONFLICT,
                "the set is still being picked: import it once it is ready",
            )
        } else {
            not_found()
        };
    };
    if set.expire_time <= now(web) {
        return error(
            StatusCode::GONE,
            "the set expired: Google no longer serves its items; pick them again",
        );
    }
    let done = Arc::new(AtomicUsize::new(0));
    {
        let mut imports = web.inner.picks.imports.lock();
        if imports.get(name).is_some_and(|i| i.outcome.is_none()) {
            return error(StatusCode::CONFLICT, "an import of this set is running");
        }
        imports.insert(
            name.to_string(),
            Import {
                album: album.to_string(),
                total: decode_items(&set.items_json).map_or(0, |i| i.len()),
                done: done.clone(),
                outcome: None,
            },
        );
    }
    let (web2, name2, album2) = (web.clone(), name.to_string(), album.to_string());
    tokio::spawn(async move {
        let catalog = web2.catalog().clone();
        let google = catalog.google().clone();
        let mut sink = Vec::new();
        let mut output = quiet(&mut sink, Some(done));
        let result = pick::import(
            &google,
            catalog.store(),
            &set,
            &album2,
            catalog.url_age(),
            &mut output,
        )
        .await;
        // The album may be new, and its items are new in the library.
        catalog.forget_albums();
        catalog.forget_uploaded(None);
        if let Err(e) = &result {
            tracing::warn!(set = %name2, "import from the gallery failed: {e}");
        }
        if let Some(i) = web2.inner.picks.imports.lock().get_mut(&name2) {
            i.outcome = Some(result.map_err(|e| e.to_string()));
        }
    });
    json_response(
        StatusCode::ACCEPTED,
        &json!({ "name": name, "album": album }),
    )
}

/// `GET picks/<name>/qr.svg`: the picking link of a waiting set, for a phone's camera.
fn qr(web: &Web, name: &str) -> Res {
    let uri = match web.inner.picks.waiting.lock().get(name) {
        Some(w) => w.session.autoclose_uri(),
        None => return not_found(),
    };
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .build();
            let mut resp = super::bytes_response(
                StatusCode::OK,
                "image/svg+xml",
                bytes::Bytes::from(svg),
                false,
            );
            resp.headers_mut().insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-store"),
            );
            resp
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// The output of `pick`'s functions when the server runs them: no terminal, no spinner.
fn quiet<'a>(sink: &'a mut Vec<u8>, done: Option<Arc<AtomicUsize>>) -> Output<'a> {
    Output {
        out: sink,
        terminal: false,
        quiet: true,
        done,
    }
}

/// The status of a `pick` failure.
fn pick_error(e: &PickError) -> Res {
    let status = match e {
        PickError::BadName(_) => StatusCode::BAD_REQUEST,
        PickError::NameTaken(_) => StatusCode::CONFLICT,
        // Google's per-user session limit: the message names the sets to end.
        PickError::Usage(_) => StatusCode::CONFLICT,
        PickError::Google(GoogleError::RateLimited { .. } | GoogleError::GateClosed { .. }) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        PickError::Google(_) => StatusCode::BAD_GATEWAY,
        PickError::Store(_) | PickError::Output(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, &e.to_string())
}
