//! `updatectl`: the operator's tool (this part: inspecting and changing A/B
//! slots, showing and checking the configuration, administering the reboot
//! lock; the daemon subcommands come with their issue).

pub mod check;
pub mod config;
pub mod history;
pub mod lock;
pub mod slots;
pub mod status;
pub mod watch;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config::ConfigSources;

/// Default control socket of the daemon.
pub const DEFAULT_SOCKET: &str = crate::config::settings::DEFAULT_SOCKET;

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
    /// Legacy Flatcar config read as a fallback (a missing file is skipped).
    #[arg(long = "legacy-config", global = true, value_name = "FILE", default_value = crate::config::DEFAULT_LEGACY_FILE)]
    pub legacy_config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the A/B slots and which one boots next, or change them.
    Slots(slots::Args),
    /// Show the update engine's status.
    Status(status::Args),
    /// Check for an update now (`--wait`: until it is installed or failed).
    Check(check::Args),
    /// Follow the engine live, with a progress bar while downloading.
    Watch(watch::Args),
    /// Show every update attempt.
    History(history::Args),
    /// Show the merged configuration or check it for problems.
    Config(config::Args),
    /// Administer the etcd reboot lock directly (like locksmithctl).
    Lock(lock::LockArgs),
}

impl Cli {
    /// What the config loader reads: `--config-dir` replaces the standard
    /// directories when given; `--legacy-config` names the legacy file.
    pub fn config_sources(&self) -> ConfigSources {
        let mut sources = ConfigSources::system();
        if !self.config_dir.is_empty() {
            sources.dirs = self.config_dir.clone();
        }
        sources.legacy_file = Some(self.legacy_config.clone());
        sources
    }
}

/// Run one `updatectl` command.
pub fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Slots(args) => slots::run(args),
        Command::Status(args) => status::run(&cli.socket, args),
        Command::Check(args) => check::run(&cli.socket, args),
        Command::Watch(args) => watch::run(&cli.socket, args),
        Command::History(args) => history::run(&cli.socket, args),
        Command::Config(args) => config::run(args, &cli.config_sources()),
        Command::Lock(args) => lock::run(args, &cli.config_sources()),
    }
}
