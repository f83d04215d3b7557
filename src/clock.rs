//! The gateway's notion of time.
//!
//! Every age the gateway judges (is a listing still fresh, is a download URL about to expire,
//! has a signed link run out, has a quota gate's pause ended, has a new Pacific day begun) reads
//! this clock: real time plus an offset that only moves forward. In production nobody moves it;
//! tests advance it together with the emulator's clock to expire things without sleeping.
//!
//! It lives at the top of the crate, below every layer: `google` (the quota gates) and
//! `catalog` (listing and URL ages) share one instance, built with the Google clients.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The clock described above: real time plus a forward-only offset that tests move.
#[derive(Debug, Default)]
pub struct Clock {
    /// Nanoseconds added to the real clocks (u64 nanoseconds cover 584 years).
    offset_nanos: AtomicU64,
}

impl Clock {
    /// Now, for measuring ages.
    pub fn now(&self) -> Instant {
        Instant::now() + self.offset()
    }

    /// Now, as a date (for expiry times that leave the process, like signed links).
    pub fn system_now(&self) -> SystemTime {
        SystemTime::now() + self.offset()
    }

    /// Now, as a UTC date and time (for calendar questions: which Pacific day it is).
    pub fn utc_now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::<chrono::Utc>::from(self.system_now())
    }

    /// Now, in seconds since the Unix epoch.
    pub fn unix_now(&self) -> u64 {
        self.system_now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// How long ago `at` (a value of [`Clock::now`]) was.
    pub fn since(&self, at: Instant) -> Duration {
        self.now().saturating_duration_since(at)
    }

    /// Moves the clock forward by `d` (saturating: it never wraps around into the past).
    pub fn advance(&self, d: Duration) {
        let add = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .offset_nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |cur| {
                Some(cur.saturating_add(add))
            });
    }

    fn offset(&self) -> Duration {
        Duration::from_nanos(self.offset_nanos.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_every_reading() {
        let clock = Clock::default();
        let (t0, s0, u0) = (clock.now(), clock.system_now(), clock.unix_now());
        clock.advance(Duration::from_secs(3000));
        assert!(clock.since(t0) >= Duration::from_secs(3000));
        assert!(clock.system_now().duration_since(s0).unwrap() >= Duration::from_secs(3000));
        assert!(clock.unix_now() >= u0 + 3000);
        assert!(clock.utc_now().timestamp() as u64 >= u0 + 3000);
    }
}
