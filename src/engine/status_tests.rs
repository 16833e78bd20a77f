use super::*;
use crate::engine::state::{Offer, Staged};
use chrono::TimeZone;

fn ctx() -> ReportContext {
    ReportContext {
        current_version: "1.0.0".into(),
        booted_slot: Some(SlotId::A),
        last_check: Some(Utc.timestamp_opt(1_800_000_000, 0).unwrap()),
    }
}

fn offer() -> Offer {
    Offer {
        version: "2.0.0".into(),
        urls: vec![],
        size: 4 * 1024 * 1024,
        sha256_hex: String::new(),
    }
}

#[test]
fn downloading_report_and_status_file_golden() {
    let state = State::Downloading {
        offer: offer(),
        bytes: 1024 * 1024,
        total: 4 * 1024 * 1024,
    };
    let r = StatusReport::new(&state, &ctx(), 7);
    assert_eq!(r.progress, 0.25);
    assert_eq!(
        r.key_values(),
        "LAST_CHECKED_TIME=1800000000\nPROGRESS=0.250000\nCURRENT_OP=UPDATE_STATUS_DOWNLOADING\n\
         NEW_VERSION=2.0.0\nNEW_SIZE=4194304\nPHASE=downloading\nCURRENT_VERSION=1.0.0\n\
         BOOTED_SLOT=A\nBYTES_DOWNLOADED=1048576\n"
    );
    assert_eq!(
        r.human_line(),
        "Downloading 2.0.0: 25% (1.0 MiB of 4.0 MiB)"
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["status"], "UPDATE_STATUS_DOWNLOADING");
    assert_eq!(json["seq"], 7);
}

#[test]
fn idle_status_file_uses_update_engine_defaults() {
    let r = StatusReport::new(&State::Idle, &ReportContext::default(), 0);
    assert_eq!(
        r.key_values(),
        "LAST_CHECKED_TIME=0\nPROGRESS=0.000000\nCURRENT_OP=UPDATE_STATUS_IDLE\n\
         NEW_VERSION=0.0.0.0\nNEW_SIZE=0\nPHASE=idle\nCURRENT_VERSION=\nBOOTED_SLOT=\n\
         BYTES_DOWNLOADED=0\n"
    );
}

#[test]
fn error_report_carries_code_and_a_one_line_message() {
    let state = State::ReportingErrorEvent {
        code: 10,
        message: "payload hash\nmismatch".into(),
        staged: None,
    };
    let r = StatusReport::new(&state, &ctx(), 1);
    assert!(r.key_values().ends_with("ERROR_CODE=10\n"));
    assert_eq!(
        r.human_line(),
        "Update failed (error 10): payload hash\nmismatch"
    );
    assert_eq!(r.key_values().lines().count(), 10);
}

#[test]
fn every_phase_has_a_human_line() {
    let staged = Staged {
        version: "2.0.0".into(),
        slot: SlotId::B,
    };
    let until = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
    let cases = [
        (State::Idle, "Idle, running 1.0.0"),
        (
            State::CheckingForUpdate {
                interactive: true,
                staged: None,
            },
            "Checking for an update",
        ),
        (
            State::UpdateAvailable { offer: offer() },
            "Update 2.0.0 available",
        ),
        (State::Verifying { offer: offer() }, "Verifying 2.0.0"),
        (State::Finalizing { offer: offer() }, "Finalizing 2.0.0"),
        (
            State::UpdatedNeedReboot {
                staged: staged.clone(),
            },
            "Updated to 2.0.0; reboot needed",
        ),
        (
            State::WaitingForWindow {
                staged: staged.clone(),
                until,
            },
            "Updated to 2.0.0; waiting for the maintenance window at 2027-01-15T08:00:00+00:00",
        ),
        (
            State::WaitingForLock {
                staged: staged.clone(),
            },
            "Updated to 2.0.0; waiting for the reboot lock",
        ),
        (
            State::RunningPreRebootHooks {
                staged: staged.clone(),
            },
            "Updated to 2.0.0; running pre-reboot hooks",
        ),
        (
            State::Rebooting {
                reason: RebootReason::Update { staged },
            },
            "Rebooting into 2.0.0",
        ),
        (
            State::Rebooting {
                reason: RebootReason::HealthCheckFailed {
                    version: "2.0.0".into(),
                },
            },
            "Health checks of 2.0.0 failed; rebooting into the previous slot",
        ),
        (
            State::TrialBoot {
                version: "2.0.0".into(),
                previous_version: None,
                slot: SlotId::B,
            },
            "Trial boot of 2.0.0: running health checks",
        ),
        (
            State::Good {
                version: "2.0.0".into(),
            },
            "Running 2.0.0, marked good",
        ),
        (
            State::RolledBack {
                version: "2.0.0".into(),
            },
            "Update to 2.0.0 rolled back; running 1.0.0",
        ),
    ];
    for (state, line) in cases {
        assert_eq!(StatusReport::new(&state, &ctx(), 1).human_line(), line);
    }
}

#[test]
fn bytes_are_human() {
    assert_eq!(human_bytes(0), "0 B");
    assert_eq!(human_bytes(1023), "1023 B");
    assert_eq!(human_bytes(1536), "1.5 KiB");
    assert_eq!(human_bytes(256 * 1024 * 1024), "256.0 MiB");
    assert_eq!(human_bytes(u64::MAX), "16777216.0 TiB");
}
