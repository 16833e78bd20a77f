//! The update flow of the owner task: what happens when a check answers, an
//! install progresses or ends, a trial boot is judged, and at start-up.
//! Decisions come from the pure parts (`schedule`, `recovery`, `machine`);
//! this file sequences them with persistence and backend calls.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{error, info, warn};

use super::actor::{Engine, Msg};
use super::backend::{Backend, CheckAnswer, InstallError, InstallJob, Report};
use super::failure::{self, Failure};
use super::recovery::{recover, Recovery};
use super::schedule::{judge_offer, CheckOutcome, OfferDecision};
use super::state::{Offer, RebootReason, State};
use super::store::{Installed, Operation, Outcome, Stage};
use crate::version::OsVersion;

impl<B: Backend> Engine<B> {
    pub(super) async fn on_check_done(&mut self, result: Result<CheckAnswer, Failure>) {
        let answer = match result {
            Ok(answer) => answer,
            Err(f) => {
                warn!(code = f.code, error = %f.message, "update check failed");
                self.metrics.error(f.kind());
                let delay = self.schedule.after(CheckOutcome::Failed, rand::random());
                self.next_check = Some(Instant::now() + delay);
                // A failed check is no install attempt: nothing to report to
                // the server; the error state is shown, then we rest.
                let _ = self.machine.fail(f.code, f.message);
                let _ = self.machine.error_reported();
                self.after_rest();
                return;
            }
        };
        let now = chrono::Utc::now();
        self.persisted.last_check = Some(now);
        self.ctx.last_check = Some(now);
        self.metrics.last_check_timestamp_seconds = Some(now.timestamp());
        let delay = self.schedule.after(CheckOutcome::Answered, rand::random());
        self.next_check = Some(Instant::now() + delay);
        let offer = match answer {
            CheckAnswer::NoUpdate => {
                info!("no update available");
                self.save();
                let _ = self.machine.no_update();
                self.after_rest();
                return;
            }
            CheckAnswer::Update(offer) => offer,
        };
        match self.judge(&offer) {
            Err(f) => {
                warn!(error = %f.message, "unusable update offer");
                self.metrics.error(f.kind());
                self.save();
                let _ = self.machine.fail(f.code, f.message);
                let _ = self.machine.error_reported();
                self.after_rest();
            }
            Ok(OfferDecision::Ignore(why)) => {
                info!(version = %offer.version, reason = why, "ignoring offered update");
                self.save();
                let _ = self.machine.no_update();
                self.after_rest();
            }
            Ok(OfferDecision::Install) => {
                info!(version = %offer.version, size = offer.size, "update available");
                if self.machine.update_found(offer.clone()).is_ok() {
                    self.start_install(offer, self.facts.booted.other(), false);
                }
            }
        }
    }

    fn judge(&mut self, offer: &Offer) -> Result<OfferDecision, Failure> {
        let parse = |v: &str, what: &str| {
            v.parse::<OsVersion>().map_err(|e| {
                Failure::new(failure::OMAHA_RESPONSE_INVALID, format!("{what}: {e:#}"))
            })
        };
        let offered = parse(&offer.version, "offered version")?;
        let current = parse(&self.settings.current_version, "running version")?;
        let staged = match self.machine.state().staged() {
            Some(s) => Some(parse(&s.version, "staged version")?),
            None => None,
        };
        let blocked = self
            .persisted
            .blocked_version
            .as_deref()
            .and_then(|v| v.parse::<OsVersion>().ok());
        if blocked.as_ref().is_some_and(|b| &offered > b) {
            // A release newer than the rolled-back one appeared: the block ends.
            self.persisted.blocked_version = None;
        }
        Ok(judge_offer(
            &current,
            &offered,
            staged.as_ref(),
            blocked.as_ref(),
            self.settings.allow_downgrade,
        ))
    }

    /// Record the pending operation, then start writing `target`.
    pub(super) fn start_install(
        &mut self,
        offer: Offer,
        target: crate::slot::SlotId,
        resume: bool,
    ) {
        if !resume {
            if let Err(e) = self.store.clear_checkpoint() {
                warn!(error = %format!("{e:#}"), "could not remove the old checkpoint");
            }
            self.persisted.operation = Some(Operation {
                offer: offer.clone(),
                target,
                from_version: self.settings.current_version.clone(),
                stage: Stage::Downloading,
                started_at: chrono::Utc::now(),
                network_bytes: 0,
            });
        }
        // The staged update (if any) lives in the slot about to be overwritten.
        self.persisted.installed = None;
        // The pending marker must be on disk before the slot is touched, so
        // a crash at any later point is recovered by `recovery::recover`.
        if !self.save() {
            let f = Failure::new(
                failure::ERROR,
                "could not record the install in the state directory; check its disk space and permissions",
            );
            self.persisted.operation = None;
            self.fail_install(f);
            return;
        }
        self.install_started = Some(Instant::now());
        let started = if resume {
            self.machine.resume(offer.clone(), 0)
        } else {
            self.machine.begin_download(0)
        };
        if let Err(e) = started {
            error!(error = %e, "cannot start the install");
            return;
        }
        if !resume {
            self.send_report(offer.version.clone(), Report::DownloadStarted);
        }
        self.spawn_install(InstallJob {
            offer,
            target,
            resume,
        });
    }

