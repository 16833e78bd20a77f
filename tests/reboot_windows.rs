//! Maintenance window math: table tests, DST in Europe/Berlin and
//! America/New_York (both transitions, a start in the skipped hour, a window
//! spanning the repeated hour), the week wrap, and properties.

use ab_updater::reboot::{
    decide, Decision, LockState, RebootPolicy, Strategy as RebootStrategy, Window, Windows,
};
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use proptest::prelude::*;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn window(days: &[Weekday], h: u32, m: u32, minutes: u32) -> Window {
    Window::new(
        days.to_vec(),
        NaiveTime::from_hms_opt(h, m, 0).unwrap(),
        minutes,
    )
    .unwrap()
}

fn one(tz: Tz, days: &[Weekday], h: u32, m: u32, minutes: u32) -> Windows {
    Windows::new(tz, vec![window(days, h, m, minutes)])
}

/// Check `[start, end)` is exactly one opening as seen from just before it.
fn assert_opening(w: &Windows, start: DateTime<Utc>, end: DateTime<Utc>) {
    let before = start - Duration::hours(20);
    assert_eq!(
        w.next_opening(before),
        Some(start),
        "opening after {before}"
    );
    assert!(
        !w.contains(start - Duration::seconds(1)),
        "open before {start}"
    );
    assert!(w.contains(start), "closed at {start}");
    assert!(
        w.contains(end - Duration::seconds(1)),
        "closed before {end}"
    );
    assert!(!w.contains(end), "open at {end}");
    assert_eq!(w.current_window_end(start), Some(end));
    assert_eq!(
        w.next_opening(start + Duration::minutes(1)),
        Some(start + Duration::minutes(1))
    );
}

#[test]
fn table_in_utc() {
    // Sat+Sun 23:00 for 120 minutes; 2025-03-01 is a Saturday.
    let w = one(Tz::UTC, &[Weekday::Sat, Weekday::Sun], 23, 0, 120);
    let cases = [
        // (now, contains, next opening)
        (utc(2025, 3, 1, 22, 59), false, utc(2025, 3, 1, 23, 0)),
        (utc(2025, 3, 1, 23, 0), true, utc(2025, 3, 1, 23, 0)),
        (utc(2025, 3, 2, 0, 59), true, utc(2025, 3, 2, 0, 59)),
        (utc(2025, 3, 2, 1, 0), false, utc(2025, 3, 2, 23, 0)),
        (utc(2025, 3, 3, 0, 30), true, utc(2025, 3, 3, 0, 30)),
        (utc(2025, 3, 3, 1, 0), false, utc(2025, 3, 8, 23, 0)),
        (utc(2025, 3, 5, 12, 0), false, utc(2025, 3, 8, 23, 0)),
    ];
    for (now, inside, next) in cases {
        assert_eq!(w.contains(now), inside, "{now}");
        assert_eq!(w.next_opening(now), Some(next), "{now}");
    }
}

#[test]
fn week_wrap_saturday_night_into_sunday() {
    let w = one(Tz::UTC, &[Weekday::Sat], 23, 0, 120);
    // Sat 2025-03-01 23:00 .. Sun 01:00.
    assert_opening(&w, utc(2025, 3, 1, 23, 0), utc(2025, 3, 2, 1, 0));
    assert!(w.contains(utc(2025, 3, 2, 0, 0)));
    assert!(w.contains(utc(2025, 3, 2, 0, 59)));
    assert_eq!(
        w.current_window_end(utc(2025, 3, 2, 0, 30)),
        Some(utc(2025, 3, 2, 1, 0))
    );
    assert_eq!(
        w.next_opening(utc(2025, 3, 2, 1, 0)),
        Some(utc(2025, 3, 8, 23, 0))
    );
    // Sun 23:00 + 120 min wraps into Monday of the next week.
    let w = one(Tz::UTC, &[Weekday::Sun], 23, 0, 120);
    assert!(w.contains(utc(2025, 3, 3, 0, 30)));
}

#[test]
fn empty_list_is_always_open() {
    let w = Windows::always_open();
    let now = utc(2025, 3, 5, 12, 0);
    assert!(w.contains(now));
    assert_eq!(w.next_opening(now), Some(now));
    assert_eq!(w.current_window_end(now), None);
}

#[test]
fn overlapping_and_touching_windows_form_one_period() {
    let w = Windows::new(
        Tz::UTC,
        vec![
            window(&[Weekday::Sat], 23, 0, 120),
            window(&[Weekday::Sun], 0, 30, 60),
            window(&[Weekday::Sun], 1, 30, 30),
        ],
    );
    assert_eq!(
        w.current_window_end(utc(2025, 3, 1, 23, 10)),
        Some(utc(2025, 3, 2, 2, 0))
    );
    assert_eq!(w.current_window_end(utc(2025, 3, 2, 12, 0)), None);
}

