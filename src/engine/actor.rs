//! The owner task: the only place the engine state lives. API requests,
//! timer expiries and the results of I/O tasks are messages to it; it applies
//! them to the state machine, persists, and publishes every change on a
//! broadcast channel (for `/v1/events`, the status file and sd_notify).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::backend::{Backend, CheckAnswer, InstallError, Report};
use super::coordinate::Coordination;
pub use super::coordinate::{RebootSettings, WallClock};
use super::failure::Failure;
use super::machine::{Machine, TransitionError};
use super::metrics::Metrics;
use super::recovery::BootFacts;
use super::schedule::{Schedule, ScheduleSettings};
use super::state::State;
use super::status::{ReportContext, StatusReport};
use super::store::{Attempt, Outcome, Persisted, Store};

/// Requests waiting for the owner task at most.
const QUEUE_LEN: usize = 64;
/// Status changes buffered per `/v1/events` subscriber before it lags.
const EVENTS_LEN: usize = 256;
/// How long shutdown waits for the install to save its checkpoint.
const SHUTDOWN_GRACE_SECS: u64 = 20;

/// Settings of the engine's flow (the backend has its own).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// The running OS version.
    pub current_version: String,
    /// Check timing.
    pub schedule: ScheduleSettings,
    /// Accept versions older than the running one.
    pub allow_downgrade: bool,
    /// How a staged update gets its reboot (strategy, windows, lock retries).
    pub reboot: RebootSettings,
    /// Wait after boot before the health checks of a trial boot.
    pub health_grace: Duration,
}

/// Messages to the owner task.
#[derive(Debug)]
pub(super) enum Msg {
    Status(oneshot::Sender<StatusReport>),
    Check(oneshot::Sender<Result<StatusReport, TransitionError>>),
    History(oneshot::Sender<Result<Vec<Attempt>, String>>),
    Metrics(oneshot::Sender<String>),
    Shutdown(oneshot::Sender<()>),
    CheckDone(Result<CheckAnswer, Failure>),
    Progress { bytes: u64, network_delta: u64 },
    Downloaded,
    InstallDone(Result<(), InstallError>),
    FinalizeDone(Result<(), String>),
    HealthDone(Result<(), String>),
    ErrorReported,
    RebootDone(Result<(), String>),
    LockAttempt(Result<bool, crate::lock::LockError>),
    LockFailed(String),
    LockReleased(Result<(), crate::lock::LockError>),
    HooksDone(Result<(), String>),
}

/// A cheap, clonable handle to the owner task.
#[derive(Debug, Clone)]
pub struct Handle {
    tx: mpsc::Sender<Msg>,
    events: broadcast::Sender<StatusReport>,
}

/// The owner task has stopped (daemon shutting down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the update engine is shutting down")]
pub struct EngineGone;

impl Handle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Msg) -> Result<T, EngineGone> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| EngineGone)?;
        rx.await.map_err(|_| EngineGone)
    }

    /// The current status.
    pub async fn status(&self) -> Result<StatusReport, EngineGone> {
        self.ask(Msg::Status).await
    }

    /// Start an update check now; refused while one runs or an install is busy.
    pub async fn check(&self) -> Result<Result<StatusReport, TransitionError>, EngineGone> {
        self.ask(Msg::Check).await
    }

    /// The update history, oldest first.
    pub async fn history(&self) -> Result<Result<Vec<Attempt>, String>, EngineGone> {
        self.ask(Msg::History).await
    }

    /// The Prometheus metrics text.
    pub async fn metrics(&self) -> Result<String, EngineGone> {
        self.ask(Msg::Metrics).await
    }

    /// Every status change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StatusReport> {
        self.events.subscribe()
    }

    /// Stop: an install in progress saves its checkpoint first.
    pub async fn shutdown(&self) {
        let _ = self.ask(Msg::Shutdown).await;
    }
}

