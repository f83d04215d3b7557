//! Request hygiene, before anything else looks at a request: the third stage ([`Guard`]: the
//! path and the headers, for every request, signed links included) and the checks of the body
//! guard ([`screen`], run by `body_guard` once the request is authenticated).
//!
//! WebDAV servers have been broken through their XML parsers (external entities, "billion
//! laughs") and their path handling (`%2e%2e`, `..%2f`). dav-server parses what it is given, so
//! these checks decide what it is given:
//! - a path longer than [`MAX_PATH_BYTES`], with a malformed `%` escape, or that decodes to
//!   something other than UTF-8 is refused with 414 or 400 (no name in the tree could match);
//! - an XML body (PROPFIND, PROPPATCH, LOCK) is read whole but only up to [`MAX_XML_BODY`]
//!   bytes (413 beyond), and refused with 400 when it declares a DOCTYPE or an entity: WebDAV
//!   never needs one, so nothing is ever expanded;
//! - an XML body nested deeper than [`MAX_XML_DEPTH`] elements is refused with 400. dav-server
//!   builds its tree with `xmltree`, which recurses once per level: 2,000 levels (6 KB of
//!   `<a>`) overflowed a tokio worker's stack, and a stack overflow aborts the whole process,
//!   so one request from any user, read-only included, stopped the server. The depth is
//!   measured with the pull parser `xmltree` itself reads from (the `xml` crate, configured
//!   as `xmltree` configures it), which keeps no recursion of its own: the events it yields
//!   before its first error are exactly those `xmltree` would build from, so a document that
//!   is malformed but not too deep is still dav-server's to refuse, as before.
//!
//! - every other body but a PUT's is read whole the same way (dav-server reads them to check
//!   they are empty): one that breaks off (a client gone mid-body, a bad chunk) is a 400 here,
//!   where dav-server would answer 502 as if an upstream had failed;
//! - headers dav-server's parsers panic on are refused with 400: an `If` header that is not
//!   RFC 4918's grammar (an unclosed `<` or `[` made its tokenizer index past the end), and an
//!   entity tag that is a lone `"` in `If-Match`, `If-None-Match` or `If-Range` (its ETag
//!   parser slices `[1..0]`). A panic kills the connection without an answer.
//!
//! `..` segments that survive decoding are dav-server's to resolve, and it refuses any that
//! would climb above the root; the tree behind it is virtual, so no file outside exists anyway.

use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full, Limited};

use super::stage::{Inner, Next, Peer, Req, Res, Stage};
use crate::server::response::{Body, ReqBody, text_response};

/// Longest request path accepted, in bytes as sent (still percent-encoded).
pub const MAX_PATH_BYTES: usize = 8 * 1024;
/// Largest XML request body accepted.
pub const MAX_XML_BODY: usize = 1024 * 1024;
/// Deepest element nesting accepted in an XML body. WebDAV bodies are about five levels deep
/// (`propertyupdate/set/prop/<property>/<value>`); a dead property's value may nest further,
/// but nothing a client sends comes near this.
pub const MAX_XML_DEPTH: usize = 64;

/// Methods whose body is an XML document dav-server reads whole.
const XML_METHODS: [&str; 3] = ["PROPFIND", "PROPPATCH", "LOCK"];

/// The guard stage: a request whose path or headers fail [`check_path`] or
/// [`check_headers`] is refused here, before any route sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Guard;

impl Stage for Guard {
    async fn handle<S: Inner>(&self, req: Req, next: Next<S>) -> Res {
        match check_path(req.uri().path()).and_then(|()| check_headers(req.headers())) {
            Ok(()) => next.run(req).await,
            Err(rejection) => rejection.response(Peer::of(&req), req.method()),
        }
    }
}

/// Why a request was refused: each check's finding, turned into a status and a message that
/// says what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    PathTooLong,
    BadPath(&'static str),
    BodyTooLarge,
    Doctype,
    TooDeep,
    UnreadableBody,
    BadHeader(&'static str, &'static str),
}

