//! The HTTP service around dav-server's handler.
//!
//! What dav-server cannot do on its own is done here, before and after it:
//! - **Depth normalisation.** dav-server lists only the children when a PROPFIND has no Depth
//!   header (and omits the target), and answers 501 to `Depth: infinity`. A missing Depth
//!   becomes `1` (the target and its children; on a file just the file); infinity on a folder
//!   is refused with 403 `propfind-finite-depth` (a whole-library walk would cost thousands of
//!   Google calls), and on a file it means the file; other values are a 400.
//! - **Readable upstream errors.** The filesystem records why Google failed (see
//!   `dav::failure`); here that becomes a 502 (503 with Retry-After when rate limited) whose body
//!   and log line say what to do.
//! - **A truthful `DAV` header.** dav-server always claims classes 1, 2 and 3. A read-only
//!   server has no lock system and says class 1; a writable one locks with dav-server's
//!   `MemLs` and says `1, 2` (Finder mounts read-only without class 2).
//! - **Writes** (writable servers): PUT, MKCOL, DELETE, MOVE and COPY are answered by
//!   `upload::Uploader`, not dav-server, because their answers (204 for an identical upload,
//!   409, 413, 415, messages saying why) are beyond what `FsError` can express, and because
//!   an upload must stream to Google rather than through `DavFile` writes.
//! - **Signed download links** (`/d/...` under the prefix, see `signed`) are answered first,
//!   without WebDAV credentials: their signature is the credential.
//! - **Conditionals on redirects.** Under the redirecting policies dav-server answers 302
//!   before it evaluates If-None-Match and friends; `policy::conditional_redirect` does it.
//! - **What desktop clients need** (see `docs/clients.md`): their probes for `.DS_Store`,
//!   `desktop.ini` and the like are answered 404 from memory; a folder asked for without its
//!   trailing slash is served, not redirected; every GET answer carries a `Content-Length`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use dav_server::body::Body as DavBody;
use dav_server::davpath::DavPath;
use dav_server::{DavHandler, DavMethodSet};
use futures::StreamExt;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::catalog::Catalog;
use crate::dav::{PhotosFs, failure, probes, segments};
use crate::server::auth::{Authenticator, Denied, Identity};
use crate::server::guard::{self, Rejection};
use crate::server::policy::{self, Delivery};
use crate::upload::{Answer, UploadOptions, Uploader, local::LocalFiles};

pub use crate::server::response::Body;
use crate::server::response::{READ_BUF_SIZE, full, text_response, upstream_failure};

#[derive(Clone)]
pub struct DavService {
    handler: DavHandler,
    catalog: Catalog,
    auth: Arc<Authenticator>,
    /// `""` or `/a/b`: the path the tree is served under.
    prefix: String,
    /// The GET policy and the signed `/d/` links (see `policy`, `signed`).
    delivery: Delivery,
    /// The write path; None on read-only servers.
    uploader: Option<Uploader>,
}

/// The methods WebDAV class 1 and 2 define; anything else is answered 405 here (dav-server
/// would treat an unknown method like a GET).
const KNOWN_METHODS: [&str; 12] = [
    "OPTIONS",
    "GET",
    "HEAD",
    "PROPFIND",
    "PROPPATCH",
    "PUT",
    "DELETE",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
];

/// Methods that change something; refused for read-only users.
const WRITE_METHODS: [&str; 10] = [
    "PUT",
    "DELETE",
    "MKCOL",
    "COPY",
    "MOVE",
    "PROPPATCH",
    "LOCK",
    "UNLOCK",
    "POST",
    "PATCH",
];

