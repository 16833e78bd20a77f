//! The engine's transitions. Each is a named method that checks the phase it
//! may come from and goes through one choke point (`Machine::set`) that logs
//! the change and queues it for the owner task to persist and publish.

use tracing::{debug, info};

use super::state::{Offer, RebootReason, Staged, State};
use crate::slot::SlotId;

/// A transition asked for in a state it may not come from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event} while {from}")]
pub struct TransitionError {
    /// The transition that was refused.
    pub event: &'static str,
    /// The phase the machine was in.
    pub from: &'static str,
}

/// One recorded state change, drained by the owner task to persist and publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Monotonic change number, starting at 1.
    pub seq: u64,
    /// Phase before the change.
    pub from: &'static str,
    /// The new state.
    pub to: State,
}

/// The state machine: the current state plus the not yet published changes.
#[derive(Debug, Clone)]
pub struct Machine {
    state: State,
    seq: u64,
    changes: Vec<Change>,
}

impl Default for Machine {
    fn default() -> Self {
        Machine::new(State::Idle)
    }
}

impl Machine {
    /// A machine starting in `state` (the engine starts in `Idle`; tests start anywhere).
    pub fn new(state: State) -> Self {
        Machine {
            state,
            seq: 0,
            changes: Vec::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Number of changes so far.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Take the changes recorded since the last call, oldest first.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    /// The one choke point every transition goes through: log and record.
    fn set(&mut self, next: State) -> &State {
        let from = self.state.phase();
        self.seq += 1;
        if from != next.phase() {
            info!(
                from,
                to = next.phase(),
                status = next.status(),
                "engine state changed"
            );
        } else {
            debug!(phase = from, "engine state updated");
        }
        self.changes.push(Change {
            seq: self.seq,
            from,
            to: next.clone(),
        });
        self.state = next;
        &self.state
    }

    fn refuse(&self, event: &'static str) -> TransitionError {
        TransitionError {
            event,
            from: self.state.phase(),
        }
    }

    /// Start an update check: from rest, or while a staged update waits for
    /// its reboot (a newer release may replace it).
    pub fn begin_check(&mut self, interactive: bool) -> Result<&State, TransitionError> {
        let staged = match &self.state {
            s if s.is_at_rest() => None,
            State::UpdatedNeedReboot { staged }
            | State::WaitingForWindow { staged, .. }
            | State::WaitingForLock { staged } => Some(staged.clone()),
            _ => return Err(self.refuse("check for updates")),
        };
        Ok(self.set(State::CheckingForUpdate {
            interactive,
            staged,
        }))
    }

    /// The check found nothing (newer) to install: back to rest, or back to
    /// waiting for the reboot of the staged update.
    pub fn no_update(&mut self) -> Result<&State, TransitionError> {
        let State::CheckingForUpdate { staged, .. } = &self.state else {
            return Err(self.refuse("finish a check without update"));
        };
        let next = match staged {
            Some(staged) => State::UpdatedNeedReboot {
                staged: staged.clone(),
            },
            None => State::Idle,
        };
        Ok(self.set(next))
    }

    /// The check found an update we will install. A staged update is dropped:
    /// the new one is written over the same inactive slot.
    pub fn update_found(&mut self, offer: Offer) -> Result<&State, TransitionError> {
        if !matches!(self.state, State::CheckingForUpdate { .. }) {
            return Err(self.refuse("accept an update"));
        }
        Ok(self.set(State::UpdateAvailable { offer }))
    }

    /// At start: resume an install that was interrupted (engine killed,
    /// machine rebooted) from its checkpoint at `bytes`.
    pub fn resume(&mut self, offer: Offer, bytes: u64) -> Result<&State, TransitionError> {
        if self.state != State::Idle {
            return Err(self.refuse("resume an install"));
        }
        let next = State::Downloading {
            total: offer.size,
            bytes: bytes.min(offer.size),
            offer,
        };
        Ok(self.set(next))
    }

    /// At start: an install finished earlier in this same boot; keep
    /// waiting for its reboot.
    pub fn restore_staged(&mut self, staged: Staged) -> Result<&State, TransitionError> {
        if self.state != State::Idle {
            return Err(self.refuse("restore a staged update"));
        }
        Ok(self.set(State::UpdatedNeedReboot { staged }))
    }

    /// The download starts (or resumes with `bytes` already written).
    pub fn begin_download(&mut self, bytes: u64) -> Result<&State, TransitionError> {
        let State::UpdateAvailable { offer } = &self.state else {
            return Err(self.refuse("start downloading"));
        };
        let next = State::Downloading {
            total: offer.size,
            bytes: bytes.min(offer.size),
            offer: offer.clone(),
        };
        Ok(self.set(next))
    }

    /// More payload bytes arrived (`bytes` is the running total).
    pub fn progress(&mut self, bytes: u64) -> Result<&State, TransitionError> {
        let State::Downloading { offer, total, .. } = &self.state else {
            return Err(self.refuse("record download progress"));
        };
        let next = State::Downloading {
            offer: offer.clone(),
            total: *total,
            bytes: bytes.min(*total),
        };
        Ok(self.set(next))
    }

    /// The whole payload was received and applied; the slot is read back next.
    pub fn downloaded(&mut self) -> Result<&State, TransitionError> {
        let State::Downloading { offer, .. } = &self.state else {
            return Err(self.refuse("finish downloading"));
        };
        let offer = offer.clone();
        Ok(self.set(State::Verifying { offer }))
    }

    /// The slot read back matches the manifest; flip the GPT next.
    pub fn verified(&mut self) -> Result<&State, TransitionError> {
        let State::Verifying { offer } = &self.state else {
            return Err(self.refuse("finish verifying"));
        };
        let offer = offer.clone();
        Ok(self.set(State::Finalizing { offer }))
    }

    /// The GPT flip of `slot` is on disk: the update waits for a reboot.
    pub fn finalized(&mut self, slot: SlotId) -> Result<&State, TransitionError> {
        let State::Finalizing { offer } = &self.state else {
            return Err(self.refuse("finish installing"));
        };
        let staged = Staged {
            version: offer.version.clone(),
            slot,
        };
        Ok(self.set(State::UpdatedNeedReboot { staged }))
    }

    /// Give up on the current check or installation with an update_engine
    /// error code. A failed check keeps a staged update; a failed install
    /// has already overwritten it.
    pub fn fail(&mut self, code: u32, message: String) -> Result<&State, TransitionError> {
        let staged = match &self.state {
            State::CheckingForUpdate { staged, .. } => staged.clone(),
            State::UpdateAvailable { .. }
            | State::Downloading { .. }
            | State::Verifying { .. }
            | State::Finalizing { .. } => None,
            _ => return Err(self.refuse("report a failure")),
        };
        Ok(self.set(State::ReportingErrorEvent {
            code,
            message,
            staged,
        }))
    }

    /// The error event was sent (or given up on): back to rest or to the staged update.
    pub fn error_reported(&mut self) -> Result<&State, TransitionError> {
        let State::ReportingErrorEvent { staged, .. } = &self.state else {
            return Err(self.refuse("finish reporting an error"));
        };
        let next = match staged {
            Some(staged) => State::UpdatedNeedReboot {
                staged: staged.clone(),
            },
            None => State::Idle,
        };
        Ok(self.set(next))
    }

    /// The staged update from a coordination phase that may still change its mind.
    fn waiting_staged(&self, event: &'static str) -> Result<Staged, TransitionError> {
        match &self.state {
            State::UpdatedNeedReboot { staged }
            | State::WaitingForWindow { staged, .. }
            | State::WaitingForLock { staged } => Ok(staged.clone()),
            _ => Err(self.refuse(event)),
        }
    }

    /// Reboot coordination: no maintenance window is open until `until`.
    pub fn wait_for_window(
        &mut self,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<&State, TransitionError> {
        let staged = self.waiting_staged("wait for a maintenance window")?;
        Ok(self.set(State::WaitingForWindow { staged, until }))
    }

    /// Reboot coordination: the window is open, the cluster lock is not ours yet.
    pub fn wait_for_lock(&mut self) -> Result<&State, TransitionError> {
        let staged = self.waiting_staged("wait for the reboot lock")?;
        Ok(self.set(State::WaitingForLock { staged }))
    }

    /// Reboot coordination: window and lock are ours; run the pre-reboot hooks.
    pub fn run_hooks(&mut self) -> Result<&State, TransitionError> {
        let staged = self.waiting_staged("run pre-reboot hooks")?;
        Ok(self.set(State::RunningPreRebootHooks { staged }))
    }

    /// Reboot into the staged update now.
    pub fn reboot(&mut self) -> Result<&State, TransitionError> {
        let staged = match &self.state {
            State::RunningPreRebootHooks { staged } => staged.clone(),
            _ => self.waiting_staged("reboot")?,
        };
        Ok(self.set(State::Rebooting {
            reason: RebootReason::Update { staged },
        }))
    }

    /// A hook failed, the lock was lost or the reboot command failed: keep the
    /// staged update and try again at the next opportunity.
    pub fn reboot_cancelled(&mut self) -> Result<&State, TransitionError> {
        let staged = match &self.state {
            State::RunningPreRebootHooks { staged }
            | State::Rebooting {
                reason: RebootReason::Update { staged },
            } => staged.clone(),
            _ => self.waiting_staged("cancel the reboot")?,
        };
        Ok(self.set(State::UpdatedNeedReboot { staged }))
    }

    /// At start: the booted slot is on trial (successful=0); health checks run.
    pub fn trial_boot(
        &mut self,
        version: String,
        previous_version: Option<String>,
        slot: SlotId,
    ) -> Result<&State, TransitionError> {
        if self.state != State::Idle {
            return Err(self.refuse("start a trial boot"));
        }
        Ok(self.set(State::TrialBoot {
            version,
            previous_version,
            slot,
        }))
    }

    /// The trial boot passed its health checks and the slot is marked good.
    pub fn health_ok(&mut self) -> Result<&State, TransitionError> {
        let State::TrialBoot { version, .. } = &self.state else {
            return Err(self.refuse("mark the boot good"));
        };
        let version = version.clone();
        Ok(self.set(State::Good { version }))
    }

    /// The trial boot failed its health checks: the slot is marked bad and we
    /// reboot back into the previous one.
    pub fn health_failed(&mut self) -> Result<&State, TransitionError> {
        let State::TrialBoot { version, .. } = &self.state else {
            return Err(self.refuse("fail the trial boot"));
        };
        let version = version.clone();
        Ok(self.set(State::Rebooting {
            reason: RebootReason::HealthCheckFailed { version },
        }))
    }

    /// At start: the update installed last never became good and the old slot booted.
    pub fn rolled_back(&mut self, version: String) -> Result<&State, TransitionError> {
        if self.state != State::Idle {
            return Err(self.refuse("record a rollback"));
        }
        Ok(self.set(State::RolledBack { version }))
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
