//! `update-server`: test and demo tooling (this part: test disks and the
//! bootloader emulation; `serve` and `demo` come with their issues).

pub mod boot;
pub mod make_disk;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Command line of `update-server`.
#[derive(Debug, Parser)]
#[command(
    name = "update-server",
    version,
    about = "A/B update test tooling: test disks, bootloader emulation"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a sparse GPT test disk laid out like a fresh Flatcar install.
    MakeDisk(make_disk::Args),
    /// Emulate the bootloader (GRUB gptprio.next): pick a slot, use a try.
    Boot(boot::Args),
}

/// Run one `update-server` command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::MakeDisk(args) => make_disk::run(&args),
        Command::Boot(args) => boot::run(&args),
    }
}
