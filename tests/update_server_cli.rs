//! `update-server serve` as a process: curl against it, SIGTERM/SIGINT
//! shutdown, and the exit status and message for bad releases files and faults.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_update-server");

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Start `serve` on a free port; returns the child and its base URL.
fn serve(extra: &[&str]) -> (Child, String) {
    let releases = fixtures().join("releases/releases.toml");
    let mut child = Command::new(BIN)
        .args(["serve", "--releases"])
        .arg(&releases)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .trim_end_matches('/')
        .to_owned();
    (child, base)
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl is needed by these tests (apt install curl)")
}

fn stop(mut child: Child, signal: Signal) {
    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

fn outdated_request(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(fixtures().join("omaha/request-update-engine.xml"))
        .unwrap()
        .replace("version=\"3815.2.0\"", "version=\"1.0.0\"");
    let path = dir.join("request.xml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn curl_talks_to_serve_and_sigterm_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.jsonl");
    let (child, base) = serve(&["--events-log", log.to_str().unwrap()]);
    let req = outdated_request(dir.path());

    let out = curl(&[
        "-X",
        "POST",
        "--data-binary",
        &format!("@{}", req.display()),
        &format!("{base}/v1/update/"),
    ]);
    assert!(out.status.success());
    let resp = ab_updater::omaha::Response::parse(&out.stdout).unwrap();
    let urls = resp.apps[0].update_check.as_ref().unwrap().payload_urls();
    assert_eq!(urls, vec![format!("{base}/payloads/v2.payload")]);

    let payload = std::fs::read(fixtures().join("releases/v2.payload")).unwrap();
    let out = curl(&[&urls[0]]);
    assert_eq!(out.stdout, payload);
    let out = curl(&["-r", "100-199", "-w", "\n%{http_code}", &urls[0]]);
    let (body, code) = out.stdout.split_at(out.stdout.len() - 4);
    assert_eq!(code, b"\n206");
    assert_eq!(body, &payload[100..200]);
    let out = curl(&["-I", &urls[0]]);
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.contains("content-length: 70000"), "{head}");
    assert!(head.contains("etag: \""), "{head}");
    let out = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--path-as-is",
        &format!("{base}/payloads/../releases.toml"),
    ]);
    assert_eq!(out.stdout, b"404");

    stop(child, Signal::SIGTERM);
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
}

#[test]
fn faults_seen_through_curl_and_sigint_stops_it() {
    let (child, base) = serve(&["--fault", "http-500:1", "--fault", "drop-at:1000@1"]);
    let dir = tempfile::tempdir().unwrap();
    let req = outdated_request(dir.path());
    let post = |_: ()| {
        curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            "--data-binary",
            &format!("@{}", req.display()),
            &format!("{base}/v1/update/"),
        ])
    };
    assert_eq!(post(()).stdout, b"500");
    assert_eq!(post(()).stdout, b"200");
    let url = format!("{base}/payloads/v2.payload");
    let dropped = curl(&[&url]);
    // curl exit 18: "partial file", the transfer ended before Content-Length.
    assert_eq!(
        dropped.status.code(),
        Some(18),
        "{}",
        String::from_utf8_lossy(&dropped.stderr)
    );
    assert_eq!(dropped.stdout.len(), 1000);
    assert_eq!(curl(&[&url]).stdout.len(), 70000);
    stop(child, Signal::SIGINT);
}

#[test]
fn bad_releases_files_fail_with_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("releases.toml");
    for (toml, want) in [
        ("[[release]]\napp_id = \"a\"\ntrack = \"s\"\nversion = \"2\"\npayload = \"missing.payload\"\n", "release[0].payload"),
        ("[[release]]\napp_id = \"a\"\ntrack = \"s\"\nversion = \"2\"\npayload = \"p\"\nmirror = \"x\"\n", "unknown field `mirror`"),
    ] {
        std::fs::write(&path, toml).unwrap();
        std::fs::write(dir.path().join("p"), b"x").unwrap();
        let out = Command::new(BIN).args(["serve", "--listen", "127.0.0.1:0", "--releases"]).arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&path.display().to_string()) && err.contains(want), "{err}");
    }
}

#[test]
fn bad_fault_specs_and_addresses_are_refused() {
    let releases = fixtures().join("releases/releases.toml");
    let out = Command::new(BIN)
        .args(["serve", "--fault", "explode:3", "--releases"])
        .arg(&releases)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid --fault \"explode:3\""));
    let out = Command::new(BIN)
        .args(["serve", "--listen", "256.0.0.1:1", "--releases"])
        .arg(&releases)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("binding 256.0.0.1:1"));
}
