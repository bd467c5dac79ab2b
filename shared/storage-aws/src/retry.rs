//! Retries with jittered exponential backoff under a deadline.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ember_storage::StorageError;
use tokio::time::Instant;

use crate::api::DdbError;

/// Backoff settings.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First delay ceiling.
    pub base: Duration,
    /// Largest delay ceiling.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(1000),
        }
    }
}

static SEED: AtomicU64 = AtomicU64::new(0x2545_f491_4f6c_dd1d);

/// A pseudo-random number (xorshift; jitter only, not security).
fn next_random() -> u64 {
    let mut x = SEED.load(Ordering::Relaxed);
    if x == 0x2545_f491_4f6c_dd1d {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        x ^= nanos | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    SEED.store(x, Ordering::Relaxed);
    x
}

impl Backoff {
    /// "Full jitter" delay for retry number `attempt` (0-based): uniform in
    /// `[0, min(cap, base * 2^attempt)]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.cap);
        let nanos = ceiling.as_nanos() as u64;
        if nanos == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(next_random() % (nanos + 1))
        }
    }
}

/// Maps a final DynamoDB failure to the storage error the API answers with.
pub fn to_storage_error(e: DdbError) -> StorageError {
    match e {
        DdbError::Throttled { .. } | DdbError::Transient { .. } => {
            StorageError::Unavailable(e.to_string())
        }
        DdbError::Fatal { context, message } => StorageError::Internal { context, message },
    }
}

/// Runs `op` until it succeeds, fails for good, or `deadline` passes (then
/// [`StorageError::Unavailable`]). Each attempt is also cut off at the deadline.
pub async fn retry<T, F, Fut>(
    deadline: Instant,
    backoff: Backoff,
    what: &str,
    mut op: F,
) -> Result<T, StorageError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DdbError>>,
{
    let mut attempt = 0u32;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(StorageError::Unavailable(format!(
                "{what}: deadline passed after {attempt} attempt(s)"
            )));
        }
        match tokio::time::timeout_at(deadline, op()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) if e.retryable() => {
                tracing::debug!(error = %e, attempt, "{what}: retrying");
            }
            Ok(Err(e)) => return Err(to_storage_error(e)),
            Err(_) => {
                return Err(StorageError::Unavailable(format!(
                    "{what}: timed out after {attempt} attempt(s)"
                )));
            }
        }
        let pause = backoff.delay(attempt);
        let until = (Instant::now() + pause).min(deadline);
        tokio::time::sleep_until(until).await;
        attempt += 1;
    }
}