impl Rejection {
    /// The status the refusal is answered with.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            Rejection::PathTooLong => StatusCode::URI_TOO_LONG,
            Rejection::BadPath(_)
            | Rejection::Doctype
            | Rejection::TooDeep
            | Rejection::UnreadableBody
            | Rejection::BadHeader(..) => StatusCode::BAD_REQUEST,
            Rejection::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// What was wrong, for the answer's body and the log line.
    pub fn message(&self) -> String {
        match self {
            Rejection::PathTooLong => format!("the path is longer than {MAX_PATH_BYTES} bytes"),
            Rejection::BadPath(why) => format!("invalid path: {why}"),
            Rejection::BodyTooLarge => {
                format!(
                    "the request body is larger than {MAX_XML_BODY} bytes (only PUT takes more)"
                )
            }
            Rejection::Doctype => {
                "XML bodies with a DOCTYPE or entity declarations are refused".into()
            }
            Rejection::TooDeep => format!(
                "the XML body is nested deeper than {MAX_XML_DEPTH} levels; no WebDAV request \
                 needs that"
            ),
            Rejection::UnreadableBody => {
                "the request body could not be read (it broke off or its framing is invalid)".into()
            }
            Rejection::BadHeader(name, why) => format!("invalid {name} header: {why}"),
        }
    }

    /// The answer to the refused request, logged with what to fix.
    pub fn response(&self, peer: std::net::SocketAddr, method: &Method) -> Response<Body> {
        let message = self.message();
        tracing::info!(%peer, %method, status = self.status().as_u16(), "request refused: {message}");
        text_response(self.status(), &format!("gphotos-dav: {message}\n"))
    }
}

/// Checks a request path as sent.
pub fn check_path(raw: &str) -> Result<(), Rejection> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(Rejection::PathTooLong);
    }
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(Rejection::BadPath("malformed percent-encoding"))?;
            decoded.push(hex);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let text =
        String::from_utf8(decoded).map_err(|_| Rejection::BadPath("not UTF-8 once decoded"))?;
    if text.contains('\0') {
        return Err(Rejection::BadPath("contains a NUL byte"));
    }
    Ok(())
}

/// Screens `req`'s body: read whole and checked, except a PUT's, which streams on.
pub async fn screen(req: Request<ReqBody>) -> Result<Request<ReqBody>, Rejection> {
    check_path(req.uri().path())?;
    if req.method() == http::Method::PUT {
        return Ok(req);
    }
    let announced = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_XML_BODY as u64) {
        return Err(Rejection::BodyTooLarge);
    }
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, MAX_XML_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Rejection::BodyTooLarge);
        }
        Err(_) => return Err(Rejection::UnreadableBody),
    };
    if XML_METHODS.contains(&parts.method.as_str()) {
        if declares_dtd(&bytes) {
            return Err(Rejection::Doctype);
        }
        if nested_deeper_than(&bytes, MAX_XML_DEPTH) {
            return Err(Rejection::TooDeep);
        }
    }
    let body = Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync();
    Ok(Request::from_parts(parts, body))
}

/// Refuses the headers dav-server's parsers would panic on (see the module docs). Checked
/// before anything else answers, signed links included (they are dav-server's too).
pub fn check_headers(headers: &http::HeaderMap) -> Result<(), Rejection> {
    for value in headers.get_all("If") {
        check_if(value.as_bytes()).map_err(|why| Rejection::BadHeader("If", why))?;
    }
    for name in ["If-Match", "If-None-Match", "If-Range"] {
        for value in headers.get_all(name) {
            let lone_quote = value.as_bytes().split(|b| *b == b',').any(|tag| {
                let tag = tag.trim_ascii();
                tag.strip_prefix(b"W/").unwrap_or(tag) == b"\""
            });
            if lone_quote {
                return Err(Rejection::BadHeader(
                    name,
                    "an entity tag that is a lone '\"'",
                ));
            }
        }
    }
    Ok(())
}

