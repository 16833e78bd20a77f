use std::path::Path;
use std::time::Duration;

use chrono::{NaiveTime, TimeZone, Utc, Weekday};
use tokio::task::JoinHandle;

use super::*;
use crate::engine::actor::{start, EngineSettings, Handle};
use crate::engine::backend::CheckAnswer;
use crate::engine::fake::FakeBackend;
use crate::engine::schedule::ScheduleSettings;
use crate::engine::state::Offer;
use crate::engine::status::StatusReport;
use crate::engine::store::{Installed, Paths, Persisted, Store};
use crate::reboot::windows::{Window, Windows};
use crate::slot::SlotId;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Wednesday 2025-03-05 12:00 UTC.
fn wednesday_noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 5, 12, 0, 0).unwrap()
}

/// Saturday 23:00 UTC for two hours.
fn saturday_night() -> Windows {
    let start = NaiveTime::from_hms_opt(23, 0, 0).unwrap();
    Windows::new(
        chrono_tz::Tz::UTC,
        vec![Window::new(vec![Weekday::Sat], start, 120).unwrap()],
    )
}

fn reboot_settings(strategy: Strategy, windows: Windows) -> RebootSettings {
    RebootSettings {
        policy: RebootPolicy { strategy, windows },
        lock_backoff: Backoff {
            initial: secs(1),
            max: secs(60),
        },
        retry_after_cancel: secs(600),
        clock: WallClock::starting_at(wednesday_noon()),
    }
}

fn engine_settings(reboot: RebootSettings) -> EngineSettings {
    EngineSettings {
        current_version: "1.0.0".into(),
        // No scheduled check gets in the way of the reboot being tested.
        schedule: ScheduleSettings {
            first_check_delay: secs(30 * 24 * 3600),
            interval: secs(30 * 24 * 3600),
            ..ScheduleSettings::default()
        },
        allow_downgrade: false,
        reboot,
        health_grace: secs(45),
    }
}

fn installed(boot_id: &str) -> Installed {
    Installed {
        version: "2.0.0".into(),
        slot: SlotId::B,
        previous_version: "1.0.0".into(),
        boot_id: boot_id.into(),
        installed_at: wednesday_noon(),
    }
}

/// Start an engine whose `state.json` says 2.0.0 was installed to slot B
/// in boot `installed_in`.
async fn start_with_installed(
    fake: &FakeBackend,
    reboot: RebootSettings,
    dir: &Path,
    installed_in: &str,
) -> (Handle, JoinHandle<()>) {
    let store = Store::open(Paths::sandbox(dir.join("state"), &dir.join("run"))).unwrap();
    store
        .save(&Persisted {
            installed: Some(installed(installed_in)),
            ..Persisted::default()
        })
        .unwrap();
    start(fake.clone(), engine_settings(reboot), store)
        .await
        .unwrap()
}

/// Poll (in paused time) until the status reaches `phase`.
async fn until_phase(h: &Handle, phase: &str) -> StatusReport {
    for _ in 0..100_000 {
        let s = h.status().await.unwrap();
        if s.phase == phase {
            return s;
        }
        tokio::time::sleep(secs(30)).await;
    }
    panic!("never reached {phase}");
}

fn position(calls: &[String], call: &str) -> usize {
    calls
        .iter()
        .position(|c| c == call)
        .unwrap_or_else(|| panic!("no {call:?} in {calls:?}"))
}

#[tokio::test(start_paused = true)]
async fn window_closed_waits_for_the_opening_then_reboots() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    let settings = reboot_settings(Strategy::Immediate, saturday_night());
    let started = tokio::time::Instant::now();
    let (h, _t) = start_with_installed(&fake, settings, dir.path(), "boot-1").await;
    let s = h.status().await.unwrap();
    let opening = Utc.with_ymd_and_hms(2025, 3, 8, 23, 0, 0).unwrap();
    assert_eq!(s.phase, "waiting-for-window");
    assert_eq!(s.status, "UPDATE_STATUS_UPDATED_NEED_REBOOT");
    assert_eq!(s.window_opens, Some(opening));
    assert!(s.message.unwrap().contains("2025-03-08T23:00:00Z"));
    let metrics = h.metrics().await.unwrap();
    assert!(metrics.contains("update_engine_reboot_phase{phase=\"waiting-for-window\"} 1"));

    // A day later: still waiting, nothing ran.
    tokio::time::sleep(secs(24 * 3600)).await;
    assert_eq!(h.status().await.unwrap().phase, "waiting-for-window");
    assert!(fake.calls_starting("reboot").is_empty());
    assert!(fake.calls_starting("pre_reboot").is_empty());

    until_phase(&h, "rebooting").await;
    let waited = chrono::Duration::from_std(started.elapsed()).unwrap();
    assert!(
        wednesday_noon() + waited >= opening,
        "rebooted before the window opened"
    );
    let calls = fake.calls();
    assert!(position(&calls, "pre_reboot 2.0.0") < position(&calls, "reboot"));
    // No lock strategy: the lock is never touched.
    assert!(fake.calls_starting("lock").is_empty());
}

