//! Exponential backoff with jitter for throttled (`Throttling`, HTTP 429) and failed
//! (HTTP 5xx, timeouts, connection errors) CloudWatch calls. CloudWatch's GetMetricData
//! has a per-account TPS quota; a pass that meets it waits and carries on rather than
//! losing the window.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use aws_sdk_cloudwatch::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Error codes that mean "slow down" or "try again".
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalServiceError",
    "InternalServiceFault",
];

/// A retry policy: up to `max_attempts` tries, waiting a random time between half and
/// all of `base × 2^n` (capped at `max`) before try `n + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Tries in total, the first included (at least 1).
    pub max_attempts: u32,
    /// The first wait.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base: Duration::from_millis(250),
            max: Duration::from_secs(20),
        }
    }
}

/// Whether an SDK error is worth retrying: throttling, 5xx, timeouts, connection failures.
pub fn is_retryable<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            status == 429
                || status >= 500
                || se
                    .err()
                    .code()
                    .is_some_and(|c| RETRYABLE_CODES.contains(&c))
        }
        _ => false,
    }
}

/// A one-line description of an SDK error with its code and message.
pub fn describe<E: std::error::Error + 'static>(err: &SdkError<E>) -> String {
    DisplayErrorContext(err).to_string()
}

fn jitter_fraction() -> f64 {
    // A fresh RandomState is randomly keyed: enough randomness for jitter without a crate.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

impl Backoff {
    /// The wait before try `attempt + 1` (attempt counts from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(
                1u32.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max);
        exp.mul_f64(0.5 + 0.5 * jitter_fraction())
    }

    /// Runs `call` until it succeeds, fails with a non-retryable error, or the attempts run
    /// out. Returns the last result and how many retries it took.
    pub async fn retry<T, E, F, Fut>(
        &self,
        operation: &str,
        mut call: F,
    ) -> (Result<T, SdkError<E>>, usize)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(v) => return (Ok(v), (attempt - 1) as usize),
                Err(e) if attempt < self.max_attempts.max(1) && is_retryable(&e) => {
                    let wait = self.delay(attempt);
                    tracing::debug!(operation, attempt, ?wait, error = %describe(&e), "cloudwatch call retried");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return (Err(e), (attempt - 1) as usize),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_jittered() {
        let b = Backoff {
            max_attempts: 10,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for attempt in 1..=8 {
            let d = b.delay(attempt);
            let full =
                Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(1));
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempt}: {d:?} vs {full:?}"
            );
        }
        assert!(b.delay(40) <= Duration::from_secs(1));
        let distinct: std::collections::HashSet<Duration> = (0..20).map(|_| b.delay(3)).collect();
        assert!(distinct.len() > 1, "no jitter");
    }
}
