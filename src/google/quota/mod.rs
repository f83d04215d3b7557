//! The quotas: counting what is used, and one gate per bucket.
//!
//! Google allows 10,000 Library API calls and 75,000 download-URL requests (downloads and size
//! probes) per project per Pacific-time day, and 100,000 Picker API calls per project per
//! minute. Every request sent is counted here in its bucket (retries too: Google counts them),
//! per Pacific day, into the metrics and, through a [`UsageLog`], into the metadata store, so
//! the count survives restarts. At 80% of a configured daily quota one warning is logged.
//!
//! Each bucket has a gate. While it is closed, every call that needs the bucket fails at once
//! with [`GoogleError::GateClosed`] (503 with `Retry-After` for the WebDAV client), without
//! reaching Google: a storm of requests that Google would refuse anyway costs nothing, and what
//! is cached keeps being served. A gate closes:
//! - **until Pacific midnight** when a daily quota is used up: Google said so in the structured
//!   details of its error (see [`super::error::quota_window`]), or an answer without that
//!   structure (an unstructured API 429, and every 429 of the content host, which has no JSON)
//!   came while this day's count is at 90% of the configured quota or more. Written to the
//!   store, so a restart the same day keeps it closed;
//! - **for a pause** after the content host's 429 far from the daily quota (a short-lived
//!   limit): 1 minute, doubling while 429s continue, back to 1 minute after a success, at most
//!   1 hour (or longer when the host's `Retry-After` asks for more, up to that hour).
//!
//! Each closing and reopening is logged once, with what to do. Time is read from a
//! [`Clock`] that tests move, so no test waits for a pause to end.
//!
//! Here: [`QuotaGate`] and its counting; `bucket.rs`: the buckets and what the store keeps
//! of them; `gate.rs`: the gates (checking, closing for the day or a pause, reopening);
//! `share.rs`: a family server library's part of its project's day ([`Share`]).
//! Requests reach both through the call path ([`super::call::Caller`]).

mod bucket;
mod gate;
mod share;

use parking_lot::Mutex;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};

use crate::clock::Clock;
use bucket::BUCKETS;
pub use bucket::{Bucket, Remembered, UsageLog};
use gate::Gate;
pub use share::{SHARE_KEYS, Share};

/// The store's name for the day's count of size-probe requests (the probe budget's).
pub const PROBES_KEY: &str = "probes";

/// The first pause after a short-lived 429 of the content host.
pub const FIRST_PAUSE: Duration = Duration::from_secs(60);
/// The longest pause (it doubles while 429s continue).
pub const MAX_PAUSE: Duration = Duration::from_secs(3600);
/// A 429 without Google's structured details is taken for the daily quota when this share of
/// the configured quota (in percent) is counted today already: our count and Google's never
/// agree exactly (other clients of the same project, requests Google does not count), so the
/// threshold leaves a margin, and below it a 429 is far more likely a short-lived limit.
pub const NEAR_DAILY_PERCENT: u64 = 90;

/// Today's counts.
#[derive(Debug)]
struct Day {
    day: NaiveDate,
    used: [u64; 3],
    warned: [bool; 3],
    /// Size-probe requests of the media bucket (also counted in `used`): the probe budget's
    /// count (`[cache] probe_budget`, see [`QuotaGate::take_probe`]).
    probes: u64,
}

impl Day {
    fn new(day: NaiveDate) -> Day {
        Day {
            day,
            used: [0; 3],
            warned: [false; 3],
            probes: 0,
        }
    }
}

/// The quotas of one Google project: counts and gates.
pub struct QuotaGate {
    clock: Arc<Clock>,
    gates: Mutex<[Gate; 3]>,
    today: Mutex<Day>,
    /// Daily quotas of the Api and Media buckets (the Picker has none).
    limits: Mutex<[u64; 2]>,
    /// How many size-probe requests a Pacific day may spend (`[cache] probe_budget`).
    probe_budget: Mutex<u64>,
    log: OnceLock<UsageLog>,
}

impl std::fmt::Debug for QuotaGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaGate")
            .field("gates", &self.gates)
            .field("today", &self.today)
            .finish_non_exhaustive()
    }
}

impl Default for QuotaGate {
    fn default() -> Self {
        QuotaGate::new(Arc::default())
    }
}

