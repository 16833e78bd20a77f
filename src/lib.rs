//! ab-updater: an atomic A/B OS updater in the ChromeOS/CoreOS tradition.
//!
//! All logic lives in this library; the binaries in `src/bin/` only parse
//! arguments, call one function here and map errors to exit codes.
//! See `docs/` for the formats and protocols.

pub mod cli;
pub mod config;
pub mod demo;
pub mod engine;
pub mod fsutil;
pub mod gpt;
pub mod io;
pub mod lock;
pub mod omaha;
pub mod payload;
pub mod reboot;
pub mod server;
pub mod slot;
pub mod testing;
pub mod version;
