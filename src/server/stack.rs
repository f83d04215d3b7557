//! The HTTP side, assembled: a stack of tower layers around a router, in the order a request
//! meets them. The `ServiceBuilder` calls below are that order; this list says why each stage
//! sits where it does.
//!
//! Every request, signed links included:
//! 1. **access log** (`layers::access_log`): outermost, so it records every answer, refusals
//!    and caught panics included, and counts requests for `/metrics`.
//! 2. **panic → 500** (tower-http's `CatchPanicLayer`, `layers::catch_panic`): a bug answers
//!    500 instead of dropping the connection.
//! 3. **path and header guard** (`layers::guard`): paths and headers dav-server cannot take
//!    (bad escapes, over-long paths, `If` headers its parser panics on) are refused before any
//!    route, since the signed links run dav-server too.
//! 4. **router** (`server::router`): `<prefix>/d/` → the signed links (`server::signed`: their
//!    signature is their credential, so they pass no authentication); everything else → the
//!    tree, below.
//!
//! The tree (the router's fallback):
//! 5. **prefix** (`layers::prefix`): outside `[webdav] prefix`, 404 (OPTIONS answers); inside,
//!    the request's `Target` (its path in the tree) goes in its extensions.
//! 6. **methods** (`layers::methods`): unknown methods are a 405, before credentials.
//! 7. **authentication** (`layers::auth`): 401 with the challenge (OPTIONS passes), 403 for a
//!    read-only user's write; the `Identity` goes in the extensions.
//! 8. **body guard** (`layers::body_guard`): XML bodies bounded and checked, only once the
//!    client is authenticated.
//! 8b. **web routes** (`layers::gallery::WebRoutes`): `<prefix>/_/` → the gallery's routes
//!    (`server::web`: thumbnails, assets, the picking API), in each library's stages (a
//!    family server's `/<mount>/_/`), so behind the same authentication as the tree; a POST
//!    anywhere else is a 405.
//! 9. **client probes** (`layers::probes`): `.DS_Store` and friends answered 404 from memory.
//! 10. **Depth** (`layers::depth`): a PROPFIND's Depth made one dav-server handles well.
//! 11. **folder slash** (`layers::folder_slash`): `GET /folder` served as `/folder/`.
//! 12. **gallery** (`layers::gallery`): a browser's GET of a folder (`Accept: text/html`)
//!     answered with the folder's page; every other request passes.
//! 13. **writes** (`layers::writes`): PUT, MKCOL, DELETE, MOVE, COPY to the uploader.
//!
//! Stages 9 to 13 each take their own methods (GET/HEAD/PROPFIND, PROPFIND, GET/HEAD, the
//! writes), so their order among themselves changes no answer.
//!
//! Then the response stages, which change only what dav-server answers (an answer given by a
//! stage above never passes through them); on the way back the innermost acts first:
//! 14. **conditionals on redirects** (`layers::conditionals`): 304/412 on a policy's 302.
//! 15. **Content-Length** (`layers::content_length`): every GET answer has one.
//! 16. **DAV class** (`layers::dav_class`): `1`, or `1, 2` with locks.
//! 17. **getetag quoting** (`layers::etag_quotes`): a PROPFIND's 207 quotes its entity tags.
//! 18. **the DAV handler** (`server::handler`): dav-server inside the failure scope.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt};

use crate::catalog::Catalog;
use crate::server::auth::Authenticator;
use crate::server::handler::DavEndpoint;
use crate::server::layers::access_log::AccessLogLayer;
use crate::server::layers::auth::Authenticate;
use crate::server::layers::body_guard::BodyGuard;
use crate::server::layers::catch_panic;
use crate::server::layers::conditionals::RedirectConditionals;
use crate::server::layers::content_length::ContentLength;
use crate::server::layers::dav_class::DavClass;
use crate::server::layers::depth::Depth;
use crate::server::layers::etag_quotes::QuoteEtagsStage;
use crate::server::layers::folder_slash::FolderSlash;
use crate::server::layers::gallery::{Gallery, WebRoutes};
use crate::server::layers::guard::Guard;
use crate::server::layers::methods::KnownMethods;
use crate::server::layers::prefix::{Prefix, PrefixStage};
use crate::server::layers::probes::Probes;
use crate::server::layers::stage::{Inner, Peer, Req, StageLayer};
use crate::server::layers::writes::Writes;
use crate::server::policy::Delivery;
use crate::server::response::ReqBody;
use crate::server::router::Router;
use crate::server::signed::SignedRoute;
use crate::server::web::Web;
use crate::upload::{UploadOptions, Uploader, local::LocalFiles};

