//! Reboot coordination in the owner task (DESIGN §6): once an update is
//! staged, wait for a maintenance window, then for a slot of the cluster
//! lock, run the pre-reboot steps, and reboot. The decision at each step is
//! `reboot::policy::decide` (pure); the waits are timer messages of the owner
//! task; lock calls, hooks and the reboot run as tasks that report back.
//!
//! The lock is held from "slot taken" across the reboot and the trial boot,
//! and given back only once the new boot was marked good or the node came
//! back on the old slot. At start a node releases any slot it still holds
//! unless it is on trial (Flatcar#408: a node that needs another reboot must
//! not sit on its old slot while it waits for the next window).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::actor::{Engine, Msg};
use super::backend::Backend;
use super::state::State;
use crate::lock::{Backoff, LockError};
use crate::reboot::policy::{decide, Decision, LockState, RebootPolicy, Strategy};

/// Wait after a cancelled reboot (failing hook, failing reboot command)
/// before trying again, unless configured otherwise.
pub const RETRY_AFTER_CANCEL_SECS: u64 = 300;

/// Where "now" comes from for window decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WallClock {
    /// The system clock.
    System,
    /// `origin` plus the tokio time elapsed since `since`: tests and
    /// simulations with paused time see windows open as time advances.
    Following {
        /// Wall time at `since`.
        origin: DateTime<Utc>,
        /// The tokio instant matching `origin`.
        since: Instant,
    },
}

impl WallClock {
    /// A clock that reads `origin` now and advances with tokio time.
    pub fn starting_at(origin: DateTime<Utc>) -> Self {
        WallClock::Following {
            origin,
            since: Instant::now(),
        }
    }

    /// The current wall time.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            WallClock::System => Utc::now(),
            WallClock::Following { origin, since } => {
                let elapsed = chrono::Duration::from_std(since.elapsed()).unwrap_or_default();
                *origin + elapsed
            }
        }
    }
}

/// The reboot settings of the engine's flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebootSettings {
    /// Strategy and maintenance windows.
    pub policy: RebootPolicy,
    /// Delays between lock attempts (full semaphore or lock errors).
    pub lock_backoff: Backoff,
    /// Wait after a cancelled reboot before trying again.
    pub retry_after_cancel: Duration,
    /// Source of wall time for window decisions.
    pub clock: WallClock,
}

impl RebootSettings {
    /// `strategy` with no maintenance window and default delays.
    pub fn new(strategy: Strategy) -> Self {
        RebootSettings {
            policy: RebootPolicy {
                strategy,
                windows: crate::reboot::windows::Windows::always_open(),
            },
            lock_backoff: Backoff::default(),
            retry_after_cancel: Duration::from_secs(RETRY_AFTER_CANCEL_SECS),
            clock: WallClock::System,
        }
    }
}

/// What the owner task knows about coordination (not persisted: after a
/// restart the decision is simply taken again).
#[derive(Debug, Default)]
pub(super) struct Coordination {
    /// This node holds a lock slot (taken by us in this process).
    held: bool,
    /// A lock attempt is in flight.
    attempting: bool,
    /// A release is in flight; no attempt starts before it ends, so a late
    /// release can never undo a fresh acquire.
    releasing: bool,
    /// Failed or refused lock attempts in a row (for the backoff).
    failures: u32,
    /// The last lock error, shown in the status.
    last_error: Option<String>,
    /// When to look again (window opening, lock retry, retry after cancel).
    pub(super) timer: Option<Instant>,
    /// No new reboot attempt before this (after a cancelled one).
    not_before: Option<Instant>,
    /// Why the engine waits, for the status `message`.
    pub(super) note: Option<String>,
}

fn is_waiting(state: &State) -> bool {
    matches!(
        state,
        State::UpdatedNeedReboot { .. }
            | State::WaitingForWindow { .. }
            | State::WaitingForLock { .. }
    )
}

impl<B: Backend> Engine<B> {
    fn needs_lock(&self) -> bool {
        self.settings.reboot.policy.strategy.needs_lock()
    }

    /// Take the next coordination step for a staged update (no-op in any
    /// other state).
    pub(super) fn coordinate(&mut self) {
        if !is_waiting(self.machine.state()) {
            return;
        }
        if let Some(at) = self.coord.not_before {
            if Instant::now() < at {
                self.coord.timer = Some(at);
                return;
            }
            self.coord.not_before = None;
        }
        let lock = if !self.needs_lock() {
            LockState::NotNeeded
        } else if self.coord.held {
            LockState::Held
        } else if let Some(e) = &self.coord.last_error {
            LockState::Error(e.clone())
        } else {
            LockState::NotHeld
        };
        let now = self.settings.reboot.clock.now();
        let decision = decide(now, &self.settings.reboot.policy, &lock);
        let note_changed = self.coord.note.as_deref() != Some(decision.reason());
        if note_changed {
            info!(reason = decision.reason(), "reboot coordination");
            self.coord.note = Some(decision.reason().to_string());
        }
        match decision {
            Decision::Never { .. } => {
                self.coord.timer = None;
                if !matches!(self.machine.state(), State::UpdatedNeedReboot { .. }) {
                    let _ = self.machine.reboot_cancelled();
                }
            }
            Decision::WaitUntil { at, .. } => {
                // Outside the window: a slot held now would block others
                // for nothing.
                if self.coord.held {
                    self.release_lock("the maintenance window closed");
                }
                self.coord.failures = 0;
                let same = matches!(self.machine.state(), State::WaitingForWindow { until, .. } if *until == at);
                if !same || note_changed {
                    let _ = self.machine.wait_for_window(at);
                }
                let wait = (at - now).to_std().unwrap_or_default();
                self.coord.timer = Some(Instant::now() + wait);
            }
            Decision::WaitForLock { .. } => {
                if !matches!(self.machine.state(), State::WaitingForLock { .. }) || note_changed {
                    let _ = self.machine.wait_for_lock();
                }
                if !self.coord.attempting && !self.coord.releasing && self.coord.timer.is_none() {
                    self.spawn_lock_attempt();
                }
            }
            Decision::RebootNow { .. } => {
                self.coord.timer = None;
                if self.machine.run_hooks().is_ok() {
                    self.spawn_pre_reboot();
                }
            }
        }
    }

