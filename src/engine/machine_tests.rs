use super::*;
use chrono::TimeZone;

fn offer(version: &str) -> Offer {
    Offer {
        version: version.into(),
        urls: vec!["http://127.0.0.1:1/p".into()],
        size: 100,
        sha256_hex: "00".repeat(32),
    }
}

fn staged() -> Staged {
    Staged {
        version: "2.0.0".into(),
        slot: SlotId::B,
    }
}

fn when() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2026, 1, 3, 23, 0, 0).unwrap()
}

/// One sample of every state.
fn every_state() -> Vec<State> {
    vec![
        State::Idle,
        State::CheckingForUpdate {
            interactive: false,
            staged: None,
        },
        State::CheckingForUpdate {
            interactive: true,
            staged: Some(staged()),
        },
        State::UpdateAvailable {
            offer: offer("2.0.0"),
        },
        State::Downloading {
            offer: offer("2.0.0"),
            bytes: 10,
            total: 100,
        },
        State::Verifying {
            offer: offer("2.0.0"),
        },
        State::Finalizing {
            offer: offer("2.0.0"),
        },
        State::UpdatedNeedReboot { staged: staged() },
        State::ReportingErrorEvent {
            code: 10,
            message: "x".into(),
            staged: None,
        },
        State::ReportingErrorEvent {
            code: 2500,
            message: "x".into(),
            staged: Some(staged()),
        },
        State::WaitingForWindow {
            staged: staged(),
            until: when(),
        },
        State::WaitingForLock { staged: staged() },
        State::RunningPreRebootHooks { staged: staged() },
        State::Rebooting {
            reason: RebootReason::Update { staged: staged() },
        },
        State::Rebooting {
            reason: RebootReason::HealthCheckFailed {
                version: "2.0.0".into(),
            },
        },
        State::TrialBoot {
            version: "2.0.0".into(),
            previous_version: Some("1.0.0".into()),
            slot: SlotId::B,
        },
        State::Good {
            version: "2.0.0".into(),
        },
        State::RolledBack {
            version: "2.0.0".into(),
        },
    ]
}

type Event = (
    &'static str,
    fn(&mut Machine) -> Result<State, TransitionError>,
);

fn events() -> Vec<Event> {
    vec![
        ("begin_check", |m| m.begin_check(false).cloned()),
        ("no_update", |m| m.no_update().cloned()),
        ("update_found", |m| m.update_found(offer("3.0.0")).cloned()),
        ("begin_download", |m| m.begin_download(0).cloned()),
        ("progress", |m| m.progress(50).cloned()),
        ("downloaded", |m| m.downloaded().cloned()),
        ("verified", |m| m.verified().cloned()),
        ("finalized", |m| m.finalized(SlotId::B).cloned()),
        ("fail", |m| m.fail(14, "write error".into()).cloned()),
        ("error_reported", |m| m.error_reported().cloned()),
        ("wait_for_window", |m| m.wait_for_window(when()).cloned()),
        ("wait_for_lock", |m| m.wait_for_lock().cloned()),
        ("run_hooks", |m| m.run_hooks().cloned()),
        ("reboot", |m| m.reboot().cloned()),
        ("reboot_cancelled", |m| m.reboot_cancelled().cloned()),
        ("trial_boot", |m| {
            m.trial_boot("2.0.0".into(), None, SlotId::B).cloned()
        }),
        ("health_ok", |m| m.health_ok().cloned()),
        ("health_failed", |m| m.health_failed().cloned()),
        ("rolled_back", |m| m.rolled_back("2.0.0".into()).cloned()),
        ("resume", |m| m.resume(offer("2.0.0"), 5).cloned()),
        ("restore_staged", |m| m.restore_staged(staged()).cloned()),
    ]
}