#[tokio::test(start_paused = true)]
async fn lock_held_by_others_waits_then_reboots_once_free() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    for _ in 0..3 {
        fake.push_lock(Ok(false));
    }
    let settings = reboot_settings(Strategy::EtcdLock, Windows::always_open());
    let (h, _t) = start_with_installed(&fake, settings, dir.path(), "boot-1").await;
    let waiting = until_phase(&h, "waiting-for-lock").await;
    assert!(waiting
        .message
        .unwrap()
        .contains("waiting for a slot of the etcd reboot lock"));
    until_phase(&h, "rebooting").await;
    let calls = fake.calls();
    // The stale slot is given back first (Flatcar#408), then 3 refusals
    // and one success.
    assert_eq!(
        calls,
        vec![
            "lock release",
            "lock acquire",
            "lock acquire",
            "lock acquire",
            "lock acquire",
            "pre_reboot 2.0.0",
            "reboot"
        ]
    );
    let metrics = h.metrics().await.unwrap();
    assert!(
        metrics.contains("update_engine_reboot_lock_held 1"),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn unreachable_lock_never_reboots_and_counts_errors() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    for _ in 0..10_000 {
        fake.push_lock(Err(LockError::Unavailable("connection refused".into())));
    }
    let settings = reboot_settings(Strategy::EtcdLock, Windows::always_open());
    let (h, _t) = start_with_installed(&fake, settings, dir.path(), "boot-1").await;
    tokio::time::sleep(secs(6 * 3600)).await;
    let s = h.status().await.unwrap();
    assert_eq!(s.phase, "waiting-for-lock");
    assert!(s.message.unwrap().contains("connection refused"));
    assert!(fake.calls_starting("reboot").is_empty());
    assert!(fake.calls_starting("pre_reboot").is_empty());
    let attempts = fake.calls_starting("lock acquire").len();
    // Backoff capped at 60 s: about one attempt a minute, not a busy loop.
    assert!((100..=720).contains(&attempts), "{attempts} attempts");
    let metrics = h.metrics().await.unwrap();
    assert!(
        metrics.contains(&format!(
            "update_engine_lock_errors_total{{kind=\"unavailable\"}} {attempts}"
        )),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn no_lock_attempt_before_the_stale_slot_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    for _ in 0..3 {
        fake.push_release(Err(LockError::Unavailable("no leader".into())));
    }
    let settings = reboot_settings(Strategy::EtcdLock, Windows::always_open());
    let (h, _t) = start_with_installed(&fake, settings, dir.path(), "boot-1").await;
    until_phase(&h, "rebooting").await;
    let calls = fake.calls();
    assert_eq!(
        &calls[..5],
        ["lock release"; 4]
            .iter()
            .chain(["lock acquire"].iter())
            .copied()
            .collect::<Vec<_>>()
    );
    let metrics = h.metrics().await.unwrap();
    assert!(
        metrics.contains("update_engine_lock_errors_total{kind=\"unavailable\"} 3"),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn failing_hook_releases_the_lock_and_retries_later() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    fake.push_pre_reboot(Err("pre-reboot hook `drain` failed (exit status: 1)".into()));
    let settings = reboot_settings(Strategy::FleetLock, Windows::always_open());
    let started = tokio::time::Instant::now();
    let (h, _t) = start_with_installed(&fake, settings, dir.path(), "boot-1").await;
    tokio::time::sleep(secs(10)).await;
    let s = h.status().await.unwrap();
    assert_eq!(s.phase, "updated-need-reboot");
    let message = s.message.unwrap();
    assert!(
        message.contains("drain") && message.contains("trying again in 600s"),
        "{message}"
    );
    assert_eq!(
        fake.calls(),
        vec![
            "lock release",
            "lock acquire",
            "pre_reboot 2.0.0",
            "lock release"
        ]
    );
    until_phase(&h, "rebooting").await;
    assert!(started.elapsed() >= secs(600));
    assert_eq!(
        fake.calls()[4..],
        ["lock acquire", "pre_reboot 2.0.0", "reboot"]
    );
    assert!(h
        .metrics()
        .await
        .unwrap()
        .contains("update_engine_errors_total{kind=\"pre_reboot_hook\"} 1"));
}

#[tokio::test(start_paused = true)]
async fn failing_reboot_command_releases_the_lock_and_retries_later() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    fake.0.lock().unwrap().reboot_fails = true;
    let settings = reboot_settings(Strategy::EtcdLock, Windows::always_open());
    let (h, _t) = start_with_installed(&fake, settings, dir.path(), "boot-1").await;
    tokio::time::sleep(secs(10)).await;
    let s = h.status().await.unwrap();
    assert_eq!(s.phase, "updated-need-reboot");
    assert!(s.message.unwrap().contains("the reboot command failed"));
    assert_eq!(fake.calls().last().unwrap(), "lock release");
    fake.0.lock().unwrap().reboot_fails = false;
    until_phase(&h, "rebooting").await;
    assert_eq!(fake.calls_starting("reboot").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn strategy_off_stays_staged_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    let settings = reboot_settings(Strategy::Off, saturday_night());
    let (h, _t) = start_with_installed(&fake, settings, dir.path(), "boot-1").await;
    tokio::time::sleep(secs(7 * 24 * 3600)).await;
    let s = h.status().await.unwrap();
    assert_eq!(s.phase, "updated-need-reboot");
    assert!(s.message.unwrap().contains("reboot strategy is off"));
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[tokio::test(start_paused = true)]
async fn the_slot_is_released_only_after_the_new_boot_is_marked_good() {
    let dir = tempfile::tempdir().unwrap();
    // The machine rebooted into slot B, on trial.
    let fake = FakeBackend::new(SlotId::B, false, "boot-2");
    let settings = reboot_settings(Strategy::EtcdLock, Windows::always_open());
    let (h, _t) = start_with_installed(&fake, settings, dir.path(), "boot-1").await;
    assert_eq!(h.status().await.unwrap().phase, "trial-boot");
    tokio::time::sleep(secs(10)).await;
    assert!(
        fake.calls_starting("lock").is_empty(),
        "held during the trial"
    );
    until_phase(&h, "good").await;
    tokio::time::sleep(secs(1)).await;
    let calls = fake.calls_except_reports();
    assert_eq!(calls, vec!["health_check", "mark_good B", "lock release"]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_trial_keeps_the_slot_until_back_on_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new(SlotId::B, false, "boot-2");
    fake.set_health(Err("unit sshd.service is failed".into()));
    let settings = reboot_settings(Strategy::EtcdLock, Windows::always_open());
    let (h, task) = start_with_installed(&fake, settings.clone(), dir.path(), "boot-1").await;
    until_phase(&h, "rebooting").await;
    assert!(fake.calls_starting("lock").is_empty());
    h.shutdown().await;
    task.await.unwrap();

    // Back on slot A: a rollback, and the slot goes back.
    let fake = FakeBackend::new(SlotId::A, true, "boot-3");
    let store = Store::open(Paths::sandbox(
        dir.path().join("state"),
        &dir.path().join("run"),
    ))
    .unwrap();
    let (h, _t) = start(fake.clone(), engine_settings(settings), store)
        .await
        .unwrap();
    assert_eq!(h.status().await.unwrap().phase, "rolled-back");
    tokio::time::sleep(secs(1)).await;
    assert_eq!(fake.calls_starting("lock"), vec!["lock release"]);
}

#[tokio::test(start_paused = true)]
async fn a_newer_release_seen_while_waiting_replaces_the_staged_one() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    fake.push_check(Ok(CheckAnswer::Update(Offer {
        version: "3.0.0".into(),
        urls: vec!["http://127.0.0.1:1/p".into()],
        size: 1000,
        sha256_hex: "00".repeat(32),
    })));
    let settings = reboot_settings(Strategy::EtcdLock, saturday_night());
    let (h, _t) = start_with_installed(&fake, settings, dir.path(), "boot-1").await;
    assert_eq!(
        h.status().await.unwrap().new_version.as_deref(),
        Some("2.0.0")
    );
    h.check().await.unwrap().unwrap();
    tokio::time::sleep(secs(5)).await;
    let s = until_phase(&h, "waiting-for-window").await;
    assert_eq!(s.new_version.as_deref(), Some("3.0.0"));
    assert_eq!(
        fake.calls_starting("install"),
        vec!["install 3.0.0 to B resume=false"]
    );
    until_phase(&h, "rebooting").await;
    assert_eq!(fake.calls_starting("pre_reboot"), vec!["pre_reboot 3.0.0"]);
}

#[test]
fn the_following_clock_advances_with_tokio_time() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let clock = WallClock::starting_at(wednesday_noon());
        assert_eq!(clock.now(), wednesday_noon());
        tokio::time::sleep(secs(90)).await;
        assert_eq!(
            clock.now(),
            wednesday_noon() + chrono::Duration::seconds(90)
        );
    });
}
