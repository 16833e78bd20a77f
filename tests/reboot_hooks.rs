//! Pre-reboot steps with real processes: hooks that succeed, fail, time out
//! (their process group dies too) or cannot start; the wall message through
//! an injected command; and the grace delay on paused time.

use std::path::Path;
use std::time::Duration;

use ab_updater::config::CommandLine;
use ab_updater::reboot::hooks::{
    reboot_message, run_hook, run_pre_reboot_hooks, HookError, PreReboot, Wall, WallOutcome,
};

fn sh(script: &str) -> CommandLine {
    CommandLine {
        program: "sh".into(),
        args: vec!["-c".into(), script.into()],
    }
}

const LONG: Duration = Duration::from_secs(60);

#[tokio::test]
async fn hooks_run_in_order_and_the_first_failure_stops_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let l = log.display();
    let hooks = [
        sh(&format!("echo one >> {l}")),
        sh(&format!(
            "echo two >> {l}; echo 'line 1' >&2; echo 'disk busy' >&2; exit 3"
        )),
        sh(&format!("echo three >> {l}")),
    ];
    let err = run_pre_reboot_hooks(&hooks, LONG).await.unwrap_err();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "one\ntwo\n");
    match &err {
        HookError::Failed {
            status,
            stderr_tail,
            ..
        } => {
            assert_eq!(status, "exit status: 3");
            assert_eq!(stderr_tail, "line 1 | disk busy");
        }
        other => panic!("unexpected {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.starts_with("pre-reboot hook `sh -c echo two >> "),
        "{text}"
    );
    assert!(
        text.ends_with("failed (exit status: 3): stderr: line 1 | disk busy; reboot cancelled, will retry later"),
        "{text}"
    );
}

#[tokio::test]
async fn passing_hooks_and_no_hooks_are_ok() {
    run_pre_reboot_hooks(&[], LONG).await.unwrap();
    run_pre_reboot_hooks(&[sh("exit 0"), sh("true")], LONG)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_hook_that_cannot_start_names_itself() {
    let hook = CommandLine {
        program: "/nonexistent/drain-node".into(),
        args: vec!["--now".into()],
    };
    let err = run_hook(&hook, LONG).await.unwrap_err();
    assert!(matches!(err, HookError::Spawn { .. }), "{err:?}");
    assert!(err
        .to_string()
        .starts_with("pre-reboot hook `/nonexistent/drain-node --now` could not be started: "));
}

#[tokio::test]
async fn a_hook_past_its_timeout_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // The shell starts a background sleeper, records its pid, and waits.
    let hook = sh(&format!(
        "sleep 300 & echo $! > {}; wait",
        pid_file.display()
    ));
    let err = run_hook(&hook, Duration::from_millis(500))
        .await
        .unwrap_err();
    match &err {
        HookError::TimedOut { timeout, .. } => assert_eq!(*timeout, Duration::from_millis(500)),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err
        .to_string()
        .contains("did not finish within 0.5s and was killed"));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The grandchild got SIGKILL with the group: gone or a zombie awaiting
    // its reaper, never still sleeping.
    assert!(wait_dead(pid).await, "background child {pid} survived");
}

async fn wait_dead(pid: i32) -> bool {
    for _ in 0..100 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        match stat {
            Err(_) => return true,
            Ok(s)
                if s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z')) =>
            {
                return true
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    false
}

fn recording_wall(out: &Path) -> Wall {
    Wall::new(sh(&format!("cat > {}", out.display())))
}

#[tokio::test]
async fn wall_gets_the_message_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wall.txt");
    let message = reboot_message(Some("2.0.0"), Duration::from_secs(60));
    assert_eq!(recording_wall(&out).send(&message).await, WallOutcome::Sent);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "update-engine: this system reboots in 60 seconds to finish installing OS version 2.0.0. Save your work.\n"
    );
    assert_eq!(
        reboot_message(None, Duration::ZERO),
        "update-engine: this system reboots in 0 seconds to finish an OS update. Save your work.\n"
    );
}

#[tokio::test]
async fn missing_or_failing_wall_never_blocks_the_reboot() {
    let missing = Wall::new(CommandLine {
        program: "no-such-wall-command".into(),
        args: vec![],
    });
    assert_eq!(missing.send("x").await, WallOutcome::Skipped);
    let absolute = Wall::new(CommandLine {
        program: "/nonexistent/wall".into(),
        args: vec![],
    });
    assert_eq!(absolute.send("x").await, WallOutcome::Skipped);
    let failing = Wall::new(sh("cat >/dev/null; exit 1"));
    assert_eq!(
        failing.send("x").await,
        WallOutcome::Failed("`sh -c cat >/dev/null; exit 1` failed (exit status: 1)".into())
    );
    let steps = PreReboot {
        hooks: vec![],
        hook_timeout: LONG,
        wall: Some(failing),
        grace: Duration::ZERO,
    };
    steps.run(Some("2.0.0")).await.unwrap();
}

#[tokio::test]
async fn a_failing_hook_means_no_warning() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wall.txt");
    let steps = PreReboot {
        hooks: vec![sh("exit 1")],
        hook_timeout: LONG,
        wall: Some(recording_wall(&out)),
        grace: Duration::ZERO,
    };
    assert!(matches!(
        steps.run(None).await,
        Err(HookError::Failed { .. })
    ));
    assert!(!out.exists(), "users were warned of a cancelled reboot");
}

#[tokio::test(start_paused = true)]
async fn grace_delay_waits_exactly_the_configured_time() {
    let steps = PreReboot {
        hooks: vec![],
        hook_timeout: LONG,
        wall: None,
        grace: Duration::from_secs(90),
    };
    let task = tokio::spawn(async move { steps.run(None).await });
    tokio::time::sleep(Duration::from_secs(89)).await;
    assert!(!task.is_finished(), "rebooted before the grace delay ended");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(task.is_finished());
    task.await.unwrap().unwrap();
}
