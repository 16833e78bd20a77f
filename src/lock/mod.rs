//! Cluster-wide reboot locks: a counting semaphore on etcd v3 and the FleetLock HTTP protocol.
//!
//! Both back ends sit behind [`RebootLock`]: the engine takes a slot before
//! rebooting into a new version and gives it back only after the new boot was
//! marked good (or the node came back on the old slot). Each lock object is
//! bound to one holder id, normally this node's machine id.

use std::future::Future;

pub mod backoff;
pub mod config;
pub mod etcd;
pub mod fleetlock;

pub use backoff::{retry_until, Backoff};
pub use etcd::EtcdLock;
pub use fleetlock::FleetLockClient;

/// Whether this node holds a slot, as far as the back end can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// The back end lists this node as a holder.
    Held,
    /// The back end does not list this node.
    NotHeld,
    /// The protocol cannot answer (FleetLock has no query call).
    Unknown,
}

/// A cluster reboot lock bound to one holder id.
///
/// `acquire` and `release` wait and retry through transient faults
/// (unreachable server, full semaphore, conflicting writers) and return only
/// on success or a fault that retrying cannot fix (a corrupt semaphore value,
/// refused credentials). Both are idempotent, so retrying after a reply was
/// lost is safe. Cancel them by dropping the future (e.g. `tokio::time::timeout`).
pub trait RebootLock: Send + Sync {
    /// Take a reboot slot for this node; returns once it is held.
    fn acquire(&self) -> impl Future<Output = Result<(), LockError>> + Send;
    /// Give this node's slot back; fine when it holds none.
    fn release(&self) -> impl Future<Output = Result<(), LockError>> + Send;
    /// One look at whether this node holds a slot (no retrying).
    fn holding(&self) -> impl Future<Output = Result<Holding, LockError>> + Send;
}

/// Either back end, for callers that pick one from the configured strategy
/// at run time (the trait's `impl Future` methods are not object safe).
pub enum AnyLock {
    /// `etcd-lock` strategy.
    Etcd(Box<EtcdLock>),
    /// `fleet-lock` strategy.
    FleetLock(Box<FleetLockClient>),
}

impl RebootLock for AnyLock {
    async fn acquire(&self) -> Result<(), LockError> {
        match self {
            AnyLock::Etcd(lock) => lock.acquire().await,
            AnyLock::FleetLock(lock) => lock.acquire().await,
        }
    }

    async fn release(&self) -> Result<(), LockError> {
        match self {
            AnyLock::Etcd(lock) => lock.release().await,
            AnyLock::FleetLock(lock) => lock.release().await,
        }
    }

    async fn holding(&self) -> Result<Holding, LockError> {
        match self {
            AnyLock::Etcd(lock) => lock.holding().await,
            AnyLock::FleetLock(lock) => lock.holding().await,
        }
    }
}

/// Why a lock operation failed. Callers branch on [`LockError::is_transient`]
/// and label metrics with [`LockError::kind`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum LockError {
    /// No endpoint answered (network, TLS handshake, timeouts, no leader).
    #[error(
        "cannot reach the lock service: {0}; check the endpoints, the network and the TLS settings"
    )]
    Unavailable(String),
    /// The semaphore key holds something we must not overwrite.
    #[error("etcd key {key} holds {reason}; fix it by hand (etcdctl get/put) or delete it to start over; it is never overwritten")]
    Corrupt {
        /// The etcd key.
        key: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// The lock service refused us (credentials, permissions, bad request).
    #[error("the lock service refused the request: {0}; check username/password and the etcd role's permissions")]
    Refused(String),
    /// A FleetLock server answered something other than 200.
    #[error("FleetLock server answered HTTP {status}: {kind}: {value}")]
    Server {
        /// HTTP status code.
        status: u16,
        /// The `kind` of its error body (`unknown` when the body was not one).
        kind: String,
        /// The `value` of its error body.
        value: String,
    },
    /// The lock settings cannot work (caught before any request is sent).
    #[error("invalid lock settings: {0}")]
    Config(String),
}

impl LockError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, LockError::Unavailable(_) | LockError::Server { .. })
    }

    /// A short stable label for metrics: the FleetLock error `kind`, or one
    /// of `unavailable`, `corrupt_value`, `refused`, `config`.
    pub fn kind(&self) -> &str {
        match self {
            LockError::Unavailable(_) => "unavailable",
            LockError::Corrupt { .. } => "corrupt_value",
            LockError::Refused(_) => "refused",
            LockError::Server { kind, .. } => kind,
            LockError::Config(_) => "config",
        }
    }
}
