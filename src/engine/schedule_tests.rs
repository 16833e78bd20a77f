use super::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn v(s: &str) -> OsVersion {
    s.parse().unwrap()
}

#[test]
fn jitter_stays_within_ten_percent() {
    assert_eq!(jittered(secs(1000), 0.5), secs(1000));
    assert_eq!(jittered(secs(1000), 0.0), secs(900));
    assert_eq!(jittered(secs(1000), 1.0), secs(1100));
    // Garbage samples are clamped, never negative or unbounded.
    assert_eq!(jittered(secs(1000), f64::NAN), secs(1000));
    assert_eq!(jittered(secs(1000), -3.0), secs(900));
    assert_eq!(jittered(secs(0), 0.0), secs(0));
}

#[test]
fn first_check_then_periodic() {
    let mut s = Schedule::new(ScheduleSettings::default());
    assert_eq!(s.first_delay(0.5), secs(420));
    assert_eq!(s.first_delay(0.0), secs(378));
    assert_eq!(s.after(CheckOutcome::Answered, 0.5), secs(2700));
    assert_eq!(s.after(CheckOutcome::Answered, 1.0), secs(2970));
    assert_eq!(s.failures(), 0);
}

#[test]
fn failures_double_to_the_cap_and_an_answer_resets() {
    let mut s = Schedule::new(ScheduleSettings::default());
    let delays: Vec<u64> = (0..12)
        .map(|_| s.after(CheckOutcome::Failed, 0.5).as_secs())
        .collect();
    assert_eq!(
        delays,
        [60, 120, 240, 480, 960, 1920, 3840, 7680, 14400, 14400, 14400, 14400]
    );
    assert_eq!(s.failures(), 12);
    assert_eq!(s.after(CheckOutcome::Answered, 0.5), secs(2700));
    assert_eq!(s.after(CheckOutcome::Failed, 0.5), secs(60));
}

#[test]
fn many_failures_never_overflow_and_zero_base_is_not_a_busy_loop() {
    let mut s = Schedule::new(ScheduleSettings {
        backoff_base: secs(0),
        backoff_cap: secs(0),
        ..ScheduleSettings::default()
    });
    for _ in 0..100 {
        assert!(s.after(CheckOutcome::Failed, 0.0) >= Duration::from_millis(900));
    }
    let mut s = Schedule::new(ScheduleSettings::default());
    for _ in 0..100 {
        assert!(s.after(CheckOutcome::Failed, 0.5) <= secs(BACKOFF_CAP_SECS));
    }
}

#[test]
fn failover_uses_each_url_budget_times_in_order() {
    let mut f = Failover::new(vec!["a".into(), "b".into()], 2);
    assert_eq!(f.current(), Some("a"));
    assert_eq!(f.record_failure(), Some("a"));
    f.record_progress();
    assert_eq!(f.record_failure(), Some("a"), "progress resets the budget");
    assert_eq!(f.record_failure(), Some("b"));
    assert_eq!(f.record_failure(), Some("b"));
    assert_eq!(f.record_failure(), None);
    assert_eq!(f.record_failure(), None);
    assert_eq!(f.current(), None);
    let empty = Failover::new(vec![], 3);
    assert_eq!(empty.current(), None);
}

#[test]
fn offers_are_judged() {
    use OfferDecision::*;
    let cur = v("1.0.0");
    assert_eq!(judge_offer(&cur, &v("2.0.0"), None, None, false), Install);
    assert!(matches!(
        judge_offer(&cur, &v("1.0.0"), None, None, false),
        Ignore(_)
    ));
    assert!(matches!(
        judge_offer(&cur, &v("0.9.0"), None, None, false),
        Ignore(_)
    ));
    assert_eq!(judge_offer(&cur, &v("0.9.0"), None, None, true), Install);
    // Staged 2.0.0: the same or older is ignored, newer replaces it.
    let staged = v("2.0.0");
    assert!(matches!(
        judge_offer(&cur, &v("2.0.0"), Some(&staged), None, false),
        Ignore(_)
    ));
    assert_eq!(
        judge_offer(&cur, &v("2.1.0"), Some(&staged), None, false),
        Install
    );
    // Rolled back 2.0.0: never again, but a newer one is fine.
    let blocked = v("2.0.0");
    assert_eq!(
        judge_offer(&cur, &v("2.0.0"), None, Some(&blocked), false),
        Ignore("this version was rolled back on this machine")
    );
    assert_eq!(
        judge_offer(&cur, &v("2.0.1"), None, Some(&blocked), false),
        Install
    );
}