#[test]
fn windows_covering_the_whole_week_never_close() {
    let all = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];
    let now = utc(2025, 3, 5, 12, 0);
    for w in [
        one(Tz::UTC, &all, 0, 0, 1440),
        one(Tz::Europe__Berlin, &[Weekday::Mon], 4, 0, 10080),
    ] {
        assert!(w.contains(now));
        assert_eq!(w.current_window_end(now), None);
    }
}

#[test]
fn berlin_spring_forward_start_in_skipped_hour() {
    // 2025-03-30: 02:00 CET jumps to 03:00 CEST at 01:00 UTC.
    let w = one(Tz::Europe__Berlin, &[Weekday::Sun], 2, 30, 60);
    // A normal Sunday: 02:30 CET = 01:30 UTC.
    assert_opening(&w, utc(2025, 3, 23, 1, 30), utc(2025, 3, 23, 2, 30));
    // 02:30 does not exist: opens at 03:00 CEST (01:00 UTC), for 60 real minutes.
    assert_opening(&w, utc(2025, 3, 30, 1, 0), utc(2025, 3, 30, 2, 0));
    // The next week is on summer time: 02:30 CEST = 00:30 UTC.
    assert_opening(&w, utc(2025, 4, 6, 0, 30), utc(2025, 4, 6, 1, 30));
}

#[test]
fn berlin_spring_forward_window_spanning_the_gap() {
    // 01:30 CET (00:30 UTC) + 120 real minutes = 02:30 UTC, which the wall
    // clock shows as 04:30 CEST.
    let w = one(Tz::Europe__Berlin, &[Weekday::Sun], 1, 30, 120);
    assert_opening(&w, utc(2025, 3, 30, 0, 30), utc(2025, 3, 30, 2, 30));
}

#[test]
fn berlin_fall_back_start_in_repeated_hour_and_spanning_it() {
    // 2025-10-26: 03:00 CEST goes back to 02:00 CET at 01:00 UTC.
    let w = one(Tz::Europe__Berlin, &[Weekday::Sun], 2, 30, 60);
    // 02:30 happens twice: the first (CEST, 00:30 UTC) counts.
    assert_opening(&w, utc(2025, 10, 26, 0, 30), utc(2025, 10, 26, 1, 30));
    // The second 02:30 (CET, 01:30 UTC) is not a new opening.
    assert!(!w.contains(utc(2025, 10, 26, 1, 45)));
    assert_eq!(
        w.next_opening(utc(2025, 10, 26, 1, 30)),
        Some(utc(2025, 11, 2, 1, 30))
    );
    // 01:30 CEST + 120 real minutes: 23:30 UTC Sat .. 01:30 UTC, which is
    // 02:30 CET on the wall clock (the repeated hour is not counted twice).
    let w = one(Tz::Europe__Berlin, &[Weekday::Sun], 1, 30, 120);
    assert_opening(&w, utc(2025, 10, 25, 23, 30), utc(2025, 10, 26, 1, 30));
}

#[test]
fn new_york_spring_forward() {
    // 2025-03-09: 02:00 EST jumps to 03:00 EDT at 07:00 UTC.
    let w = one(Tz::America__New_York, &[Weekday::Sun], 2, 15, 30);
    assert_opening(&w, utc(2025, 3, 2, 7, 15), utc(2025, 3, 2, 7, 45));
    assert_opening(&w, utc(2025, 3, 9, 7, 0), utc(2025, 3, 9, 7, 30));
    assert_opening(&w, utc(2025, 3, 16, 6, 15), utc(2025, 3, 16, 6, 45));
    // Spanning the gap: 01:00 EST (06:00 UTC) + 120 min = 08:00 UTC (04:00 EDT).
    let w = one(Tz::America__New_York, &[Weekday::Sun], 1, 0, 120);
    assert_opening(&w, utc(2025, 3, 9, 6, 0), utc(2025, 3, 9, 8, 0));
}

#[test]
fn new_york_fall_back() {
    // 2025-11-02: 02:00 EDT goes back to 01:00 EST at 06:00 UTC.
    let w = one(Tz::America__New_York, &[Weekday::Sun], 1, 30, 60);
    // First 01:30 (EDT) = 05:30 UTC; lasts 60 real minutes.
    assert_opening(&w, utc(2025, 11, 2, 5, 30), utc(2025, 11, 2, 6, 30));
    // Spanning the repeated hour: 00:30 EDT + 180 min = 07:30 UTC = 02:30 EST.
    let w = one(Tz::America__New_York, &[Weekday::Sun], 0, 30, 180);
    assert_opening(&w, utc(2025, 11, 2, 4, 30), utc(2025, 11, 2, 7, 30));
    assert!(w.contains(utc(2025, 11, 2, 6, 45)));
}

