//! `SystemBackend`: the engine's I/O for real (and for sandbox mode, where
//! the "disk" is an image file): Omaha over HTTP, the payload streamed into
//! the inactive slot, GPT changes, health checks and the reboot command.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::command;
use super::disk::SlotDisk;
use super::download::{Download, DownloadSettings};
use super::health::HealthChecks;
use super::omaha::{http_client, OmahaClient};
use super::reboot::RebootActions;
use crate::config::CommandLine;
use crate::engine::backend::{
    Backend, CheckAnswer, InstallError, InstallJob, ProgressSink, Report,
};
use crate::engine::failure::{self, Failure};
use crate::engine::recovery::BootFacts;
use crate::engine::store::Store;
use crate::io::Region;
use crate::lock::LockError;
use crate::payload::{Applier, ApplyError, ApplyPolicy, Checkpoint, KeyId, TrustedKeys};
use crate::slot::SlotId;
use crate::version::OsVersion;

/// Time limit of the reboot command (it normally returns at once).
const REBOOT_TIMEOUT_SECS: u64 = 120;

/// What a payload must satisfy to be applied.
#[derive(Debug, Clone)]
pub struct Trust {
    /// Directories of trusted `*.pub` keys.
    pub key_dirs: Vec<PathBuf>,
    /// Key ids never trusted.
    pub revoked: Vec<String>,
    /// Distinct trusted signatures required.
    pub min_signatures: usize,
    /// The payload's `compatible` string must be this (the board).
    pub compatible: String,
    /// Accept versions below the running one.
    pub allow_downgrade: bool,
}

/// Everything the system backend needs.
#[derive(Debug, Clone)]
pub struct SystemBackend {
    /// The disk with the slots.
    pub disk: SlotDisk,
    /// The booted slot.
    pub booted: SlotId,
    /// This boot's id.
    pub boot_id: String,
    /// The running version.
    pub current_version: OsVersion,
    /// The Omaha client.
    pub omaha: OmahaClient,
    /// Payload trust.
    pub trust: Trust,
    /// Download behaviour.
    pub download: DownloadSettings,
    /// Trial boot checks.
    pub health: HealthChecks,
    /// The reboot command.
    pub reboot_command: CommandLine,
    /// The cluster lock and the pre-reboot steps.
    pub coordination: RebootActions,
}

fn write_failure(e: anyhow::Error) -> InstallError {
    InstallError::Failed(Failure::new(failure::WRITE_ERROR, format!("{e:#}")))
}

impl SystemBackend {
    fn keys(&self) -> Result<TrustedKeys, InstallError> {
        let verification = |e: anyhow::Error| {
            InstallError::Failed(Failure::new(
                failure::PAYLOAD_VERIFICATION,
                format!("{e:#}"),
            ))
        };
        let mut keys = TrustedKeys::load_dirs(&self.trust.key_dirs).map_err(verification)?;
        for id in &self.trust.revoked {
            keys.revoke(id.parse::<KeyId>().map_err(verification)?);
        }
        if keys.usable_ids().is_empty() {
            return Err(verification(anyhow::anyhow!(
                "no trusted payload keys in {:?}: install the OS vendor's public keys there",
                self.trust.key_dirs
            )));
        }
        Ok(keys)
    }

