//! `updatectl status/check --wait/history` against a running engine: exit
//! codes and output as DESIGN §9 says (non-zero when the update failed).

mod engine_support;

use std::process::Output;

use engine_support::Sandbox;

async fn updatectl(sb: &Sandbox, args: &[&str]) -> Output {
    let socket = sb.socket();
    let mut all = vec!["--socket".to_string(), socket.display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    tokio::process::Command::new(env!("CARGO_BIN_EXE_updatectl"))
        .args(all)
        .output()
        .await
        .unwrap()
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_wait_succeeds_and_status_and_history_show_it() {
    let sb = Sandbox::new(1, 4, &[]).await;
    sb.write_config("1.0.0", "[reboot]\nstrategy = \"off\"\n");
    let engine = sb.start().await;
    let out = updatectl(&sb, &["check", "--wait"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "Updated to 2.0.0; reboot needed\n");

    let out = updatectl(&sb, &["status"]).await;
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("Updated to 2.0.0; reboot needed\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("UPDATE_STATUS_UPDATED_NEED_REBOOT (updated-need-reboot)"),
        "{stdout}"
    );

    let out = updatectl(&sb, &["status", "--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["status"], "UPDATE_STATUS_UPDATED_NEED_REBOOT");
    assert_eq!(json["new_version"], "2.0.0");

    let out = updatectl(&sb, &["history"]).await;
    assert!(
        text(&out.stdout).contains(" 2.0.0        installed "),
        "{out:?}"
    );
    let out = updatectl(&sb, &["history", "--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["result"], "installed");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_wait_fails_with_the_reason_when_the_update_fails() {
    let sb = Sandbox::new(1, 4, &["check/wrong-sha256"]).await;
    let engine = sb.start().await;
    let out = updatectl(&sb, &["check", "--wait"]).await;
    assert!(!out.status.success(), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("updatectl: update failed (error 10): the payload's sha256 is "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_engine_is_a_one_line_error() {
    let sb = Sandbox::new(1, 4, &[]).await;
    let out = updatectl(&sb, &["status"]).await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("is update-engine running?"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_a_download_until_the_engine_stops() {
    use tokio::io::AsyncBufReadExt;
    let sb = Sandbox::new(3, 4, &[]).await;
    sb.write_config("1.0.0", "[reboot]\nstrategy = \"off\"\n");
    let engine = sb.start().await;
    let mut watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_updatectl"))
        .arg("--socket")
        .arg(sb.socket())
        .arg("watch")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    // Its first line (the current status) shows it is subscribed.
    assert_eq!(
        lines.next_line().await.unwrap().as_deref(),
        Some("Idle, running 1.0.0")
    );
    engine.check_until(&["updated-need-reboot"]).await;
    engine.stop().await;
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        rest.push(line);
    }
    assert!(watch.wait().await.unwrap().success());
    assert!(
        rest.contains(&"Checking for an update".to_string()),
        "{rest:?}"
    );
    assert!(
        rest.iter()
            .any(|l| l.starts_with("Downloading 2.0.0 [") && l.contains("MiB")),
        "{rest:?}"
    );
    assert_eq!(
        rest.last().map(String::as_str),
        Some("Updated to 2.0.0; reboot needed"),
        "{rest:?}"
    );
}
