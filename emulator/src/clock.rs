//! The emulator's notion of time, and its per-kind request counters.
//!
//! Tests must be able to expire access tokens and base URLs without sleeping, so every
//! expiry decision in the emulator reads [`Clock::now`], which is real time plus an offset
//! that only ever moves forward.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Real UTC time shifted by an offset that tests advance.
///
/// Real time still flows underneath so that the emulator behaves sensibly in the `demo`
/// command, where nobody advances the clock.
#[derive(Debug, Default)]
pub struct Clock {
    /// Nanoseconds added to the real clock; i64 nanoseconds cover ±292 years, plenty.
    offset_nanos: AtomicI64,
}

impl Clock {
    /// The emulator's current time.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::nanoseconds(self.offset_nanos.load(Ordering::SeqCst))
    }

    /// Moves the clock forward by `d` (saturating, so absurd values cannot wrap around and
    /// move time backwards).
    pub fn advance(&self, d: Duration) {
        let add = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .offset_nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |cur| {
                Some(cur.saturating_add(add))
            });
    }
}

/// Upstream calls received, by kind.
///
/// Every received request counts, including those answered with an error, because the
/// client's tests use these numbers to prove caching and retry behaviour (a request that
/// failed still cost quota at Google).
#[derive(Debug, Default)]
pub struct Counters {
    counts: Mutex<BTreeMap<String, u64>>,
    /// Bytes sent, by kind (see [`Counters::bytes`]); apart from the request counts, which
    /// tests compare whole.
    bytes: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    /// How many requests of `kind` were received since the last [`Counters::reset`].
    pub fn get(&self, kind: &str) -> u64 {
        self.lock().get(kind).copied().unwrap_or(0)
    }

    /// All non-zero counters.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.lock().clone()
    }

    /// Sets every counter back to zero.
    pub fn reset(&self) {
        self.lock().clear();
        self.lock_bytes().clear();
    }

    pub(crate) fn increment(&self, kind: &str) {
        *self.lock().entry(kind.to_owned()).or_insert(0) += 1;
    }

    /// How many body bytes the content host answered GETs with since the last
    /// [`Counters::reset`], by what they were: `content.original` (an item's own bytes),
    /// `content.sized` (a size Google rendered, `=wW-hH`), and their `picker.` twins.
    pub fn bytes(&self, kind: &str) -> u64 {
        self.lock_bytes().get(kind).copied().unwrap_or(0)
    }

    pub(crate) fn add_bytes(&self, kind: &str, n: u64) {
        *self.lock_bytes().entry(kind.to_owned()).or_insert(0) += n;
    }

    fn lock_bytes(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.bytes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        // A panic while holding this lock cannot leave the map inconsistent, so poisoning
        // is safe to ignore.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}
