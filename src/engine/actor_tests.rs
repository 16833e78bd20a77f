use std::path::Path;
use std::time::Duration;

use tokio::sync::broadcast;

use super::*;
use crate::engine::backend::CheckAnswer;
use crate::engine::failure::{self, Failure};
use crate::engine::fake::{FakeBackend, InstallScript};
use crate::engine::state::Offer;
use crate::engine::store::{Installed, Operation, Outcome, Paths, Persisted, Stage, Store};
use crate::reboot::Strategy;
use crate::slot::SlotId;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn offer(version: &str) -> Offer {
    Offer {
        version: version.into(),
        urls: vec!["http://127.0.0.1:1/p".into()],
        size: 1000,
        sha256_hex: "00".repeat(32),
    }
}

fn settings(reboot: Strategy) -> EngineSettings {
    EngineSettings {
        current_version: "1.0.0".into(),
        schedule: ScheduleSettings::default(),
        allow_downgrade: false,
        reboot: RebootSettings::new(reboot),
        health_grace: secs(45),
    }
}

fn store_in(dir: &Path) -> Store {
    Store::open(Paths::sandbox(dir.join("state"), &dir.join("run"))).unwrap()
}

async fn start_engine(
    fake: &FakeBackend,
    reboot: Strategy,
    dir: &Path,
) -> (Handle, JoinHandle<()>) {
    start(fake.clone(), settings(reboot), store_in(dir))
        .await
        .unwrap()
}

