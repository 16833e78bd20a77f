//! The shipped systemd files: `systemd-analyze verify` accepts the unit
//! (with ExecStart pointing at the freshly built engine) without a single
//! complaint, and the tmpfiles.d entry parses and creates its directories.
//! `scripts/test` installs systemd when it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run `prog` or fail with how to install it.
fn run(prog: &str, args: &[&std::ffi::OsStr], cwd: &Path) -> std::process::Output {
    Command::new(prog)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {prog} ({e}): install systemd (`apt-get install systemd`) or run `bash scripts/test`")
        })
}

/// Copy the unit into `dir` with ExecStart replaced; returns its path.
fn unit_copy(dir: &Path, edit: impl Fn(&str) -> String) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("systemd/update-engine.service")).unwrap();
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("ExecStart=") {
                format!("ExecStart={}", env!("CARGO_BIN_EXE_update-engine"))
            } else {
                edit(l)
            }
        })
        .collect();
    assert!(
        lines.iter().any(|l| l.starts_with("ExecStart=/")),
        "the unit has no ExecStart"
    );
    let path = dir.join("update-engine.service");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// Every complaint `systemd-analyze verify` prints about `unit`. It exits 0
/// for many problems (an unknown value is "ignored"), so the output counts.
fn verify(unit: &Path) -> Vec<String> {
    let out = run(
        "systemd-analyze",
        &["verify".as_ref(), unit.as_os_str()],
        unit.parent().unwrap(),
    );
    let name = unit.file_name().unwrap().to_string_lossy().to_string();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut problems: Vec<String> = text
        .lines()
        .filter(|l| l.contains(&name))
        .map(str::to_string)
        .collect();
    if !out.status.success() {
        problems.push(format!("systemd-analyze verify exited with {}", out.status));
    }
    problems
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_copy(dir.path(), str::to_string);
    let problems = verify(&unit);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_unit_keeps_its_contract() {
    let text = std::fs::read_to_string(repo().join("systemd/update-engine.service")).unwrap();
    for line in [
        "Type=notify",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "DevicePolicy=closed",
        "After=boot-complete.target",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing");
    }
    assert!(text.lines().any(|l| l.starts_with("WatchdogSec=")));
    assert!(text
        .lines()
        .any(|l| l.starts_with("ReadWritePaths=") && l.contains("/var/lib/update-engine")));
}

#[test]
fn verify_catches_a_broken_unit() {
    // The check above would be worthless if verify's complaints were missed.
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_copy(dir.path(), |l| {
        if l.starts_with("ProtectSystem=") {
            "ProtectSystem=sometimes".to_string()
        } else {
            l.to_string()
        }
    });
    let problems = verify(&unit);
    assert!(
        problems.iter().any(|p| p.contains("sometimes")),
        "{problems:#?}"
    );
}

/// `systemd-tmpfiles --create` on `conf` under a scratch root.
fn tmpfiles(conf: &Path, root: &Path) -> std::process::Output {
    let root_arg = format!("--root={}", root.display());
    run(
        "systemd-tmpfiles",
        &[root_arg.as_ref(), "--create".as_ref(), conf.as_os_str()],
        root,
    )
}

#[test]
fn the_tmpfiles_entry_creates_the_directories() {
    let dir = tempfile::tempdir().unwrap();
    let conf = repo().join("systemd/update-engine.conf");
    let out = tmpfiles(&conf, dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Without root the chown to root:root fails; the syntax must still be clean.
    assert!(
        !stderr.contains("update-engine.conf:"),
        "tmpfiles complained: {stderr}"
    );
    if nix::unistd::geteuid().is_root() {
        assert!(out.status.success(), "{stderr}");
        for d in [
            "run/update-engine",
            "run/update-engine/config.d",
            "var/lib/update-engine",
            "etc/update-engine/config.d",
            "etc/update-engine/keys",
        ] {
            assert!(dir.path().join(d).is_dir(), "{d} not created");
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("var/lib/update-engine"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "the state directory is private");
    }
}

#[test]
fn tmpfiles_reports_a_bad_line_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.conf");
    std::fs::write(
        &conf,
        "d /run/x 0755 root root -\nd relative 0755 root root -\n",
    )
    .unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let out = tmpfiles(&conf, &root);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("bad.conf:2"), "{stderr}");
}