    /// The target slot window (read-write) and the booted slot (read-only,
    /// the source of delta payloads).
    async fn windows(&self, target: SlotId) -> Result<(Region<File>, Region<File>), InstallError> {
        // Whatever the payload says, only the other slot is ever written.
        if target == self.booted {
            return Err(InstallError::Failed(Failure::new(
                failure::WRITE_ERROR,
                format!("refusing to write the booted slot {target}"),
            )));
        }
        let slots = self.disk.slots().await.map_err(write_failure)?;
        let info = |id: SlotId| slots.iter().find(|s| s.id == id).copied();
        let (Some(t), Some(s)) = (info(target), info(self.booted)) else {
            return Err(write_failure(anyhow::anyhow!("the disk lacks a USR slot")));
        };
        let path = self.disk.path();
        let open = |write: bool| {
            OpenOptions::new()
                .read(true)
                .write(write)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))
        };
        let target = Region::new(
            open(true).map_err(write_failure)?,
            t.offset_bytes,
            t.size_bytes,
        )
        .context("windowing the target slot")
        .map_err(write_failure)?;
        let source = Region::new(
            open(false).map_err(write_failure)?,
            s.offset_bytes,
            s.size_bytes,
        )
        .context("windowing the booted slot")
        .map_err(write_failure)?;
        Ok((target, source))
    }

    async fn install_once(
        &self,
        job: &InstallJob,
        store: &Store,
        progress: &ProgressSink,
        cancel: &CancellationToken,
        checkpoint: Option<Checkpoint>,
    ) -> Result<(), InstallError> {
        let keys = self.keys()?;
        let (target, source) = self.windows(job.target).await?;
        let policy = ApplyPolicy {
            compatible: self.trust.compatible.clone(),
            installed_version: self.current_version.clone(),
            installed_epoch: 0,
            allow_downgrade: self.trust.allow_downgrade,
            now: SystemTime::now(),
            min_signatures: self.trust.min_signatures,
        };
        let applier = Applier::new(target, Some(source), keys, policy, checkpoint.clone());
        let http = http_client(None).map_err(|e| {
            InstallError::Failed(Failure::new(failure::ERROR, format!("HTTP client: {e:#}")))
        })?;
        let download = Download {
            http: &http,
            offer: &job.offer,
            settings: &self.download,
            progress,
            cancel,
        };
        let image = download
            .run(applier, checkpoint, store.checkpoint_path())
            .await?;
        if image.version != job.offer.version {
            return Err(InstallError::Failed(Failure::new(
                failure::PAYLOAD_VERIFICATION,
                format!(
                    "the payload installs {} but the update server offered {}",
                    image.version, job.offer.version
                ),
            )));
        }
        info!(version = %image.version, sha256 = %image.sha256, "payload written and verified");
        Ok(())
    }
}

impl Backend for SystemBackend {
    async fn boot_facts(&self) -> Result<BootFacts> {
        let slots = self.disk.slots().await?;
        let booted = slots
            .iter()
            .find(|s| s.id == self.booted)
            .context("the disk lacks the booted slot")?;
        Ok(BootFacts {
            booted: self.booted,
            booted_successful: booted.successful,
            boot_id: self.boot_id.clone(),
            current_version: self.current_version.to_string(),
        })
    }

    async fn check(&self, interactive: bool) -> Result<CheckAnswer, Failure> {
        self.omaha.check(interactive).await
    }

    async fn disable_slot(&self, slot: SlotId) -> Result<()> {
        self.disk.disable(slot).await
    }

    async fn install(
        &self,
        job: InstallJob,
        store: Store,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> Result<(), InstallError> {
        let checkpoint = if job.resume {
            Checkpoint::load(&store.checkpoint_path()).unwrap_or_else(|e| {
                warn!(error = %format!("{e:#}"), "ignoring an unreadable checkpoint; starting over");
                None
            })
        } else {
            None
        };
        let resumed = checkpoint.is_some();
        match self
            .install_once(&job, &store, &progress, &cancel, checkpoint)
            .await
        {
            // A checkpoint of another payload (or a damaged one): start clean.
            Err(InstallError::Failed(f))
                if resumed && f.code == ApplyError::Checkpoint(String::new()).omaha_code() =>
            {
                warn!(error = %f.message, "checkpoint does not fit the payload; starting over");
                let _ = store.clear_checkpoint();
                self.install_once(&job, &store, &progress, &cancel, None)
                    .await
            }
            other => other,
        }
    }

    async fn set_install_ready(&self, slot: SlotId) -> Result<()> {
        self.disk.set_install_ready(slot).await
    }

    async fn mark_good(&self, slot: SlotId) -> Result<()> {
        self.disk.mark_good(slot).await
    }

    async fn health_check(&self) -> Result<(), String> {
        self.health.run().await
    }

    async fn report(&self, version: String, report: Report) -> Result<()> {
        self.omaha
            .event(&version, &report)
            .await
            .map_err(|f| anyhow::anyhow!(f))
    }

    async fn reboot(&self) -> Result<()> {
        info!(command = %self.reboot_command, "rebooting");
        command::run(
            &self.reboot_command,
            Duration::from_secs(REBOOT_TIMEOUT_SECS),
        )
        .await
        .map_err(|e| anyhow::anyhow!(e))
    }

    async fn lock_try_acquire(&self) -> Result<bool, LockError> {
        self.coordination.try_acquire().await
    }

    async fn lock_release(&self) -> Result<(), LockError> {
        self.coordination.release().await
    }

    async fn pre_reboot(&self, version: Option<String>) -> Result<(), String> {
        self.coordination.pre_reboot(version.as_deref()).await
    }
}
