//! The one retry policy for every call to Google.
//!
//! Google asks clients to retry 429 and 5xx answers with exponential backoff and to honour
//! `Retry-After`. Connection failures and timeouts are retried the same way. Everything else
//! (a 403, a 400, a *daily* quota 429 that only Pacific midnight cures) fails at once. Attempts
//! and the total time spent waiting are both bounded, so a dead upstream turns into an error
//! the user sees instead of a hang. The waits come from `backon`'s exponential builder with
//! jitter, so a burst of failed requests does not come back in lockstep.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use super::error::GoogleError;

/// How often and how patiently a failed call to Google is repeated: one value, shared by
/// every client (and the token source), so that all calls back off alike.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// First backoff delay; it doubles on each retry (with jitter).
    pub min_delay: Duration,
    /// Longest single backoff delay.
    pub max_delay: Duration,
    /// Longest time spent waiting across all retries of one call.
    pub max_total_delay: Duration,
    /// `Retry-After` values above this are capped (a server asking for an hour is treated as a
    /// failure to come back to later, not a reason to hold a request open that long).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_total_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// A policy that retries at once, for tests (they never wait on the wall clock).
    pub fn immediate() -> Self {
        RetryPolicy {
            max_retries: 5,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_total_delay: Duration::from_millis(100),
            max_retry_after: Duration::from_millis(5),
        }
    }

    /// Runs `call` until it succeeds, fails for good, or the policy gives up.
    ///
    /// The delays come from `backon`'s exponential backoff (with jitter); the loop is written
    /// out because backon's closure combinators trip the compiler's `Send` inference for
    /// futures that borrow (rust-lang/rust#64552). The bound on the total wait is kept here,
    /// not by backon: backon only counts the delays it produced, while a `Retry-After` wait
    /// replaces its delay, so six 30 s Retry-Afters would have held a request for three
    /// minutes under a 30 s bound. A retry whose wait would take the total past
    /// `max_total_delay` is not made.
    pub async fn run<T, F, Fut>(&self, what: &'static str, call: F) -> Result<T, GoogleError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, GoogleError>>,
    {
        self.run_if(what, call, |_| true).await
    }

    /// [`RetryPolicy::run`] for a call that may only be repeated after some of the transient
    /// failures: `retryable` decides which (it is asked about transient errors only). A call
    /// that is not idempotent, such as mediaItems.batchCreate, repeats only after answers
    /// that prove nothing was done, never after a lost answer.
    pub async fn run_if<T, F, Fut>(
        &self,
        what: &'static str,
        call: F,
        retryable: impl Fn(&GoogleError) -> bool,
    ) -> Result<T, GoogleError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, GoogleError>>,
    {
        self.run_when(what, call, |e| e.is_transient() && retryable(e))
            .await
    }

    /// The loop itself: `call` is repeated after the failures `retry_on` accepts, whether
    /// transient or not (a resumable upload's chunk is sent again after the 400 that tells
    /// where Google wants it to resume). The calls to Google go through
    /// [`super::call::Caller::run`], which uses this.
    pub async fn run_when<T, F, Fut>(
        &self,
        what: &'static str,
        mut call: F,
        retry_on: impl Fn(&GoogleError) -> bool,
    ) -> Result<T, GoogleError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, GoogleError>>,
    {
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
            .with_jitter()
            .build();
        let mut waited = Duration::ZERO;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(err) if retry_on(&err) => {
                    let delay = delay_for(&err, backoff.next(), self.max_retry_after)
                        .filter(|d| waited + *d <= self.max_total_delay);
                    match delay {
                        Some(delay) => {
                            waited += delay;
                            tracing::info!(
                                call = what,
                                delay_ms = delay.as_millis() as u64,
                                "retrying after: {err}"
                            );
                            tokio::time::sleep(delay).await;
                        }
                        None => return Err(err),
                    }
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// The wait before the next attempt: the server's `Retry-After` when it gave one (capped),
/// else the backoff's. `None` means the backoff is exhausted: stop.
pub fn delay_for(err: &GoogleError, backoff: Option<Duration>, cap: Duration) -> Option<Duration> {
    let backoff = backoff?;
    match err {
        GoogleError::RateLimited {
            retry_after: Some(after),
            ..
        } => Some((*after).min(cap)),
        _ => Some(backoff),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn limited(after: u64) -> GoogleError {
        GoogleError::RateLimited {
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(after)),
            daily: false,
        }
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let cap = Duration::from_secs(30);
        let b = Some(Duration::from_millis(300));
        assert_eq!(delay_for(&limited(7), b, cap), Some(Duration::from_secs(7)));
        assert_eq!(delay_for(&limited(3600), b, cap), Some(cap));
        let e = GoogleError::Transport("reset".into());
        assert_eq!(delay_for(&e, b, cap), b);
        assert_eq!(
            delay_for(&limited(7), None, cap),
            None,
            "exhausted stays exhausted"
        );
    }

    /// The total wait is bounded with `Retry-After` counted in: waits of 20 s under a 30 s
    /// bound allow one retry (before, each replaced a backoff delay that backon counted
    /// instead, and the call retried five times over 100 s). Paused time: nothing sleeps.
    #[tokio::test(start_paused = true)]
    async fn retry_after_waits_count_towards_the_total_bound() {
        let policy = RetryPolicy {
            max_retry_after: Duration::from_secs(60),
            ..RetryPolicy::default()
        };
        assert_eq!(policy.max_total_delay, Duration::from_secs(30));
        let calls = AtomicUsize::new(0);
        let started = tokio::time::Instant::now();
        let out: Result<(), _> = policy
            .run("test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(limited(20))
            })
            .await;
        assert!(matches!(out, Err(GoogleError::RateLimited { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(started.elapsed(), Duration::from_secs(20));

        // Backoff delays and Retry-After waits add up in one total: 7 + 7 + 7 + 7 = 28 s,
        // then a fifth 7 s wait would make 35.
        calls.store(0, Ordering::SeqCst);
        let started = tokio::time::Instant::now();
        let out: Result<(), _> = policy
            .run("test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(limited(7))
            })
            .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        assert_eq!(started.elapsed(), Duration::from_secs(28));

        // A Retry-After longer than the whole bound is not waited for at all.
        calls.store(0, Ordering::SeqCst);
        let started = tokio::time::Instant::now();
        let out: Result<(), _> = policy
            .run("test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(limited(45))
            })
            .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(started.elapsed(), Duration::ZERO);

        // Backoff alone stays under the bound too, however many retries are allowed.
        let policy = RetryPolicy {
            max_retries: 100,
            ..RetryPolicy::default()
        };
        let started = tokio::time::Instant::now();
        let out: Result<(), _> = policy
            .run("test", || async { Err(GoogleError::Content(503)) })
            .await;
        assert!(out.is_err());
        assert!(started.elapsed() <= policy.max_total_delay);
        // It stops only when the next wait (at most 2 x 8 s with jitter) would not fit.
        assert!(started.elapsed() > Duration::from_secs(14), "it did retry");
    }

    #[tokio::test]
    async fn transient_errors_are_retried_and_others_are_not() {
        let policy = RetryPolicy::immediate();
        let calls = AtomicUsize::new(0);
        let out = policy
            .run("test", || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(GoogleError::Content(503)),
                    1 => Err(limited(1)),
                    2 => Err(GoogleError::Transport("reset".into())),
                    _ => Ok(42),
                }
            })
            .await;
        assert_eq!(out.unwrap(), 42);
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        calls.store(0, Ordering::SeqCst);
        let out: Result<(), _> = policy
            .run("test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(GoogleError::InsufficientScopes)
            })
            .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a 403 is not retried");

        calls.store(0, Ordering::SeqCst);
        let out: Result<(), _> = policy
            .run("test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(GoogleError::RateLimited {
                    message: "per day".into(),
                    retry_after: None,
                    daily: true,
                })
            })
            .await;
        assert!(out.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a daily quota is not retried"
        );

        calls.store(0, Ordering::SeqCst);
        let out: Result<(), _> = policy
            .run("test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(GoogleError::Content(500))
            })
            .await;
        assert!(out.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            6,
            "bounded: 1 + max_retries attempts"
        );
    }
}
