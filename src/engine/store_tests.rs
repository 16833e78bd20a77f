use super::*;
use chrono::TimeZone;

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::sandbox(dir.path().join("state"), &dir.path().join("run"));
    let store = Store::open(paths).unwrap();
    (dir, store)
}

fn attempt(version: &str) -> Attempt {
    Attempt {
        version: version.into(),
        started_at: t(0),
        ended_at: t(60),
        bytes: 1234,
        result: Outcome::Failed,
        error_code: Some(10),
        error: Some("payload hash mismatch".into()),
    }
}

fn sample_state() -> Persisted {
    Persisted {
        operation: Some(Operation {
            offer: Offer {
                version: "2.0.0".into(),
                urls: vec!["http://127.0.0.1:9/p".into()],
                size: 10,
                sha256_hex: "ab".repeat(32),
            },
            target: SlotId::B,
            from_version: "1.0.0".into(),
            stage: Stage::Downloading,
            started_at: t(0),
            network_bytes: 5,
        }),
        installed: None,
        blocked_version: Some("1.5.0".into()),
        last_check: Some(t(30)),
        ..Persisted::default()
    }
}

#[test]
fn state_round_trips_and_defaults_when_missing() {
    let (_dir, store) = store();
    assert_eq!(store.load().unwrap(), Persisted::default());
    let state = sample_state();
    store.save(&state).unwrap();
    assert_eq!(store.load().unwrap(), state);
}

#[test]
fn damaged_or_foreign_state_is_a_clear_error() {
    let (_dir, store) = store();
    fs::write(store.state_path(), b"{\"format\":1,").unwrap();
    let err = format!("{:#}", store.load().unwrap_err());
    assert!(err.contains("damaged; move it away"), "{err}");

    fs::write(store.state_path(), br#"{"format":7,"operation":null,"installed":null,"blocked_version":null,"last_check":null}"#).unwrap();
    let err = format!("{:#}", store.load().unwrap_err());
    assert!(err.contains("has format 7"), "{err}");

    fs::write(store.state_path(), br#"{"format":1,"surprise":1}"#).unwrap();
    assert!(store.load().is_err(), "unknown keys are rejected");
}

#[test]
fn unusable_state_dir_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"").unwrap();
    let err = Store::open(Paths::sandbox(file.join("state"), dir.path())).unwrap_err();
    assert!(
        format!("{err:#}").contains("creating state directory"),
        "{err:#}"
    );
}

#[test]
fn checkpoint_save_load_clear() {
    let (_dir, store) = store();
    assert_eq!(store.load_checkpoint::<u64>().unwrap(), None);
    store.save_checkpoint(&42u64).unwrap();
    assert_eq!(store.load_checkpoint::<u64>().unwrap(), Some(42));
    store.clear_checkpoint().unwrap();
    store.clear_checkpoint().unwrap();
    assert_eq!(store.load_checkpoint::<u64>().unwrap(), None);
}

#[test]
fn history_appends_and_skips_a_torn_line() {
    let (_dir, store) = store();
    assert!(store.history().unwrap().is_empty());
    store.append_history(&attempt("1.1.0")).unwrap();
    // A crash in the middle of an append leaves half a line.
    let mut f = OpenOptions::new()
        .append(true)
        .open(store.history_path())
        .unwrap();
    f.write_all(b"{\"version\":\"1.2").unwrap();
    f.write_all(b"\n").unwrap();
    store.append_history(&attempt("1.3.0")).unwrap();
    let versions: Vec<_> = store
        .history()
        .unwrap()
        .into_iter()
        .map(|a| a.version)
        .collect();
    assert_eq!(versions, ["1.1.0", "1.3.0"]);
    let line = fs::read_to_string(store.history_path()).unwrap();
    assert!(
        line.starts_with(r#"{"version":"1.1.0","started_at":"#),
        "{line}"
    );
    assert!(
        line.contains(r#""result":"failed","error_code":10"#),
        "{line}"
    );
}

#[test]
fn history_returns_the_latest_entries_only() {
    let (_dir, store) = store();
    let mut text = String::new();
    for i in 0..HISTORY_LIMIT + 5 {
        text.push_str(&serde_json::to_string(&attempt(&format!("1.0.{i}"))).unwrap());
        text.push('\n');
    }
    fs::write(store.history_path(), text).unwrap();
    let history = store.history().unwrap();
    assert_eq!(history.len(), HISTORY_LIMIT);
    assert_eq!(history[0].version, "1.0.5");
}

#[test]
fn status_file_and_reboot_flag() {
    let (_dir, store) = store();
    store
        .write_status("CURRENT_OP=UPDATE_STATUS_IDLE\n")
        .unwrap();
    assert_eq!(
        fs::read_to_string(&store.paths().status_file).unwrap(),
        "CURRENT_OP=UPDATE_STATUS_IDLE\n"
    );
    store.set_reboot_required(true).unwrap();
    assert!(store.paths().reboot_required.exists());
    store.set_reboot_required(false).unwrap();
    store.set_reboot_required(false).unwrap();
    assert!(!store.paths().reboot_required.exists());
}

#[test]
fn host_paths_are_the_documented_ones() {
    let p = Paths::host();
    assert_eq!(p.state_dir, Path::new("/var/lib/update-engine"));
    assert_eq!(p.status_file, Path::new("/run/update-engine/status"));
    assert_eq!(p.reboot_required, Path::new("/run/reboot-required"));
}
