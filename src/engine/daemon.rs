//! The daemon around the owner task: binds the control socket, starts the
//! engine, serves the API, tells systemd how it goes (sd_notify `READY=1`,
//! `STATUS=`, watchdog pings) and shuts down cleanly on request (SIGTERM),
//! letting an install save its checkpoint first.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use sd_notify::NotifyState;
use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

use super::actor::{self, EngineSettings, Handle};
use super::api::{self, AccessPolicy};
use super::backend::Backend;
use super::store::Store;

/// How long the watchdog pinger waits for the owner task to answer.
const WATCHDOG_PROBE_SECS: u64 = 5;

/// Daemon-level options.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Control socket path.
    pub socket: PathBuf,
    /// Who may change things over the socket.
    pub policy: AccessPolicy,
}

/// Run the daemon until `stop` completes (SIGTERM in the binary).
pub async fn run<B: Backend>(
    backend: B,
    settings: EngineSettings,
    store: Store,
    options: DaemonOptions,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = api::bind(&options.socket)?;
    let (handle, engine_task) = actor::start(backend, settings, store).await?;
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(
        listener,
        handle.clone(),
        options.policy.clone(),
        async move {
            let _ = stopped_rx.await;
        },
    ));
    let notifier = tokio::spawn(notify_status(handle.clone()));
    let watchdog = tokio::spawn(watchdog(handle.clone()));
    notify(&[NotifyState::Ready]);
    info!(socket = %options.socket.display(), "update-engine ready");

    stop.await;
    info!("stopping update-engine");
    notify(&[NotifyState::Stopping]);
    // The owner task first: an install saves its checkpoint before we exit.
    handle.shutdown().await;
    let _ = engine_task.await;
    let _ = stopped_tx.send(());
    watchdog.abort();
    notifier.abort();
    server
        .await
        .context("control API task panicked")?
        .context("control API failed")?;
    let _ = std::fs::remove_file(&options.socket);
    Ok(())
}

fn notify(state: &[NotifyState]) {
    // Outside systemd ($NOTIFY_SOCKET unset) this is a no-op.
    if let Err(e) = sd_notify::notify(false, state) {
        warn!(error = %e, "sd_notify failed");
    }
}

/// `STATUS=<human line>` on every state change.
async fn notify_status(handle: Handle) {
    let mut rx = handle.subscribe();
    if let Ok(report) = handle.status().await {
        notify(&[NotifyState::Status(&report.human_line())]);
    }
    loop {
        match rx.recv().await {
            Ok(report) => notify(&[NotifyState::Status(&report.human_line())]),
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        }
    }
}

/// Ping the systemd watchdog at half its interval, but only while the owner
/// task answers: a hung engine is restarted and resumes from its checkpoint.
async fn watchdog(handle: Handle) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let period = Duration::from_micros(usec / 2);
    loop {
        tokio::time::sleep(period).await;
        let probe = tokio::time::timeout(Duration::from_secs(WATCHDOG_PROBE_SECS), handle.status());
        match probe.await {
            Ok(Ok(_)) => notify(&[NotifyState::Watchdog]),
            Ok(Err(_)) => return,
            Err(_) => warn!("engine did not answer in time; skipping a watchdog ping"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::actor::RebootSettings;
    use crate::engine::api::client::Client;
    use crate::engine::backend::CheckAnswer;
    use crate::engine::fake::{FakeBackend, InstallScript};
    use crate::engine::schedule::ScheduleSettings;
    use crate::engine::state::Offer;
    use crate::engine::store::Paths;
    use crate::reboot::Strategy;
    use crate::slot::SlotId;

    #[tokio::test]
    async fn serves_until_stopped_and_saves_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::sandbox(dir.path().join("state"), &dir.path().join("run"));
        let store = Store::open(paths).unwrap();
        let fake = FakeBackend::new(SlotId::A, true, "boot-1");
        fake.push_check(Ok(CheckAnswer::Update(Offer {
            version: "2.0.0".into(),
            urls: vec![],
            size: 100,
            sha256_hex: String::new(),
        })));
        fake.push_install(InstallScript::WaitForCancel);
        let settings = EngineSettings {
            current_version: "1.0.0".into(),
            schedule: ScheduleSettings::default(),
            allow_downgrade: false,
            reboot: RebootSettings::new(Strategy::Off),
            health_grace: Duration::ZERO,
        };
        let socket = dir.path().join("run/control.sock");
        let options = DaemonOptions {
            socket: socket.clone(),
            policy: AccessPolicy {
                admin_group: Some(nix::unistd::getegid().as_raw()),
            },
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let daemon = tokio::spawn(run(fake.clone(), settings, store.clone(), options, async {
            let _ = stopped.await;
        }));
        // The socket appears once the daemon is ready.
        let client = Client::new(&socket);
        let mut events = loop {
            match client.events().await {
                Ok(events) => break events,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        client.check().await.unwrap();
        while events.next().await.unwrap().unwrap().phase != "downloading" {}
        stop.send(()).unwrap();
        daemon.await.unwrap().unwrap();
        assert_eq!(store.load_checkpoint::<u64>().unwrap(), Some(50));
        assert!(store.load().unwrap().operation.is_some());
        assert!(!socket.exists(), "the socket is removed on exit");
    }

    #[tokio::test]
    async fn an_unusable_socket_path_fails_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Paths::sandbox(dir.path().join("s"), dir.path())).unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let options = DaemonOptions {
            socket: file,
            policy: AccessPolicy::default(),
        };
        let settings = EngineSettings {
            current_version: "1.0.0".into(),
            schedule: ScheduleSettings::default(),
            allow_downgrade: false,
            reboot: RebootSettings::new(Strategy::Off),
            health_grace: Duration::ZERO,
        };
        let fake = FakeBackend::new(SlotId::A, true, "b");
        let err = run(fake, settings, store, options, async {})
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("is not a socket"), "{err:#}");
    }
}
