//! A family server (`[[library]]`, issue #19): several Google accounts served as the top
//! folders of one tree, `/alice/album/...`, `/bob/media/...`.
//!
//! Each library is served by the code that serves a single `[google]`: its own Google clients
//! (its token), catalog, metadata store, uploader and stages 9 to 17 of the stack
//! (`stack::library_stages`), built from the library's own configuration
//! (`Config::library_config`). What is shared is what belongs to the server or to Google's
//! project: the listener, the users, the stages every request passes (access log to body
//! guard), and the quota gates of each OAuth client (Google counts quotas per project, and a
//! family usually has one project for everyone).
//!
//! The library dispatch ([`dispatch`]) sits below the authentication and body checks and picks the library:
//! - a user rooted in a library (`[[server.users]] root = "/alice"`, or deeper,
//!   `"/alice/album/Trip"`) always gets that folder of that library's tree, served at `/`
//!   (hrefs relative to it): no path can name anything outside it, since the choice never
//!   looks at the path and every path is taken inside the root (the request's
//!   `Target::root`, and the root of that tree's `PhotosFs`). A path with a dot segment
//!   (`..`, `%2e%2e`) is a 404 as if it did not exist, a `Destination` with one a 403. A
//!   root deeper than the library's folder must exist when a request comes: while it does
//!   not (an album renamed or deleted since the configuration was written), every request of
//!   its users is a 404 and the log says why; it cannot itself be deleted or moved (403);
//! - everyone else: the first path segment names the library, whose tree is served under
//!   `/<mount>` (its own prefix, so its stages see the path inside the library exactly as a
//!   single library's see theirs), and `/` itself lists the mounts ([`MountsFs`]);
//! - a library that could not start (no token file, a root album that is not there) answers
//!   every request for its folder with 502 and why; the others are served as usual. A token
//!   revoked while running needs nothing here: that library's requests fail with the 502 and
//!   fix the tree gives any upstream failure.
//!
//! Signed links name their library (`/d/<mount>/<id>/<name>`, the mount inside the
//! signature), so a byte node streams them with the right account's token.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;

use dav_server::{DavHandler, DavMethodSet};
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

use super::auth::{self, Authenticator, Identity};
use super::config::Config;
use super::config::library::UserRoot;
use super::layers::auth::Authenticate;
use super::layers::body_guard::BodyGuard;
use super::layers::content_length::ContentLength;
use super::layers::dav_class::DavClass;
use super::layers::etag_quotes::QuoteEtagsStage;
use super::layers::methods::KnownMethods;
use super::layers::prefix::{Prefix, PrefixStage, Target};
use super::layers::stage::{Inner, Req, Res, StageLayer};
use super::policy::Delivery;
use super::response::{READ_BUF_SIZE, text_response};
use super::router::{Route, Router};
use super::signed::{self, SignedRoute};
use super::stack::{self, HttpStack};
use super::{StartError, Tuning, open_library};
use crate::catalog::{Catalog, CatalogError, Node};
use crate::clock::Clock;
use crate::dav::mounts::MountsFs;
use crate::google::Google;
use crate::google::quota::{QuotaGate, Share};

/// One library as the server holds it: its trees, or why it could not start.
#[derive(Clone)]
enum Served {
    Serving {
        /// Its tree under `/<mount>` (users who see every library).
        mounted: Route,
        /// Its trees at `/` for the users rooted in it, by root folder (`[]`: the library's
        /// own folder).
        rooted: HashMap<Vec<String>, Route>,
        /// To check that a deeper root exists.
        catalog: Catalog,
        /// Its signed links, `/d/<mount>/`.
        signed: SignedRoute,
    },
    /// Why it did not start (told in its folder's 502 and the log).
    Failed(Arc<str>),
}