impl DavService {
    /// `prefix` is `""` or a normalised `/a/b` (see the config).
    pub fn new(
        catalog: Catalog,
        read_only: bool,
        prefix: &str,
        auth: Arc<Authenticator>,
        delivery: Delivery,
        uploads: UploadOptions,
    ) -> Self {
        let methods = if read_only {
            DavMethodSet::WEBDAV_RO
        } else {
            DavMethodSet::WEBDAV_RW
        };
        let (uploader, locks) = if read_only {
            (None, None)
        } else {
            let locks: Box<dyn dav_server::ls::DavLockSystem> = dav_server::memls::MemLs::new();
            let uploader = Uploader::new(
                catalog.clone(),
                LocalFiles::default(),
                locks.clone(),
                uploads,
            );
            (Some(uploader), Some(locks))
        };
        let fs = PhotosFs::new(catalog.clone())
            .with_redirect(delivery.redirect.clone())
            .with_local(uploader.as_ref().map(|u| u.local().clone()));
        let mut builder = DavHandler::builder()
            .filesystem(Box::new(fs))
            .methods(methods)
            .read_buf_size(READ_BUF_SIZE)
            .redirect(delivery.redirect.is_some());
        if let Some(locks) = locks {
            builder = builder.locksystem(locks);
        }
        if !prefix.is_empty() {
            builder = builder.strip_prefix(prefix);
        }
        DavService {
            handler: builder.build_handler(),
            catalog,
            auth,
            prefix: prefix.to_string(),
            delivery,
            uploader,
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The request path inside the tree, or None when it lies outside the prefix.
    fn tree_path<'p>(&self, path: &'p str) -> Option<&'p str> {
        if self.prefix.is_empty() {
            return Some(path);
        }
        match path.strip_prefix(&self.prefix) {
            Some("") => Some("/"),
            Some(rest) if rest.starts_with('/') => Some(rest),
            _ => None,
        }
    }

