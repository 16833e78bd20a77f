//! `updatectl`: see `ab_updater::cli::updatectl`.

use std::process::ExitCode;

use ab_updater::cli::updatectl::{run, Updatectl};
use ab_updater::cli::{finish, init_logging};
use clap::Parser;

fn main() -> ExitCode {
    let args = Updatectl::parse();
    init_logging("warn");
    finish("updatectl", run(args))
}