/// Builds a family server's stack: each library's Google clients (one quota gate per OAuth
/// client, one clock for all), catalog and trees. A library that fails to start is logged and
/// answers 502; the start fails only when none starts. Returns the stack, the first library
/// that started, and every library that started.
pub(super) async fn bind(
    config: &Config,
    tuning: &Tuning,
    users: Vec<auth::User>,
) -> Result<(HttpStack, Catalog, Vec<(String, Catalog)>), StartError> {
    let clock = Arc::new(Clock::default());
    let mut gates: HashMap<String, Arc<QuotaGate>> = HashMap::new();
    let mut restored: HashSet<String> = HashSet::new();
    let mut opened: Vec<(String, Result<Catalog, String>)> = Vec::new();
    for lib in &config.libraries {
        let one = config.library_config(lib);
        let client = one.google.client_id.clone().unwrap_or_default();
        let gate = gates
            .entry(client.clone())
            .or_insert_with(|| Arc::new(QuotaGate::new(clock.clone())))
            .clone();
        let result = async {
            if one.google.validate_token().is_err() {
                return Err(format!(
                    "no refresh token for library {:?} (looked in {}): run `gphotos-dav auth \
                     --config <this file> --library {}` to sign in with its Google account, \
                     then restart",
                    lib.mount,
                    one.token_file_path().display(),
                    lib.mount
                ));
            }
            let creds = one.credentials().map_err(|e| e.to_string())?;
            let share = Arc::new(Share::new(&lib.mount, lib.daily_share, clock.clone()));
            let google =
                Google::for_library(&creds, &one.endpoints(), tuning.retry.clone(), gate, share)
                    .map_err(|e| e.to_string())?;
            // The first library of a client restores the day's counts into its gates.
            let restore = restored.insert(client);
            open_library(&one, google, restore)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(why) = &result {
            tracing::error!(
                library = %lib.mount,
                "library {:?} cannot be served, its folder answers 502 until this is fixed \
                 and the server restarted: {why}",
                lib.mount
            );
        }
        opened.push((lib.mount.clone(), result));
    }
    let started: Vec<(String, Catalog)> = opened
        .iter()
        .filter_map(|(m, r)| r.as_ref().ok().map(|c| (m.clone(), c.clone())))
        .collect();
    let Some((_, first)) = started.first().cloned() else {
        let why: Vec<String> = opened
            .iter()
            .filter_map(|(m, r)| r.as_ref().err().map(|e| format!("{m}: {e}")))
            .collect();
        return Err(StartError::NoLibrary(why.join("; ")));
    };
    let prefix = Prefix::new(&config.webdav.prefix);
    let read_only = config.server.read_only;
    let tls = config.server.tls_cert.is_some() && config.server.tls_key.is_some();
    let roots = config.user_roots();
    let mut libraries = Vec::new();
    for (mount, result) in opened {
        let served = match result {
            Ok(catalog) => {
                let delivery = Delivery::from_config(&config.webdav, &catalog, Some(&mount))?;
                let writer = stack::writer(&catalog, read_only, config.upload.options());
                let under = Prefix::new(&format!("{}/{mount}", prefix.as_str()));
                let mounted = stack::library_stages(
                    &catalog,
                    read_only,
                    &under,
                    &[],
                    &delivery,
                    writer.clone(),
                    tls,
                );
                let mut rooted = HashMap::new();
                for root in roots.values().filter(|r| r.mount == mount) {
                    if rooted.contains_key(&root.path) {
                        continue;
                    }
                    let route = stack::library_stages(
                        &catalog,
                        read_only,
                        &prefix,
                        &root.path,
                        &delivery,
                        writer.clone(),
                        tls,
                    );
                    rooted.insert(root.path.clone(), BoxCloneSyncService::new(route));
                }
                Served::Serving {
                    mounted: BoxCloneSyncService::new(mounted),
                    rooted,
                    catalog: catalog.clone(),
                    signed: delivery.signed,
                }
            }
            Err(why) => Served::Failed(why.into()),
        };
        libraries.push((mount, served));
    }
    let top = top_route(
        &prefix,
        libraries.iter().map(|(m, _)| m.clone()).collect(),
        read_only,
    );
    let table = Arc::new(Table {
        prefix: prefix.clone(),
        libraries,
        roots,
        missing: parking_lot::Mutex::default(),
        top,
    });
    let tree = ServiceBuilder::new()
        .layer(StageLayer::new(PrefixStage::new(prefix.clone())))
        .layer(StageLayer::new(KnownMethods))
        .layer(StageLayer::new(Authenticate::new(Authenticator::new(
            users,
        ))))
        .layer(StageLayer::new(BodyGuard))
        .service(library_dispatch(table.clone()));
    let links = format!("{}{}", prefix.as_str(), signed::PREFIX);
    let router = Router::new(tree).route(links.clone(), signed_links(table, links));
    Ok((stack::around(router), first, started))
}

/// `/` for the users who see every library: one folder per mount (dav-server over
/// [`MountsFs`], read-only), with the response stages the trees have.
fn top_route(prefix: &Prefix, mounts: Vec<String>, read_only: bool) -> Route {
    let mut builder = DavHandler::builder()
        .filesystem(Box::new(MountsFs::new(mounts)))
        .methods(DavMethodSet::WEBDAV_RO)
        .read_buf_size(READ_BUF_SIZE);
    if !prefix.as_str().is_empty() {
        builder = builder.strip_prefix(prefix.as_str());
    }
    let handler = builder.build_handler();
    let endpoint = tower::service_fn(move |req: Req| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler.handle(req).await.map(|b| b.boxed_unsync())) }
    });
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(StageLayer::new(ContentLength))
            .layer(StageLayer::new(DavClass::new(!read_only)))
            .layer(StageLayer::new(QuoteEtagsStage))
            .service(endpoint),
    )
}