/// The body of the answers the whole stack gives: the stages' bodies, boxed once more by
/// `CatchPanicLayer` (with its error type).
pub type HttpBody = tower_http::body::UnsyncBoxBody<Bytes, tower_http::BoxError>;

/// The whole HTTP side as one service: what the accept loop hands each connection's requests
/// to (their body boxed, their [`Peer`] in the extensions).
pub type HttpStack = BoxCloneService<Request<ReqBody>, Response<HttpBody>, Infallible>;

/// What the stack is built from (see `Server::bind`).
pub struct Settings {
    /// The tree, its Google clients and its caches.
    pub catalog: Catalog,
    /// `[server] read_only`: no uploader, no locks, dav-server read-only.
    pub read_only: bool,
    /// `[webdav] prefix`: `""` or a normalised `/a/b`.
    pub prefix: String,
    /// The users (none: everyone is anonymous).
    pub auth: Arc<Authenticator>,
    /// The GET policy and the signed links.
    pub delivery: Delivery,
    /// `[upload]`.
    pub uploads: UploadOptions,
    /// The server speaks TLS itself (the gallery's origin check needs the scheme).
    pub tls: bool,
}

/// Builds the stack (see the module docs for the order).
pub fn build(settings: Settings) -> HttpStack {
    let Settings {
        catalog,
        read_only,
        prefix,
        auth,
        delivery,
        uploads,
        tls,
    } = settings;
    let prefix = Prefix::new(&prefix);
    let writer = writer(&catalog, read_only, uploads);
    let tree = ServiceBuilder::new()
        .layer(StageLayer::new(PrefixStage::new(prefix.clone())))
        .layer(StageLayer::new(KnownMethods))
        .layer(StageLayer::new(Authenticate::new(auth)))
        .layer(StageLayer::new(BodyGuard))
        .service(library_stages(
            &catalog,
            read_only,
            &prefix,
            &[],
            &delivery,
            writer,
            tls,
        ));
    let signed = delivery.signed.clone();
    let router = Router::new(tree).route(signed.base().to_string(), signed_service(signed));
    around(router)
}

/// The write path of a library's tree: the uploader and the lock system it shares with
/// dav-server, or neither on a read-only server. Cloned into every stage set of the library
/// (a family server's mounted and rooted trees share one uploader and one lock system).
#[derive(Clone)]
pub(crate) struct Writer {
    pub uploader: Option<Uploader>,
    pub locks: Option<Box<dyn dav_server::ls::DavLockSystem>>,
}

/// The [`Writer`] of `catalog`'s tree.
pub(crate) fn writer(catalog: &Catalog, read_only: bool, uploads: UploadOptions) -> Writer {
    if read_only {
        return Writer {
            uploader: None,
            locks: None,
        };
    }
    let locks: Box<dyn dav_server::ls::DavLockSystem> = dav_server::memls::MemLs::new();
    let uploader = Uploader::new(
        catalog.clone(),
        LocalFiles::default(),
        locks.clone(),
        uploads,
    );
    Writer {
        uploader: Some(uploader),
        locks: Some(locks),
    }
}

