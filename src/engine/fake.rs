//! A scripted backend for the engine's tests: answers come from queues,
//! every call is logged in order.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::backend::{Backend, CheckAnswer, InstallError, InstallJob, ProgressSink, Report};
use super::failure::Failure;
use super::recovery::BootFacts;
use super::store::Store;
use crate::lock::LockError;
use crate::slot::SlotId;

/// How a scripted install behaves.
#[derive(Debug, Clone)]
pub enum InstallScript {
    /// Report progress in two steps, then succeed.
    Succeed,
    /// Report some progress, then fail.
    Fail(Failure),
    /// Report some progress, then wait for the cancel token, save a checkpoint and stop.
    WaitForCancel,
}

#[derive(Debug, Default)]
pub struct Inner {
    pub facts: Option<BootFacts>,
    pub checks: VecDeque<Result<CheckAnswer, Failure>>,
    pub installs: VecDeque<InstallScript>,
    pub health: Option<Result<(), String>>,
    pub reboot_fails: bool,
    pub lock_answers: VecDeque<Result<bool, LockError>>,
    pub release_answers: VecDeque<Result<(), LockError>>,
    pub pre_reboot: VecDeque<Result<(), String>>,
    pub calls: Vec<String>,
}

/// The scripted backend; clones share the script and the call log.
#[derive(Debug, Clone, Default)]
pub struct FakeBackend(pub Arc<Mutex<Inner>>);

impl FakeBackend {
    /// Booted from `booted` (successful or on trial) in boot `boot_id`.
    pub fn new(booted: SlotId, successful: bool, boot_id: &str) -> Self {
        let fake = FakeBackend::default();
        fake.0.lock().unwrap().facts = Some(BootFacts {
            booted,
            booted_successful: successful,
            boot_id: boot_id.into(),
            current_version: "1.0.0".into(),
        });
        fake
    }

    pub fn push_check(&self, answer: Result<CheckAnswer, Failure>) {
        self.0.lock().unwrap().checks.push_back(answer);
    }

    pub fn push_install(&self, script: InstallScript) {
        self.0.lock().unwrap().installs.push_back(script);
    }

    pub fn set_health(&self, result: Result<(), String>) {
        self.0.lock().unwrap().health = Some(result);
    }

    /// Answers of the next lock attempts (then: held).
    pub fn push_lock(&self, answer: Result<bool, LockError>) {
        self.0.lock().unwrap().lock_answers.push_back(answer);
    }

    /// Answers of the next releases (then: ok).
    pub fn push_release(&self, answer: Result<(), LockError>) {
        self.0.lock().unwrap().release_answers.push_back(answer);
    }

    /// Results of the next pre-reboot steps (then: ok).
    pub fn push_pre_reboot(&self, result: Result<(), String>) {
        self.0.lock().unwrap().pre_reboot.push_back(result);
    }

    pub fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().calls.clone()
    }

    /// The calls whose text starts with `prefix`.
    pub fn calls_starting(&self, prefix: &str) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.starts_with(prefix))
            .collect()
    }

    /// The calls other than Omaha events (those have their own ordered queue).
    pub fn calls_except_reports(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| !c.starts_with("report"))
            .collect()
    }

    fn log(&self, call: String) {
        self.0.lock().unwrap().calls.push(call);
    }
}

impl Backend for FakeBackend {
    async fn boot_facts(&self) -> anyhow::Result<BootFacts> {
        self.0
            .lock()
            .unwrap()
            .facts
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no boot facts scripted"))
    }

    async fn check(&self, interactive: bool) -> Result<CheckAnswer, Failure> {
        self.log(format!("check interactive={interactive}"));
        let next = self.0.lock().unwrap().checks.pop_front();
        next.unwrap_or(Ok(CheckAnswer::NoUpdate))
    }

    async fn disable_slot(&self, slot: SlotId) -> anyhow::Result<()> {
        self.log(format!("disable {slot}"));
        Ok(())
    }

    async fn install(
        &self,
        job: InstallJob,
        store: Store,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> Result<(), InstallError> {
        self.log(format!(
            "install {} to {} resume={}",
            job.offer.version, job.target, job.resume
        ));
        let script = self.0.lock().unwrap().installs.pop_front();
        let half = job.offer.size / 2;
        progress.bytes(half, half).await;
        match script.unwrap_or(InstallScript::Succeed) {
            InstallScript::Succeed => {
                progress.bytes(job.offer.size, job.offer.size - half).await;
                progress.downloaded().await;
                Ok(())
            }
            InstallScript::Fail(f) => Err(InstallError::Failed(f)),
            InstallScript::WaitForCancel => {
                cancel.cancelled().await;
                store
                    .save_checkpoint(&half)
                    .expect("saving the fake checkpoint");
                Err(InstallError::Cancelled)
            }
        }
    }

    async fn set_install_ready(&self, slot: SlotId) -> anyhow::Result<()> {
        self.log(format!("set_install_ready {slot}"));
        Ok(())
    }

    async fn mark_good(&self, slot: SlotId) -> anyhow::Result<()> {
        self.log(format!("mark_good {slot}"));
        Ok(())
    }

    async fn health_check(&self) -> Result<(), String> {
        self.log("health_check".into());
        self.0.lock().unwrap().health.clone().unwrap_or(Ok(()))
    }

    async fn report(&self, version: String, report: Report) -> anyhow::Result<()> {
        let text = match report {
            Report::DownloadStarted => "13/1".to_string(),
            Report::DownloadFinished => "14/1".to_string(),
            Report::Installed => "3/1".to_string(),
            Report::Booted { previous_version } => {
                format!("3/2 previous={}", previous_version.unwrap_or_default())
            }
            Report::Error { code } => format!("3/0 code={code}"),
        };
        self.log(format!("report {text} {version}"));
        Ok(())
    }

    async fn reboot(&self) -> anyhow::Result<()> {
        self.log("reboot".into());
        if self.0.lock().unwrap().reboot_fails {
            anyhow::bail!("reboot command exited with status 1");
        }
        Ok(())
    }

    async fn lock_try_acquire(&self) -> Result<bool, LockError> {
        self.log("lock acquire".into());
        let next = self.0.lock().unwrap().lock_answers.pop_front();
        next.unwrap_or(Ok(true))
    }

    async fn lock_release(&self) -> Result<(), LockError> {
        self.log("lock release".into());
        let next = self.0.lock().unwrap().release_answers.pop_front();
        next.unwrap_or(Ok(()))
    }

    async fn pre_reboot(&self, version: Option<String>) -> Result<(), String> {
        self.log(format!("pre_reboot {}", version.unwrap_or_default()));
        let next = self.0.lock().unwrap().pre_reboot.pop_front();
        next.unwrap_or(Ok(()))
    }
}
