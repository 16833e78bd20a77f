//! Validated settings of the two lock back ends (DESIGN §6, §8 `[lock.*]`).
//! The config loader produces these; the lock clients consume them.

use std::path::PathBuf;

use url::Url;

/// How to reach the etcd v3 cluster that holds the reboot semaphore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Client URLs, tried in order (failover). Default `http://127.0.0.1:2379`.
    pub endpoints: Vec<Url>,
    /// Semaphore group; `default` uses the locksmith key without a group.
    pub group: String,
    /// CA bundle that signs the servers' certificates (TLS with CA only).
    pub ca_file: Option<PathBuf>,
    /// Client certificate for mutual TLS (needs `key_file` too).
    pub cert_file: Option<PathBuf>,
    /// Private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// etcd user name (needs `password` too).
    pub username: Option<String>,
    /// etcd password of `username`.
    pub password: Option<String>,
}

impl EtcdConfig {
    /// `endpoints` and `group` over plain HTTP: no TLS, no authentication.
    pub fn plain(endpoints: Vec<Url>, group: impl Into<String>) -> Self {
        EtcdConfig {
            endpoints,
            group: group.into(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            username: None,
            password: None,
        }
    }
}

/// How to reach a FleetLock server (Airlock, poseidon/fleetlock, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetLockConfig {
    /// Base URL; `v1/pre-reboot` and `v1/steady-state` are joined to it.
    pub base_url: Url,
    /// Group sent as `client_params.group`.
    pub group: String,
}
