//! `update-server`: test and demo tooling: test disks, the bootloader
//! emulation, the Omaha update server and the demo of the whole cycle.
//! Each subcommand's arguments and `run` live in their own file.

pub mod boot;
pub mod demo;
pub mod make_disk;
pub mod serve;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Command line of `update-server`.
#[derive(Debug, Parser)]
#[command(
    name = "update-server",
    version,
    about = "A/B update test tooling: Omaha update server with fault injection, test disks, bootloader emulation"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve Omaha update checks and payload files, with optional faults.
    Serve(serve::ServeArgs),
    /// Create a sparse GPT test disk laid out like a fresh Flatcar install.
    MakeDisk(make_disk::Args),
    /// Emulate the bootloader (GRUB gptprio.next): pick a slot, use a try.
    Boot(boot::Args),
    /// Run the whole A/B update cycle on emulated disks (see README).
    Demo(demo::Args),
}

/// Run one `update-server` command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::MakeDisk(args) => make_disk::run(&args),
        Command::Boot(args) => boot::run(&args),
        Command::Demo(args) => demo::run(args),
    }
}
