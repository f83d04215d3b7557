//! Process-wide operational metrics, exposed in Prometheus text format on
//! `[server] metrics_listen` (`GET /metrics`, plus `GET /healthz`).
//!
//! One registry for the process: the counters are bumped where things happen (the Google
//! clients, the catalog, the download stream) without threading a handle through every layer.
//!
//! On a family server (`[[library]]`, #19) the calls to Google, the cache lookups and the bytes
//! served carry a `library="<mount>"` label, so that one person's traffic can be told from
//! another's. A single-account server's series have no such label: its output is what it was
//! before libraries existed. The catalog passes its library (`Catalog::library`); the Google
//! clients' requests are counted under the library of the call that sends them
//! ([`with_library`], set by `google::call::Caller`), which also covers the token refreshes
//! and redirect hops a call makes.

use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

tokio::task_local! {
    /// The library whose call to Google is being sent (see [`with_library`]).
    static LIBRARY: Option<Arc<str>>;
}

/// Runs `fut` (a call to Google) with its requests counted under `library`.
pub async fn with_library<F: std::future::Future>(library: Option<Arc<str>>, fut: F) -> F::Output {
    LIBRARY.scope(library, fut).await
}

/// The library of the call being sent, if any.
fn current_library() -> Option<String> {
    LIBRARY
        .try_with(|l| l.as_deref().map(str::to_string))
        .ok()
        .flatten()
}

/// Encodes `labels`, then `library="<mount>"` when there is one (none: the series of a
/// single-account server, unchanged).
fn encode_with_library(
    labels: &[(&'static str, &str)],
    library: &Option<String>,
    encoder: &mut LabelSetEncoder,
) -> Result<(), std::fmt::Error> {
    let mut all: Vec<(&str, &str)> = labels.to_vec();
    if let Some(library) = library {
        all.push(("library", library));
    }
    all.encode(encoder)
}

/// Labels of the calls-to-Google counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct CallLabels {
    /// `albums.list`, `mediaItems.search`, `content.download`, ...
    pub kind: String,
    /// HTTP status, or `error` when no answer came.
    pub status: String,
    /// The library's mount on a family server.
    pub library: Option<String>,
}

impl EncodeLabelSet for CallLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        encode_with_library(
            &[("kind", &self.kind), ("status", &self.status)],
            &self.library,
            encoder,
        )
    }
}

/// Labels of the cache lookups counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct CacheLabels {
    /// `listing`, `size` or `content` (a block served from the content cache is a hit, a
    /// ranged request for a run of missing blocks a miss).
    pub cache: String,
    /// `hit`, `stale` or `miss`.
    pub result: String,
    /// The library's mount on a family server.
    pub library: Option<String>,
}

impl EncodeLabelSet for CacheLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        encode_with_library(
            &[("cache", &self.cache), ("result", &self.result)],
            &self.library,
            encoder,
        )
    }
}

/// Labels of the content bytes counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct SourceLabels {
    /// `cache` (read from the content cache on disk) or `google` (downloaded).
    pub source: String,
    /// The library's mount on a family server.
    pub library: Option<String>,
}

impl EncodeLabelSet for SourceLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        encode_with_library(&[("source", &self.source)], &self.library, encoder)
    }
}

/// Labels of the proxied bytes counter: only the library, on a family server (none: the
/// series has no label at all).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct LibraryLabels {
    /// The library's mount on a family server.
    pub library: Option<String>,
}

impl EncodeLabelSet for LibraryLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        encode_with_library(&[], &self.library, encoder)
    }
}

/// Labels of the quota gauge: one series per quota bucket.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BucketLabels {
    /// `api` (Library API requests), `media` (download-URL requests) or `picker` (Picker API
    /// requests: Google's limit for those is per minute, 100,000; the figure here is, like the
    /// others, the count of the Pacific-time day).
    pub bucket: String,
}

