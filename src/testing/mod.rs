//! Test support shared by unit tests, integration tests and benchmarks:
//! fault-injecting devices, real etcd processes and a bare client for them. Public (not `cfg(test)`)
//! so `tests/` and benches can use it; nothing in the product depends on it.

pub mod etcd;
pub mod etcd_http;
pub mod fuzz;
mod power_cut;

pub use power_cut::{CutMode, PowerCut};
