//! The engine's real I/O: the slot disk, health checks, commands, and (in
//! `backend`) the Omaha client and payload download that implement
//! `engine::backend::Backend`.

pub mod backend;
pub mod checkpointer;
pub mod command;
pub mod disk;
pub mod download;
pub mod health;
pub mod omaha;
pub mod reboot;
pub mod stall;
