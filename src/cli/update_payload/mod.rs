//! `update-payload`: make keys, build, inspect, verify and apply payloads offline.

mod apply;
mod build;
mod inspect;
mod keygen;
mod verify;

use clap::{Parser, Subcommand};

/// Command line of `update-payload`.
#[derive(Debug, Parser)]
#[command(
    name = "update-payload",
    version,
    about = "Build, inspect, verify and apply signed A/B update payloads"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate an ed25519 signing key pair (NAME.key, NAME.pub).
    Keygen(keygen::KeygenArgs),
    /// Build a full or delta payload from image files.
    Build(build::BuildArgs),
    /// Print a payload's header and manifest (not verified).
    Inspect(inspect::InspectArgs),
    /// Check a payload's signature, structure and data without writing anything.
    Verify(verify::VerifyArgs),
    /// Apply a payload to the inactive slot of a disk, verify it and flip the GPT.
    Apply(apply::ApplyArgs),
}

/// Run one `update-payload` command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Keygen(a) => keygen::run(a),
        Command::Build(a) => build::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Apply(a) => apply::run(a),
    }
}