/// Start the engine: load the state, judge this boot, then run the owner
/// task. Returns the handle and the task (which ends after `shutdown`).
pub async fn start<B: Backend>(
    backend: B,
    settings: EngineSettings,
    store: Store,
) -> Result<(Handle, JoinHandle<()>)> {
    let persisted = store.load()?;
    let facts = backend
        .boot_facts()
        .await
        .context("finding the booted slot")?;
    let (tx, rx) = mpsc::channel(QUEUE_LEN);
    let (events, _) = broadcast::channel(EVENTS_LEN);
    let (reports, report_rx) = mpsc::unbounded_channel();
    let backend = Arc::new(backend);
    spawn_reporter(backend.clone(), report_rx, tx.clone());
    let ctx = ReportContext {
        current_version: settings.current_version.clone(),
        booted_slot: Some(facts.booted),
        last_check: persisted.last_check,
    };
    let mut engine = Engine {
        schedule: Schedule::new(settings.schedule.clone()),
        backend,
        settings,
        machine: Machine::default(),
        store,
        persisted,
        metrics: Metrics::default(),
        ctx,
        facts,
        next_check: None,
        tx: tx.clone(),
        events: events.clone(),
        reports,
        install: None,
        install_started: None,
        reboot_flag: None,
        coord: Coordination::default(),
    };
    engine.metrics.last_check_timestamp_seconds =
        engine.persisted.last_check.map(|t| t.timestamp());
    let first = engine.schedule.first_delay(rand::random());
    engine.next_check = Some(Instant::now() + first);
    info!(
        first_check_in_secs = first.as_secs(),
        "update engine started"
    );
    engine.recover().await;
    engine.publish();
    let task = tokio::spawn(engine.run(rx));
    Ok((Handle { tx, events }, task))
}

/// Sends Omaha events one at a time, in order; acknowledges error events.
fn spawn_reporter<B: Backend>(
    backend: Arc<B>,
    mut rx: mpsc::UnboundedReceiver<(String, Report)>,
    engine: mpsc::Sender<Msg>,
) {
    tokio::spawn(async move {
        while let Some((version, report)) = rx.recv().await {
            let is_error = matches!(report, Report::Error { .. });
            if let Err(e) = backend.report(version, report.clone()).await {
                warn!(?report, error = %format!("{e:#}"), "could not send Omaha event");
            }
            if is_error {
                let _ = engine.send(Msg::ErrorReported).await;
            }
        }
    });
}