impl QuotaGate {
    /// A gate reading the time from `clock`.
    pub fn new(clock: Arc<Clock>) -> Self {
        let day = pacific_today(clock.utc_now());
        QuotaGate {
            clock,
            gates: Mutex::default(),
            today: Mutex::new(Day::new(day)),
            limits: Mutex::new([10_000, 75_000]),
            probe_budget: Mutex::new(u64::MAX),
            log: OnceLock::new(),
        }
    }

    /// The clock the gates read (tests move it).
    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.utc_now()
    }

    /// Today's date in Pacific time, on this gate's clock: the day Google's quotas count.
    pub fn today(&self) -> NaiveDate {
        pacific_today(self.now())
    }

    /// Sets the daily quotas (`[google] daily_quota`, `daily_media_quota`).
    pub fn set_limits(&self, api: u64, media: u64) {
        *self.limits.lock() = [api, media];
    }

    fn limit(&self, bucket: Bucket) -> Option<u64> {
        let limits = self.limits.lock();
        match bucket {
            Bucket::Api => Some(limits[0]),
            Bucket::Media => Some(limits[1]),
            Bucket::Picker => None,
        }
    }

    /// Continues counting from what the store remembers of `day` (at start), closes the gates
    /// whose daily quota was used up today, and writes every further count to `log`.
    pub fn restore(&self, day: NaiveDate, remembered: Remembered, log: UsageLog) {
        {
            let mut today = self.today.lock();
            if today.day == day {
                today.used[Bucket::Api.index()] += remembered.api;
                today.used[Bucket::Media.index()] += remembered.media;
                today.used[Bucket::Picker.index()] += remembered.picker;
                today.probes += remembered.probes;
            }
        }
        let _ = self.log.set(log);
        if day == self.today() {
            let now = self.now();
            let until = next_pacific_midnight(now);
            let mut gates = self.gates.lock();
            for (bucket, exhausted) in [
                (Bucket::Api, remembered.api_exhausted),
                (Bucket::Media, remembered.media_exhausted),
            ] {
                if !exhausted {
                    continue;
                }
                tracing::warn!(
                    bucket = bucket.name(),
                    until = %until,
                    "Google's daily quota of {} was used up earlier today; none until midnight \
                     Pacific time (in {} min), serving what is cached",
                    bucket.what(),
                    minutes_left(now, until)
                );
                let gate = &mut gates[bucket.index()];
                gate.until = Some(until);
                gate.daily = true;
            }
        }
        self.publish();
    }

    /// Counts one request sent to Google.
    pub fn count(&self, bucket: Bucket) {
        let day = self.today();
        let i = bucket.index();
        let limit = self.limit(bucket);
        let warn = {
            let mut today = self.today.lock();
            if today.day != day {
                *today = Day::new(day);
            }
            today.used[i] += 1;
            let used = today.used[i];
            let warn = limit.filter(|&limit| used * 5 >= limit * 4 && !today.warned[i]);
            if warn.is_some() {
                today.warned[i] = true;
            }
            warn.map(|limit| (used, limit))
        };
        if let (Some((used, limit)), Some(key)) = (warn, bucket.config_key()) {
            tracing::warn!(
                used,
                limit,
                "80% of today's Google quota of {} requests is used ({used} of {limit}, [google] \
                 {key}); it resets at midnight Pacific time. Raise the quota in the Cloud \
                 console or expect 503s when it runs out",
                bucket.name()
            );
        }
        if let Some(log) = self.log.get() {
            log(day, bucket.name(), 1);
        }
        self.publish();
    }

    /// Sets how many size-probe requests a Pacific day may spend (`[cache] probe_budget`).
    pub fn set_probe_budget(&self, budget: u64) {
        *self.probe_budget.lock() = budget;
    }

    /// Takes one size-probe request from today's probe budget, before it is sent; when the
    /// day's budget is spent, fails with the time to the next Pacific midnight, when a new
    /// budget begins. The budget is a count per Pacific day like the buckets' (the same day,
    /// the same store, so a restart continues it), kept apart from the media bucket's count so
    /// that downloads always find the rest of the day's quota: sizes of a big library are
    /// probed over several days rather than leaving nothing to download with.
    pub fn take_probe(&self) -> Result<(), Duration> {
        let now = self.now();
        let day = pacific_today(now);
        let budget = *self.probe_budget.lock();
        {
            let mut today = self.today.lock();
            if today.day != day {
                *today = Day::new(day);
            }
            if today.probes >= budget {
                let until = next_pacific_midnight(now);
                return Err((until - now).to_std().unwrap_or_default());
            }
            today.probes += 1;
        }
        if let Some(log) = self.log.get() {
            log(day, PROBES_KEY, 1);
        }
        Ok(())
    }

    /// Size-probe requests taken from today's budget (Pacific time).
    pub fn probes_today(&self) -> u64 {
        let today = self.today.lock();
        if today.day == self.today() {
            today.probes
        } else {
            0
        }
    }

    /// Requests counted today (Pacific time) in `bucket`.
    pub fn used_today(&self, bucket: Bucket) -> u64 {
        let today = self.today.lock();
        if today.day == self.today() {
            today.used[bucket.index()]
        } else {
            0
        }
    }

    /// Whether today's count of `bucket` is at [`NEAR_DAILY_PERCENT`] of its daily quota or
    /// more: a 429 without structure is then taken for the daily quota.
    pub fn near_daily_limit(&self, bucket: Bucket) -> bool {
        match self.limit(bucket) {
            Some(limit) => self.used_today(bucket) * 100 >= limit * NEAR_DAILY_PERCENT,
            None => false,
        }
    }

    fn publish(&self) {
        let metrics = crate::metrics::get();
        for bucket in BUCKETS {
            metrics.quota_used(bucket.name(), self.used_today(bucket));
        }
    }
}

