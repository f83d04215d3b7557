//! A library's share of its Google project's day (`[[library]] daily_share`, #19).
//!
//! The libraries of a family server that share an OAuth client share its project's quotas
//! and gates ([`QuotaGate`]): Google counts per project, so one person's `rclone check`
//! (thousands of size probes and downloads) could spend the day of everyone. A [`Share`]
//! bounds one library: it counts that library's own requests per Pacific day, in the Library
//! API and media buckets and the size probes among them, and refuses a request once the
//! library's count reaches its part of the project's quota (`daily_share` × the project's
//! `daily_quota`, `daily_media_quota`, probe budget). The refusal is the closed gate's
//! ([`GoogleError::GateClosed`]: 503 with `Retry-After` until Pacific midnight, nothing sent
//! to Google), with a message naming the share; for probes it is the probe budget's
//! ([`GoogleError::ProbeBudgetSpent`]), which the catalog already answers while keeping the
//! sizes it has. The other libraries go on until the project's own gates close.
//!
//! The share is checked before the project's gate takes anything, so a library over its share
//! spends nothing of the others' day. Its counts are written to the library's own store (keys
//! [`SHARE_KEYS`]) and restored at start, like the project's.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::NaiveDate;
use parking_lot::Mutex;

use super::{Bucket, UsageLog, minutes_left, next_pacific_midnight, pacific_today};
use crate::clock::Clock;
use crate::google::error::GoogleError;

/// The store's names of a library's own counts: Library API requests, media requests, size
/// probes (kept apart from the project's `api`, `media`, `probes`).
pub const SHARE_KEYS: [&str; 3] = ["share_api", "share_media", "share_probes"];

const API: usize = 0;
const MEDIA: usize = 1;
const PROBES: usize = 2;

/// One library's part of its project's daily quotas, and what it used today.
pub struct Share {
    mount: Arc<str>,
    /// `daily_share`; None: no bound (the library is only counted).
    fraction: Option<f64>,
    clock: Arc<Clock>,
    /// The project's daily quotas: Library API, media, probe budget.
    project: Mutex<[u64; 3]>,
    today: Mutex<(NaiveDate, [u64; 3])>,
    log: OnceLock<UsageLog>,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Share")
            .field("mount", &self.mount)
            .field("fraction", &self.fraction)
            .field("today", &self.today)
            .finish_non_exhaustive()
    }
}

impl Share {
    /// The share of library `mount` (`fraction` of each daily quota, or no bound), on
    /// `clock` (the project gate's).
    pub fn new(mount: &str, fraction: Option<f64>, clock: Arc<Clock>) -> Self {
        let day = pacific_today(clock.utc_now());
        Share {
            mount: mount.into(),
            fraction,
            clock,
            project: Mutex::new([10_000, 75_000, u64::MAX]),
            today: Mutex::new((day, [0; 3])),
            log: OnceLock::new(),
        }
    }

    /// The library's mount (the metrics' `library` label).
    pub fn mount(&self) -> &Arc<str> {
        &self.mount
    }

    /// Sets the project's daily quotas the share is a part of.
    pub fn set_limits(&self, api: u64, media: u64, probe_budget: u64) {
        *self.project.lock() = [api, media, probe_budget];
    }

    /// The library's bound of counter `i`: its fraction of the project's (at least 1).
    fn limit(&self, i: usize) -> u64 {
        let project = self.project.lock()[i];
        match self.fraction {
            Some(f) => ((project as f64 * f).floor() as u64).max(1),
            None => u64::MAX,
        }
    }

    /// Continues from what the library's store remembers of `day`, and writes every further
    /// count to `log`.
    pub fn restore(&self, day: NaiveDate, used: [u64; 3], log: UsageLog) {
        {
            let mut today = self.today.lock();
            if today.0 == day {
                for (count, more) in today.1.iter_mut().zip(used) {
                    *count += more;
                }
            }
        }
        let _ = self.log.set(log);
    }

    fn index(bucket: Bucket) -> Option<usize> {
        match bucket {
            Bucket::Api => Some(API),
            Bucket::Media => Some(MEDIA),
            Bucket::Picker => None,
        }
    }

    /// Fails while the library's share of `bucket` is used up today (nothing counted).
    pub fn check(&self, bucket: Bucket) -> Result<(), GoogleError> {
        let Some(i) = Self::index(bucket) else {
            return Ok(());
        };
        let used = self.used(i);
        if used >= self.limit(i) {
            return Err(self.refused(bucket, i, used));
        }
        Ok(())
    }

    /// Counts one request of `bucket` about to be sent, or fails when the library's share of
    /// it is used up today.
    pub fn take(&self, bucket: Bucket) -> Result<(), GoogleError> {
        let Some(i) = Self::index(bucket) else {
            return Ok(());
        };
        self.take_index(i)
            .map_err(|used| self.refused(bucket, i, used))
    }

    /// Takes one size probe from the library's part of the probe budget; when it is spent,
    /// fails with the time to the next Pacific midnight.
    pub fn take_probe(&self) -> Result<(), Duration> {
        self.take_index(PROBES).map_err(|_| self.until_midnight())
    }