    pub(super) fn on_progress(&mut self, bytes: u64, network_delta: u64) {
        self.metrics.bytes_downloaded_total += network_delta;
        if let Some(op) = self.persisted.operation.as_mut() {
            op.network_bytes += network_delta;
        }
        let _ = self.machine.progress(bytes);
    }

    pub(super) fn on_downloaded(&mut self) {
        if self.machine.downloaded().is_err() {
            return;
        }
        let version = self.set_stage(Stage::Verifying);
        self.send_report(version, Report::DownloadFinished);
    }

    fn set_stage(&mut self, stage: Stage) -> String {
        let mut version = String::new();
        if let Some(op) = self.persisted.operation.as_mut() {
            op.stage = stage;
            version = op.offer.version.clone();
        }
        self.save();
        version
    }

    pub(super) async fn on_install_done(&mut self, result: Result<(), InstallError>) {
        match result {
            Err(InstallError::Cancelled) => {}
            Err(InstallError::Failed(f)) => self.fail_install(f),
            Ok(()) => {
                if matches!(self.machine.state(), State::Downloading { .. }) {
                    self.on_downloaded();
                }
                if self.machine.verified().is_err() {
                    return;
                }
                self.set_stage(Stage::Finalizing);
                let Some(target) = self.persisted.operation.as_ref().map(|o| o.target) else {
                    return;
                };
                let backend = self.backend.clone();
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let result = backend
                        .set_install_ready(target)
                        .await
                        .map_err(|e| format!("{e:#}"));
                    let _ = tx.send(Msg::FinalizeDone(result)).await;
                });
            }
        }
    }

    pub(super) async fn on_finalize_done(&mut self, result: Result<(), String>) {
        let Some(op) = self.persisted.operation.clone() else {
            return;
        };
        if let Err(e) = result {
            let f = Failure::new(
                failure::WRITE_ERROR,
                format!("flipping the GPT to slot {}: {e}", op.target),
            );
            // The flip is crash-safe: the table holds the old or the new
            // attributes. Make sure it is the old ones.
            if let Err(e) = self.backend.disable_slot(op.target).await {
                error!(error = %format!("{e:#}"), "could not make the failed slot non-bootable");
            }
            self.fail_install(f);
            return;
        }
        if self.machine.finalized(op.target).is_err() {
            return;
        }
        let attempt = self.attempt(&op.offer.version, Outcome::Installed, None);
        self.persisted.installed = Some(Installed {
            version: op.offer.version.clone(),
            slot: op.target,
            previous_version: op.from_version.clone(),
            boot_id: self.facts.boot_id.clone(),
            installed_at: chrono::Utc::now(),
        });
        self.persisted.operation = None;
        self.save();
        if let Err(e) = self.store.clear_checkpoint() {
            warn!(error = %format!("{e:#}"), "could not remove the checkpoint");
        }
        self.history(attempt);
        self.metrics.updates_installed_total += 1;
        if let Some(started) = self.install_started.take() {
            self.metrics.last_update_duration_seconds = Some(started.elapsed().as_secs_f64());
        }
        info!(version = %op.offer.version, slot = %op.target, "update installed; reboot needed");
        self.send_report(op.offer.version, Report::Installed);
        self.maybe_reboot();
    }

    /// Give up on the install: record, report `3/0`, start clean next time.
    /// The target slot was made non-bootable before the first write.
    pub(super) fn fail_install(&mut self, f: Failure) {
        error!(code = f.code, error = %f.message, "update failed");
        self.metrics.error(f.kind());
        let version = self
            .machine
            .state()
            .offer()
            .map(|o| o.version.clone())
            .unwrap_or_default();
        let attempt = self.attempt(&version, Outcome::Failed, Some(&f));
        self.persisted.operation = None;
        self.save();
        if let Err(e) = self.store.clear_checkpoint() {
            warn!(error = %format!("{e:#}"), "could not remove the checkpoint");
        }
        self.history(attempt);
        let delay = self.schedule.after(CheckOutcome::Failed, rand::random());
        self.next_check = Some(Instant::now() + delay);
        if self.machine.fail(f.code, f.message).is_ok() {
            // Leaves ReportingErrorEvent when the reporter acknowledges.
            self.send_report(version, Report::Error { code: f.code });
        }
    }

    /// Back at rest or at the staged update: continue the reboot if one waits.
    fn after_rest(&mut self) {
        if matches!(self.machine.state(), State::UpdatedNeedReboot { .. }) {
            self.maybe_reboot();
        }
    }

    /// A staged update waits: coordinate its reboot (see `coordinate`).
    fn maybe_reboot(&mut self) {
        self.coordinate();
    }

    pub(super) fn spawn_reboot(&self) {
        let backend = self.backend.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let result = backend.reboot().await.map_err(|e| format!("{e:#}"));
            let _ = tx.send(Msg::RebootDone(result)).await;
        });
    }

    pub(super) fn on_reboot_done(&mut self, result: Result<(), String>) {
        let Err(e) = result else {
            info!("reboot started");
            return;
        };
        error!(error = %e, "reboot command failed");
        match self.machine.state() {
            State::Rebooting {
                reason: RebootReason::Update { .. },
            } => {
                // Try again later, not in a loop; the slot goes back meanwhile.
                self.cancel_reboot(format!("the reboot command failed: {e}"));
            }
            _ => error!("rollback reboot failed: reboot this machine by hand"),
        }
    }

    /// At start: act on the persisted state and the facts of this boot.
    pub(super) async fn recover(&mut self) {
        let decision = recover(&self.persisted, &self.facts);
        // A trial boot keeps its slot until it is marked good. Any other
        // start gives back a slot this node may still hold (Flatcar#408), so
        // a node that needs another reboot waits for the window without
        // blocking the group; FleetLock hears `steady-state`.
        if !matches!(decision, Recovery::TrialBoot { .. }) {
            self.release_lock("this node is not on a trial boot");
        }
        match decision {
            Recovery::Fresh => {}
            Recovery::ResumeInstall(op) => {
                info!(version = %op.offer.version, stage = ?op.stage, "resuming interrupted install");
                self.start_install(op.offer, op.target, true);
            }
            Recovery::DiscardInstall(op) => {
                warn!(slot = %op.target, "dropping an interrupted install aimed at the booted slot");
                self.persisted.operation = None;
                self.save();
                let _ = self.store.clear_checkpoint();
            }
            Recovery::Staged(staged) => {
                info!(version = %staged.version, "update staged earlier in this boot; reboot needed");
                if self.machine.restore_staged(staged).is_ok() {
                    self.maybe_reboot();
                }
            }
            Recovery::TrialBoot {
                version,
                previous_version,
                slot,
            } => {
                info!(%version, %slot, "trial boot: running health checks");
                let _ = self.machine.trial_boot(version, previous_version, slot);
                self.spawn_health();
            }
            Recovery::AlreadyGood {
                version,
                previous_version,
            } => {
                let _ = self.machine.trial_boot(
                    version.clone(),
                    Some(previous_version.clone()),
                    self.facts.booted,
                );
                self.booted_good(version, Some(previous_version));
            }
            Recovery::RolledBack { version, slot } => self.rolled_back(version, slot).await,
        }
    }

    async fn rolled_back(&mut self, version: String, slot: crate::slot::SlotId) {
        warn!(%version, %slot, "update rolled back: the old slot booted again");
        if let Err(e) = self.backend.disable_slot(slot).await {
            error!(error = %format!("{e:#}"), "could not set the failed slot's priority to 0");
        }
        let f = Failure::new(
            failure::ROLLBACK,
            format!("{version} did not stay booted; slot {slot} disabled, version blocked"),
        );
        let mut attempt = self.attempt(&version, Outcome::RolledBack, Some(&f));
        if let Some(installed) = &self.persisted.installed {
            attempt.started_at = installed.installed_at;
        }
        self.persisted.installed = None;
        self.persisted.blocked_version = Some(version.clone());
        self.save();
        self.history(attempt);
        self.metrics.error(f.kind());
        self.release_lock("the node came back on the old slot");
        let _ = self.machine.rolled_back(version.clone());
        self.send_report(version, Report::Error { code: f.code });
    }

    fn spawn_health(&self) {
        let backend = self.backend.clone();
        let tx = self.tx.clone();
        let grace: Duration = self.settings.health_grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let result = backend.health_check().await;
            let _ = tx.send(Msg::HealthDone(result)).await;
        });
    }

    pub(super) async fn on_health_done(&mut self, result: Result<(), String>) {
        let State::TrialBoot {
            version,
            previous_version,
            slot,
        } = self.machine.state().clone()
        else {
            return;
        };
        let result = match result {
            Ok(()) => self
                .backend
                .mark_good(slot)
                .await
                .map_err(|e| format!("marking slot {slot} good: {e:#}")),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                info!(%version, %slot, "health checks passed; slot marked good");
                self.booted_good(version, previous_version);
            }
            Err(e) => {
                error!(%version, %slot, error = %e, "trial boot failed; rolling back");
                if let Err(e) = self.backend.disable_slot(slot).await {
                    error!(error = %format!("{e:#}"), "could not mark the slot bad");
                }
                if self.machine.health_failed().is_ok() {
                    self.spawn_reboot();
                }
            }
        }
    }

    fn booted_good(&mut self, version: String, previous_version: Option<String>) {
        let mut attempt = self.attempt(&version, Outcome::Good, None);
        if let Some(installed) = &self.persisted.installed {
            attempt.started_at = installed.installed_at;
        }
        self.persisted.installed = None;
        self.save();
        self.history(attempt);
        let _ = self.machine.health_ok();
        // Only now, with the new slot marked good, may another node reboot.
        self.release_lock("the new boot was marked good");
        self.send_report(version, Report::Booted { previous_version });
    }
}
