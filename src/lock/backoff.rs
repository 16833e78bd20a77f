//! Exponential backoff with jitter, and a retry loop bounded by a deadline.
//!
//! Jitter matters for a lock: after an etcd outage or a FleetLock server
//! restart every node of the fleet retries at once; spreading the retries
//! keeps them from arriving as one wave each round.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::LockError;

/// Delay schedule: `initial * 2^attempt`, capped at `max`, then "equal
/// jitter": a random point in the upper half, so a delay never collapses to 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Ceiling of the first delay.
    pub initial: Duration,
    /// Ceiling of every delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based); `unit` is a random
    /// number in `[0, 1)` (pure, so tests pin it).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        let ceiling = self.initial.saturating_mul(factor).min(self.max);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        ceiling / 2 + ceiling.mul_f64(unit) / 2
    }
}

/// Run `op` until it succeeds, sleeping `backoff` between transient
/// failures. Returns a permanent error at once; when `deadline` would pass
/// before the next try, returns the last transient error instead (so the
/// caller can report what was wrong, e.g. a FleetLock `kind`).
/// Dropping the future cancels the loop.
pub async fn retry_until<T, F, Fut>(
    backoff: &Backoff,
    deadline: Option<Instant>,
    mut op: F,
) -> Result<T, LockError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, LockError>>,
{
    let mut attempt = 0u32;
    loop {
        let err = match op().await {
            Ok(value) => return Ok(value),
            Err(err) if !err.is_transient() => return Err(err),
            Err(err) => err,
        };
        let delay = backoff.delay(attempt, rand::thread_rng().gen());
        if deadline.is_some_and(|d| Instant::now() + delay > d) {
            return Err(err);
        }
        tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "reboot lock: will retry");
        tokio::time::sleep(delay).await;
        attempt = attempt.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    const B: Backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(8),
    };

    #[test]
    fn delays_double_up_to_the_cap_and_stay_in_the_upper_half() {
        assert_eq!(B.delay(0, 0.0), Duration::from_millis(500));
        assert_eq!(
            B.delay(0, 0.999_999),
            Duration::from_millis(999) + Duration::from_nanos(999_500)
        );
        assert_eq!(B.delay(1, 0.0), Duration::from_secs(1));
        assert_eq!(B.delay(3, 0.5), Duration::from_secs(6));
        assert_eq!(B.delay(4, 0.0), Duration::from_secs(4));
        assert_eq!(B.delay(u32::MAX, 1.0), Duration::from_secs(8));
        assert_eq!(B.delay(2, f64::NAN), Duration::from_secs(2));
        assert_eq!(B.delay(2, -3.0), Duration::from_secs(2));
    }

    fn transient(n: usize) -> LockError {
        LockError::Server {
            status: 423,
            kind: format!("busy{n}"),
            value: String::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_with_growing_delays_until_success() {
        let start = Instant::now();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = calls.clone();
        let got = retry_until(&B, None, move || {
            let c = c.clone();
            async move {
                let mut c = c.lock().unwrap();
                c.push(Instant::now() - start);
                if c.len() < 6 {
                    Err(transient(c.len()))
                } else {
                    Ok(c.len())
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(got, 6);
        let at = calls.lock().unwrap().clone();
        for (i, pair) in at.windows(2).enumerate() {
            let gap = pair[1] - pair[0];
            let ceiling = B.initial.saturating_mul(1 << i).min(B.max);
            assert!(
                gap >= ceiling / 2 && gap <= ceiling,
                "retry {i}: {gap:?} vs {ceiling:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_deadline_with_the_last_error() {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(20);
        let mut n = 0;
        let err = retry_until(&B, Some(deadline), || {
            n += 1;
            let e = transient(n);
            async move { Err::<(), _>(e) }
        })
        .await
        .unwrap_err();
        assert!(Instant::now() <= deadline);
        assert!(n >= 3, "only {n} tries");
        assert_eq!(err.kind(), format!("busy{n}"));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_returned_at_once() {
        let mut n = 0;
        let err = retry_until(&B, None, || {
            n += 1;
            async {
                Err::<(), _>(LockError::Corrupt {
                    key: "k".into(),
                    reason: "r".into(),
                })
            }
        })
        .await
        .unwrap_err();
        assert_eq!(n, 1);
        assert_eq!(err.kind(), "corrupt_value");
    }
}
