//! `updatectl`: see `ab_updater::cli::updatectl`.

use std::process::ExitCode;

use ab_updater::cli::{finish, init_logging, updatectl};
use clap::Parser;

fn main() -> ExitCode {
    let cli = updatectl::Cli::parse();
    init_logging("warn");
    finish("updatectl", updatectl::run(cli))
}
