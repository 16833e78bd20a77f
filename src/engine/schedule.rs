//! When to check for updates, which payload URL to try next and whether an
//! offered version is worth installing. All pure: callers pass the random
//! sample for jitter and the versions they observed.

use std::time::Duration;

use crate::version::OsVersion;

/// Jitter applied to every delay: ±10 % so a fleet started at once spreads out.
const JITTER_PERCENT: u64 = 10;
/// First retry delay after a failed check; it doubles per consecutive failure.
pub const BACKOFF_BASE_SECS: u64 = 60;
/// Retries never wait longer than this (update_engine's cap: 4 h).
pub const BACKOFF_CAP_SECS: u64 = 4 * 3600;

/// Timing settings of the check schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSettings {
    /// Delay of the first check after start (`server.first_check_delay_seconds`).
    pub first_check_delay: Duration,
    /// Delay between successful checks (`server.check_interval_seconds`).
    pub interval: Duration,
    /// First retry delay after a failure.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_cap: Duration,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        ScheduleSettings {
            first_check_delay: Duration::from_secs(420),
            interval: Duration::from_secs(2700),
            backoff_base: Duration::from_secs(BACKOFF_BASE_SECS),
            backoff_cap: Duration::from_secs(BACKOFF_CAP_SECS),
        }
    }
}

/// How a check ended, as far as the schedule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The server answered (update or no update).
    Answered,
    /// The server or the network failed; back off.
    Failed,
}

/// The check schedule: remembers consecutive failures for the backoff.
#[derive(Debug, Clone)]
pub struct Schedule {
    settings: ScheduleSettings,
    failures: u32,
}

/// `base` moved by up to ±JITTER_PERCENT; `random` is a sample in [0, 1).
pub fn jittered(base: Duration, random: f64) -> Duration {
    let random = if random.is_finite() {
        random.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let span = base.as_secs_f64() * JITTER_PERCENT as f64 / 100.0;
    Duration::from_secs_f64((base.as_secs_f64() + span * (2.0 * random - 1.0)).max(0.0))
}

impl Schedule {
    /// A schedule with no failures yet.
    pub fn new(settings: ScheduleSettings) -> Self {
        Schedule {
            settings,
            failures: 0,
        }
    }

    /// Consecutive failed checks so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Delay from engine start to the first check.
    pub fn first_delay(&self, random: f64) -> Duration {
        jittered(self.settings.first_check_delay, random)
    }

    /// Record how a check ended and return the delay to the next one:
    /// the interval after an answer, else the base doubled per consecutive
    /// failure up to the cap (never sooner than the base: no busy loop).
    pub fn after(&mut self, outcome: CheckOutcome, random: f64) -> Duration {
        match outcome {
            CheckOutcome::Answered => {
                self.failures = 0;
                jittered(self.settings.interval, random)
            }
            CheckOutcome::Failed => {
                self.failures = self.failures.saturating_add(1);
                let doublings = (self.failures - 1).min(32);
                let base = self.settings.backoff_base.max(Duration::from_secs(1));
                let delay = base
                    .checked_mul(1u32 << doublings.min(31))
                    .unwrap_or(self.settings.backoff_cap)
                    .min(self.settings.backoff_cap.max(base));
                jittered(delay, random)
            }
        }
    }

    /// A check was due while the engine was busy (installing, rebooting):
    /// try again after the regular interval; failures are not counted.
    pub fn after_busy(&self, random: f64) -> Duration {
        jittered(self.settings.interval, random)
    }
}

/// Payload URLs in failover order, each with a budget of consecutive failures.
#[derive(Debug, Clone)]
pub struct Failover {
    urls: Vec<String>,
    failures: Vec<u32>,
    budget: u32,
}

impl Failover {
    /// `budget` failures are allowed per URL before moving to the next one.
    pub fn new(urls: Vec<String>, budget: u32) -> Self {
        let failures = vec![0; urls.len()];
        Failover {
            urls,
            failures,
            budget: budget.max(1),
        }
    }

    /// The URL to use now, or `None` when every URL used up its budget.
    pub fn current(&self) -> Option<&str> {
        self.urls
            .iter()
            .zip(&self.failures)
            .find(|(_, &f)| f < self.budget)
            .map(|(u, _)| u.as_str())
    }

    /// The current URL failed once; returns the URL to use next.
    pub fn record_failure(&mut self) -> Option<&str> {
        let budget = self.budget;
        if let Some(f) = self.failures.iter_mut().find(|f| **f < budget) {
            *f += 1;
        }
        self.current()
    }

    /// The current URL made progress: its consecutive failures start over.
    pub fn record_progress(&mut self) {
        let budget = self.budget;
        if let Some(f) = self.failures.iter_mut().find(|f| **f < budget) {
            *f = 0;
        }
    }
}

/// What to do with a version the server offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferDecision {
    /// Download and install it.
    Install,
    /// Leave it alone, for the reason given.
    Ignore(&'static str),
}

/// Decide about an offered version. `blocked` is a version that was rolled
/// back on this machine: it is never retried (a newer one is fine).
pub fn judge_offer(
    current: &OsVersion,
    offered: &OsVersion,
    staged: Option<&OsVersion>,
    blocked: Option<&OsVersion>,
    allow_downgrade: bool,
) -> OfferDecision {
    if blocked == Some(offered) {
        return OfferDecision::Ignore("this version was rolled back on this machine");
    }
    if let Some(staged) = staged {
        if offered <= staged {
            return OfferDecision::Ignore("already staged; waiting for the reboot");
        }
    }
    if offered == current {
        return OfferDecision::Ignore("already running this version");
    }
    if offered < current && !allow_downgrade {
        return OfferDecision::Ignore("older than the running version (downgrades not allowed)");
    }
    OfferDecision::Install
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
