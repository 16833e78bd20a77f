use super::*;

use chrono::TimeZone;
use proptest::prelude::*;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
}

#[test]
fn parses_locksmith_initial_value_with_null_holders() {
    let s = Semaphore::parse(br#"{"semaphore":1,"max":1,"holders":null}"#).unwrap();
    assert_eq!(s.max(), 1);
    assert_eq!(s.available(), 1);
    assert!(s.holders().is_empty());
}

#[test]
fn parses_locksmith_value_without_times() {
    let s = Semaphore::parse(br#"{"semaphore":0,"max":2,"holders":["a","b"]}"#).unwrap();
    assert_eq!(s.holders()[1].id, "b");
    assert_eq!(s.holders()[0].since, None);
}

#[test]
fn round_trips_with_holder_times() {
    let mut s = Semaphore::new(3);
    assert_eq!(s.acquire("node-a", t(0)), AcquireOutcome::Taken);
    assert_eq!(s.acquire("node-b", t(60)), AcquireOutcome::Taken);
    let json = s.to_json();
    assert_eq!(
        String::from_utf8(json.clone()).unwrap(),
        r#"{"semaphore":1,"max":3,"holders":["node-a","node-b"],"holder_times":{"node-a":"2027-01-15T08:00:00Z","node-b":"2027-01-15T08:01:00Z"}}"#
    );
    assert_eq!(Semaphore::parse(&json).unwrap(), s);
}

#[test]
fn acquire_is_idempotent_and_keeps_the_first_time() {
    let mut s = Semaphore::new(1);
    assert_eq!(s.acquire("a", t(0)), AcquireOutcome::Taken);
    assert_eq!(s.acquire("a", t(99)), AcquireOutcome::AlreadyHeld);
    assert_eq!(s.holders().len(), 1);
    assert_eq!(s.holders()[0].since, Some(t(0)));
    assert_eq!(s.acquire("b", t(5)), AcquireOutcome::Full);
}

#[test]
fn release_of_a_non_holder_changes_nothing() {
    let mut s = Semaphore::new(2);
    s.acquire("a", t(0));
    let before = s.clone();
    assert!(!s.release("zzz"));
    assert_eq!(s, before);
    assert!(s.release("a"));
    assert_eq!(s.available(), 2);
}

#[test]
fn lowered_max_admits_nobody_until_below_max() {
    let mut s = Semaphore::new(3);
    for id in ["a", "b", "c"] {
        s.acquire(id, t(0));
    }
    s.set_max(1);
    assert_eq!(s.available(), -2);
    let json = String::from_utf8(s.to_json()).unwrap();
    assert!(json.starts_with(r#"{"semaphore":-2,"max":1,"#), "{json}");
    assert_eq!(s.acquire("d", t(1)), AcquireOutcome::Full);
    s.release("a");
    assert_eq!(s.acquire("d", t(1)), AcquireOutcome::Full);
    s.release("b");
    assert_eq!(s.acquire("d", t(1)), AcquireOutcome::Full);
    s.release("c");
    assert_eq!(s.acquire("d", t(1)), AcquireOutcome::Taken);
    // A holder from before the change keeps its slot when asking again.
    let mut s = Semaphore::new(2);
    s.acquire("a", t(0));
    s.acquire("b", t(0));
    s.set_max(1);
    assert_eq!(s.acquire("a", t(1)), AcquireOutcome::AlreadyHeld);
}

#[test]
fn zero_max_pauses_all_reboots() {
    let mut s = Semaphore::new(0);
    assert_eq!(s.acquire("a", t(0)), AcquireOutcome::Full);
    assert!(Semaphore::parse(&s.to_json()).is_ok());
}

#[test]
fn not_json_is_reported_as_such() {
    for bad in [&b""[..], b"{", b"hello", b"\xff\xfe", b"{\"semaphore\":1,"] {
        match Semaphore::parse(bad) {
            Err(SemaphoreError::NotJson(_)) => {}
            other => panic!("{bad:?} gave {other:?}"),
        }
    }
}

#[test]
fn foreign_json_is_reported_as_foreign() {
    for bad in [
        &br#"{"owner":"someone-else"}"#[..],
        br#"[1,2,3]"#,
        br#""semaphore""#,
        br#"42"#,
        br#"null"#,
        br#"{"semaphore":1,"max":1}"#,
        br#"{"semaphore":1,"max":1,"holders":null,"extra":true}"#,
        br#"{"semaphore":"1","max":1,"holders":[]}"#,
        br#"{"semaphore":1,"max":1.5,"holders":[]}"#,
        br#"{"semaphore":1,"max":1,"holders":[7]}"#,
    ] {
        match Semaphore::parse(bad) {
            Err(SemaphoreError::Foreign(_)) => {}
            other => panic!("{} gave {other:?}", String::from_utf8_lossy(bad)),
        }
    }
}

#[test]
fn inconsistent_values_are_rejected_with_the_reason() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"semaphore":1,"max":1,"holders":["a"]}"#,
            "minus 1 holders",
        ),
        (r#"{"semaphore":-1,"max":-1,"holders":[]}"#, "out of range"),
        (
            r#"{"semaphore":0,"max":2,"holders":["a","a"]}"#,
            "listed twice",
        ),
        (r#"{"semaphore":0,"max":1,"holders":[""]}"#, "holder id"),
        (r#"{"semaphore":0,"max":1,"holders":["a\nb"]}"#, "control"),
        (
            r#"{"semaphore":0,"max":1,"holders":["a"],"holder_times":{"a":"yesterday"}}"#,
            "holder_times[\"a\"]",
        ),
        (
            r#"{"semaphore":1,"max":1,"holders":[],"holder_times":{"ghost":"2026-01-01T00:00:00Z"}}"#,
            "not a holder",
        ),
    ];
    for (input, needle) in cases {
        match Semaphore::parse(input.as_bytes()) {
            Err(SemaphoreError::Inconsistent(msg)) => {
                assert!(msg.contains(needle), "{input}: {msg}")
            }
            other => panic!("{input} gave {other:?}"),
        }
    }
}

#[test]
fn holder_ids_are_checked_before_writing() {
    assert!(validate_holder_id("0123456789abcdef0123456789abcdef").is_ok());
    assert!(validate_holder_id("").is_err());
    assert!(validate_holder_id(&"x".repeat(MAX_HOLDER_ID_LEN + 1)).is_err());
    assert!(validate_holder_id("a\tb").is_err());
}

proptest! {
    #[test]
    fn parse_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Semaphore::parse(&bytes);
    }

    /// Any sequence of operations keeps `holders <= max` unless `max` was
    /// lowered, never admits while full, and always round-trips.
    #[test]
    fn operations_keep_the_invariant(ops in proptest::collection::vec((0u8..3, 0u8..6, 0u32..5), 0..60)) {
        let mut s = Semaphore::new(2);
        for (op, who, n) in ops {
            let id = format!("node-{who}");
            let before = s.holders().len();
            match op {
                0 => {
                    let outcome = s.acquire(&id, t(0));
                    if outcome == AcquireOutcome::Taken {
                        prop_assert!(before < s.max() as usize);
                    }
                    prop_assert!(s.is_held_by(&id) || outcome == AcquireOutcome::Full);
                }
                1 => { s.release(&id); prop_assert!(!s.is_held_by(&id)); }
                _ => s.set_max(n),
            }
            prop_assert_eq!(Semaphore::parse(&s.to_json()).unwrap(), s.clone());
        }
    }
}

/// Replays the fuzz corpus (seeds and any saved regressions) through the
/// same entry point as `fuzz/fuzz_targets/lock_semaphore.rs`.
#[test]
fn fuzz_seeds_replay() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for dir in ["seeds/lock_semaphore", "regressions/lock_semaphore"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            if let Ok(sem) = Semaphore::parse(&bytes) {
                assert_eq!(Semaphore::parse(&sem.to_json()).unwrap(), sem);
            }
            replayed += 1;
        }
    }
    assert!(replayed >= 6, "only {replayed} seeds found");
}
