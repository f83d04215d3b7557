//! Quotes the `getetag` values of a PROPFIND answer: the twelfth stage of the tree's stack,
//! the innermost response stage ([`QuoteEtagsStage`]), and the body wrapper that does it
//! ([`QuoteEtags`]).
//!
//! RFC 4918 (15.6) makes `DAV:getetag` the entity tag exactly as the `ETag` header carries it,
//! quotes included. dav-server writes one `DavMetaData::etag()` string into both places but
//! quotes only the header, so a client that compares the two (a cache keyed by ETag) or
//! sends the property back in `If-Match` never matches. This body wrapper adds the quotes as
//! the multistatus streams by, without buffering it: only a tag split across two chunks is
//! held back until the next one arrives.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;

use super::stage::{Inner, Next, Req, Res, Stage};

const OPEN: &[u8] = b"<D:getetag>";
const CLOSE: &[u8] = b"</D:getetag>";
/// An entity tag longer than this is not one of ours: pass it through untouched rather
/// than hold an unbounded amount of the body back.
const MAX_HELD: usize = 4096;

/// The stage: a PROPFIND's 207 gets its body wrapped in [`QuoteEtags`]. The quotes change the
/// length, so the answer never keeps a `Content-Length`.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuoteEtagsStage;

impl Stage for QuoteEtagsStage {
    async fn handle<S: Inner>(&self, req: Req, next: Next<S>) -> Res {
        let is_propfind = req.method().as_str() == "PROPFIND";
        let response = next.run(req).await;
        if !is_propfind || response.status() != StatusCode::MULTI_STATUS {
            return response;
        }
        let mut response = response.map(|b| QuoteEtags::new(b).boxed_unsync());
        response.headers_mut().remove(http::header::CONTENT_LENGTH);
        response
    }
}

/// Wraps a multistatus body from dav-server (which always writes the DAV: namespace as `D:`).
pub struct QuoteEtags<B> {
    inner: B,
    /// Bytes received but not passed on: the start of a `getetag` element not closed yet,
    /// or a possible beginning of [`OPEN`] at the end of the last chunk.
    held: BytesMut,
    done: bool,
}

impl<B> QuoteEtags<B> {
    /// Quotes the tags of `inner` as it streams.
    pub fn new(inner: B) -> Self {
        QuoteEtags {
            inner,
            held: BytesMut::new(),
            done: false,
        }
    }
}

/// Rewrites the complete `getetag` elements of `buf` and returns (what can be passed on,
/// what must wait for more bytes).
fn rewrite(buf: &[u8], at_end: bool) -> (Vec<u8>, &[u8]) {
    let mut out = Vec::with_capacity(buf.len() + 16);
    let mut rest = buf;
    loop {
        let Some(open) = find(rest, OPEN) else {
            // Hold back a tail that could be the beginning of OPEN.
            let keep = if at_end {
                0
            } else {
                partial_suffix(rest, OPEN)
            };
            out.extend_from_slice(&rest[..rest.len() - keep]);
            return (out, &rest[rest.len() - keep..]);
        };
        let value_start = open + OPEN.len();
        let Some(len) = find(&rest[value_start..], CLOSE) else {
            if at_end || rest.len() - open > MAX_HELD {
                out.extend_from_slice(rest);
                return (out, &[]);
            }
            out.extend_from_slice(&rest[..open]);
            return (out, &rest[open..]);
        };
        let value = &rest[value_start..value_start + len];
        out.extend_from_slice(&rest[..value_start]);
        // Empty: a PROPNAME answer, names without values.
        if value.is_empty() || value.starts_with(b"\"") || value.starts_with(b"W/") {
            out.extend_from_slice(value);
        } else {
            out.push(b'"');
            out.extend_from_slice(value);
            out.push(b'"');
        }
        rest = &rest[value_start + len..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// The length of the longest end of `buf` that is a proper beginning of `needle`.
fn partial_suffix(buf: &[u8], needle: &[u8]) -> usize {
    (1..needle.len().min(buf.len() + 1))
        .rev()
        .find(|&n| buf.ends_with(&needle[..n]))
        .unwrap_or(0)
}

impl<B> HttpBody for QuoteEtags<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let data = match frame.into_data() {
                        Ok(data) => data,
                        // Trailers (dav-server sends none) pass as they are.
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    };
                    this.held.extend_from_slice(&data);
                    let (out, keep) = rewrite(&this.held, false);
                    let keep = BytesMut::from(keep);
                    this.held = keep;
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    this.done = true;
                    if this.held.is_empty() {
                        return Poll::Ready(None);
                    }
                    let (out, _) = rewrite(&this.held, true);
                    this.held.clear();
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    async fn through(chunks: Vec<&'static [u8]>) -> String {
        let stream = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(c)))),
        );
        let body = QuoteEtags::new(StreamBody::new(stream));
        let bytes = body.collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    const XML: &str = "<D:response><D:href>/a</D:href><D:prop><D:getetag>661fd2b7-6612</D:getetag>\
        <D:getcontentlength>5</D:getcontentlength></D:prop></D:response><D:response><D:prop>\
        <D:getetag>\"already\"</D:getetag><D:getetag>W/\"weak\"</D:getetag><D:getetag>x</D:getetag>\
        </D:prop></D:response><D:prop><D:getetag></D:getetag><D:getetag/></D:prop>";

    fn expected() -> String {
        XML.replace(">661fd2b7-6612<", ">\"661fd2b7-6612\"<")
            .replace(">x<", ">\"x\"<")
    }

    #[tokio::test]
    async fn quotes_every_bare_etag_however_the_body_is_cut() {
        assert_eq!(through(vec![XML.as_bytes()]).await, expected());
        let bytes: &'static [u8] = XML.as_bytes();
        for cut in 1..bytes.len() {
            let got = through(vec![&bytes[..cut], &bytes[cut..]]).await;
            assert_eq!(got, expected(), "cut at {cut}");
        }
        // One byte at a time.
        let singles: Vec<&'static [u8]> = (0..bytes.len()).map(|i| &bytes[i..i + 1]).collect();
        assert_eq!(through(singles).await, expected());
    }

    #[tokio::test]
    async fn other_bodies_pass_unchanged() {
        let text: &'static [u8] = b"<D:getetagx>no</D:getetagx> <D:getet";
        assert_eq!(through(vec![text]).await.as_bytes(), text);
        // An element never closed is not held forever.
        let open: &'static [u8] = b"<D:getetag>never closed";
        assert_eq!(through(vec![open]).await.as_bytes(), open);
    }
}
