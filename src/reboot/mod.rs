//! Reboot coordination (DESIGN §6): maintenance windows, the pure decision
//! whether to reboot now, and the steps just before rebooting (pre-reboot
//! hooks, warning logged-in users, grace delay).

pub mod hooks;
pub mod parse;
pub mod policy;
pub mod windows;

pub use policy::{decide, Decision, LockState, RebootPolicy, Strategy};
pub use windows::{Window, Windows};