/// Stages 9 to 17: one library's tree below the authentication and body checks, its paths
/// under `prefix` (a family server builds it once under each library's folder, and once
/// under the server's prefix for each folder users are rooted in), with the gallery's `/_/`
/// routes at its top (`<prefix>/_/`: each library has its own, and they pass the same
/// authentication as the tree). `root`: the catalog folder served as `/` (empty: the
/// library's whole tree); the stages above ask the catalog for the request's
/// `Target::segments`, which `server::family` roots the same way. `tls`: the server speaks
/// TLS itself (the gallery's origin check needs the scheme).
pub(crate) fn library_stages(
    catalog: &Catalog,
    read_only: bool,
    prefix: &Prefix,
    root: &[String],
    delivery: &Delivery,
    writer: Writer,
    tls: bool,
) -> impl Inner {
    let Writer { uploader, locks } = writer;
    let web = Web::new(catalog.clone(), prefix.clone(), !read_only, tls);
    let handler = DavEndpoint::new(
        catalog.clone(),
        prefix,
        root,
        delivery,
        uploader.as_ref(),
        locks,
    );
    let local = uploader.as_ref().map(|u| u.local().clone());
    ServiceBuilder::new()
        .layer(StageLayer::new(WebRoutes::new(web.clone())))
        .layer(StageLayer::new(Probes::new(catalog.clone(), local)))
        .layer(StageLayer::new(Depth::new(catalog.clone())))
        .layer(StageLayer::new(FolderSlash::new(catalog.clone())))
        .layer(StageLayer::new(Gallery::new(web)))
        .layer(StageLayer::new(Writes::new(uploader, prefix.clone())))
        .layer(StageLayer::new(RedirectConditionals::new(
            delivery.redirect.is_some(),
        )))
        .layer(StageLayer::new(ContentLength))
        .layer(StageLayer::new(DavClass::new(!read_only)))
        .layer(StageLayer::new(QuoteEtagsStage))
        .service(handler)
}

/// The service one connection's requests go to: each request's body boxed into the one type
/// every stage reads (with the error type dav-server and the uploader read), its peer put in
/// its extensions for the stages that log it, then the stack.
pub fn for_connection(
    stack: &HttpStack,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<HttpBody>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static {
    let stack = stack.clone();
    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let mut req = req.map(|b| b.map_err(std::io::Error::other).boxed_unsync());
        req.extensions_mut().insert(Peer(peer));
        stack.clone().oneshot(req)
    })
}

/// Stages 1 to 3 around `router`: what every request passes through.
pub(crate) fn around<S: Inner>(router: S) -> HttpStack {
    BoxCloneService::new(
        ServiceBuilder::new()
            .layer(AccessLogLayer)
            .layer(catch_panic::layer())
            .layer(StageLayer::new(Guard))
            .service(router),
    )
}

/// The signed-link route as a service.
pub(crate) fn signed_service(signed: SignedRoute) -> impl Inner {
    tower::service_fn(move |req: Req| {
        let signed = signed.clone();
        async move { Ok::<_, Infallible>(signed.handle(req).await) }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::StatusCode;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::TokioIo;

    use super::*;
    use crate::server::response::text_response;

    /// A request whose handling panics is answered 500 by the stages every request passes
    /// (not a dropped connection), and the same connection goes on serving.
    #[tokio::test]
    async fn a_panic_is_a_500_and_the_connection_goes_on() {
        let router = tower::service_fn(|req: Req| async move {
            if req.uri().path() == "/boom" {
                panic!("a bug in a handler");
            }
            Ok::<_, Infallible>(text_response(StatusCode::OK, "fine\n"))
        });
        let stack = around(router);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, peer) = listener.accept().await.unwrap();
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), for_connection(&stack, peer))
                .await
        });
        let deadline = Duration::from_secs(60);
        let client = async {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            let conn = tokio::spawn(conn);
            let mut answers = Vec::new();
            for path in ["/boom", "/fine", "/boom", "/fine"] {
                sender.ready().await.unwrap();
                let req = Request::get(path)
                    .header("host", "test")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let resp = sender.send_request(req).await.unwrap();
                let status = resp.status();
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                answers.push((status, String::from_utf8(body.to_vec()).unwrap()));
            }
            drop(sender);
            conn.await.unwrap().unwrap();
            answers
        };
        let answers = tokio::time::timeout(deadline, client).await.unwrap();
        let boom = (
            StatusCode::INTERNAL_SERVER_ERROR,
            "gphotos-dav: internal error; the server log says why\n".to_string(),
        );
        let fine = (StatusCode::OK, "fine\n".to_string());
        assert_eq!(answers, vec![boom.clone(), fine.clone(), boom, fine]);
        tokio::time::timeout(deadline, server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
