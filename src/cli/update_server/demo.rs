//! `update-server demo`: the whole A/B cycle in a temporary directory
//! (the logic is `crate::demo`, shared with the tests).

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::demo::{self, Options, Scenario};

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which story to tell.
    #[arg(long, value_enum, default_value = "happy")]
    pub scenario: Scenario,
    /// Keep the working files (disks, payloads, keys, state) in this new or empty directory.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Print nothing; the exit code tells the result.
    #[arg(long)]
    pub quiet: bool,
}

/// Run the demo.
pub fn run(args: Args) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let options = Options {
        scenario: args.scenario,
        keep: args.keep,
        quiet: args.quiet,
    };
    runtime.block_on(demo::run(&options)).map(|_| ())
}
