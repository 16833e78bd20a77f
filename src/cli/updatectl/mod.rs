//! `updatectl`: the operator's tool (this part: inspecting and changing A/B
//! slots; the daemon, lock and config subcommands come with their issues).

pub mod slots;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Default control socket of the daemon.
pub const DEFAULT_SOCKET: &str = "/run/update-engine/control.sock";

/// Command line of `updatectl`.
#[derive(Debug, Parser)]
#[command(
    name = "updatectl",
    version,
    about = "Inspect and control the A/B update engine"
)]
pub struct Cli {
    /// Control socket of update-engine.
    #[arg(long, global = true, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Configuration directory (repeatable; later wins). Default: the standard three.
    #[arg(long = "config-dir", global = true)]
    pub config_dir: Vec<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the A/B slots and which one boots next, or change them.
    Slots(slots::Args),
}

/// Run one `updatectl` command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Slots(args) => slots::run(&args),
    }
}