/// What the library dispatch and the signed links choose from.
struct Table {
    prefix: Prefix,
    /// By mount, in the configuration's order.
    libraries: Vec<(String, Served)>,
    /// User name → where the user is rooted.
    roots: HashMap<String, UserRoot>,
    /// The users whose root was found missing (logged once until it is there again).
    missing: parking_lot::Mutex<HashSet<String>>,
    /// `/` (see [`top_route`]).
    top: Route,
}

impl Table {
    fn library(&self, mount: &str) -> Option<&Served> {
        self.libraries
            .iter()
            .find(|(m, _)| m == mount)
            .map(|(_, s)| s)
    }
}

/// The library dispatch (see the module docs): the last shared stage, as a service.
fn library_dispatch(table: Arc<Table>) -> impl Inner {
    tower::service_fn(move |req: Req| {
        let table = table.clone();
        async move { Ok::<_, Infallible>(dispatch(&table, req).await) }
    })
}

/// Picks the library of `req` and passes it on (see the module docs).
async fn dispatch(table: &Table, mut req: Req) -> Res {
    let target = Target::of(&req);
    if has_dot_segment(&target.tree) {
        tracing::info!(path = %target.path, "a path with a dot segment on a family server: 404");
        return not_found();
    }
    if let Some(destination) = req.headers().get("Destination")
        && !destination_is_plain(&table.prefix, destination)
    {
        tracing::info!(path = %target.path, "a Destination outside the user's tree: 403");
        return text_response(
            StatusCode::FORBIDDEN,
            "gphotos-dav: the Destination is outside the tree you can reach\n",
        );
    }
    let rooted = match req.extensions().get::<Identity>() {
        Some(Identity::User { name, .. }) => table.roots.get(name).map(|r| (name.clone(), r)),
        _ => None,
    };
    if let Some((user, root)) = rooted {
        return match table.library(&root.mount) {
            Some(Served::Serving {
                rooted, catalog, ..
            }) => {
                let Some(route) = rooted.get(&root.path) else {
                    return not_found();
                };
                if !root_exists(table, catalog, &user, root).await {
                    return not_found();
                }
                let at_root = target.tree.trim_matches('/').is_empty();
                if !root.path.is_empty()
                    && at_root
                    && matches!(req.method().as_str(), "DELETE" | "MOVE")
                {
                    return text_response(
                        StatusCode::FORBIDDEN,
                        "gphotos-dav: this folder is the root of your tree; it cannot be \
                         deleted or moved from here\n",
                    );
                }
                req.extensions_mut().insert(Target {
                    root: root.path.clone(),
                    ..target
                });
                run(route, req).await
            }
            Some(Served::Failed(why)) => failed(&root.mount, why),
            None => not_found(),
        };
    }
    let rest = target.tree.trim_start_matches('/');
    let (first, inner) = match rest.split_once('/') {
        Some((first, after)) => (first, format!("/{after}")),
        None => (rest, "/".to_string()),
    };
    if first.is_empty() {
        return run(&table.top, req).await;
    }
    let mount = decode(first);
    match table.library(&mount) {
        Some(Served::Serving { mounted, .. }) => {
            req.extensions_mut().insert(Target {
                path: target.path,
                tree: inner,
                root: Vec::new(),
            });
            run(mounted, req).await
        }
        Some(Served::Failed(why)) => failed(&mount, why),
        // OPTIONS passes authentication without credentials (Windows and Finder probe with
        // it first), so a rooted user's OPTIONS of `/album/` arrives here unrooted: answered
        // like any tree's, never a 404 that fails the mapping.
        None if req.method() == http::Method::OPTIONS => options(),
        None if req.method().as_str() == "MKCOL" => text_response(
            StatusCode::FORBIDDEN,
            "gphotos-dav: / holds one folder per library (the [[library]] entries); folders \
             are made inside them\n",
        ),
        None => not_found(),
    }
}

