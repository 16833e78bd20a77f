//! The engine's real I/O: the slot disk, health checks, commands, and (in
//! `backend`) the Omaha client and payload download that implement
//! `engine::backend::Backend`.

pub mod command;
pub mod disk;
pub mod health;
pub mod stall;
