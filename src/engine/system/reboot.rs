//! The reboot coordination I/O of the system backend: single attempts on
//! the configured cluster lock (the owner task paces the retries) and the
//! pre-reboot steps (hooks, `wall`, grace delay).

use std::sync::Arc;

use crate::lock::etcd::Attempt;
use crate::lock::{AnyLock, LockError};
use crate::reboot::hooks::PreReboot;

/// The lock (for the lock strategies) and the steps before a reboot.
#[derive(Clone)]
pub struct RebootActions {
    /// The cluster lock; `None` for `off` and `immediate`.
    pub lock: Option<Arc<AnyLock>>,
    /// Hooks, warning and grace delay.
    pub pre_reboot: PreReboot,
}

impl std::fmt::Debug for RebootActions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lock = match self.lock.as_deref() {
            None => "none",
            Some(AnyLock::Etcd(_)) => "etcd",
            Some(AnyLock::FleetLock(_)) => "fleet-lock",
        };
        f.debug_struct("RebootActions")
            .field("lock", &lock)
            .field("pre_reboot", &self.pre_reboot)
            .finish()
    }
}

fn no_lock() -> LockError {
    LockError::Config(
        "the reboot strategy needs a lock but none is configured; set [lock.etcd] or [lock.fleet_lock]"
            .into(),
    )
}

/// A FleetLock answer saying the lock belongs to someone else.
fn is_held_by_another(status: u16) -> bool {
    matches!(status, 409 | 423)
}

impl RebootActions {
    /// One attempt to take a slot: `Ok(false)` when all are taken.
    pub async fn try_acquire(&self) -> Result<bool, LockError> {
        match self.lock.as_deref().ok_or_else(no_lock)? {
            AnyLock::Etcd(lock) => Ok(match lock.try_acquire().await? {
                Attempt::Taken | Attempt::AlreadyHeld => true,
                Attempt::Full { .. } => false,
            }),
            // FleetLock answers "no slot" with an error body (e.g. 423
            // `lock_held`); its kind labels the metric.
            AnyLock::FleetLock(client) => client.pre_reboot_once().await.map(|()| true),
        }
    }

    /// One attempt to give the slot back.
    pub async fn release(&self) -> Result<(), LockError> {
        match self.lock.as_deref().ok_or_else(no_lock)? {
            AnyLock::Etcd(lock) => lock.release_once().await.map(|_| ()),
            AnyLock::FleetLock(client) => match client.steady_state_once().await {
                // poseidon/fleetlock answers 423 `lock_held` (others 409)
                // when another node holds the lock: then this node holds
                // nothing to give back.
                Err(LockError::Server { status, .. }) if is_held_by_another(status) => Ok(()),
                other => other,
            },
        }
    }

    /// Hooks, warning, grace delay; `Err` = the reboot is cancelled.
    pub async fn pre_reboot(&self, version: Option<&str>) -> Result<(), String> {
        self.pre_reboot
            .run(version)
            .await
            .map_err(|e| e.to_string())
    }
}