    /// The coordination timer fired.
    pub(super) fn on_coord_timer(&mut self) {
        self.coord.timer = None;
        self.coordinate();
    }

    fn spawn_lock_attempt(&mut self) {
        self.coord.attempting = true;
        let backend = self.backend.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let result = backend.lock_try_acquire().await;
            let _ = tx.send(Msg::LockAttempt(result)).await;
        });
    }

    fn lock_retry_delay(&mut self) -> Duration {
        let delay = self
            .settings
            .reboot
            .lock_backoff
            .delay(self.coord.failures, rand::thread_rng().gen());
        self.coord.failures = self.coord.failures.saturating_add(1);
        delay
    }

    /// One lock attempt ended: `Ok(true)` = a slot is ours.
    pub(super) fn on_lock_attempt(&mut self, result: Result<bool, LockError>) {
        self.coord.attempting = false;
        match result {
            Ok(true) => {
                self.coord.held = true;
                self.metrics.lock_held = true;
                self.coord.failures = 0;
                self.coord.last_error = None;
                if !is_waiting(self.machine.state()) {
                    // A newer release is being checked or installed: the
                    // slot is not needed yet.
                    self.release_lock("no update is waiting for a reboot any more");
                    return;
                }
            }
            Ok(false) => {
                self.coord.last_error = None;
                let delay = self.lock_retry_delay();
                self.coord.timer = Some(Instant::now() + delay);
            }
            Err(e) => {
                warn!(kind = e.kind(), error = %e, "reboot lock attempt failed; will retry");
                self.metrics.lock_error(e.kind());
                self.coord.last_error = Some(e.to_string());
                let delay = self.lock_retry_delay();
                self.coord.timer = Some(Instant::now() + delay);
            }
        }
        self.coordinate();
    }

    fn spawn_pre_reboot(&self) {
        let version = self.machine.state().staged().map(|s| s.version.clone());
        let backend = self.backend.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let result = backend.pre_reboot(version).await;
            let _ = tx.send(Msg::HooksDone(result)).await;
        });
    }

    /// The pre-reboot steps ended: reboot, or cancel and retry later.
    pub(super) fn on_hooks_done(&mut self, result: Result<(), String>) {
        if !matches!(self.machine.state(), State::RunningPreRebootHooks { .. }) {
            return;
        }
        match result {
            Ok(()) => {
                if self.machine.reboot().is_ok() {
                    self.spawn_reboot();
                }
            }
            Err(e) => {
                error!(error = %e, "pre-reboot steps failed; reboot cancelled");
                self.metrics.error("pre_reboot_hook");
                self.cancel_reboot(e);
            }
        }
    }

    /// A reboot attempt failed: keep the update staged, give the slot back,
    /// and try again after `retry_after_cancel`.
    pub(super) fn cancel_reboot(&mut self, why: String) {
        let _ = self.machine.reboot_cancelled();
        self.release_lock("the reboot was cancelled");
        let at = Instant::now() + self.settings.reboot.retry_after_cancel;
        self.coord.not_before = Some(at);
        self.coord.timer = Some(at);
        self.coord.note = Some(format!(
            "{why}; trying again in {}s",
            self.settings.reboot.retry_after_cancel.as_secs()
        ));
    }

    /// Give this node's slot back (with retries, in a task). A no-op for
    /// strategies without a lock or while a release runs.
    pub(super) fn release_lock(&mut self, why: &str) {
        if !self.needs_lock() || self.coord.releasing {
            return;
        }
        info!(reason = why, "releasing the reboot lock");
        self.coord.held = false;
        self.metrics.lock_held = false;
        self.coord.releasing = true;
        let backend = self.backend.clone();
        let tx = self.tx.clone();
        let backoff = self.settings.reboot.lock_backoff;
        tokio::spawn(async move {
            let mut failures = 0u32;
            let result = loop {
                match backend.lock_release().await {
                    Ok(()) => break Ok(()),
                    Err(e) if e.is_transient() => {
                        warn!(kind = e.kind(), error = %e, "cannot release the reboot lock yet");
                        let _ = tx.send(Msg::LockFailed(e.kind().to_string())).await;
                        let unit: f64 = rand::thread_rng().gen();
                        tokio::time::sleep(backoff.delay(failures, unit)).await;
                        failures = failures.saturating_add(1);
                    }
                    Err(e) => break Err(e),
                }
            };
            let _ = tx.send(Msg::LockReleased(result)).await;
        });
    }

    /// A release ended; a waiting update may now ask for the lock.
    pub(super) fn on_lock_released(&mut self, result: Result<(), LockError>) {
        self.coord.releasing = false;
        match result {
            Ok(()) => info!("reboot lock released"),
            Err(e) => {
                error!(kind = e.kind(), error = %e, "could not release the reboot lock");
                self.metrics.lock_error(e.kind());
            }
        }
        self.coordinate();
    }
}

#[cfg(test)]
#[path = "coordinate_tests.rs"]
mod tests;
