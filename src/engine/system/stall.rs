//! Stall detection for downloads: a transfer has stalled when fewer than
//! `min_bytes` arrived during a whole `window`. Pure: the caller passes `now`.

use std::time::Duration;

use tokio::time::Instant;

/// Default window: a minute with less than a KiB is a stall.
pub const STALL_WINDOW_SECS: u64 = 60;
/// Default minimum bytes per window.
pub const STALL_MIN_BYTES: u64 = 1024;

/// Tracks bytes per window.
#[derive(Debug, Clone)]
pub struct StallDetector {
    window: Duration,
    min_bytes: u64,
    start: Instant,
    bytes: u64,
}

impl StallDetector {
    /// A detector whose first window starts at `now`.
    pub fn new(window: Duration, min_bytes: u64, now: Instant) -> Self {
        StallDetector {
            window: window.max(Duration::from_millis(1)),
            min_bytes,
            start: now,
            bytes: 0,
        }
    }

    /// When the current window ends (wait for data at most until then).
    pub fn deadline(&self) -> Instant {
        self.start + self.window
    }

    /// Record `n` bytes at `now`; `Err` with a message when the window that
    /// just ended saw too few bytes.
    pub fn feed(&mut self, now: Instant, n: u64) -> Result<(), String> {
        if now >= self.deadline() {
            if self.bytes + n < self.min_bytes {
                return Err(format!(
                    "download stalled: {} bytes in {} s (at least {} expected)",
                    self.bytes + n,
                    self.window.as_secs(),
                    self.min_bytes
                ));
            }
            self.start = now;
            self.bytes = 0;
        } else {
            self.bytes += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_few_bytes_in_a_window_is_a_stall() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let mut d = StallDetector::new(Duration::from_secs(60), 1024, t0);
        assert_eq!(d.deadline(), s(60));
        d.feed(s(10), 600).unwrap();
        d.feed(s(50), 600).unwrap();
        // The window closes with 1200 bytes: fine, a new one starts.
        d.feed(s(61), 0).unwrap();
        assert_eq!(d.deadline(), s(121));
        d.feed(s(100), 10).unwrap();
        let err = d.feed(s(121), 0).unwrap_err();
        assert_eq!(
            err,
            "download stalled: 10 bytes in 60 s (at least 1024 expected)"
        );
    }

    #[test]
    fn a_zero_window_never_divides_by_zero() {
        let t0 = Instant::now();
        let mut d = StallDetector::new(Duration::ZERO, 0, t0);
        d.feed(t0 + Duration::from_millis(5), 0).unwrap();
    }
}