/// Which phases each transition may come from.
fn allowed(event: &str, phase: &str) -> bool {
    let rest = ["idle", "good", "rolled-back"];
    let waiting = [
        "updated-need-reboot",
        "waiting-for-window",
        "waiting-for-lock",
    ];
    let installing = ["update-available", "downloading", "verifying", "finalizing"];
    match event {
        "begin_check" => rest.contains(&phase) || waiting.contains(&phase),
        "no_update" | "update_found" => phase == "checking-for-update",
        "begin_download" => phase == "update-available",
        "progress" | "downloaded" => phase == "downloading",
        "verified" => phase == "verifying",
        "finalized" => phase == "finalizing",
        "fail" => phase == "checking-for-update" || installing.contains(&phase),
        "error_reported" => phase == "reporting-error-event",
        "wait_for_window" | "wait_for_lock" | "run_hooks" => waiting.contains(&phase),
        "reboot" => waiting.contains(&phase) || phase == "running-pre-reboot-hooks",
        "trial_boot" | "rolled_back" | "resume" | "restore_staged" => phase == "idle",
        "health_ok" | "health_failed" => phase == "trial-boot",
        // Only an update reboot can be cancelled; checked separately below.
        "reboot_cancelled" => {
            waiting.contains(&phase) || phase == "running-pre-reboot-hooks" || phase == "rebooting"
        }
        other => panic!("unknown event {other}"),
    }
}

#[test]
fn every_transition_is_allowed_exactly_where_documented() {
    for state in every_state() {
        for (name, event) in events() {
            let mut m = Machine::new(state.clone());
            let result = event(&mut m);
            let rollback_reboot = matches!(
                state,
                State::Rebooting {
                    reason: RebootReason::HealthCheckFailed { .. }
                }
            );
            let expect =
                allowed(name, state.phase()) && !(name == "reboot_cancelled" && rollback_reboot);
            match result {
                Ok(next) => {
                    assert!(expect, "{name} from {state:?} must be refused");
                    assert_eq!(m.state(), &next);
                    let changes = m.take_changes();
                    assert_eq!(changes.len(), 1, "{name}: one recorded change");
                    assert_eq!(changes[0].from, state.phase());
                    assert_eq!(changes[0].to, next);
                }
                Err(err) => {
                    assert!(!expect, "{name} from {state:?} must be allowed: {err}");
                    assert_eq!(m.state(), &state, "a refused transition changes nothing");
                    assert!(m.take_changes().is_empty());
                    assert_eq!(err.from, state.phase());
                    assert!(err.to_string().starts_with("cannot "), "{err}");
                }
            }
        }
    }
}

#[test]
fn happy_path_records_every_step_in_order() {
    let mut m = Machine::default();
    m.begin_check(true).unwrap();
    m.update_found(offer("2.0.0")).unwrap();
    m.begin_download(0).unwrap();
    m.progress(40).unwrap();
    m.progress(400).unwrap(); // clamped to the announced size
    assert_eq!(
        m.state(),
        &State::Downloading {
            offer: offer("2.0.0"),
            bytes: 100,
            total: 100
        }
    );
    m.downloaded().unwrap();
    m.verified().unwrap();
    m.finalized(SlotId::B).unwrap();
    m.reboot().unwrap();
    let phases: Vec<_> = m.take_changes().iter().map(|c| c.to.phase()).collect();
    assert_eq!(
        phases,
        [
            "checking-for-update",
            "update-available",
            "downloading",
            "downloading",
            "downloading",
            "verifying",
            "finalizing",
            "updated-need-reboot",
            "rebooting"
        ]
    );
    assert_eq!(m.seq(), 9);
    assert_eq!(m.state().staged(), Some(&staged()));
}

#[test]
fn resumed_download_starts_at_the_checkpoint() {
    let mut m = Machine::new(State::UpdateAvailable {
        offer: offer("2.0.0"),
    });
    let State::Downloading { bytes, total, .. } = m.begin_download(60).unwrap().clone() else {
        panic!("not downloading");
    };
    assert_eq!((bytes, total), (60, 100));
}

#[test]
fn check_while_staged_keeps_or_replaces_the_staged_update() {
    for waiting in [
        State::UpdatedNeedReboot { staged: staged() },
        State::WaitingForWindow {
            staged: staged(),
            until: when(),
        },
        State::WaitingForLock { staged: staged() },
    ] {
        // Nothing newer: back to waiting for the reboot of the same update.
        let mut m = Machine::new(waiting.clone());
        m.begin_check(false).unwrap();
        assert_eq!(m.state().staged(), Some(&staged()));
        m.no_update().unwrap();
        assert_eq!(m.state(), &State::UpdatedNeedReboot { staged: staged() });

        // A failed check keeps the staged update too.
        let mut m = Machine::new(waiting.clone());
        m.begin_check(false).unwrap();
        m.fail(2500, "server error".into()).unwrap();
        assert_eq!(m.state().staged(), Some(&staged()));
        m.error_reported().unwrap();
        assert_eq!(m.state(), &State::UpdatedNeedReboot { staged: staged() });

        // A newer release replaces it.
        let mut m = Machine::new(waiting);
        m.begin_check(false).unwrap();
        m.update_found(offer("3.0.0")).unwrap();
        assert_eq!(m.state().staged(), None);
        assert_eq!(m.state().offer().unwrap().version, "3.0.0");
    }
}

