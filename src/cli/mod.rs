//! Command-line front ends. Each binary in `src/bin/` parses its arguments
//! with the clap types defined here and calls exactly one `run` function.

use std::process::ExitCode;

/// Set up `tracing` logging to stderr; `RUST_LOG` overrides `default_level`.
pub fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Turn a command's result into the process exit code: 0 on success,
/// otherwise 1 with the whole error chain on one stderr line
/// (`program: what failed: why`), as DESIGN §9 requires.
pub fn finish(program: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{program}: {err:#}");
            ExitCode::FAILURE
        }
    }
}

pub mod update_engine;
pub mod update_payload;
pub mod update_server;
pub mod updatectl;
