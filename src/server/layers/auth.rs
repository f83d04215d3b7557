//! Authentication, third stage of the tree's stack: HTTP Basic against the configured users
//! (the [`Authenticator`] in `server::auth` checks the password), and read-only users kept
//! from writing. The [`Identity`] found goes in the request's extensions.
//!
//! OPTIONS never needs credentials: Windows and Finder probe with it before they
//! authenticate, and fail the mount on a 401. Signed links never come here: their signature
//! is their credential (the router sends them elsewhere).

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderValue, Method, StatusCode};

use super::stage::{Inner, Next, Peer, Req, Res, Stage};
use crate::server::auth::{Authenticator, Denied, Identity};
use crate::server::response::text_response;

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

/// The authentication stage (see the module docs).
pub struct Authenticate {
    auth: Arc<Authenticator>,
}

impl Authenticate {
    /// Lets in whom `auth` knows (everyone, when it has no users).
    pub fn new(auth: Arc<Authenticator>) -> Self {
        Authenticate { auth }
    }
}

impl Stage for Authenticate {
    async fn handle<S: Inner>(&self, mut req: Req, next: Next<S>) -> Res {
        let method = req.method().clone();
        if method == Method::OPTIONS {
            return next.run(req).await;
        }
        let header = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match self.auth.authenticate(header).await {
            Ok(Identity::User { name, read_only })
                if read_only && WRITE_METHODS.contains(&method.as_str()) =>
            {
                let path = req.uri().path();
                tracing::info!(user = %name, %method, path, "write refused: the user is read-only");
                text_response(
                    StatusCode::FORBIDDEN,
                    &format!("gphotos-dav: user {name} may only read\n"),
                )
            }
            Ok(identity) => {
                req.extensions_mut().insert(identity);
                next.run(req).await
            }
            Err(denied) => unauthorized(&denied, Peer::of(&req), &method, req.uri().path()),
        }
    }
}

/// 401 with the challenge, and the `DAV` header: without it Finder never asks for a password.
/// Failures with a user name are logged with the name and address, never the password.
fn unauthorized(denied: &Denied, peer: SocketAddr, method: &Method, path: &str) -> Res {
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
