//! The I/O shell the owner task drives: everything that touches the network,
//! the disk or other processes sits behind this trait, so the engine's flow
//! is tested with a scripted backend and runs for real with the Omaha/GPT/
//! payload implementation.

use std::future::Future;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::actor::Msg;
use super::failure::Failure;
use super::recovery::BootFacts;
use super::state::Offer;
use super::store::Store;
use crate::lock::LockError;
use crate::slot::SlotId;

/// What an update check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckAnswer {
    /// `updatecheck status="noupdate"`.
    NoUpdate,
    /// `updatecheck status="ok"` with this update.
    Update(Offer),
}

/// An Omaha event to report, in the order they happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// `13/1`: download started.
    DownloadStarted,
    /// `14/1`: download finished.
    DownloadFinished,
    /// `3/1`: installed, waiting for a reboot.
    Installed,
    /// `3/2`: booted into the new version.
    Booted {
        /// The version updated from, when known.
        previous_version: Option<String>,
    },
    /// `3/0` with an error code (44 = rollback).
    Error {
        /// update_engine error code.
        code: u32,
    },
}

/// An install for the backend to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallJob {
    /// What to install.
    pub offer: Offer,
    /// The inactive slot to write; never the booted one.
    pub target: SlotId,
    /// Continue from the checkpoint in the store instead of starting clean.
    pub resume: bool,
}

/// Why an install stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    /// Shut down on request; the checkpoint was saved for a resume.
    #[error("install interrupted by shutdown")]
    Cancelled,
    /// Failed for good; the target slot is not bootable.
    #[error(transparent)]
    Failed(#[from] Failure),
}

/// Where the install reports its progress (to the owner task).
#[derive(Debug, Clone)]
pub struct ProgressSink {
    pub(super) tx: mpsc::Sender<Msg>,
}

impl ProgressSink {
    /// The payload is applied up to offset `bytes`; `network_bytes` more
    /// bytes were received over the network since the last report.
    pub async fn bytes(&self, bytes: u64, network_bytes: u64) {
        let _ = self
            .tx
            .send(Msg::Progress {
                bytes,
                network_delta: network_bytes,
            })
            .await;
    }

    /// The whole payload arrived; the slot is being read back.
    pub async fn downloaded(&self) {
        let _ = self.tx.send(Msg::Downloaded).await;
    }
}

/// The I/O the engine needs. Implementations report failures with
/// update_engine error codes (see `failure`).
pub trait Backend: Send + Sync + 'static {
    /// Facts about the running boot (booted slot, its successful bit, boot id).
    fn boot_facts(&self) -> impl Future<Output = anyhow::Result<BootFacts>> + Send;

    /// One Omaha update check.
    fn check(&self, interactive: bool)
        -> impl Future<Output = Result<CheckAnswer, Failure>> + Send;

    /// Make `slot` non-bootable (priority 0). Called before a slot is
    /// written and for a rolled-back or failed slot.
    fn disable_slot(&self, slot: SlotId) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Download the payload into `job.target`, saving checkpoints in `store`,
    /// then read the slot back and verify it. Stops with `Cancelled` (after
    /// saving the checkpoint) when `cancel` fires.
    fn install(
        &self,
        job: InstallJob,
        store: Store,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> impl Future<Output = Result<(), InstallError>> + Send;

    /// Flip the GPT: `slot` gets successful=0, tries=1, top priority.
    fn set_install_ready(&self, slot: SlotId) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// The booted `slot` passed its health checks: successful=1, prioritized.
    fn mark_good(&self, slot: SlotId) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Health checks of a trial boot (after the grace period); `Err` says what failed.
    fn health_check(&self) -> impl Future<Output = Result<(), String>> + Send;

    /// Send one Omaha event about `version`.
    fn report(
        &self,
        version: String,
        report: Report,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Run the reboot command; returning means it was started (or failed).
    fn reboot(&self) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// One attempt to take this node's reboot lock slot, without waiting:
    /// `Ok(true)` = held (taken now or earlier), `Ok(false)` = all slots
    /// taken. The owner task retries with backoff. Only called for the lock
    /// strategies.
    fn lock_try_acquire(&self) -> impl Future<Output = Result<bool, LockError>> + Send;

    /// One attempt to give this node's slot back (fine when it holds none;
    /// FleetLock `steady-state`). Only called for the lock strategies.
    fn lock_release(&self) -> impl Future<Output = Result<(), LockError>> + Send;

    /// The steps before the reboot command: pre-reboot hooks (each with a
    /// timeout), the warning to logged-in users, the grace delay. `Err` says
    /// why the reboot is cancelled.
    fn pre_reboot(
        &self,
        version: Option<String>,
    ) -> impl Future<Output = Result<(), String>> + Send;
}
