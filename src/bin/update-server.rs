//! `update-server`: see `ab_updater::cli::update_server`.

use std::process::ExitCode;

use ab_updater::cli::update_server::{run, UpdateServer};
use ab_updater::cli::{finish, init_logging};
use clap::Parser;

fn main() -> ExitCode {
    let args = UpdateServer::parse();
    init_logging("info");
    finish("update-server", run(args))
}