    /// Answers one request from `peer`.
    pub async fn handle<B>(&self, req: Request<B>, peer: SocketAddr) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        if let Err(rejection) =
            guard::check_path(&path).and_then(|()| guard::check_headers(req.headers()))
        {
            return rejected(&rejection, peer, &method);
        }
        if self.delivery.signed.owns(&path) {
            return self.delivery.signed.handle(req).await;
        }
        if self.tree_path(&path).is_none() {
            return self.outside_prefix(&method);
        }
        if !KNOWN_METHODS.contains(&method.as_str()) {
            tracing::info!(%peer, %method, "unknown method refused");
            let mut resp = text_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("gphotos-dav: method {method} is not supported\n"),
            );
            resp.headers_mut().insert(
                http::header::ALLOW,
                HeaderValue::from_static(
                    "OPTIONS, GET, HEAD, PROPFIND, PROPPATCH, PUT, DELETE, MKCOL, COPY, MOVE",
                ),
            );
            return resp;
        }
        // OPTIONS never needs credentials: Windows and Finder probe with it before they
        // authenticate, and fail the mount on a 401.
        if method != Method::OPTIONS {
            let header = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            match self.auth.authenticate(header).await {
                Ok(Identity::User { name, read_only })
                    if read_only && WRITE_METHODS.contains(&method.as_str()) =>
                {
                    tracing::info!(user = %name, %method, path, "write refused: the user is read-only");
                    return text_response(
                        StatusCode::FORBIDDEN,
                        &format!("gphotos-dav: user {name} may only read\n"),
                    );
                }
                Ok(_) => {}
                Err(denied) => return unauthorized(&denied, peer, &method, &path),
            }
        }
        let mut req = match guard::screen(req).await {
            Ok(req) => req,
            Err(rejection) => return rejected(&rejection, peer, &method),
        };
        if let Some(uploader) = &self.uploader
            && matches!(
                method.as_str(),
                "PUT" | "MKCOL" | "DELETE" | "MOVE" | "COPY"
            )
        {
            return self.write(uploader, req, &path).await;
        }
        if let Some(miss) = self.probe_miss(&req) {
            return miss;
        }
        if method.as_str() == "PROPFIND"
            && let Some(early) = self.normalise_depth(&mut req).await
        {
            return early;
        }
        if method == Method::GET || method == Method::HEAD {
            self.add_folder_slash(&mut req).await;
        }
        // dav-server answers a redirect before it evaluates conditionals: keep them for later.
        let conditionals = self
            .delivery
            .redirect
            .is_some()
            .then(|| req.headers().clone());
        let is_get = method == Method::GET;
        let (response, failure) = failure::capture(async {
            let response = self.handler.handle(req).await;
            if is_get {
                first_bytes(response).await
            } else {
                Ok(response.map(box_dav_body))
            }
        })
        .await;
        let response = match response {
            Ok(response) => response,
            Err(()) => {
                return match failure {
                    Some(err) => upstream_failure(&method, &path, &err),
                    None => {
                        tracing::warn!(%method, path, "the download failed before any byte was sent");
                        text_response(
                            StatusCode::BAD_GATEWAY,
                            "gphotos-dav: the download from Google failed before any byte was \
                             sent; the server log says why\n",
                        )
                    }
                };
            }
        };
        let status = response.status();
        let mut response = match failure {
            Some(err) if status.is_client_error() || status.is_server_error() => {
                upstream_failure(&method, &path, &err)
            }
            _ if method.as_str() == "PROPFIND" && status == StatusCode::MULTI_STATUS => {
                // The quotes change the length: never keep a Content-Length for it.
                let mut response =
                    response.map(|b| crate::server::etag_quotes::QuoteEtags::new(b).boxed_unsync());
                response.headers_mut().remove(http::header::CONTENT_LENGTH);
                response
            }
            _ => response,
        };
        if response.headers().contains_key("DAV") {
            let class = if self.uploader.is_some() { "1, 2" } else { "1" };
            response
                .headers_mut()
                .insert("DAV", HeaderValue::from_static(class));
        }
        if method == Method::GET {
            response = with_content_length(response).await;
        }
        if let Some(request_headers) = conditionals {
            response = policy::conditional_redirect(&method, &request_headers, response);
        }
        response
    }

    /// PUT, MKCOL, DELETE, MOVE and COPY on a writable server (see `upload`).
    async fn write(
        &self,
        uploader: &Uploader,
        req: Request<crate::server::guard::ReqBody>,
        path: &str,
    ) -> Response<Body> {
        let method = req.method().clone();
        let tree_path = self.tree_path(path).unwrap_or("/").to_string();
        let Ok(dav_path) = DavPath::new(&tree_path) else {
            return text_response(StatusCode::BAD_REQUEST, "gphotos-dav: invalid path\n");
        };
        let Ok(segs) = segments(&dav_path) else {
            return text_response(StatusCode::NOT_FOUND, "");
        };
        let answer = match method.as_str() {
            "PUT" => {
                let (parts, body) = req.into_parts();
                uploader.put(&segs, &dav_path, &parts.headers, body).await
            }
            "MKCOL" => uploader.mkcol(&segs).await,
            "DELETE" => uploader.delete(&segs),
            "MOVE" => {
                let headers = req.headers();
                let Some(destination) = headers.get("Destination") else {
                    return answer_response(
                        &method,
                        path,
                        Answer::new(StatusCode::BAD_REQUEST, "MOVE needs a Destination header"),
                    );
                };
                // RFC 4918 10.6: Overwrite defaults to T.
                let overwrite = !headers
                    .get("Overwrite")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("F"));
                let to = self.destination(destination);
                uploader.move_folder(&segs, to.as_deref(), overwrite).await
            }
            _ => uploader.refuse_move(),
        };
        answer_response(&method, path, answer)
    }

    /// The decoded tree segments a `Destination` header names (an absolute URL or an absolute
    /// path), or None when it is not a path below this server's prefix.
    fn destination(&self, header: &HeaderValue) -> Option<Vec<String>> {
        let raw = header.to_str().ok()?.trim();
        let path = if raw.starts_with('/') {
            raw.split(['?', '#']).next()?.to_string()
        } else {
            url::Url::parse(raw).ok()?.path().to_string()
        };
        let tree = self.tree_path(&path)?;
        segments(&DavPath::new(tree).ok()?).ok()
    }

    /// Answers a client's probe for a file it expects to be missing (see `dav::probes`)
    /// with a plain 404 right here, unless listings already in memory show that name: a
    /// probe never costs a Google call.
    fn probe_miss<B>(&self, req: &Request<B>) -> Option<Response<Body>> {
        if !matches!(req.method().as_str(), "GET" | "HEAD" | "PROPFIND") {
            return None;
        }
        let tree_path = self.tree_path(req.uri().path())?;
        let segs = segments(&DavPath::new(tree_path).ok()?).ok()?;
        let agent = req
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let kept_locally = self
            .uploader
            .as_ref()
            .is_some_and(|u| u.local().get(&crate::upload::local::key(&segs)).is_some());
        if !segs.iter().any(|s| probes::is_probe(s, agent))
            || kept_locally
            || self.catalog.resolves_from_memory(&segs)
        {
            return None;
        }
        tracing::debug!(path = tree_path, "client probe answered from memory");
        Some(text_response(StatusCode::NOT_FOUND, ""))
    }

    /// dav-server answers GET and HEAD on a folder named without its trailing slash with a
    /// 302 to the slashed URL. Windows asks for `/folder` and does not follow redirects, so
    /// such a request is served as if it had the slash.
    async fn add_folder_slash<B>(&self, req: &mut Request<B>) {
        let path = req.uri().path();
        let Some(tree_path) = self.tree_path(path) else {
            return;
        };
        if path.ends_with('/') || !self.targets_collection(tree_path).await {
            return;
        }
        let slashed = match req.uri().query() {
            Some(q) => format!("{path}/?{q}"),
            None => format!("{path}/"),
        };
        let mut parts = req.uri().clone().into_parts();
        match slashed.parse() {
            Ok(pq) => parts.path_and_query = Some(pq),
            Err(_) => return,
        }
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }

    /// Rewrites or answers the Depth of a PROPFIND (see the module docs).
    async fn normalise_depth<B>(&self, req: &mut Request<B>) -> Option<Response<Body>> {
        let depth = req
            .headers()
            .get("Depth")
            .map(|v| v.to_str().unwrap_or("invalid").trim().to_ascii_lowercase());
        let new_depth = match depth.as_deref() {
            None => "1",
            Some("0") | Some("1") => return None,
            Some("infinity") => {
                let path = self.tree_path(req.uri().path()).unwrap_or("/").to_string();
                if self.targets_collection(&path).await {
                    return Some(finite_depth_required());
                }
                "0"
            }
            Some(other) => {
                tracing::info!(depth = other, "PROPFIND with an invalid Depth header");
                return Some(text_response(
                    StatusCode::BAD_REQUEST,
                    "Depth must be 0, 1 or infinity\n",
                ));
            }
        };
        req.headers_mut()
            .insert("Depth", HeaderValue::from_static(new_depth));
        None
    }

    /// Requests outside the prefix: OPTIONS still answers (Windows sends `OPTIONS /` to the
    /// host root before mapping a deeper URL, and fails the mapping otherwise); the rest is 404.
    fn outside_prefix(&self, method: &Method) -> Response<Body> {
        if method == Method::OPTIONS {
            let mut resp = text_response(StatusCode::OK, "");
            let h = resp.headers_mut();
            h.insert("DAV", HeaderValue::from_static("1"));
            h.insert("MS-Author-Via", HeaderValue::from_static("DAV"));
            h.insert("Allow", HeaderValue::from_static("OPTIONS"));
            return resp;
        }
        text_response(
            StatusCode::NOT_FOUND,
            &format!("gphotos-dav serves its tree under {}/\n", self.prefix),
        )
    }

    /// Whether a request path names a folder. Unknown paths are not folders (the handler then
    /// answers 404 itself).
    async fn targets_collection(&self, raw_path: &str) -> bool {
        if raw_path.ends_with('/') {
            return true;
        }
        let Ok(path) = DavPath::new(raw_path) else {
            return false;
        };
        match segments(&path) {
            Ok(segs) => self.catalog.is_dir(&segs).await.unwrap_or(false),
            Err(_) => false,
        }
    }
}

