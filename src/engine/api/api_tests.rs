use std::path::PathBuf;

use super::client::Client;
use super::*;
use crate::engine::actor::{start, EngineSettings, RebootSettings};
use crate::engine::backend::CheckAnswer;
use crate::engine::fake::{FakeBackend, InstallScript};
use crate::engine::schedule::ScheduleSettings;
use crate::engine::state::Offer;
use crate::engine::store::{Paths, Store};
use crate::reboot::Strategy;
use crate::slot::SlotId;

struct Running {
    dir: tempfile::TempDir,
    socket: PathBuf,
    handle: Handle,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<()>>,
}

async fn run(fake: &FakeBackend, policy: AccessPolicy) -> Running {
    let dir = tempfile::tempdir().unwrap();
    // Other users must reach the socket (the unprivileged-client test).
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let store = Store::open(Paths::sandbox(
        dir.path().join("state"),
        &dir.path().join("run"),
    ))
    .unwrap();
    let settings = EngineSettings {
        current_version: "1.0.0".into(),
        schedule: ScheduleSettings::default(),
        allow_downgrade: false,
        reboot: RebootSettings::new(Strategy::Off),
        health_grace: std::time::Duration::ZERO,
    };
    let (handle, _task) = start(fake.clone(), settings, store).await.unwrap();
    let socket = dir.path().join("run/control.sock");
    let listener = bind(&socket).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, handle.clone(), policy, async move {
        let _ = stopped.await;
    }));
    Running {
        dir,
        socket,
        handle,
        stop,
        server,
    }
}

fn me() -> AccessPolicy {
    AccessPolicy {
        admin_group: Some(nix::unistd::getegid().as_raw()),
    }
}

fn offer(version: &str) -> Offer {
    Offer {
        version: version.into(),
        urls: vec![],
        size: 100,
        sha256_hex: String::new(),
    }
}

#[tokio::test]
async fn status_check_history_metrics_and_events() {
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    fake.push_check(Ok(CheckAnswer::Update(offer("2.0.0"))));
    let r = run(&fake, me()).await;
    let client = Client::new(&r.socket);

    let status = client.status().await.unwrap();
    assert_eq!(status.status, "UPDATE_STATUS_IDLE");
    assert_eq!(status.booted_slot, Some(SlotId::A));

    let mut events = client.events().await.unwrap();
    assert_eq!(events.next().await.unwrap().unwrap().phase, "idle");
    let started = client.check().await.unwrap();
    assert_eq!(started.phase, "checking-for-update");
    let mut phases = Vec::new();
    while let Some(report) = events.next().await.unwrap() {
        phases.push(report.phase.clone());
        if report.phase == "updated-need-reboot" {
            break;
        }
    }
    assert_eq!(
        phases.first().map(String::as_str),
        Some("checking-for-update")
    );
    assert!(phases.contains(&"downloading".to_string()), "{phases:?}");
    assert!(phases.contains(&"verifying".to_string()), "{phases:?}");

    let history = client.history().await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].version, "2.0.0");
    let metrics = client.metrics().await.unwrap();
    assert!(
        metrics.contains("update_engine_checks_total 1"),
        "{metrics}"
    );

    // Shutting the server down ends open event streams.
    r.stop.send(()).unwrap();
    assert!(events.next().await.unwrap().is_none());
    r.server.await.unwrap().unwrap();
    drop(r.dir);
}

#[tokio::test]
async fn a_check_while_busy_is_a_conflict() {
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    fake.push_check(Ok(CheckAnswer::Update(offer("2.0.0"))));
    fake.push_install(InstallScript::WaitForCancel);
    let r = run(&fake, me()).await;
    let client = Client::new(&r.socket);
    let mut events = client.events().await.unwrap();
    client.check().await.unwrap();
    while events.next().await.unwrap().unwrap().phase != "downloading" {}
    let err = format!("{:#}", client.check().await.unwrap_err());
    assert_eq!(
        err,
        "update-engine refused: cannot check for updates while downloading (HTTP 409 Conflict)"
    );
    r.handle.shutdown().await;
}

#[tokio::test]
async fn a_stopped_engine_answers_503_and_a_missing_socket_is_explained() {
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    let r = run(&fake, me()).await;
    r.handle.shutdown().await;
    let err = format!("{:#}", Client::new(&r.socket).status().await.unwrap_err());
    assert!(err.contains("shutting down (HTTP 503"), "{err}");
    let err = format!(
        "{:#}",
        Client::new(&r.dir.path().join("nope.sock"))
            .status()
            .await
            .unwrap_err()
    );
    assert!(err.contains("is update-engine running?"), "{err}");
}

#[test]
fn bind_replaces_a_stale_socket_but_never_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/control.sock");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        drop(bind(&path).unwrap());
        drop(bind(&path).unwrap());
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666);
    });
    let file = dir.path().join("file");
    fs::write(&file, b"keep me").unwrap();
    let err = rt.block_on(async { bind(&file).unwrap_err() });
    assert!(format!("{err:#}").contains("is not a socket"), "{err:#}");
    assert_eq!(fs::read(&file).unwrap(), b"keep me");
}

/// Environment variable naming the socket for `unprivileged_client`.
const SOCKET_ENV: &str = "UPDATE_ENGINE_TEST_SOCKET";

/// Run by `non_root_can_read_but_not_check` in a child process with the
/// privileges of `nobody` (hence ignored in normal runs).
#[tokio::test]
#[ignore = "runs as a child of non_root_can_read_but_not_check"]
async fn unprivileged_client() {
    let socket = std::env::var(SOCKET_ENV).expect("run by non_root_can_read_but_not_check");
    let client = Client::new(std::path::Path::new(&socket));
    let status = client.status().await.unwrap();
    println!("STATUS {}", status.status);
    let err = client.check().await.unwrap_err();
    println!("CHECK {err:#}");
}

#[tokio::test]
async fn non_root_can_read_but_not_check() {
    let fake = FakeBackend::new(SlotId::A, true, "boot-1");
    // Only root may change: no admin group.
    let r = run(&fake, AccessPolicy::default()).await;
    let output = if nix::unistd::geteuid().is_root() {
        // Re-run this test binary as `nobody`, executing only the client half.
        let exe = std::env::current_exe().unwrap();
        let child = tokio::process::Command::new(exe)
            .args([
                "--ignored",
                "--exact",
                "engine::api::tests::unprivileged_client",
                "--nocapture",
            ])
            .env(SOCKET_ENV, &r.socket)
            .uid(65534)
            .gid(65534)
            .output()
            .await
            .unwrap();
        assert!(child.status.success(), "{child:?}");
        String::from_utf8_lossy(&child.stdout).into_owned()
    } else {
        let client = Client::new(&r.socket);
        let status = client.status().await.unwrap();
        let err = client.check().await.unwrap_err();
        format!("STATUS {}\nCHECK {err:#}\n", status.status)
    };
    assert!(output.contains("STATUS UPDATE_STATUS_IDLE"), "{output}");
    assert!(
        output.contains("may not start a check: run as root or as a member of the update admin group (HTTP 403 Forbidden)"),
        "{output}"
    );
    assert!(
        fake.calls_starting("check").is_empty(),
        "no check was started"
    );
}
