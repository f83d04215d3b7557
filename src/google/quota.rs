//! The daily quotas: counting what is used, and the gate.
//!
//! Google allows 10,000 Library API calls and 75,000 download-URL requests per project per
//! Pacific-time day. Every request sent is counted here (retries too: Google counts them),
//! per day, into the metrics and, through a [`UsageLog`], into the metadata store, so the count
//! survives restarts. At 80% of a configured quota one warning is logged for the day.
//!
//! Once Google answers 429 for the *daily* quota, every further call until midnight in Los
//! Angeles fails the same way and still counts, so the gate closes: calls fail at once, without
//! reaching Google, with a `Retry-After` pointing at Pacific midnight. What is cached keeps being
//! served. The closing is logged too, so a restart the same day keeps the gate closed.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};

use super::error::GoogleError;

/// What is counted against a daily quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Library API requests (`[google] daily_quota`).
    Api,
    /// Requests to download URLs: size probes and downloads (`[google] daily_media_quota`).
    Media,
}

impl Bucket {
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Api => "api",
            Bucket::Media => "media",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Where counts are written (the metadata store): `add(day, bucket, n)` with bucket `api`,
/// `media` or `exhausted`.
pub type UsageLog = Box<dyn Fn(NaiveDate, &'static str, u64) + Send + Sync>;

/// Today's counts.
#[derive(Debug)]
struct Day {
    day: NaiveDate,
    used: [u64; 2],
    warned: [bool; 2],
}

/// The daily quotas of one Google project: counts and the gate.
pub struct QuotaGate {
    closed_until: Mutex<Option<DateTime<Utc>>>,
    today: Mutex<Day>,
    limits: Mutex<[u64; 2]>,
    log: OnceLock<UsageLog>,
}

impl std::fmt::Debug for QuotaGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaGate")
            .field("closed_until", &self.closed_until)
            .field("today", &self.today)
            .finish_non_exhaustive()
    }
}

impl Default for QuotaGate {
    fn default() -> Self {
        QuotaGate {
            closed_until: Mutex::new(None),
            today: Mutex::new(Day {
                day: pacific_today(Utc::now()),
                used: [0; 2],
                warned: [false; 2],
            }),
            limits: Mutex::new([10_000, 75_000]),
            log: OnceLock::new(),
        }
    }
}

impl QuotaGate {
    /// Sets the daily quotas (`[google] daily_quota`, `daily_media_quota`).
    pub fn set_limits(&self, api: u64, media: u64) {
        *self.limits.lock().unwrap() = [api, media];
    }

    /// Continues counting from what the store remembers of `day` (at start), and writes every
    /// further count to `log`.
    pub fn restore(&self, day: NaiveDate, api: u64, media: u64, exhausted: bool, log: UsageLog) {
        {
            let mut today = self.today.lock().unwrap();
            if today.day == day {
                today.used[0] += api;
                today.used[1] += media;
            }
        }
        let _ = self.log.set(log);
        if exhausted && day == pacific_today(Utc::now()) {
            let until = next_pacific_midnight(Utc::now());
            tracing::warn!(
                until = %until,
                "Google's daily API quota was used up earlier today; no calls until midnight \
                 Pacific time, serving what is cached"
            );
            *self.closed_until.lock().unwrap() = Some(until);
        }
        self.publish();
    }