fn minutes_left(now: DateTime<Utc>, until: DateTime<Utc>) -> u64 {
    (until - now)
        .num_seconds()
        .max(0)
        .unsigned_abs()
        .div_ceil(60)
}

/// The Pacific-time date of `now`: the day Google's quotas count.
pub fn pacific_today(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&chrono_tz::America::Los_Angeles)
        .date_naive()
}

/// The next midnight in America/Los_Angeles after `now` (daylight saving included).
pub fn next_pacific_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let tz = chrono_tz::America::Los_Angeles;
    let tomorrow = now.with_timezone(&tz).date_naive() + chrono::Days::new(1);
    tz.from_local_datetime(&tomorrow.and_time(NaiveTime::MIN))
        .earliest()
        .expect("midnight exists in Los Angeles")
        .with_timezone(&Utc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::google::error::GoogleError;

    /// The `Retry-After` (whole seconds) of a gate's refusal; panics when the gate is open.
    fn refused(gate: &QuotaGate, bucket: Bucket) -> (u64, String) {
        match gate.check_bucket(bucket) {
            Err(GoogleError::GateClosed {
                retry_after,
                message,
            }) => (retry_after.as_secs(), message),
            other => panic!("expected a closed gate, got {other:?}"),
        }
    }

    #[test]
    fn pacific_midnight_follows_daylight_saving() {
        // Winter: UTC-8.
        let now = Utc.with_ymd_and_hms(2026, 1, 15, 20, 0, 0).unwrap();
        assert_eq!(
            next_pacific_midnight(now),
            Utc.with_ymd_and_hms(2026, 1, 16, 8, 0, 0).unwrap()
        );
        // Summer: UTC-7; 06:59 UTC is still the previous Pacific day.
        let now = Utc.with_ymd_and_hms(2026, 7, 15, 6, 59, 0).unwrap();
        assert_eq!(
            next_pacific_midnight(now),
            Utc.with_ymd_and_hms(2026, 7, 15, 7, 0, 0).unwrap()
        );
    }

    #[test]
    fn counts_are_logged_and_continue_from_the_store() {
        let gate = QuotaGate::default();
        let logged = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = logged.clone();
        let today = gate.today();
        gate.restore(
            today,
            Remembered {
                api: 40,
                media: 2,
                picker: 5,
                ..Remembered::default()
            },
            Box::new(move |day, bucket, n| sink.lock().push((day, bucket, n))),
        );
        gate.count(Bucket::Api);
        gate.count(Bucket::Media);
        gate.count(Bucket::Picker);
        assert_eq!(gate.used_today(Bucket::Api), 41);
        assert_eq!(gate.used_today(Bucket::Media), 3);
        assert_eq!(gate.used_today(Bucket::Picker), 6);
        assert_eq!(
            *logged.lock(),
            vec![(today, "api", 1), (today, "media", 1), (today, "picker", 1)]
        );
        // The gates closing for the day are written down as well, once each.
        let _ = gate.close_daily(Bucket::Api, "test");
        let _ = gate.close_daily(Bucket::Api, "test");
        let _ = gate.close_daily(Bucket::Media, "test");
        assert_eq!(
            logged.lock()[3..],
            [(today, "exhausted", 1), (today, "media_exhausted", 1)]
        );
    }

    /// Log lines written while `f` runs.
    fn logs_of(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(buf.0.lock().clone()).unwrap()
    }

    #[test]
    fn one_warning_at_80_percent_of_each_quota() {
        let gate = QuotaGate::default();
        gate.set_limits(10, 100);
        let logs = logs_of(|| {
            for _ in 0..7 {
                gate.count(Bucket::Api);
            }
        });
        assert!(!logs.contains("80%"), "{logs}");
        let logs = logs_of(|| {
            for _ in 0..5 {
                gate.count(Bucket::Api);
            }
        });
        assert_eq!(
            logs.matches("80% of today's Google quota").count(),
            1,
            "{logs}"
        );
        assert!(logs.contains("(8 of 10, [google] daily_quota)"), "{logs}");
        // The media quota has its own threshold and warning.
        let logs = logs_of(|| {
            for _ in 0..80 {
                gate.count(Bucket::Media);
            }
        });
        assert_eq!(
            logs.matches("80% of today's Google quota").count(),
            1,
            "{logs}"
        );
        assert!(logs.contains("daily_media_quota"), "{logs}");
        // The Picker's limit is per minute: nothing to warn about per day.
        let logs = logs_of(|| {
            for _ in 0..200_000 {
                gate.count(Bucket::Picker);
            }
        });
        assert!(!logs.contains("80%"), "{logs}");
        assert_eq!(gate.used_today(Bucket::Api), 12, "picker calls count apart");
    }

    #[test]
    fn an_exhausted_day_keeps_the_gates_closed_after_a_restart() {
        let gate = QuotaGate::default();
        gate.restore(
            gate.today(),
            Remembered {
                media_exhausted: true,
                ..Remembered::default()
            },
            Box::new(|_, _, _| {}),
        );
        let (after, message) = refused(&gate, Bucket::Media);
        assert!((1..=25 * 3600).contains(&after), "{after}");
        assert!(message.contains("per day"), "{message}");
        gate.check_bucket(Bucket::Api).unwrap();

        let gate = QuotaGate::default();
        gate.restore(
            gate.today(),
            Remembered {
                api_exhausted: true,
                ..Remembered::default()
            },
            Box::new(|_, _, _| {}),
        );
        refused(&gate, Bucket::Api);
        gate.check_bucket(Bucket::Media).unwrap();

        let other = QuotaGate::default();
        let yesterday = other.today().pred_opt().unwrap();
        other.restore(
            yesterday,
            Remembered {
                api: 9_999,
                api_exhausted: true,
                media_exhausted: true,
                ..Remembered::default()
            },
            Box::new(|_, _, _| {}),
        );
        other.check().unwrap();
        other.check_bucket(Bucket::Media).unwrap();
        assert_eq!(other.used_today(Bucket::Api), 0);
    }

    #[test]
    fn a_daily_gate_refuses_until_pacific_midnight_then_opens() {
        let gate = QuotaGate::default();
        gate.check().unwrap();
        let err = gate.close_daily(Bucket::Api, "test");
        assert!(matches!(err, GoogleError::GateClosed { .. }));
        let (after, message) = refused(&gate, Bucket::Api);
        assert!((1..=25 * 3600).contains(&after), "{after}");
        assert!(message.contains("midnight Pacific"), "{message}");
        // Only the Library API's gate is closed.
        gate.check_bucket(Bucket::Media).unwrap();
        gate.check_bucket(Bucket::Picker).unwrap();
        // Shortly before midnight it is still closed; at midnight it opens, logged once.
        gate.clock().advance(Duration::from_secs(after - 2));
        refused(&gate, Bucket::Api);
        gate.clock().advance(Duration::from_secs(2));
        let logs = logs_of(|| {
            gate.check().unwrap();
            gate.check().unwrap();
        });
        assert_eq!(logs.matches("new Pacific-time day").count(), 1, "{logs}");
    }

    #[test]
    fn a_short_lived_429_pauses_one_minute_doubling_while_they_continue() {
        let gate = QuotaGate::default();
        let logs = logs_of(|| {
            let err = gate.throttled(Bucket::Media, None);
            assert!(matches!(err, GoogleError::GateClosed { .. }));
            // The rest of the same burst does not close it again or lengthen it.
            let _ = gate.throttled(Bucket::Media, None);
            let _ = gate.throttled(Bucket::Media, None);
        });
        assert_eq!(
            logs.matches("rate limiting this project").count(),
            1,
            "{logs}"
        );
        let (after, message) = refused(&gate, Bucket::Media);
        assert_eq!(after, 60);
        assert!(message.contains("429"), "{message}");
        gate.check().unwrap();

        gate.clock().advance(Duration::from_secs(59));
        assert_eq!(refused(&gate, Bucket::Media).0, 1);
        gate.clock().advance(Duration::from_secs(2));
        let logs = logs_of(|| gate.check_bucket(Bucket::Media).unwrap());
        assert!(logs.contains("pause is over"), "{logs}");

        // Another 429 without a success in between: two minutes, then four.
        let _ = gate.throttled(Bucket::Media, None);
        assert_eq!(refused(&gate, Bucket::Media).0, 120);
        gate.clock().advance(Duration::from_secs(121));
        let _ = gate.throttled(Bucket::Media, None);
        assert_eq!(refused(&gate, Bucket::Media).0, 240);
        // Capped at an hour.
        for _ in 0..10 {
            gate.clock().advance(MAX_PAUSE + Duration::from_secs(1));
            let _ = gate.throttled(Bucket::Media, None);
        }
        assert_eq!(refused(&gate, Bucket::Media).0, 3600);

        // A success resets the pause.
        gate.clock().advance(MAX_PAUSE + Duration::from_secs(1));
        gate.check_bucket(Bucket::Media).unwrap();
        gate.succeeded(Bucket::Media);
        let _ = gate.throttled(Bucket::Media, None);
        assert_eq!(refused(&gate, Bucket::Media).0, 60);
    }

    #[test]
    fn the_hosts_retry_after_lengthens_a_pause_up_to_an_hour() {
        let gate = QuotaGate::default();
        let _ = gate.throttled(Bucket::Media, Some(Duration::from_secs(300)));
        assert_eq!(refused(&gate, Bucket::Media).0, 300);
        let gate = QuotaGate::default();
        let _ = gate.throttled(Bucket::Media, Some(Duration::from_secs(86_400)));
        assert_eq!(refused(&gate, Bucket::Media).0, 3600);
    }

    #[test]
    fn a_429_near_the_days_quota_closes_the_gate_for_the_day() {
        let gate = QuotaGate::default();
        gate.set_limits(10_000, 100);
        for _ in 0..89 {
            gate.count(Bucket::Media);
        }
        assert!(!gate.near_daily_limit(Bucket::Media));
        let _ = gate.throttled(Bucket::Media, None);
        assert_eq!(refused(&gate, Bucket::Media).0, 60, "89%: a pause");

        let gate = QuotaGate::default();
        gate.set_limits(10_000, 100);
        for _ in 0..90 {
            gate.count(Bucket::Media);
        }
        assert!(gate.near_daily_limit(Bucket::Media));
        let _ = gate.throttled(Bucket::Media, None);
        let (after, message) = refused(&gate, Bucket::Media);
        assert!(message.contains("per day"), "{message}");
        let midnight = next_pacific_midnight(gate.clock().utc_now());
        let left = (midnight - gate.clock().utc_now()).num_seconds() as u64;
        assert!(after.abs_diff(left) <= 1, "{after} vs {left}");
        // The Picker has no daily quota to be near.
        for _ in 0..1000 {
            gate.count(Bucket::Picker);
        }
        assert!(!gate.near_daily_limit(Bucket::Picker));
    }
}