struct RunningInstall {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

pub(super) struct Engine<B> {
    pub(super) backend: Arc<B>,
    pub(super) settings: EngineSettings,
    pub(super) machine: Machine,
    pub(super) store: Store,
    pub(super) persisted: Persisted,
    pub(super) schedule: Schedule,
    pub(super) metrics: Metrics,
    pub(super) ctx: ReportContext,
    pub(super) facts: BootFacts,
    pub(super) next_check: Option<Instant>,
    pub(super) tx: mpsc::Sender<Msg>,
    events: broadcast::Sender<StatusReport>,
    reports: mpsc::UnboundedSender<(String, Report)>,
    install: Option<RunningInstall>,
    pub(super) install_started: Option<Instant>,
    reboot_flag: Option<bool>,
    pub(super) coord: Coordination,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl<B: Backend> Engine<B> {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    if let Msg::Shutdown(reply) = msg {
                        self.shutdown().await;
                        let _ = reply.send(());
                        break;
                    }
                    self.handle(msg).await;
                }
                () = sleep_until(self.next_check) => self.timer_check(),
                () = sleep_until(self.coord.timer) => self.on_coord_timer(),
            }
            self.publish();
        }
        info!("update engine stopped");
    }

    async fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Status(reply) => {
                let _ = reply.send(self.report());
            }
            Msg::Check(reply) => {
                let result = self.begin_check(true).map(|()| self.report());
                let _ = reply.send(result);
            }
            Msg::History(reply) => {
                let _ = reply.send(self.store.history().map_err(|e| format!("{e:#}")));
            }
            Msg::Metrics(reply) => {
                let _ = reply.send(self.metrics.render(self.machine.state()));
            }
            Msg::CheckDone(result) => self.on_check_done(result).await,
            Msg::Progress {
                bytes,
                network_delta,
            } => self.on_progress(bytes, network_delta),
            Msg::Downloaded => self.on_downloaded(),
            Msg::InstallDone(result) => {
                self.install = None;
                self.on_install_done(result).await;
            }
            Msg::FinalizeDone(result) => self.on_finalize_done(result).await,
            Msg::HealthDone(result) => self.on_health_done(result).await,
            Msg::ErrorReported => {
                if matches!(self.machine.state(), State::ReportingErrorEvent { .. }) {
                    let _ = self.machine.error_reported();
                }
            }
            Msg::RebootDone(result) => self.on_reboot_done(result),
            Msg::LockAttempt(result) => self.on_lock_attempt(result),
            Msg::LockFailed(kind) => self.metrics.lock_error(&kind),
            Msg::LockReleased(result) => self.on_lock_released(result),
            Msg::HooksDone(result) => self.on_hooks_done(result),
            Msg::Shutdown(_) => unreachable!("handled by the loop"),
        }
    }

    /// The scheduled check is due. If the engine is busy, try again later.
    fn timer_check(&mut self) {
        if self.begin_check(false).is_err() {
            let delay = self.schedule.after_busy(rand::random());
            self.next_check = Some(Instant::now() + delay);
        } else {
            self.next_check = None;
        }
    }

    fn begin_check(&mut self, interactive: bool) -> Result<(), TransitionError> {
        self.machine.begin_check(interactive)?;
        self.metrics.checks_total += 1;
        let backend = self.backend.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let result = backend.check(interactive).await;
            let _ = tx.send(Msg::CheckDone(result)).await;
        });
        Ok(())
    }

    pub(super) fn report(&self) -> StatusReport {
        self.report_of(self.machine.state(), self.machine.seq())
    }

    /// The status of `state`, with the reboot coordination note (why a
    /// staged update is not rebooting yet) as its message.
    fn report_of(&self, state: &State, seq: u64) -> StatusReport {
        let mut report = StatusReport::new(state, &self.ctx, seq);
        let coordinating = matches!(
            state,
            State::UpdatedNeedReboot { .. }
                | State::WaitingForWindow { .. }
                | State::WaitingForLock { .. }
                | State::RunningPreRebootHooks { .. }
        );
        if coordinating && report.message.is_none() {
            report.message = self.coord.note.clone();
        }
        report
    }

    /// Queue an Omaha event (sent in order by the reporter task).
    pub(super) fn send_report(&self, version: String, report: Report) {
        let _ = self.reports.send((version, report));
    }

    /// Save `state.json`; a failure is logged (the next save retries).
    pub(super) fn save(&self) -> bool {
        match self.store.save(&self.persisted) {
            Ok(()) => true,
            Err(e) => {
                error!(error = %format!("{e:#}"), "could not save engine state");
                false
            }
        }
    }

    pub(super) fn history(&self, attempt: Attempt) {
        if let Err(e) = self.store.append_history(&attempt) {
            warn!(error = %format!("{e:#}"), "could not append to the update history");
        }
    }

    pub(super) fn attempt(
        &self,
        version: &str,
        result: Outcome,
        failure: Option<&Failure>,
    ) -> Attempt {
        let op = self.persisted.operation.as_ref();
        let now = chrono::Utc::now();
        Attempt {
            version: version.to_string(),
            started_at: op.map_or(now, |o| o.started_at),
            ended_at: now,
            bytes: op.map_or(0, |o| o.network_bytes),
            result,
            error_code: failure.map(|f| f.code),
            error: failure.map(|f| f.message.clone()),
        }
    }

    /// Start an install task for `job`.
    pub(super) fn spawn_install(&mut self, job: super::backend::InstallJob) {
        let cancel = CancellationToken::new();
        let backend = self.backend.clone();
        let store = self.store.clone();
        let tx = self.tx.clone();
        let sink = super::backend::ProgressSink { tx: tx.clone() };
        let token = cancel.clone();
        let task = tokio::spawn(async move {
            // Before the first byte is written the target must not be
            // bootable: a half-written slot must never be chosen by the
            // bootloader, even as a fallback.
            let result = match backend.disable_slot(job.target).await {
                Err(e) => Err(InstallError::Failed(Failure::new(
                    super::failure::WRITE_ERROR,
                    format!(
                        "making slot {} non-bootable before writing: {e:#}",
                        job.target
                    ),
                ))),
                Ok(()) => backend.install(job, store, sink, token).await,
            };
            let _ = tx.send(Msg::InstallDone(result)).await;
        });
        self.install = Some(RunningInstall { cancel, task });
    }

    async fn shutdown(&mut self) {
        if let Some(install) = self.install.take() {
            info!("stopping the install; its checkpoint is saved for a resume");
            install.cancel.cancel();
            let grace = Duration::from_secs(SHUTDOWN_GRACE_SECS);
            if tokio::time::timeout(grace, install.task).await.is_err() {
                warn!("the install did not stop in time; it resumes from its last checkpoint");
            }
        }
        self.save();
    }

    /// Publish recorded changes: first the status file and the
    /// reboot-required flag (so a client that saw an event finds the files
    /// up to date), then every change on the broadcast channel.
    pub(super) fn publish(&mut self) {
        let changes = self.machine.take_changes();
        if changes.is_empty() {
            return;
        }
        let report = self.report();
        if let Err(e) = self.store.write_status(&report.key_values()) {
            warn!(error = %format!("{e:#}"), "could not write the status file");
        }
        let required = self.machine.state().staged().is_some()
            || matches!(self.machine.state(), State::Rebooting { .. });
        if self.reboot_flag != Some(required) {
            match self.store.set_reboot_required(required) {
                Ok(()) => self.reboot_flag = Some(required),
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "could not update the reboot-required flag")
                }
            }
        }
        for change in &changes {
            let report = self.report_of(&change.to, change.seq);
            let _ = self.events.send(report);
        }
    }
}

#[cfg(test)]
#[path = "actor_tests.rs"]
mod tests;
