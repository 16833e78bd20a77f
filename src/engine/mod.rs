//! The update agent: state machine, check schedule, persistent state, the
//! owner task that drives them, and the control API on a unix socket.

pub mod actor;
pub mod api;
pub mod backend;
mod coordinate;
pub mod daemon;
pub mod failure;
#[cfg(test)]
pub(crate) mod fake;
mod flow;
pub mod machine;
pub mod metrics;
pub mod recovery;
pub mod schedule;
pub mod state;
pub mod status;
pub mod store;
pub mod system;
