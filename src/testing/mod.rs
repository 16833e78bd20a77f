//! Test support shared by unit tests, integration tests and benchmarks:
//! fault-injecting devices. Public (not `cfg(test)`) so `tests/` and other
//! modules' tests can use it; nothing in the product depends on it.

pub mod fuzz;
mod power_cut;

pub use power_cut::{CutMode, PowerCut};
