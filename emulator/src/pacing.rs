//! What leaves the content host: a bandwidth limit shared by all downloads, and a count of
//! the body bytes sent.
//!
//! Benchmarks need both. A proxy can only be compared with a direct download fairly when the
//! upstream link has a known speed (Google's content host is not infinitely fast, loopback
//! nearly is), and "a ranged GET pulls little from upstream" can only be checked by counting
//! what the host handed to the connection.
//!
//! Bodies are cut into pieces of at most [`PIECE`] bytes; each piece waits for its turn on a
//! schedule shared by every download, so the limit is the host's total rate, like an uplink,
//! and a piece is counted when it is handed to hyper. The schedule is real time: a bandwidth
//! limit is only for benchmarks and manual trials, never for tests (which move clocks instead).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::time::Instant;

use super::reply::Body;

/// Largest piece a paced body is handed to hyper in: small enough that a 200 MB/s schedule
/// ticks about every millisecond, big enough to keep the per-piece cost negligible.
const PIECE: usize = 256 * 1024;

/// How far behind its schedule the pacer may catch up in a burst.
const BURST: Duration = Duration::from_millis(10);

/// The content host's uplink: an optional rate and the bytes sent so far.
#[derive(Debug)]
pub(crate) struct Pacer {
    /// Bytes per second; None: as fast as the connection drains.
    rate: Option<u64>,
    /// When the next piece may leave.
    next: Mutex<Option<Instant>>,
    sent: AtomicU64,
}

impl Pacer {
    pub fn new(rate: Option<u64>) -> Pacer {
        Pacer {
            rate: rate.filter(|r| *r > 0),
            next: Mutex::new(None),
            sent: AtomicU64::new(0),
        }
    }

    /// Body bytes handed to connections so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Waits until `n` more bytes may leave, then counts them.
    async fn take(&self, n: usize) {
        if let Some(rate) = self.rate {
            let start = {
                let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                // A piece that is late (timer granularity, a busy machine) may catch up by
                // up to BURST, so the average rate holds; an idle link saves no more credit.
                let earliest = now.checked_sub(BURST).unwrap_or(now);
                let start = next.map_or(now, |t| t.max(earliest));
                *next = Some(start + Duration::from_secs_f64(n as f64 / rate as f64));
                start
            };
            tokio::time::sleep_until(start).await;
        }
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// `body`, cut into pieces that each wait for the pacer and are counted by it.
pub(crate) fn paced(body: Body, pacer: Arc<Pacer>) -> Body {
    let pieces = body.into_data_stream().flat_map(|chunk| {
        let pieces: Vec<Result<Bytes, std::io::Error>> = match chunk {
            Ok(mut bytes) => {
                let mut out = Vec::with_capacity(bytes.len() / PIECE + 1);
                while bytes.len() > PIECE {
                    out.push(Ok(bytes.split_to(PIECE)));
                }
                if !bytes.is_empty() {
                    out.push(Ok(bytes));
                }
                out
            }
            Err(e) => vec![Err(e)],
        };
        futures::stream::iter(pieces)
    });
    let frames = pieces.then(move |piece| {
        let pacer = pacer.clone();
        async move {
            let piece = piece?;
            pacer.take(piece.len()).await;
            Ok(Frame::data(piece))
        }
    });
    BodyExt::boxed(StreamBody::new(frames))
}