/// Whether `user`'s root folder is there (always, for a library's own folder). A root that
/// is not (a renamed or deleted album, a file) is logged as a warning once, until it is
/// there again; a failure to ask Google counts as there, so that the tree answers it with
/// its status and fix.
async fn root_exists(table: &Table, catalog: &Catalog, user: &str, root: &UserRoot) -> bool {
    if root.path.is_empty() {
        return true;
    }
    let why = match catalog.stat(&root.path).await {
        Ok(Node::File(_)) => Some("is a file, not a folder"),
        Err(CatalogError::NotFound) => Some("does not exist"),
        Ok(Node::Dir { .. }) | Err(_) => None,
    };
    let mut missing = table.missing.lock();
    match why {
        None => {
            missing.remove(user);
            true
        }
        Some(why) => {
            if missing.insert(user.to_string()) {
                tracing::warn!(
                    user,
                    library = %root.mount,
                    "the root of user {user:?}, /{}/{}, {why}: every request of this user \
                     answers 404 until it is there again. Fix [[server.users]] root (or the \
                     folder), then the user can reconnect",
                    root.mount,
                    root.path.join("/")
                );
            }
            false
        }
    }
}

async fn run(route: &Route, req: Req) -> Res {
    match route.clone().oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    }
}

/// The answer to an OPTIONS no library takes (see `dispatch`).
fn options() -> Res {
    let mut resp = text_response(StatusCode::OK, "");
    let h = resp.headers_mut();
    h.insert("DAV", HeaderValue::from_static("1"));
    h.insert("MS-Author-Via", HeaderValue::from_static("DAV"));
    h.insert(
        "Allow",
        HeaderValue::from_static("OPTIONS, GET, HEAD, PROPFIND"),
    );
    resp
}

fn not_found() -> Res {
    text_response(StatusCode::NOT_FOUND, "gphotos-dav: not found\n")
}

