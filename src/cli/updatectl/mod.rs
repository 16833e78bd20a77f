//! `updatectl`: the operator's command line (DESIGN §9). One file per
//! subcommand; this file holds the global flags and the dispatch.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub mod lock;

/// Default control socket of the daemon (DESIGN §7).
pub const DEFAULT_SOCKET: &str = "/run/update-engine/control.sock";

/// Talk to the update engine, inspect slots and administer the reboot lock.
#[derive(Debug, Parser)]
#[command(name = "updatectl", version)]
pub struct Updatectl {
    /// Control socket of the update-engine daemon.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Configuration directory (repeatable; later ones win). Default: the
    /// standard config.d directories.
    #[arg(long = "config-dir", global = true, value_name = "DIR")]
    pub config_dirs: Vec<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Administer the etcd reboot lock directly (like locksmithctl).
    Lock(lock::LockArgs),
}

/// Run one `updatectl` invocation.
pub fn run(args: Updatectl) -> anyhow::Result<()> {
    match args.command {
        Command::Lock(lock_args) => lock::run(&lock_args),
    }
}
