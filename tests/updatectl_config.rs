//! `updatectl config check|show` as a user runs it: every shipped example
//! passes `check`; bad input exits non-zero with `file: key: problem`
//! lines; `show` names the file of each value and its output is itself a
//! valid drop-in that loads to the same settings.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Run `updatectl` on `dirs` with no legacy file.
fn updatectl(dirs: &[&Path], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_updatectl"));
    for dir in dirs {
        cmd.arg("--config-dir").arg(dir);
    }
    cmd.args(["--legacy-config", "/nonexistent/update.conf"]);
    cmd.args(args).env("TZ", "UTC").output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join("config"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_example_passes_check() {
    let examples = examples();
    assert!(examples.len() >= 8, "{examples:?}");
    // All together, as shipped.
    let out = updatectl(&[&fixtures().join("config")], &["config", "check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "configuration is valid\n");
    assert_eq!(text(&out.stderr), "", "no warnings expected");
    // Each one alone beside the server example (the only required key).
    for example in &examples {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            fixtures().join("config/10-server.toml"),
            dir.path().join("00-server.toml"),
        )
        .unwrap();
        std::fs::copy(example, dir.path().join(example.file_name().unwrap())).unwrap();
        let out = updatectl(&[dir.path()], &["config", "check"]);
        assert!(
            out.status.success(),
            "{}: {}",
            example.display(),
            text(&out.stderr)
        );
    }
}

#[test]
fn shipped_legacy_example_passes_check() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_updatectl"))
        .arg("--config-dir")
        .arg(empty.path())
        .arg("--legacy-config")
        .arg(fixtures().join("legacy/update.conf"))
        .args(["config", "show"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("strategy = \"etcd-lock\"  # from ") && shown.contains("(REBOOT_STRATEGY)"),
        "{shown}"
    );
}

#[test]
fn bad_config_exits_non_zero_with_one_line_per_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("50-bad.toml");
    std::fs::write(
        &file,
        "[reboot]\nstrategy = \"sometimes\"\nstrategi = 1\n[[reboot.window]]\ndays = [\"Sat\"]\nstart_time = \"25:00\"\nlength_minutes = 60\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
    let out = updatectl(&[dir.path()], &["config", "check"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    let f = file.display();
    let expected = [
        format!("{f}: reboot.strategi: unknown key: check the spelling against `updatectl config show`"),
        "<merged config>: server.url: missing: set url = \"https://…/v1/update/\" under [server] in a drop-in of /etc/update-engine/config.d/".to_string(),
        format!("{f}: reboot.strategy: unknown strategy \"sometimes\": use \"off\", \"immediate\", \"etcd-lock\" or \"fleet-lock\""),
        format!("{f}: reboot.window[0].start_time: \"25:00\" is not a time of day: write HH:MM from 00:00 to 23:59"),
        "updatectl: configuration is invalid: 4 problem(s) listed above; fix them and run `updatectl config check` again".to_string(),
    ];
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines, expected);

    // `show` refuses the same way rather than showing guesses.
    let out = updatectl(&[dir.path()], &["config", "show"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");

    // A non-TOML file: one line, exit 1.
    std::fs::write(&file, "this is not toml\n").unwrap();
    let out = updatectl(&[dir.path()], &["config", "check"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("{f}: not valid TOML at line 1 column")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
}

#[test]
fn warnings_do_not_fail_check() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("config/10-server.toml"),
        dir.path().join("10-server.toml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("10-server.toml~"), "").unwrap();
    let out = updatectl(&[dir.path()], &["config", "check"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stderr),
        format!(
            "warning: {}: ignored: not a .toml file (drop-ins must be named *.toml)\n",
            dir.path().join("10-server.toml~").display()
        )
    );
}

#[test]
fn show_names_files_and_its_output_loads_back_to_the_same_settings() {
    let config = fixtures().join("config");
    let out = updatectl(&[&config], &["config", "show"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    let window_file = config.join("50-reboot-window.toml");
    assert!(shown.contains(&format!(
        "window = [{{ days = [\"Sat\", \"Sun\"], length_minutes = 120, start_time = \"23:00\" }}, {{ days = [\"Thu\"], length_minutes = 90, start_time = \"04:00\" }}]  # from {}\n",
        window_file.display()
    )), "{shown}");
    // fleet-lock.toml sorts after etcd-lock.toml, so its strategy wins.
    assert!(shown.contains(&format!(
        "strategy = \"fleet-lock\"  # from {}\n",
        config.join("fleet-lock.toml").display()
    )));
    assert!(shown.contains("first_check_delay_seconds = 420  # from "));
    assert!(shown.contains("min_signatures = 1  # from "));

    // The shown text is a drop-in: loading it alone gives the same settings.
    let copy = tempfile::tempdir().unwrap();
    std::fs::write(copy.path().join("00-shown.toml"), &shown).unwrap();
    let json = |dir: &Path| {
        let out = updatectl(&[dir], &["config", "show", "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let original = json(&config);
    let reloaded = json(copy.path());
    assert_eq!(original["settings"], reloaded["settings"]);
    assert_eq!(
        original["provenance"]["reboot.window"],
        window_file.display().to_string()
    );
    assert_eq!(
        original["provenance"]["identity.group"],
        config.join("10-server.toml").display().to_string()
    );
    assert_eq!(
        original["settings"]["lock"]["fleet_lock"]["group"],
        "workers"
    );
}

#[test]
fn show_masks_the_etcd_password() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("config/10-server.toml"),
        dir.path().join("10-server.toml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("20-auth.toml"),
        "[lock.etcd]\nusername = \"u\"\npassword = \"hunter2\"\n",
    )
    .unwrap();
    for args in [&["config", "show"][..], &["config", "show", "--json"][..]] {
        let out = updatectl(&[dir.path()], args);
        let shown = text(&out.stdout);
        assert!(out.status.success());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("********"));
    }
}
