//! The daily-quota gate.
//!
//! Google allows 10,000 Library API calls per project per Pacific-time day. Once it answers
//! 429 for the *daily* quota, every further call until midnight in Los Angeles fails the same
//! way and still counts, so the gate closes: calls fail at once, without reaching Google, with
//! a `Retry-After` pointing at Pacific midnight. What is cached keeps being served.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};

use super::error::GoogleError;

#[derive(Debug, Default)]
pub struct QuotaGate {
    closed_until: Mutex<Option<DateTime<Utc>>>,
}

impl QuotaGate {
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
