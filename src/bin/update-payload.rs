use std::process::ExitCode;

use ab_updater::cli::update_payload::{run, Cli};
use clap::Parser;

fn main() -> ExitCode {
    let args = Cli::parse();
    ab_updater::cli::init_logging("info");
    ab_updater::cli::finish("update-payload", run(args))
}