#[test]
fn display_lists_windows_and_zone() {
    let w = Windows::new(
        Tz::Europe__Berlin,
        vec![window(&[Weekday::Sun, Weekday::Sat], 23, 0, 120)],
    );
    assert_eq!(w.to_string(), "Sat,Sun 23:00 for 120 min (Europe/Berlin)");
    assert_eq!(Windows::always_open().to_string(), "always open");
}

#[test]
fn invalid_windows_are_refused() {
    let t = NaiveTime::from_hms_opt(1, 0, 0).unwrap();
    assert!(Window::new(vec![], t, 10).unwrap_err().contains("no days"));
    assert!(Window::new(vec![Weekday::Mon], t, 0)
        .unwrap_err()
        .contains("out of range"));
    assert!(Window::new(vec![Weekday::Mon], t, 10081).is_err());
}

const ZONES: [Tz; 6] = [
    Tz::UTC,
    Tz::Europe__Berlin,
    Tz::America__New_York,
    Tz::Australia__Lord_Howe, // 30-minute DST shift
    Tz::Asia__Kathmandu,      // +05:45
    Tz::America__Sao_Paulo,   // historical DST at midnight
];

fn arb_windows() -> impl Strategy<Value = Windows> {
    let arb_window = (1u8..128, 0u32..24, 0u32..60, 1u32..=10080).prop_map(|(mask, h, m, len)| {
        let days = (0..7)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| Weekday::try_from(i as u8).unwrap())
            .collect();
        Window::new(days, NaiveTime::from_hms_opt(h, m, 0).unwrap(), len).unwrap()
    });
    (0..ZONES.len(), prop::collection::vec(arb_window, 0..4))
        .prop_map(|(zone, windows)| Windows::new(ZONES[zone], windows))
}

/// 2010..2030, including every DST change of those years.
fn arb_time() -> impl Strategy<Value = DateTime<Utc>> {
    (1_262_304_000i64..1_893_456_000).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn inside_iff_next_opening_is_now(w in arb_windows(), t in arb_time()) {
        let next = w.next_opening(t);
        prop_assert_eq!(w.contains(t), next == Some(t));
        let next = next.expect("non-empty days always open within a week");
        prop_assert!(next >= t, "next opening {} is in the past of {}", next, t);
        prop_assert!(next - t <= Duration::days(8));
        if next > t {
            // Nothing in between is open, and the opening itself is.
            prop_assert!(w.contains(next));
            prop_assert!(!w.contains(next - Duration::seconds(1)));
            // One answer: asking again later before the opening agrees.
            let mid = t + (next - t) / 2;
            prop_assert_eq!(w.next_opening(mid), Some(next));
        }
    }

    #[test]
    fn window_end_is_where_it_closes(w in arb_windows(), t in arb_time()) {
        match w.current_window_end(t) {
            Some(end) => {
                prop_assert!(w.contains(t));
                prop_assert!(end > t);
                prop_assert!(w.contains(end - Duration::seconds(1)));
                prop_assert!(!w.contains(end));
            }
            None if w.contains(t) => {
                // Never closes: open for the whole next week.
                for hours in [1, 24, 24 * 3, 24 * 7] {
                    prop_assert!(w.contains(t + Duration::hours(hours)));
                }
            }
            None => {}
        }
    }
}

fn arb_lock() -> impl Strategy<Value = LockState> {
    prop_oneof![
        Just(LockState::NotNeeded),
        Just(LockState::Held),
        Just(LockState::NotHeld),
        Just(LockState::Error("unreachable".into())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// The policy's safety rules hold for any schedule, time and lock state:
    /// never reboot outside a window, never without the lock under a lock
    /// strategy, never at all with `off`; a wait ends at the next opening.
    #[test]
    fn policy_never_reboots_outside_window_or_without_lock(
        w in arb_windows(),
        t in arb_time(),
        strategy in prop::sample::select(RebootStrategy::ALL.to_vec()),
        lock in arb_lock(),
    ) {
        let policy = RebootPolicy { strategy, windows: w.clone() };
        match decide(t, &policy, &lock) {
            Decision::RebootNow { .. } => {
                prop_assert!(strategy != RebootStrategy::Off);
                prop_assert!(w.contains(t));
                prop_assert!(!strategy.needs_lock() || lock == LockState::Held);
            }
            Decision::WaitUntil { at, .. } => {
                prop_assert!(!w.contains(t));
                prop_assert_eq!(Some(at), w.next_opening(t));
            }
            Decision::WaitForLock { .. } => {
                prop_assert!(strategy.needs_lock() && w.contains(t));
                prop_assert!(lock != LockState::Held);
            }
            Decision::Never { .. } => prop_assert_eq!(strategy, RebootStrategy::Off),
        }
    }
}
