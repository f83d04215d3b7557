//! The gates: one per bucket, closed for the day or for a pause, checked before a request.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{
    Bucket, FIRST_PAUSE, MAX_PAUSE, QuotaGate, minutes_left, next_pacific_midnight, pacific_today,
};
use crate::google::error::GoogleError;

/// One bucket's gate.
#[derive(Debug)]
pub(super) struct Gate {
    /// Closed until then; `None`: open.
    pub(super) until: Option<DateTime<Utc>>,
    /// Closed for the rest of the day (a daily quota), not for a pause.
    pub(super) daily: bool,
    /// The pause after the next short-lived 429.
    pub(super) next_pause: Duration,
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

impl QuotaGate {
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
