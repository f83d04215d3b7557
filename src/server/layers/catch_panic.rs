//! A panic while handling a request becomes a 500 (tower-http's `CatchPanicLayer`, second
//! stage, inside the access log so the 500 is logged like any answer).
//!
//! Without it a panic ends the connection's task: the client sees the connection drop with no
//! answer, cannot tell a bug from a network fault, and retries; every other request on that
//! connection is lost too. The guard stage refuses the inputs dav-server is known to panic on;
//! this stage is for the ones nobody knows of yet. A panic while a body streams (after the
//! head went out) is not caught here: that can only cut the connection, as any failure then.

use std::any::Any;

use http::{Response, StatusCode};
use tower_http::catch_panic::CatchPanicLayer;

use crate::server::response::{Body, text_response};

/// What a panic carries (its message, usually a `String` or a `&str`).
pub type Panic = Box<dyn Any + Send + 'static>;

/// The layer: tower-http's, with [`answer`] as the response.
pub fn layer() -> CatchPanicLayer<fn(Panic) -> Response<Body>> {
    CatchPanicLayer::custom(answer as fn(Panic) -> Response<Body>)
}

/// The answer to a request whose handling panicked: a 500 that says where to look, and an
/// error log line with the panic's message.
pub fn answer(panic: Panic) -> Response<Body> {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!("a request's handling panicked: {message}");
    text_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "gphotos-dav: internal error; the server log says why\n",
    )
}