/// Wait (in paused time) until a status change reaches `phase`.
async fn wait_phase(rx: &mut broadcast::Receiver<StatusReport>, phase: &str) -> StatusReport {
    tokio::time::timeout(secs(24 * 3600), async {
        loop {
            let r = rx.recv().await.expect("engine stopped");
            if r.phase == phase {
                return r;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never reached {phase}"))
}

#[tokio::test(start_paused = true)]
async fn first_check_after_the_delay_then_periodic() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    let (_h, _t) = start_engine(&fake, Strategy::Off, dir.path()).await;
    tokio::time::sleep(secs(377)).await;
    assert!(
        fake.calls_starting("check").is_empty(),
        "{:?}",
        fake.calls()
    );
    tokio::time::sleep(secs(86)).await; // 463 s: past 420 + 10 %
    assert_eq!(fake.calls_starting("check"), ["check interactive=false"]);
    // The second check comes 2700 s ± 10 % after the first: between
    // 378 + 2430 = 2808 s and 462 + 2970 = 3432 s after start.
    tokio::time::sleep(secs(2344)).await; // 2807 s
    assert_eq!(fake.calls_starting("check").len(), 1);
    tokio::time::sleep(secs(626)).await; // 3433 s
    assert_eq!(fake.calls_starting("check").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn server_errors_back_off_without_a_busy_loop() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    for _ in 0..20 {
        fake.push_check(Err(Failure::http(500, "internal server error")));
    }
    let (h, _t) = start_engine(&fake, Strategy::Off, dir.path()).await;
    tokio::time::sleep(secs(3600)).await;
    // 420 + 60 + 120 + 240 + 480 + 960 + 1920 (± 10 %) within the hour.
    let checks = fake.calls_starting("check").len();
    assert!((5..=7).contains(&checks), "{checks} checks in an hour");
    let metrics = h.metrics().await.unwrap();
    assert!(
        metrics.contains(&format!(
            "update_engine_errors_total{{kind=\"http\"}} {checks}"
        )),
        "{metrics}"
    );
    assert_eq!(h.status().await.unwrap().phase, "idle");
}

#[tokio::test(start_paused = true)]
async fn full_install_reports_in_order_and_reboots() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    fake.push_check(Ok(CheckAnswer::Update(offer("2.0.0"))));
    let (h, _t) = start_engine(&fake, Strategy::Immediate, dir.path()).await;
    let mut rx = h.subscribe();
    let started = h.check().await.unwrap().unwrap();
    assert_eq!(started.status, "UPDATE_STATUS_CHECKING_FOR_UPDATE");
    let phases = [
        "update-available",
        "downloading",
        "verifying",
        "finalizing",
        "updated-need-reboot",
        "rebooting",
    ];
    for phase in phases {
        wait_phase(&mut rx, phase).await;
    }
    tokio::time::sleep(secs(1)).await;
    // Events go through their own ordered queue; disk calls are in order too.
    assert_eq!(
        fake.calls_starting("report"),
        ["report 13/1 2.0.0", "report 14/1 2.0.0", "report 3/1 2.0.0"]
    );
    assert_eq!(
        fake.calls_except_reports(),
        [
            "check interactive=true",
            "disable B",
            "install 2.0.0 to B resume=false",
            "set_install_ready B",
            "pre_reboot 2.0.0",
            "reboot",
        ]
    );
    let store = store_in(dir.path());
    let state = store.load().unwrap();
    assert_eq!(state.operation, None);
    let installed = state.installed.unwrap();
    assert_eq!(
        (
            installed.version.as_str(),
            installed.slot,
            installed.boot_id.as_str()
        ),
        ("2.0.0", SlotId::B, "boot-1")
    );
    let history = store.history().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].result, Outcome::Installed);
    assert_eq!(history[0].bytes, 1000);
    assert!(store.paths().reboot_required.exists());
    let status = std::fs::read_to_string(&store.paths().status_file).unwrap();
    assert!(
        status.contains("CURRENT_OP=UPDATE_STATUS_UPDATED_NEED_REBOOT\n"),
        "{status}"
    );
    let metrics = h.metrics().await.unwrap();
    assert!(
        metrics.contains("update_engine_bytes_downloaded_total 1000"),
        "{metrics}"
    );
    assert!(
        metrics.contains("update_engine_updates_installed_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("update_engine_update_duration_seconds"),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn failed_install_reports_the_code_and_starts_clean() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    fake.push_check(Ok(CheckAnswer::Update(offer("2.0.0"))));
    fake.push_install(InstallScript::Fail(Failure::new(
        failure::PAYLOAD_HASH_MISMATCH,
        "payload sha256 differs from the server's",
    )));
    let (h, _t) = start_engine(&fake, Strategy::Immediate, dir.path()).await;
    let mut rx = h.subscribe();
    h.check().await.unwrap().unwrap();
    let err = wait_phase(&mut rx, "reporting-error-event").await;
    assert_eq!(err.error_code, Some(10));
    assert_eq!(err.status, "UPDATE_STATUS_REPORTING_ERROR_EVENT");
    wait_phase(&mut rx, "idle").await;
    assert_eq!(
        fake.calls_starting("report"),
        ["report 13/1 2.0.0", "report 3/0 code=10 2.0.0"]
    );
    assert_eq!(
        fake.calls_except_reports(),
        [
            "check interactive=true",
            "disable B",
            "install 2.0.0 to B resume=false",
        ]
    );
    let store = store_in(dir.path());
    assert_eq!(store.load().unwrap().operation, None);
    assert_eq!(store.load_checkpoint::<u64>().unwrap(), None);
    let history = store.history().unwrap();
    assert_eq!(history[0].result, Outcome::Failed);
    assert_eq!(history[0].error_code, Some(10));
    assert_eq!(history[0].bytes, 500);
    assert!(!store.paths().reboot_required.exists());
    // The next scheduled check comes after the backoff, not at once.
    tokio::time::sleep(secs(53)).await;
    assert_eq!(fake.calls_starting("check").len(), 1);
    tokio::time::sleep(secs(14)).await;
    assert_eq!(fake.calls_starting("check").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_check_while_busy_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    fake.push_check(Ok(CheckAnswer::Update(offer("2.0.0"))));
    fake.push_install(InstallScript::WaitForCancel);
    let (h, _t) = start_engine(&fake, Strategy::Off, dir.path()).await;
    let mut rx = h.subscribe();
    h.check().await.unwrap().unwrap();
    wait_phase(&mut rx, "downloading").await;
    let refused = h.check().await.unwrap().unwrap_err();
    assert_eq!(
        refused.to_string(),
        "cannot check for updates while downloading"
    );
    // The scheduled check is skipped too, without a busy loop.
    tokio::time::sleep(secs(3 * 3600)).await;
    assert_eq!(fake.calls_starting("check").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_mid_download_saves_the_checkpoint_and_restart_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    fake.push_check(Ok(CheckAnswer::Update(offer("2.0.0"))));
    fake.push_install(InstallScript::WaitForCancel);
    let (h, task) = start_engine(&fake, Strategy::Off, dir.path()).await;
    let mut rx = h.subscribe();
    h.check().await.unwrap().unwrap();
    wait_phase(&mut rx, "downloading").await;
    h.shutdown().await;
    task.await.unwrap();
    let store = store_in(dir.path());
    assert_eq!(store.load_checkpoint::<u64>().unwrap(), Some(500));
    let op = store.load().unwrap().operation.unwrap();
    assert_eq!((op.target, op.stage), (SlotId::B, Stage::Downloading));

    // Restart (same boot): the install resumes, after disabling the target again.
    let fake2 = FakeBackend::new(SlotId::A, true, "boot-1");
    let (h, _t) = start_engine(&fake2, Strategy::Off, dir.path()).await;
    let mut rx = h.subscribe();
    wait_phase(&mut rx, "updated-need-reboot").await;
    assert_eq!(
        fake2.calls_starting("report"),
        ["report 14/1 2.0.0", "report 3/1 2.0.0"]
    );
    assert_eq!(
        fake2.calls_except_reports(),
        [
            "disable B",
            "install 2.0.0 to B resume=true",
            "set_install_ready B",
        ]
    );
}

fn persisted_install(version: &str) -> Persisted {
    Persisted {
        installed: Some(Installed {
            version: version.into(),
            slot: SlotId::B,
            previous_version: "1.0.0".into(),
            boot_id: "boot-1".into(),
            installed_at: chrono::Utc::now(),
        }),
        ..Persisted::default()
    }
}

#[tokio::test(start_paused = true)]
async fn trial_boot_passes_health_checks_and_is_marked_good() {
    let dir = tempfile::tempdir().unwrap();
    store_in(dir.path())
        .save(&persisted_install("2.0.0"))
        .unwrap();
    let fake = FakeBackend::new(SlotId::B, false, "boot-2");
    let (h, _t) = start_engine(&fake, Strategy::Immediate, dir.path()).await;
    assert_eq!(h.status().await.unwrap().phase, "trial-boot");
    let mut rx = h.subscribe();
    tokio::time::sleep(secs(44)).await;
    assert!(
        fake.calls().is_empty(),
        "health checks wait for the grace period"
    );
    wait_phase(&mut rx, "good").await;
    tokio::time::sleep(secs(1)).await;
    assert_eq!(
        fake.calls(),
        [
            "health_check",
            "mark_good B",
            "report 3/2 previous=1.0.0 2.0.0"
        ]
    );
    let store = store_in(dir.path());
    assert_eq!(store.load().unwrap().installed, None);
    assert_eq!(store.history().unwrap()[0].result, Outcome::Good);
}

#[tokio::test(start_paused = true)]
async fn trial_boot_failing_health_checks_marks_bad_and_reboots() {
    let dir = tempfile::tempdir().unwrap();
    store_in(dir.path())
        .save(&persisted_install("2.0.0"))
        .unwrap();
    let fake = FakeBackend::new(SlotId::B, false, "boot-2");
    fake.set_health(Err("unit sshd.service is failed".into()));
    let (h, _t) = start_engine(&fake, Strategy::Off, dir.path()).await;
    let mut rx = h.subscribe();
    let r = wait_phase(&mut rx, "rebooting").await;
    assert_eq!(r.status, "UPDATE_STATUS_ATTEMPTING_ROLLBACK");
    tokio::time::sleep(secs(1)).await;
    assert_eq!(fake.calls(), ["health_check", "disable B", "reboot"]);
    // The install record stays: the next boot (old slot) reports the rollback.
    assert!(store_in(dir.path()).load().unwrap().installed.is_some());
}

#[tokio::test(start_paused = true)]
async fn rollback_is_reported_and_that_version_never_retried() {
    let dir = tempfile::tempdir().unwrap();
    store_in(dir.path())
        .save(&persisted_install("2.0.0"))
        .unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-2");
    fake.push_check(Ok(CheckAnswer::Update(offer("2.0.0"))));
    fake.push_check(Ok(CheckAnswer::Update(offer("2.0.1"))));
    let (h, _t) = start_engine(&fake, Strategy::Off, dir.path()).await;
    let status = h.status().await.unwrap();
    assert_eq!(status.phase, "rolled-back");
    tokio::time::sleep(secs(1)).await;
    assert_eq!(fake.calls(), ["disable B", "report 3/0 code=44 2.0.0"]);
    let store = store_in(dir.path());
    let state = store.load().unwrap();
    assert_eq!(state.blocked_version.as_deref(), Some("2.0.0"));
    assert_eq!(store.history().unwrap()[0].error_code, Some(44));

    // The same version again: ignored.
    let mut rx = h.subscribe();
    h.check().await.unwrap().unwrap();
    wait_phase(&mut rx, "idle").await;
    assert!(fake.calls_starting("install").is_empty());
    // A newer one: installed, and the block ends.
    h.check().await.unwrap().unwrap();
    wait_phase(&mut rx, "updated-need-reboot").await;
    assert_eq!(
        fake.calls_starting("install"),
        ["install 2.0.1 to B resume=false"]
    );
    assert_eq!(store.load().unwrap().blocked_version, None);
}

#[tokio::test(start_paused = true)]
async fn staged_update_survives_a_restart_and_a_newer_release_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    store_in(dir.path())
        .save(&persisted_install("2.0.0"))
        .unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    fake.push_check(Ok(CheckAnswer::Update(offer("2.0.0"))));
    fake.push_check(Ok(CheckAnswer::Update(offer("3.0.0"))));
    let (h, _t) = start_engine(&fake, Strategy::Off, dir.path()).await;
    assert_eq!(h.status().await.unwrap().phase, "updated-need-reboot");
    let mut rx = h.subscribe();
    // Same version offered again: keep waiting for the reboot.
    h.check().await.unwrap().unwrap();
    let r = wait_phase(&mut rx, "updated-need-reboot").await;
    assert_eq!(r.new_version.as_deref(), Some("2.0.0"));
    // Newer: written over the staged slot.
    h.check().await.unwrap().unwrap();
    wait_phase(&mut rx, "downloading").await;
    let r = wait_phase(&mut rx, "updated-need-reboot").await;
    assert_eq!(r.new_version.as_deref(), Some("3.0.0"));
    assert_eq!(
        fake.calls_starting("install"),
        ["install 3.0.0 to B resume=false"]
    );
    let installed = store_in(dir.path()).load().unwrap().installed.unwrap();
    assert_eq!(installed.version, "3.0.0");
}

#[tokio::test(start_paused = true)]
async fn an_install_aimed_at_the_booted_slot_is_dropped_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    store
        .save(&Persisted {
            operation: Some(Operation {
                offer: offer("2.0.0"),
                target: SlotId::A,
                from_version: "1.0.0".into(),
                stage: Stage::Downloading,
                started_at: chrono::Utc::now(),
                network_bytes: 0,
            }),
            ..Persisted::default()
        })
        .unwrap();
    store.save_checkpoint(&7u64).unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    let (h, _t) = start_engine(&fake, Strategy::Off, dir.path()).await;
    assert_eq!(h.status().await.unwrap().phase, "idle");
    assert!(fake.calls().is_empty(), "the booted slot is never touched");
    assert_eq!(store.load().unwrap().operation, None);
    assert_eq!(store.load_checkpoint::<u64>().unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn a_failing_reboot_command_keeps_the_staged_update() {
    let dir = tempfile::tempdir().unwrap();
    store_in(dir.path())
        .save(&persisted_install("2.0.0"))
        .unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    fake.0.lock().unwrap().reboot_fails = true;
    let (h, _t) = start_engine(&fake, Strategy::Immediate, dir.path()).await;
    let mut rx = h.subscribe();
    wait_phase(&mut rx, "updated-need-reboot").await;
    assert_eq!(fake.calls(), ["pre_reboot 2.0.0", "reboot"]);
}

#[tokio::test(start_paused = true)]
async fn damaged_state_file_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    std::fs::write(store.paths().state_dir.join("state.json"), b"{").unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    let err = start(fake, settings(Strategy::Off), store)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("move it away"), "{err:#}");
}

#[tokio::test(start_paused = true)]
async fn bad_offer_version_is_a_response_error() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    fake.push_check(Ok(CheckAnswer::Update(offer("not-a-version"))));
    let (h, _t) = start_engine(&fake, Strategy::Off, dir.path()).await;
    let mut rx = h.subscribe();
    h.check().await.unwrap().unwrap();
    let r = wait_phase(&mut rx, "reporting-error-event").await;
    assert_eq!(r.error_code, Some(failure::OMAHA_RESPONSE_INVALID));
    wait_phase(&mut rx, "idle").await;
    assert!(fake.calls_starting("install").is_empty());
}
