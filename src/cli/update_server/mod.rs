//! `update-server`: the test update server, disk maker and bootloader emulator.
//! Each subcommand's arguments and `run` live in their own file.

use clap::{Parser, Subcommand};

pub mod serve;

/// Command line of `update-server`.
#[derive(Debug, Parser)]
#[command(
    name = "update-server",
    version,
    about = "Omaha v3 update server with fault injection, A/B test disks and bootloader emulation"
)]
pub struct UpdateServer {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands of `update-server`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve Omaha update checks and payload files.
    Serve(serve::ServeArgs),
}

/// Run the chosen subcommand.
pub fn run(args: UpdateServer) -> anyhow::Result<()> {
    match args.command {
        Command::Serve(a) => serve::run(a),
    }
}