/// Checks an `If` header against RFC 4918 (10.4): one or more lists, all tagged with a
/// resource (`<uri> (...)`) or none; a list is `(` one or more conditions `)`; a condition is
/// an optional `Not` and a state token `<uri>` or an entity tag `[W/"..."]`.
fn check_if(v: &[u8]) -> Result<(), &'static str> {
    let skip_ws = |mut i: usize| {
        while i < v.len() && v[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    // The index after a `<...>` starting at `i`: non-empty, no whitespace or quotes inside.
    let coded_url = |i: usize| -> Result<usize, &'static str> {
        let len = v[i + 1..]
            .iter()
            .position(|&b| b == b'>')
            .ok_or("a '<' without its '>'")?;
        let inner = &v[i + 1..i + 1 + len];
        if inner.is_empty() || inner.iter().any(|b| b.is_ascii_whitespace() || *b == b'"') {
            return Err("a <URL> that is empty or holds spaces or quotes");
        }
        Ok(i + len + 2)
    };
    // The index after a `[W/"..."]` starting at `i`.
    let entity_tag = |i: usize| -> Result<usize, &'static str> {
        let rest = &v[i + 1..];
        let rest = rest.strip_prefix(b"W/").unwrap_or(rest);
        let skipped = v.len() - i - 1 - rest.len();
        let bad = "an entity tag that is not [\"...\"] or [W/\"...\"]";
        let inner = rest.strip_prefix(b"\"").ok_or(bad)?;
        let len = inner.iter().position(|&b| b == b'"').ok_or(bad)?;
        if inner.get(len + 1) != Some(&b']') {
            return Err(bad);
        }
        Ok(i + 1 + skipped + 1 + len + 2)
    };
    let (mut i, mut lists, mut tagged) = (skip_ws(0), 0, None);
    while i < v.len() {
        if v[i] == b'<' {
            if tagged == Some(false) {
                return Err("tagged and untagged lists mixed");
            }
            tagged = Some(true);
            i = skip_ws(coded_url(i)?);
            if v.get(i) != Some(&b'(') {
                return Err("a resource tag without a list after it");
            }
        }
        if v[i] != b'(' {
            return Err("expected '(' or '<'");
        }
        tagged.get_or_insert(false);
        i += 1;
        let mut conditions = 0;
        loop {
            i = skip_ws(i);
            match v.get(i) {
                None => return Err("a '(' without its ')'"),
                Some(b')') if conditions > 0 => break,
                Some(b')') => return Err("an empty list"),
                Some(_) => {}
            }
            if v[i..].starts_with(b"Not") {
                i = skip_ws(i + 3);
            }
            i = match v.get(i) {
                Some(b'<') => coded_url(i)?,
                Some(b'[') => entity_tag(i)?,
                _ => return Err("a condition that is neither <token> nor [etag]"),
            };
            conditions += 1;
        }
        lists += 1;
        i = skip_ws(i + 1);
    }
    if lists == 0 {
        return Err("no condition list");
    }
    Ok(())
}

/// Whether an XML document declares a DOCTYPE or entities (in any letter case).
fn declares_dtd(body: &[u8]) -> bool {
    body.windows(9)
        .any(|w| w.eq_ignore_ascii_case(b"<!DOCTYPE"))
        || body.windows(8).any(|w| w.eq_ignore_ascii_case(b"<!ENTITY"))
}