/// The response for a write's [`Answer`]; refusals and failures are logged with the reason.
fn answer_response(method: &Method, path: &str, answer: Answer) -> Response<Body> {
    let status = answer.status;
    if status.is_client_error() || status.is_server_error() {
        tracing::info!(%method, path, status = status.as_u16(), "write refused: {}", answer.message);
    }
    let text = if answer.message.is_empty() {
        String::new()
    } else {
        format!("gphotos-dav: {}\n", answer.message)
    };
    let mut resp = if status == StatusCode::NO_CONTENT {
        let mut r = text_response(status, "");
        r.headers_mut().remove("Content-Type");
        r
    } else {
        text_response(status, &text)
    };
    if let Some(secs) = answer.retry_after {
        resp.headers_mut()
            .insert("Retry-After", HeaderValue::from(secs));
    }
    resp
}

/// A request refused by the hygiene checks, logged with what to fix.
fn rejected(rejection: &Rejection, peer: SocketAddr, method: &Method) -> Response<Body> {
    let message = rejection.message();
    tracing::info!(%peer, %method, status = rejection.status().as_u16(), "request refused: {message}");
    text_response(rejection.status(), &format!("gphotos-dav: {message}\n"))
}

/// 401 with the challenge, and the `DAV` header: without it Finder never asks for a password.
/// Failures with a user name are logged with the name and address, never the password.
fn unauthorized(denied: &Denied, peer: SocketAddr, method: &Method, path: &str) -> Response<Body> {
    match denied {
        Denied::Missing => tracing::debug!(%peer, %method, path, "no credentials; asking for them"),
        Denied::Wrong { name } => {
            tracing::warn!(user = %name, %peer, %method, path, "authentication failed: wrong user name or password")
        }
        Denied::Malformed => {
            tracing::warn!(%peer, %method, path, "authentication failed: malformed Authorization header")
        }
    }
    let mut resp = text_response(
        StatusCode::UNAUTHORIZED,
        "gphotos-dav: authentication required\n",
    );
    let h = resp.headers_mut();
    h.insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"gphotos-dav\", charset=\"UTF-8\""),
    );
    h.insert("DAV", HeaderValue::from_static("1"));
    h.insert("MS-Author-Via", HeaderValue::from_static("DAV"));
    resp
}