/// The process's Prometheus metrics, one instance ([`get`]), so that every layer can count
/// without a handle passed down to it; `/metrics` on the metrics listener renders them.
pub struct Metrics {
    /// Calls to Google, by kind and status.
    pub upstream_calls: Family<CallLabels, Counter>,
    /// Listing and size cache lookups, by result.
    pub cache: Family<CacheLabels, Counter>,
    /// Bytes relayed from Google to clients (by library on a family server).
    pub bytes_proxied: Family<LibraryLabels, Counter>,
    /// Responses streaming bytes right now.
    pub active_streams: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// WebDAV requests answered.
    pub requests: Counter<u64, AtomicU64>,
    /// Requests sent to Google today (Pacific time), by quota bucket.
    pub quota_used: Family<BucketLabels, Gauge>,
    /// Bytes of items read, by where they came from (`cache` or `google`), while the content
    /// cache is on.
    pub content_bytes: Family<SourceLabels, Counter>,
    /// Blocks the content cache evicted to stay under `[cache] content_max`.
    pub content_evictions: Counter,
    /// Bytes the content cache holds on disk.
    pub content_disk_bytes: Gauge,
    registry: Registry,
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("gphotos_dav");
        let upstream_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "upstream_calls",
            "Calls to Google, by kind and HTTP status",
            upstream_calls.clone(),
        );
        let cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "cache_lookups",
            "Cache lookups by cache and result",
            cache.clone(),
        );
        let bytes_proxied = Family::<LibraryLabels, Counter>::default();
        // The unlabelled series exists from the start, as the plain counter it once was.
        let _ = bytes_proxied.get_or_create(&LibraryLabels { library: None });
        registry.register(
            "proxied_bytes",
            "Bytes streamed from Google to clients",
            bytes_proxied.clone(),
        );
        let active_streams = Gauge::default();
        registry.register(
            "active_streams",
            "Downloads streaming through this server now",
            active_streams.clone(),
        );
        let requests = Counter::default();
        registry.register("requests", "WebDAV requests answered", requests.clone());
        let quota_used = Family::<BucketLabels, Gauge>::default();
        registry.register(
            "quota_used_today",
            "Requests sent to Google today (Pacific time), by quota bucket: api, media, picker",
            quota_used.clone(),
        );
        let content_bytes = Family::<SourceLabels, Counter>::default();
        registry.register(
            "content_bytes",
            "Bytes of items read through the content cache, by source: cache or google",
            content_bytes.clone(),
        );
        let content_evictions = Counter::default();
        registry.register(
            "content_cache_evictions",
            "Blocks evicted from the content cache (least recently used first)",
            content_evictions.clone(),
        );
        let content_disk_bytes = Gauge::default();
        registry.register(
            "content_cache_disk_bytes",
            "Bytes the content cache holds on disk",
            content_disk_bytes.clone(),
        );
        Metrics {
            content_bytes,
            content_evictions,
            content_disk_bytes,
            quota_used,
            upstream_calls,
            cache,
            bytes_proxied,
            active_streams,
            requests,
            registry,
        }
    })
}

impl Metrics {
    /// Counts one call to Google (under the library of the call being sent, if any).
    pub fn upstream(&self, kind: &str, status: Option<u16>) {
        self.upstream_calls
            .get_or_create(&CallLabels {
                kind: kind.to_string(),
                status: status.map_or_else(|| "error".into(), |s| s.to_string()),
                library: current_library(),
            })
            .inc();
    }

    /// Counts `n` bytes relayed from Google to a client of `library`.
    pub fn proxied(&self, n: u64, library: Option<&str>) {
        self.bytes_proxied
            .get_or_create(&LibraryLabels {
                library: library.map(str::to_string),
            })
            .inc_by(n);
    }

    /// Sets today's quota use of `bucket`.
    pub fn quota_used(&self, bucket: &str, used: u64) {
        self.quota_used
            .get_or_create(&BucketLabels {
                bucket: bucket.to_string(),
            })
            .set(i64::try_from(used).unwrap_or(i64::MAX));
    }

    /// Counts `n` bytes of an item of `library` read from `source` (`cache` or `google`).
    pub fn content_bytes(&self, source: &str, n: u64, library: Option<&str>) {
        self.content_bytes
            .get_or_create(&SourceLabels {
                source: source.to_string(),
                library: library.map(str::to_string),
            })
            .inc_by(n);
    }

    /// Counts `n` lookups of `cache` with `result` in `library`'s caches.
    pub fn cache(&self, cache: &str, result: &str, n: u64, library: Option<&str>) {
        self.cache
            .get_or_create(&CacheLabels {
                cache: cache.to_string(),
                result: result.to_string(),
                library: library.map(str::to_string),
            })
            .inc_by(n);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Counts a download as active while it lives.
pub struct StreamGuard;

impl StreamGuard {
    pub fn new() -> Self {
        get().active_streams.inc();
        StreamGuard
    }
}

impl Default for StreamGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        get().active_streams.dec();
    }
}
