//! `update-engine`: see `ab_updater::cli::update_engine`.

use std::process::ExitCode;

use ab_updater::cli::{finish, init_logging, update_engine};
use clap::Parser;

fn main() -> ExitCode {
    let args = update_engine::Args::parse();
    init_logging("info");
    finish("update-engine", update_engine::run(args))
}
