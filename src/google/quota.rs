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

use parking_lot::Mutex;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};

use super::error::GoogleError;
use crate::clock::Clock;

/// The first pause after a short-lived 429 of the content host.
pub const FIRST_PAUSE: Duration = Duration::from_secs(60);
/// The longest pause (it doubles while 429s continue).
pub const MAX_PAUSE: Duration = Duration::from_secs(3600);
/// A 429 without Google's structured details is taken for the daily quota when this share of
/// the configured quota (in percent) is counted today already: our count and Google's never
/// agree exactly (other clients of the same project, requests Google does not count), so the
/// threshold leaves a margin, and below it a 429 is far more likely a short-lived limit.
pub const NEAR_DAILY_PERCENT: u64 = 90;

/// What is counted against a quota, each with its own gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Library API requests (`[google] daily_quota` per day).
    Api,
    /// Requests to download URLs: size probes and downloads (`[google] daily_media_quota`).
    Media,
    /// Picker API requests (Google: 100,000 per minute, no daily quota; counted per day here
    /// for the metrics).
    Picker,
}

const BUCKETS: [Bucket; 3] = [Bucket::Api, Bucket::Media, Bucket::Picker];

impl Bucket {
    /// The bucket's name in the metrics and the store.
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Api => "api",
            Bucket::Media => "media",
            Bucket::Picker => "picker",
        }
    }

    /// The store's name for "the daily quota was used up that day" (`exhausted` is the Library
    /// API's, as stores written before the other buckets had gates call it).
    pub fn exhausted_key(self) -> &'static str {
        match self {
            Bucket::Api => "exhausted",
            Bucket::Media => "media_exhausted",
            Bucket::Picker => "picker_exhausted",
        }
    }

    /// What the bucket counts, for log lines and error messages.
    fn what(self) -> &'static str {
        match self {
            Bucket::Api => "Photos Library API calls",
            Bucket::Media => "media requests (downloads and size probes of download URLs)",
            Bucket::Picker => "Photos Picker API calls",
        }
    }

    /// The configuration key of the bucket's daily quota, if it has one.
    fn config_key(self) -> Option<&'static str> {
        match self {
            Bucket::Api => Some("daily_quota"),
            Bucket::Media => Some("daily_media_quota"),
            Bucket::Picker => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Where counts are written (the metadata store): `add(day, key, n)` with key a bucket's
/// [`Bucket::name`] or [`Bucket::exhausted_key`].
pub type UsageLog = Box<dyn Fn(NaiveDate, &'static str, u64) + Send + Sync>;

/// What the store remembers of one day, handed to [`QuotaGate::restore`] at start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Remembered {
    pub api: u64,
    pub media: u64,
    pub picker: u64,
    /// The daily quota of the Library API was used up that day.
    pub api_exhausted: bool,
    /// The daily quota of media requests was used up that day.
    pub media_exhausted: bool,
}

/// Today's counts.
#[derive(Debug)]
struct Day {
    day: NaiveDate,
    used: [u64; 3],
    warned: [bool; 3],
}

/// One bucket's gate.
#[derive(Debug)]
struct Gate {
    /// Closed until then; `None`: open.
    until: Option<DateTime<Utc>>,
    /// Closed for the rest of the day (a daily quota), not for a pause.
    daily: bool,
    /// The pause after the next short-lived 429.
    next_pause: Duration,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            until: None,
            daily: false,
            next_pause: FIRST_PAUSE,
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
            today: Mutex::new(Day {
                day,
                used: [0; 3],
                warned: [false; 3],
            }),
            limits: Mutex::new([10_000, 75_000]),
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
                *today = Day {
                    day,
                    used: [0; 3],
                    warned: [false; 3],
                };
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

    /// Fails while the Library API's gate is closed.
    pub fn check(&self) -> Result<(), GoogleError> {
        self.check_bucket(Bucket::Api)
    }

    /// Fails at once, without calling Google, while `bucket`'s gate is closed; the first call
    /// after it reopened logs that.
    pub fn check_bucket(&self, bucket: Bucket) -> Result<(), GoogleError> {
        let now = self.now();
        let mut gates = self.gates.lock();
        let gate = &mut gates[bucket.index()];
        match gate.until {
            Some(until) if now < until => Err(self.closed_error(bucket, gate.daily, now, until)),
            Some(_) => {
                gate.until = None;
                if std::mem::take(&mut gate.daily) {
                    tracing::info!(
                        bucket = bucket.name(),
                        "a new Pacific-time day began: calling Google again for {}",
                        bucket.what()
                    );
                } else {
                    tracing::info!(
                        bucket = bucket.name(),
                        "the pause is over: calling Google again for {}",
                        bucket.what()
                    );
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Closes `bucket`'s gate until Pacific midnight after its daily quota was used up (`why`
    /// says how we know); returns the error to answer with.
    pub fn close_daily(&self, bucket: Bucket, why: &str) -> GoogleError {
        let now = self.now();
        let until = next_pacific_midnight(now);
        let mut gates = self.gates.lock();
        let gate = &mut gates[bucket.index()];
        if !(gate.daily && gate.until.is_some_and(|u| now < u)) {
            let counted = match (self.limit(bucket), bucket.config_key()) {
                (Some(limit), Some(key)) => format!(
                    "{} counted today of [google] {key} = {limit}",
                    self.used_today(bucket)
                ),
                _ => format!("{} counted today", self.used_today(bucket)),
            };
            let raise = match bucket.config_key() {
                Some(key) => format!(" (and [google] {key} with it)"),
                None => String::new(),
            };
            tracing::warn!(
                bucket = bucket.name(),
                until = %until,
                "Google's daily quota of {} is used up ({why}; {counted}): no more of them \
                 until midnight Pacific time (in {} min); clients get 503 with Retry-After, \
                 what is cached is still served. Wait, or raise the quota on the Quotas page of \
                 the Cloud console{raise}",
                bucket.what(),
                minutes_left(now, until),
            );
            if let Some(log) = self.log.get() {
                log(pacific_today(now), bucket.exhausted_key(), 1);
            }
        }
        gate.until = Some(until);
        gate.daily = true;
        self.closed_error(bucket, true, now, until)
    }

    /// The content host answered 429 (it says no more: no JSON, no limit name). Near the daily
    /// quota that is the daily quota; otherwise the gate closes for a pause that doubles while
    /// 429s continue. Returns the error to answer with.
    pub fn throttled(&self, bucket: Bucket, retry_after: Option<Duration>) -> GoogleError {
        if self.near_daily_limit(bucket) {
            return self.close_daily(
                bucket,
                "429 from the content host, near the day's quota by our count",
            );
        }
        let now = self.now();
        let mut gates = self.gates.lock();
        let gate = &mut gates[bucket.index()];
        if let Some(until) = gate.until.filter(|u| now < *u) {
            // Another request of the same burst: the gate is closed already.
            return self.closed_error(bucket, gate.daily, now, until);
        }
        let pause = gate
            .next_pause
            .max(retry_after.unwrap_or_default().min(MAX_PAUSE));
        let until = now + chrono::Duration::from_std(pause).unwrap_or(chrono::Duration::MAX);
        gate.until = Some(until);
        gate.daily = false;
        gate.next_pause = (pause * 2).min(MAX_PAUSE);
        tracing::warn!(
            bucket = bucket.name(),
            pause_s = pause.as_secs(),
            until = %until,
            "Google's content host is rate limiting this project (429, {} of {} counted today, \
             far from the daily quota): no {} for {} s; clients get 503 with Retry-After, what \
             is cached is still served. The pause doubles while 429s continue (at most 1 h). \
             If this repeats, lower [cache] probe_concurrency or the number of parallel \
             downloads of your clients",
            self.used_today(bucket),
            self.limit(bucket).unwrap_or(0),
            bucket.what(),
            pause.as_secs(),
        );
        self.closed_error(bucket, false, now, until)
    }

    /// A request of `bucket` succeeded: the next short-lived 429 pauses for the first pause
    /// again.
    pub fn succeeded(&self, bucket: Bucket) {
        let mut gates = self.gates.lock();
        gates[bucket.index()].next_pause = FIRST_PAUSE;
    }

    fn closed_error(
        &self,
        bucket: Bucket,
        daily: bool,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> GoogleError {
        let left = (until - now).to_std().unwrap_or(Duration::ZERO);
        let retry_after =
            Duration::from_secs(left.as_secs_f64().ceil() as u64).max(Duration::from_secs(1));
        let message = if daily {
            format!(
                "the project's daily quota of {} is used up (per day); it resets at midnight \
                 Pacific time, in {} min",
                bucket.what(),
                minutes_left(now, until)
            )
        } else {
            format!(
                "Google is rate limiting the project's {} (429); they pause for {} s more, \
                 retry then",
                bucket.what(),
                retry_after.as_secs()
            )
        };
        GoogleError::GateClosed {
            message,
            retry_after,
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