    /// Counts one request sent to Google.
    pub fn count(&self, bucket: Bucket) {
        let now = Utc::now();
        let day = pacific_today(now);
        let i = bucket.index();
        let warn = {
            let mut today = self.today.lock().unwrap();
            if today.day != day {
                *today = Day {
                    day,
                    used: [0; 2],
                    warned: [false; 2],
                };
            }
            today.used[i] += 1;
            let limit = self.limits.lock().unwrap()[i];
            let over = today.used[i] * 5 >= limit * 4;
            let warn = over && !today.warned[i];
            if warn {
                today.warned[i] = true;
            }
            warn.then_some((today.used[i], limit))
        };
        if let Some((used, limit)) = warn {
            let key = match bucket {
                Bucket::Api => "daily_quota",
                Bucket::Media => "daily_media_quota",
            };
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
        let today = self.today.lock().unwrap();
        if today.day == pacific_today(Utc::now()) {
            today.used[bucket.index()]
        } else {
            0
        }
    }

    fn publish(&self) {
        let metrics = crate::metrics::get();
        for bucket in [Bucket::Api, Bucket::Media] {
            metrics.quota_used(bucket.name(), self.used_today(bucket));
        }
    }

    /// Fails while the daily quota is known to be used up.
    pub fn check(&self) -> Result<(), GoogleError> {
        let mut closed = self.closed_until.lock().unwrap();
        match *closed {
            Some(until) if Utc::now() < until => Err(exhausted(until)),
            Some(_) => {
                *closed = None;
                tracing::info!("a new Pacific-time day began: calling Google again");
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Closes the gate after Google reported the daily quota used up; returns the error to
    /// answer with (its Retry-After is the time left until Pacific midnight).
    pub fn close(&self, message: &str) -> GoogleError {
        let until = next_pacific_midnight(Utc::now());
        let mut closed = self.closed_until.lock().unwrap();
        if closed.is_none() {
            tracing::warn!(
                until = %until,
                "Google's daily API quota is used up ({message}); no more calls until midnight \
                 Pacific time, serving what is cached"
            );
            if let Some(log) = self.log.get() {
                log(pacific_today(Utc::now()), "exhausted", 1);
            }
        }
        *closed = Some(until);
        exhausted(until)
    }
}

fn exhausted(until: DateTime<Utc>) -> GoogleError {
    let left = (until - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    GoogleError::RateLimited {
        message: format!(
            "the project's daily quota of Photos Library API calls is used up (per day); it \
             resets at midnight Pacific time, in {} min",
            left.as_secs().div_ceil(60)
        ),
        retry_after: Some(left.max(Duration::from_secs(1))),
        daily: true,
    }
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
        let today = pacific_today(Utc::now());
        gate.restore(
            today,
            40,
            2,
            false,
            Box::new(move |day, bucket, n| sink.lock().unwrap().push((day, bucket, n))),
        );
        gate.count(Bucket::Api);
        gate.count(Bucket::Media);
        assert_eq!(gate.used_today(Bucket::Api), 41);
        assert_eq!(gate.used_today(Bucket::Media), 3);
        assert_eq!(
            *logged.lock().unwrap(),
            vec![(today, "api", 1), (today, "media", 1)]
        );
        // The gate closing is written down as well.
        let _ = gate.close("per day");
        assert_eq!(logged.lock().unwrap()[2], (today, "exhausted", 1));
    }

    /// Log lines written while `f` runs.
    fn logs_of(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
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
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
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
    }

    #[test]
    fn an_exhausted_day_keeps_the_gate_closed_after_a_restart() {
        let gate = QuotaGate::default();
        gate.restore(
            pacific_today(Utc::now()),
            0,
            0,
            true,
            Box::new(|_, _, _| {}),
        );
        assert!(matches!(
            gate.check(),
            Err(GoogleError::RateLimited { daily: true, .. })
        ));
        let other = QuotaGate::default();
        let yesterday = pacific_today(Utc::now()).pred_opt().unwrap();
        other.restore(yesterday, 9_999, 0, true, Box::new(|_, _, _| {}));
        other.check().unwrap();
        assert_eq!(other.used_today(Bucket::Api), 0);
    }

    #[test]
    fn a_closed_gate_fails_at_once_with_retry_after() {
        let gate = QuotaGate::default();
        gate.check().unwrap();
        let err = gate.close("Quota exceeded ... per day");
        match gate.check() {
            Err(GoogleError::RateLimited {
                retry_after: Some(after),
                daily: true,
                ..
            }) => assert!(after.as_secs() >= 1 && after.as_secs() <= 25 * 3600),
            other => panic!("{other:?}"),
        }
        assert!(matches!(err, GoogleError::RateLimited { daily: true, .. }));
    }
}