#[test]
fn every_install_failure_gives_up_to_idle_without_a_staged_update() {
    let installing = [
        State::UpdateAvailable {
            offer: offer("2.0.0"),
        },
        State::Downloading {
            offer: offer("2.0.0"),
            bytes: 1,
            total: 100,
        },
        State::Verifying {
            offer: offer("2.0.0"),
        },
        State::Finalizing {
            offer: offer("2.0.0"),
        },
    ];
    for state in installing {
        let mut m = Machine::new(state);
        let next = m.fail(10, "payload hash mismatch".into()).unwrap().clone();
        assert_eq!(next.status(), "UPDATE_STATUS_REPORTING_ERROR_EVENT");
        assert_eq!(next.staged(), None);
        assert_eq!(m.error_reported().unwrap(), &State::Idle);
    }
}

#[test]
fn reboot_coordination_gives_up_back_to_waiting() {
    let mut m = Machine::new(State::UpdatedNeedReboot { staged: staged() });
    m.wait_for_window(when()).unwrap();
    m.wait_for_lock().unwrap();
    m.run_hooks().unwrap();
    // A failing hook cancels this reboot.
    assert_eq!(
        m.reboot_cancelled().unwrap(),
        &State::UpdatedNeedReboot { staged: staged() }
    );
    m.run_hooks().unwrap();
    m.reboot().unwrap();
    // The reboot command failed.
    assert_eq!(
        m.reboot_cancelled().unwrap(),
        &State::UpdatedNeedReboot { staged: staged() }
    );
}

#[test]
fn after_boot_paths() {
    let mut m = Machine::default();
    m.trial_boot("2.0.0".into(), Some("1.0.0".into()), SlotId::B)
        .unwrap();
    assert_eq!(m.state().status(), "UPDATE_STATUS_IDLE");
    assert_eq!(
        m.health_ok().unwrap(),
        &State::Good {
            version: "2.0.0".into()
        }
    );
    assert!(m.state().is_at_rest());

    let mut m = Machine::default();
    m.trial_boot("2.0.0".into(), None, SlotId::B).unwrap();
    let next = m.health_failed().unwrap().clone();
    assert_eq!(next.status(), "UPDATE_STATUS_ATTEMPTING_ROLLBACK");
    assert!(
        m.reboot_cancelled().is_err(),
        "a rollback reboot cannot be cancelled"
    );

    let mut m = Machine::default();
    m.rolled_back("2.0.0".into()).unwrap();
    assert!(m.state().is_at_rest());
    m.begin_check(false).unwrap();
}

#[test]
fn status_strings_are_update_engines() {
    let statuses: std::collections::BTreeSet<_> =
        every_state().iter().map(|s| s.status()).collect();
    let expected: std::collections::BTreeSet<_> = [
        "UPDATE_STATUS_IDLE",
        "UPDATE_STATUS_CHECKING_FOR_UPDATE",
        "UPDATE_STATUS_UPDATE_AVAILABLE",
        "UPDATE_STATUS_DOWNLOADING",
        "UPDATE_STATUS_VERIFYING",
        "UPDATE_STATUS_FINALIZING",
        "UPDATE_STATUS_UPDATED_NEED_REBOOT",
        "UPDATE_STATUS_REPORTING_ERROR_EVENT",
        "UPDATE_STATUS_ATTEMPTING_ROLLBACK",
    ]
    .into_iter()
    .collect();
    assert_eq!(statuses, expected);
}

#[test]
fn states_serialize_with_their_phase_tag() {
    for state in every_state() {
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(json["phase"], state.phase(), "{json}");
        let back: State = serde_json::from_value(json).unwrap();
        assert_eq!(back, state);
    }
}
