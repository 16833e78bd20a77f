//! Cluster-wide reboot locks: a counting semaphore on etcd v3 and the FleetLock HTTP protocol.

pub mod config;
