//! The engine's state machine: a pure enum that carries its data, named
//! transitions that check where they may come from, and one choke point
//! (`Machine::set`) that records every change for the owner task to persist
//! and publish. No I/O happens here; callers feed in what they observed.

use serde::{Deserialize, Serialize};

use crate::slot::SlotId;

/// An update the server offered and the engine decided to install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// Version of the new OS image.
    pub version: String,
    /// Payload URLs in failover order.
    pub urls: Vec<String>,
    /// Size of the payload file in bytes, as the server announced it.
    pub size: u64,
    /// sha256 of the whole payload file, lowercase hex.
    pub sha256_hex: String,
}

/// A verified update written to the inactive slot, waiting for a reboot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staged {
    /// Version written to the slot.
    pub version: String,
    /// The slot it was written to (now install-ready: tries=1, prioritized).
    pub slot: SlotId,
}

/// Why the engine is rebooting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum RebootReason {
    /// Boot into a staged update.
    Update {
        /// The staged update.
        staged: Staged,
    },
    /// The trial boot of `version` failed its health checks; go back.
    HealthCheckFailed {
        /// The version that failed.
        version: String,
    },
}

/// The engine's state (DESIGN §5), each variant carrying the data it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum State {
    /// Nothing to do until the next check.
    Idle,
    /// An Omaha update check is in flight. `staged` survives a check made
    /// while a staged update waits for its reboot.
    CheckingForUpdate {
        /// Requested by an operator (`updatectl check`) rather than the schedule.
        interactive: bool,
        /// The update waiting for a reboot, if any.
        staged: Option<Staged>,
    },
    /// The server offered an update we will install.
    UpdateAvailable {
        /// The offered update.
        offer: Offer,
    },
    /// Streaming the payload into the inactive slot.
    Downloading {
        /// The update being downloaded.
        offer: Offer,
        /// Payload bytes received so far (including resumed ones).
        bytes: u64,
        /// Payload size.
        total: u64,
    },
    /// Reading the slot back and comparing hashes.
    Verifying {
        /// The update being verified.
        offer: Offer,
    },
    /// Flipping the GPT attributes of the new slot.
    Finalizing {
        /// The update being finalized.
        offer: Offer,
    },
    /// The update is installed; a reboot activates it.
    UpdatedNeedReboot {
        /// The installed update.
        staged: Staged,
    },
    /// Reporting a failure to the server; then back to rest.
    ReportingErrorEvent {
        /// update_engine error code sent with the `3/0` event.
        code: u32,
        /// One human line saying what failed.
        message: String,
        /// A staged update that the failure did not touch (failed check).
        staged: Option<Staged>,
    },
    /// Reboot coordination: outside every maintenance window.
    WaitingForWindow {
        /// The update waiting for the reboot.
        staged: Staged,
        /// When the next window opens.
        until: chrono::DateTime<chrono::Utc>,
    },
    /// Reboot coordination: waiting for the cluster reboot lock.
    WaitingForLock {
        /// The update waiting for the reboot.
        staged: Staged,
    },
    /// Reboot coordination: running the pre-reboot hook commands.
    RunningPreRebootHooks {
        /// The update waiting for the reboot.
        staged: Staged,
    },
    /// The reboot command is running.
    Rebooting {
        /// Why.
        #[serde(flatten)]
        reason: RebootReason,
    },
    /// First boot of a new slot (successful=0): health checks running.
    TrialBoot {
        /// The version booted on trial.
        version: String,
        /// The version we updated from, reported with `3/2`.
        previous_version: Option<String>,
        /// The booted slot.
        slot: SlotId,
    },
    /// The new slot passed its health checks and is marked good.
    Good {
        /// The version now marked good.
        version: String,
    },
    /// The last installed update never got marked good and the old slot booted.
    RolledBack {
        /// The version that was rolled back (never retried until a newer one appears).
        version: String,
    },
}

impl State {
    /// The update_engine status string (`UPDATE_STATUS_...`). Reboot
    /// coordination phases report `UPDATED_NEED_REBOOT`, like update_engine
    /// does while locksmith waits; the rollback reboot reports update_engine's
    /// `ATTEMPTING_ROLLBACK`; after-boot phases are idle.
    pub fn status(&self) -> &'static str {
        match self {
            State::Idle
            | State::TrialBoot { .. }
            | State::Good { .. }
            | State::RolledBack { .. } => "UPDATE_STATUS_IDLE",
            State::CheckingForUpdate { .. } => "UPDATE_STATUS_CHECKING_FOR_UPDATE",
            State::UpdateAvailable { .. } => "UPDATE_STATUS_UPDATE_AVAILABLE",
            State::Downloading { .. } => "UPDATE_STATUS_DOWNLOADING",
            State::Verifying { .. } => "UPDATE_STATUS_VERIFYING",
            State::Finalizing { .. } => "UPDATE_STATUS_FINALIZING",
            State::UpdatedNeedReboot { .. }
            | State::WaitingForWindow { .. }
            | State::WaitingForLock { .. }
            | State::RunningPreRebootHooks { .. }
            | State::Rebooting {
                reason: RebootReason::Update { .. },
            } => "UPDATE_STATUS_UPDATED_NEED_REBOOT",
            State::Rebooting {
                reason: RebootReason::HealthCheckFailed { .. },
            } => "UPDATE_STATUS_ATTEMPTING_ROLLBACK",
            State::ReportingErrorEvent { .. } => "UPDATE_STATUS_REPORTING_ERROR_EVENT",
        }
    }

    /// The finer phase name (kebab-case), the same as the JSON `phase` tag.
    pub fn phase(&self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::CheckingForUpdate { .. } => "checking-for-update",
            State::UpdateAvailable { .. } => "update-available",
            State::Downloading { .. } => "downloading",
            State::Verifying { .. } => "verifying",
            State::Finalizing { .. } => "finalizing",
            State::UpdatedNeedReboot { .. } => "updated-need-reboot",
            State::ReportingErrorEvent { .. } => "reporting-error-event",
            State::WaitingForWindow { .. } => "waiting-for-window",
            State::WaitingForLock { .. } => "waiting-for-lock",
            State::RunningPreRebootHooks { .. } => "running-pre-reboot-hooks",
            State::Rebooting { .. } => "rebooting",
            State::TrialBoot { .. } => "trial-boot",
            State::Good { .. } => "good",
            State::RolledBack { .. } => "rolled-back",
        }
    }

    /// The update waiting for a reboot, in every state that keeps one.
    pub fn staged(&self) -> Option<&Staged> {
        match self {
            State::UpdatedNeedReboot { staged }
            | State::WaitingForWindow { staged, .. }
            | State::WaitingForLock { staged }
            | State::RunningPreRebootHooks { staged }
            | State::Rebooting {
                reason: RebootReason::Update { staged },
            } => Some(staged),
            State::CheckingForUpdate { staged, .. } | State::ReportingErrorEvent { staged, .. } => {
                staged.as_ref()
            }
            _ => None,
        }
    }

    /// The update being installed, from offer to finalizing.
    pub fn offer(&self) -> Option<&Offer> {
        match self {
            State::UpdateAvailable { offer }
            | State::Downloading { offer, .. }
            | State::Verifying { offer }
            | State::Finalizing { offer } => Some(offer),
            _ => None,
        }
    }

    /// True in the resting states a new check may start from.
    pub fn is_at_rest(&self) -> bool {
        matches!(
            self,
            State::Idle | State::Good { .. } | State::RolledBack { .. }
        )
    }
}