/// The answer of every request for a library that did not start.
fn failed(mount: &str, why: &str) -> Res {
    let mut resp = text_response(
        StatusCode::BAD_GATEWAY,
        &format!("gphotos-dav: the library {mount:?} cannot be served: {why}\n"),
    );
    resp.headers_mut()
        .insert("DAV", HeaderValue::from_static("1"));
    resp
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// Whether a path (still percent-encoded) has a segment that is `.` or `..` once decoded, or
/// that decodes to a `/` or `\`: a way out of where the path seems to lead.
fn has_dot_segment(path: &str) -> bool {
    path.split('/')
        .map(decode)
        .any(|s| s == "." || s == ".." || s.contains('/') || s.contains('\\'))
}

/// Whether a `Destination` header is a path under the server's prefix without dot segments
/// (an absolute URL or an absolute path, as `layers::writes` reads it).
fn destination_is_plain(prefix: &Prefix, header: &HeaderValue) -> bool {
    let Ok(raw) = header.to_str() else {
        return false;
    };
    let raw = raw.trim();
    let path = if raw.starts_with('/') {
        raw.split(['?', '#']).next().unwrap_or("").to_string()
    } else {
        // Not `url::Url::path`: it resolves dot segments, which is what is checked here.
        match raw.split_once("://") {
            Some((_, rest)) => match rest.find('/') {
                Some(i) => rest[i..].split(['?', '#']).next().unwrap_or("").to_string(),
                None => "/".to_string(),
            },
            None => return false,
        }
    };
    prefix.tree_path(&path).is_some() && !has_dot_segment(&path)
}

/// `/d/<mount>/...`: the signed links of each library, checked by the library's own route
/// (the mount is inside the signature). An unknown mount is a bare 403 like any bad link.
/// `links` is `<prefix>/d/`.
fn signed_links(table: Arc<Table>, links: String) -> impl Inner {
    tower::service_fn(move |req: Req| {
        let (table, links) = (table.clone(), links.clone());
        async move { Ok::<_, Infallible>(signed_link(&table, &links, req).await) }
    })
}

/// Answers one signed link with its library's route.
async fn signed_link(table: &Table, links: &str, req: Req) -> Res {
    let mount = req
        .uri()
        .path()
        .strip_prefix(links)
        .and_then(|rest| rest.split_once('/'))
        .map(|(m, _)| decode(m));
    match mount.as_deref().and_then(|m| table.library(m)) {
        Some(Served::Serving { signed, .. }) => signed.handle(req).await,
        Some(Served::Failed(_)) => text_response(
            StatusCode::BAD_GATEWAY,
            "gphotos-dav: this link's library cannot be served; the server log says why\n",
        ),
        None => {
            tracing::debug!("refusing a download link: no such library");
            text_response(StatusCode::FORBIDDEN, "forbidden\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_found_encoded_or_not() {
        for bad in [
            "/../bob/",
            "/%2e%2e/bob/",
            "/%2E%2E/bob",
            "/album/./x",
            "/a%2fb",
            "/a%5cb",
            "/%2e",
        ] {
            assert!(has_dot_segment(bad), "{bad}");
        }
        for ok in [
            "/",
            "/alice/album/",
            "/a..b/",
            "/.x/",
            "/album/Trip%20%7BAF1%7D/",
        ] {
            assert!(!has_dot_segment(ok), "{ok}");
        }
    }

    #[test]
    fn destinations_must_be_plain_and_under_the_prefix() {
        let p = Prefix::new("/dav");
        let ok = |v: &str| destination_is_plain(&p, &HeaderValue::from_str(v).unwrap());
        assert!(ok("/dav/album/x.jpg"));
        assert!(ok("http://host:8080/dav/album/x.jpg"));
        assert!(!ok("/dav/../bob/album/x.jpg"));
        assert!(!ok("http://host/dav/%2e%2e/bob/x.jpg"));
        assert!(!ok("http://host/dav/album/../../x.jpg"));
        assert!(!ok("/other/x.jpg"));
        assert!(!ok("x.jpg"));
    }
}
