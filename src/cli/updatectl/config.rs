//! `updatectl config show|check`: the merged configuration with the file
//! each value came from, and validation with `file: key: problem` lines.

use std::io::Write;

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::config::{self, show, ConfigSources, Loaded};

/// `updatectl config ...`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do with the configuration.
    #[command(subcommand)]
    pub action: Action,
}

/// The config subcommands.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Print the merged settings, each with the file it came from.
    Show {
        /// Print JSON (`settings` and `provenance`) instead of TOML.
        #[arg(long)]
        json: bool,
    },
    /// Validate the configuration; exits non-zero listing every problem.
    Check,
}

/// Run `updatectl config ACTION` on `sources`.
pub fn run(args: &Args, sources: &ConfigSources) -> Result<()> {
    let loaded = load_reporting(sources)?;
    let mut out = std::io::stdout().lock();
    match args.action {
        Action::Show { json: false } => {
            out.write_all(show::to_text(&loaded.settings, &loaded.provenance).as_bytes())
        }
        Action::Show { json: true } => {
            let value = show::to_json(&loaded.settings, &loaded.provenance);
            writeln!(out, "{value:#}")
        }
        Action::Check => writeln!(out, "configuration is valid"),
    }
    .context("writing to stdout")
}

/// Load, printing warnings and (on failure) every problem line to stderr.
fn load_reporting(sources: &ConfigSources) -> Result<Loaded> {
    match config::load(sources) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            Ok(loaded)
        }
        Err(errors) => {
            for problem in &errors.0 {
                eprintln!("{problem}");
            }
            anyhow::bail!(
                "configuration is invalid: {} problem(s) listed above; fix them and run `updatectl config check` again",
                errors.0.len()
            )
        }
    }
}
