//! Weekly maintenance windows: when a node may reboot (DESIGN §6).
//!
//! A [`Window`] opens on each of its `days` at `start_time` local time in the
//! schedule's time zone and stays open for `length_minutes` real minutes.
//! [`Windows`] is a set of them; an empty set is always open. Everything
//! here is pure: callers pass `now`.
//!
//! Documented decisions:
//! - **Skipped local time** (spring forward): a window whose start falls in
//!   the hour that does not exist opens at the first valid instant after it,
//!   i.e. the moment the clocks jump (Berlin `02:30` on the last Sunday of
//!   March opens at 03:00 CEST), and lasts `length_minutes` from there.
//! - **Repeated local time** (fall back): a start inside the repeated hour
//!   means its first occurrence (the earlier instant, still on summer time).
//! - **Length is real elapsed time**: a window spanning the repeated hour
//!   lasts exactly `length_minutes` minutes, so on the wall clock it appears
//!   to end an hour early; one spanning the skipped hour appears an hour late.
//! - **Week wrap**: occurrences are computed on real dates, so Sat 23:00 +
//!   120 min covers Sunday 00:00–01:00.
//! - Day names are accepted short (`Mon`) or long (`Monday`), in any case.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono::{Days, Weekday};
use chrono_tz::Tz;

use super::parse::MAX_LENGTH_MINUTES;

/// One weekly window: opens on each of `days` at `start` (local time) for
/// `length_minutes` real minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    days: Vec<Weekday>,
    start: NaiveTime,
    length_minutes: u32,
}

impl Window {
    /// A window; `days` must be non-empty and `length_minutes` in
    /// 1..=[`MAX_LENGTH_MINUTES`]. Duplicate days are merged.
    pub fn new(days: Vec<Weekday>, start: NaiveTime, length_minutes: u32) -> Result<Self, String> {
        if days.is_empty() {
            return Err("no days given: list at least one of Mon..Sun".to_string());
        }
        if !(1..=MAX_LENGTH_MINUTES).contains(&length_minutes) {
            return Err(format!(
                "length {length_minutes} minutes is out of range: use 1 to {MAX_LENGTH_MINUTES} (one week)"
            ));
        }
        let mut days = days;
        days.sort_by_key(|d| d.num_days_from_monday());
        days.dedup();
        Ok(Window {
            days,
            start,
            length_minutes,
        })
    }

    /// The days it opens on, Monday first.
    pub fn days(&self) -> &[Weekday] {
        &self.days
    }

    /// Local opening time.
    pub fn start(&self) -> NaiveTime {
        self.start
    }

    /// How long it stays open, in real minutes.
    pub fn length_minutes(&self) -> u32 {
        self.length_minutes
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<String> = self.days.iter().map(|d| d.to_string()).collect();
        write!(
            f,
            "{} {} for {} min",
            days.join(","),
            self.start.format("%H:%M"),
            self.length_minutes
        )
    }
}

/// A set of weekly windows in one time zone; empty = always open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows {
    tz: Tz,
    windows: Vec<Window>,
}

/// One concrete opening of a window: `[start, end)` in UTC.
type Occurrence = (DateTime<Utc>, DateTime<Utc>);

/// How far around `now` occurrences are computed, in days. A window is at
/// most a week long, so any opening that contains `now` started within the
/// last 7 days, and any future opening starts within the next 7; one more
/// day on each side absorbs time-zone offsets and DST shifts.
const HORIZON_DAYS: i64 = 8;

impl Windows {
    /// Windows in time zone `tz`.
    pub fn new(tz: Tz, windows: Vec<Window>) -> Self {
        Windows { tz, windows }
    }

    /// No windows at all: rebooting is allowed at any time.
    pub fn always_open() -> Self {
        Windows::new(Tz::UTC, Vec::new())
    }

    /// The time zone the windows' local times are in.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// The configured windows.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// True when no window is configured (always open).
    pub fn is_always_open(&self) -> bool {
        self.windows.is_empty()
    }

    /// Whether a reboot may start at `now`.
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        self.is_always_open()
            || self
                .occurrences(now)
                .iter()
                .any(|&(start, end)| start <= now && now < end)
    }

    /// The first instant at or after `now` inside a window: `now` itself when
    /// inside. `None` only if no window ever opens.
    pub fn next_opening(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.contains(now) {
            return Some(now);
        }
        self.occurrences(now)
            .into_iter()
            .map(|(start, _)| start)
            .filter(|&start| start > now)
            .min()
    }

    /// When the open period that contains `now` closes (overlapping and
    /// touching windows count as one period). `None` when `now` is outside
    /// every window, and also when the schedule never closes (no windows, or
    /// windows that cover the whole week).
    pub fn current_window_end(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_always_open() {
            return None;
        }
        let occurrences = self.occurrences(now);
        let mut end = occurrences
            .iter()
            .filter(|&&(start, end)| start <= now && now < end)
            .map(|&(_, end)| end)
            .max()?;
        // Sorted by start: extend through every opening that starts before
        // the current end (overlap or touch).
        for &(start, occ_end) in &occurrences {
            if start > end {
                break;
            }
            end = end.max(occ_end);
        }
        // Continuous for more than a week: the weekly pattern never closes.
        if end > now + Duration::days(7) {
            return None;
        }
        Some(end)
    }

    /// All openings that start within [`HORIZON_DAYS`] local days of `now`,
    /// sorted by start.
    fn occurrences(&self, now: DateTime<Utc>) -> Vec<Occurrence> {
        let today = now.with_timezone(&self.tz).date_naive();
        let mut out = Vec::new();
        for offset in -HORIZON_DAYS..=HORIZON_DAYS {
            let date = if offset < 0 {
                today.checked_sub_days(Days::new(offset.unsigned_abs()))
            } else {
                today.checked_add_days(Days::new(offset.unsigned_abs()))
            };
            let Some(date) = date else { continue };
            for window in &self.windows {
                if !window.days.contains(&date.weekday()) {
                    continue;
                }
                if let Some(start) = first_instant_at_or_after(self.tz, date.and_time(window.start))
                {
                    let end = start + Duration::minutes(i64::from(window.length_minutes));
                    out.push((start, end));
                }
            }
        }
        out.sort();
        out
    }
}

impl fmt::Display for Windows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.windows.is_empty() {
            return f.write_str("always open");
        }
        let parts: Vec<String> = self.windows.iter().map(|w| w.to_string()).collect();
        write!(f, "{} ({})", parts.join("; "), self.tz.name())
    }
}

/// Longest run of non-existent local time searched (minutes); real DST gaps
/// are one or two hours.
const MAX_GAP_MINUTES: i64 = 24 * 60;

/// The instant local time `local` denotes in `tz`: the earlier one when it
/// occurs twice, the first valid instant after it when it does not exist.
fn first_instant_at_or_after(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    for minutes in 0..=MAX_GAP_MINUTES {
        let candidate = local.checked_add_signed(Duration::minutes(minutes))?;
        match tz.from_local_datetime(&candidate) {
            LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => return Some(a.min(b).with_timezone(&Utc)),
            LocalResult::None => continue,
        }
    }
    None
}
