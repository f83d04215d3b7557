//! What a handler answers, before it becomes a hyper response.
//!
//! Handlers build a [`Reply`] (status, headers, whole body) instead of a hyper response so
//! that the request pipeline in `lib.rs` can inspect or replace it in one place: logging now,
//! fault injection (throttling, server errors, cut bodies, latency) later.

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};

use super::generated::GeneratedRange;

/// The response body type the emulator serves. The error type is `io::Error` rather than
/// `Infallible` so that a later fault (a body cut in half) can abort a body mid-stream.
pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

/// A complete answer to one request.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    /// Boxed: a bare HeaderMap makes `Result<_, Reply>` large enough to slow every `?`.
    pub headers: Box<HeaderMap>,
    pub body: Bytes,
    /// Instead of `body`: a range of a generated item, produced while it is sent (the big
    /// item is far too large to hold). Content-Length must then be set by the handler.
    pub generated: Option<GeneratedRange>,
}

impl Reply {
    pub fn new(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
        let mut headers = Box::new(HeaderMap::new());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        Reply {
            status,
            headers,
            body: body.into(),
            generated: None,
        }
    }

    /// A JSON body, typed the way Google's API front end types it.
    pub fn json(status: StatusCode, value: &Value) -> Reply {
        Reply::new(
            status,
            "application/json; charset=UTF-8",
            value.to_string().into_bytes(),
        )
    }

    /// Google's standard error envelope: `{"error":{"code","message","status"}}`.
    pub fn google_error(code: StatusCode, message: &str, status: &str) -> Reply {
        Reply::json(
            code,
            &json!({"error": {"code": code.as_u16(), "message": message, "status": status}}),
        )
    }

    /// The error envelope with a `details` array (ErrorInfo, Help, ...).
    pub fn google_error_with_details(
        code: StatusCode,
        message: &str,
        status: &str,
        details: Value,
    ) -> Reply {
        Reply::json(
            code,
            &json!({"error": {
                "code": code.as_u16(),
                "message": message,
                "status": status,
                "details": details,
            }}),
        )
    }

    /// 400 INVALID_ARGUMENT, the answer to nearly every malformed Library API request.
    pub fn invalid_argument(message: &str) -> Reply {
        Reply::google_error(StatusCode::BAD_REQUEST, message, "INVALID_ARGUMENT")
    }

    /// A short HTML error page, which is what the content host (not an API) answers.
    pub fn html_error(status: StatusCode) -> Reply {
        let reason = status.canonical_reason().unwrap_or("Error");
        let body = format!(
            "<!DOCTYPE html>\n<html lang=en><meta charset=utf-8><title>Error {code} ({reason})!!1</title>\
             <p><b>{code}.</b> <ins>That's an error.</ins></p></html>\n",
            code = status.as_u16()
        );
        Reply::new(status, "text/html; charset=UTF-8", body)
    }

    pub fn with_status(mut self, status: StatusCode) -> Reply {
        self.status = status;
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Reply {
        self.headers.insert(name, value);
        self
    }

    /// Turns the reply into a hyper response. For HEAD the body is dropped but
    /// Content-Length still tells the size a GET would have sent, as the content host does
    /// (clients learn file sizes this way: the API never reports them).
    pub fn into_response(mut self, head: bool) -> Response<Body> {
        if !self.headers.contains_key(CONTENT_LENGTH) {
            self.headers
                .insert(CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        }
        let body: Body = if head {
            Empty::<Bytes>::new()
                .map_err(|never: Infallible| match never {})
                .boxed()
        } else if let Some(generated) = self.generated {
            generated.into_body()
        } else {
            Full::new(self.body)
                .map_err(|never: Infallible| match never {})
                .boxed()
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = *self.headers;
        response
    }

    /// Like [`Reply::into_response`], but the body stops after half its bytes with an error,
    /// so the connection breaks while the announced Content-Length is still unmet.
    pub fn into_cut_response(mut self) -> Response<Body> {
        if !self.headers.contains_key(CONTENT_LENGTH) {
            self.headers
                .insert(CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        }
        let half = self.body.slice(..self.body.len() / 2);
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(half)),
            Err(std::io::Error::other("injected fault: body cut")),
        ];
        let body: Body = StreamBody::new(futures::stream::iter(frames)).boxed();
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = *self.headers;
        response
    }
}