    /// Counts one of counter `i`, or returns today's count when it is at the bound.
    fn take_index(&self, i: usize) -> Result<(), u64> {
        let limit = self.limit(i);
        let day = pacific_today(self.clock.utc_now());
        {
            let mut today = self.today.lock();
            if today.0 != day {
                *today = (day, [0; 3]);
            }
            if today.1[i] >= limit {
                return Err(today.1[i]);
            }
            today.1[i] += 1;
        }
        if let Some(log) = self.log.get() {
            log(day, SHARE_KEYS[i], 1);
        }
        Ok(())
    }

    fn used(&self, i: usize) -> u64 {
        let today = self.today.lock();
        if today.0 == pacific_today(self.clock.utc_now()) {
            today.1[i]
        } else {
            0
        }
    }

    /// The library's requests of `bucket` today (Pacific time).
    pub fn used_today(&self, bucket: Bucket) -> u64 {
        Self::index(bucket).map_or(0, |i| self.used(i))
    }

    /// The library's size probes today.
    pub fn probes_today(&self) -> u64 {
        self.used(PROBES)
    }

    fn until_midnight(&self) -> Duration {
        let now = self.clock.utc_now();
        let left = (next_pacific_midnight(now) - now)
            .to_std()
            .unwrap_or_default();
        Duration::from_secs(left.as_secs_f64().ceil() as u64).max(Duration::from_secs(1))
    }

    fn refused(&self, bucket: Bucket, i: usize, used: u64) -> GoogleError {
        let now = self.clock.utc_now();
        let until = next_pacific_midnight(now);
        let (project, key) = (self.project.lock()[i], bucket.config_key().unwrap_or(""));
        let message = format!(
            "the library {:?} has used its share of the Google project's daily quota of {} \
             ([[library]] daily_share = {}: {} of the project's {key} = {project}; {used} used \
             today); the other libraries of the project go on. It resets at midnight Pacific \
             time, in {} min; or raise daily_share",
            self.mount,
            bucket.what(),
            self.fraction.unwrap_or(1.0),
            self.limit(i),
            minutes_left(now, until)
        );
        tracing::debug!(library = %self.mount, bucket = bucket.name(), "{message}");
        GoogleError::GateClosed {
            message,
            retry_after: self.until_midnight(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_bounds_each_bucket_and_the_probes_until_pacific_midnight() {
        let clock = Arc::new(Clock::default());
        let share = Share::new("alice", Some(0.25), clock.clone());
        share.set_limits(8, 10, 6);
        let logged = Arc::new(Mutex::new(Vec::new()));
        let sink = logged.clone();
        let today = pacific_today(clock.utc_now());
        share.restore(
            today,
            [1, 0, 0],
            Box::new(move |day, key, n| sink.lock().push((day, key, n))),
        );
        // 25% of 8 API calls: 2, one of them remembered from before a restart.
        share.take(Bucket::Api).unwrap();
        let err = share.take(Bucket::Api).unwrap_err();
        let GoogleError::GateClosed {
            message,
            retry_after,
        } = &err
        else {
            panic!("{err:?}");
        };
        assert!(
            message.contains("\"alice\"") && message.contains("daily_share = 0.25"),
            "{message}"
        );
        assert!(
            message.contains("2 of the project's daily_quota = 8"),
            "{message}"
        );
        let midnight = next_pacific_midnight(clock.utc_now());
        let left = (midnight - clock.utc_now()).num_seconds() as u64;
        assert!(retry_after.as_secs().abs_diff(left) <= 1, "{retry_after:?}");
        assert!(share.check(Bucket::Api).is_err());
        // Media: 2 of 10; probes: 1 of 6; the Picker has no share.
        share.check(Bucket::Media).unwrap();
        share.take(Bucket::Media).unwrap();
        share.take(Bucket::Media).unwrap();
        assert!(share.take(Bucket::Media).is_err());
        share.take_probe().unwrap();
        assert!(share.take_probe().is_err());
        for _ in 0..100 {
            share.take(Bucket::Picker).unwrap();
        }
        assert_eq!(share.used_today(Bucket::Api), 2);
        assert_eq!(share.used_today(Bucket::Media), 2);
        assert_eq!(share.probes_today(), 1);
        // Only what was taken is written to the store.
        assert_eq!(
            *logged.lock(),
            vec![
                (today, "share_api", 1),
                (today, "share_media", 1),
                (today, "share_media", 1),
                (today, "share_probes", 1)
            ]
        );
        // A new Pacific day, a new share.
        clock.advance(Duration::from_secs(left + 1));
        share.take(Bucket::Api).unwrap();
        share.take_probe().unwrap();
        assert_eq!(share.used_today(Bucket::Api), 1);
    }

    #[test]
    fn without_a_fraction_a_library_is_only_counted() {
        let share = Share::new("bob", None, Arc::default());
        share.set_limits(1, 1, 1);
        for _ in 0..10 {
            share.take(Bucket::Api).unwrap();
            share.take_probe().unwrap();
        }
        assert_eq!(share.used_today(Bucket::Api), 10);
        // A tiny fraction still allows one request a day.
        let share = Share::new("kid", Some(0.0001), Arc::default());
        share.set_limits(100, 100, 100);
        share.take(Bucket::Media).unwrap();
        assert!(share.take(Bucket::Media).is_err());
    }
}
