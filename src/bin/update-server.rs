//! `update-server`: see `ab_updater::cli::update_server`.

use std::process::ExitCode;

use ab_updater::cli::{finish, init_logging, update_server};
use clap::Parser;

fn main() -> ExitCode {
    let cli = update_server::Cli::parse();
    init_logging("warn");
    finish("update-server", update_server::run(cli))
}