/// Gives a GET answer that dav-server streams without a length (the folder index) a
/// `Content-Length`: Windows' WebDAV client handles chunked answers badly. File downloads
/// always carry one already and pass through untouched, still streamed.
async fn with_content_length(response: Response<Body>) -> Response<Body> {
    if response
        .headers()
        .contains_key(http::header::CONTENT_LENGTH)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    match body.collect().await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            parts
                .headers
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            Response::from_parts(
                parts,
                Full::new(bytes)
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
        }
        Err(e) => {
            tracing::warn!("could not produce a folder index: {e}");
            text_response(StatusCode::INTERNAL_SERVER_ERROR, "gphotos-dav: no index\n")
        }
    }
}

/// Waits for the first piece of a GET's body before the response head goes out.
///
/// dav-server sends the head (200 or 206, with a `Content-Length`) before it reads the file,
/// and the file contacts Google at its first read. Without this wait, a refused download (a
/// spent quota, an item Google no longer serves, an expired token) could only show as a body
/// cut after the head: a client cannot tell that from a network fault and retries at once.
/// Here the first read happens first, inside the request's failure scope: a failure becomes an
/// `Err` and the caller answers its status (404, 502, 503 with `Retry-After`) instead. Once
/// bytes flow, a later failure can only cut the connection, never pad it.
async fn first_bytes(response: Response<DavBody>) -> Result<Response<Body>, ()> {
    use http_body::Body as _;
    if !matches!(
        response.status(),
        StatusCode::OK | StatusCode::PARTIAL_CONTENT
    ) || response.body().is_end_stream()
    {
        return Ok(response.map(box_dav_body));
    }
    let (parts, mut body) = response.into_parts();
    let first = match body.frame().await {
        None => return Ok(Response::from_parts(parts, box_dav_body(body))),
        Some(Err(e)) => {
            tracing::debug!("the first read of a download failed: {e}");
            return Err(());
        }
        Some(Ok(frame)) => frame,
    };
    let rest = http_body_util::BodyStream::new(body);
    let stream = futures::stream::once(std::future::ready(Ok(first))).chain(rest);
    Ok(Response::from_parts(
        parts,
        http_body_util::StreamBody::new(stream).boxed_unsync(),
    ))
}

fn box_dav_body(body: DavBody) -> Body {
    body.boxed_unsync()
}

fn finite_depth_required() -> Response<Body> {
    let xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
               <D:error xmlns:D=\"DAV:\"><D:propfind-finite-depth/></D:error>\n";
    let mut resp = Response::new(full(xml.to_string()));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    resp.headers_mut().insert(
        "Content-Type",
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    resp
}