/// Whether `body` opens more than `max` nested elements before it ends or turns out malformed.
///
/// The parser is the one `xmltree` (and so dav-server) reads with, under `xmltree`'s
/// configuration (`Element::parse` keeps comments), so both see the same elements up to the
/// same first error; it is a loop over events, so its own stack use does not grow with depth.
/// Its memory is bounded by the body, itself bounded by [`MAX_XML_BODY`], and it stops at the
/// first element past `max`. Multiple root elements are read too, as `xmltree` reads them.
fn nested_deeper_than(body: &[u8], max: usize) -> bool {
    use xml::reader::{ParserConfig, XmlEvent};
    let mut reader = ParserConfig::new()
        .ignore_comments(false)
        .create_reader(body);
    let mut depth = 0usize;
    loop {
        match reader.next() {
            Ok(XmlEvent::StartElement { .. }) => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            Ok(XmlEvent::EndElement { .. }) => depth = depth.saturating_sub(1),
            Ok(XmlEvent::EndDocument) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(check_path("/album/a%20b/"), Ok(()));
        assert_eq!(check_path("/%C3%89t%C3%A9"), Ok(()));
        assert!(matches!(check_path("/a%zz"), Err(Rejection::BadPath(_))));
        assert!(matches!(check_path("/a%2"), Err(Rejection::BadPath(_))));
        assert!(matches!(check_path("/%ff%fe"), Err(Rejection::BadPath(_))));
        assert!(matches!(check_path("/a%00b"), Err(Rejection::BadPath(_))));
        let long = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        assert_eq!(check_path(&long), Err(Rejection::PathTooLong));
    }

    #[test]
    fn depth() {
        let nest = |n: usize| format!("{}{}", "<a>".repeat(n), "</a>".repeat(n));
        assert!(!nested_deeper_than(nest(64).as_bytes(), 64));
        assert!(nested_deeper_than(nest(65).as_bytes(), 64));
        // Never closed: malformed, but the depth is reached before the end says so.
        assert!(nested_deeper_than("<a>".repeat(65).as_bytes(), 64));
        // Malformed before it gets deep: left to dav-server.
        let early = format!("<a>&nope;{}", nest(100));
        assert!(!nested_deeper_than(early.as_bytes(), 64));
        // Siblings are not depth, and a second root element is read as xmltree reads it.
        let wide = format!("<a>{}</a>", "<b/>".repeat(10_000));
        assert!(!nested_deeper_than(wide.as_bytes(), 64));
        let second_root = format!("<a/>{}", nest(65));
        assert!(nested_deeper_than(second_root.as_bytes(), 64));
        assert!(!nested_deeper_than(b"", 64));
    }

    #[test]
    fn if_headers() {
        for good in [
            "(<urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2>)",
            "(<opaquelocktoken:x> [\"etag\"]) (Not <DAV:no-lock>)",
            "<http://h/a/b> (<urn:x>) <http://h/c> ([W/\"w\"])",
            "  (Not[\"a,b\"])  ",
        ] {
            assert_eq!(check_if(good.as_bytes()), Ok(()), "{good}");
        }
        for bad in [
            "(<",
            "([",
            "(<abc",
            "([\"abc\"",
            "([\"]",
            "([W/\"])",
            "(<urn:x>",
            "()",
            "",
            "garbage",
            "<http://h/a>",
            "(<urn:x>) <http://h/> (<urn:y>)",
            "(<a b>)",
            "([abc])",
            "(Not)",
            "(<urn:x>)x",
        ] {
            assert!(check_if(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn lone_quote_etags() {
        let refused = |name: &str, v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
            check_headers(&h).is_err()
        };
        assert!(refused("If-Match", "\""));
        assert!(refused("If-None-Match", "\"a\", W/\""));
        assert!(refused("If-Range", "W/\""));
        assert!(!refused("If-None-Match", "\"a\", W/\"b\""));
        assert!(!refused("If-Match", "*"));
        assert!(!refused("If-Range", "Mon, 01 Jan 2024 00:00:00 GMT"));
    }

    #[test]
    fn dtd_detection() {
        assert!(declares_dtd(
            b"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]><x/>"
        ));
        assert!(declares_dtd(b"<!doctype x>"));
        assert!(!declares_dtd(
            b"<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:allprop/></D:propfind>"
        ));
    }
}
