//! Command-line front ends. Each binary in `src/bin/` parses its arguments
//! with the clap types defined here and calls exactly one `run` function.

use std::process::ExitCode;

/// Set up `tracing` logging to stderr; `RUST_LOG` overrides `default_level`.
///
/// `RUST_LOG` takes a level and `target=level` pairs, comma-separated
/// (`info,ab_updater::lock=debug`). It is parsed as a plain target list, not
/// with `EnvFilter`: that one's span and field filters pull in a regex
/// engine, whose code the daemon would keep resident for nothing (DESIGN's
/// idle memory target). A value that does not parse is reported once and
/// the default level is used.
pub fn init_logging(default_level: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, bad) = log_filter(std::env::var("RUST_LOG").ok().as_deref(), default_level);
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colours for a terminal, plain text for journald and files.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(filter)
        .try_init();
    if let Some(message) = bad {
        tracing::warn!("{message}");
    }
}

/// The filter for `RUST_LOG`'s value, or `default_level` when it is unset,
/// empty or does not parse (then with a message saying so).
fn log_filter(
    rust_log: Option<&str>,
    default_level: &str,
) -> (tracing_subscriber::filter::Targets, Option<String>) {
    use tracing_subscriber::filter::Targets;
    let fallback = || default_level.parse::<Targets>().unwrap_or_default();
    match rust_log {
        Some(value) if !value.trim().is_empty() => match value.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(e) => (
                fallback(),
                Some(format!("ignoring RUST_LOG={value:?}: {e}")),
            ),
        },
        _ => (fallback(), None),
    }
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

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn rust_log_sets_levels_per_target_and_bad_values_fall_back() {
        let (f, bad) = log_filter(Some("warn,ab_updater::lock=debug"), "info");
        assert!(bad.is_none());
        assert!(f.would_enable("ab_updater::lock::etcd", &Level::DEBUG));
        assert!(!f.would_enable("ab_updater::engine", &Level::INFO));
        for unset in [None, Some(""), Some("  ")] {
            let (f, bad) = log_filter(unset, "info");
            assert!(bad.is_none());
            assert!(f.would_enable("anything", &Level::INFO));
            assert!(!f.would_enable("anything", &Level::DEBUG));
        }
        let (f, bad) = log_filter(Some("==bad"), "info");
        assert!(bad.unwrap().contains("ignoring RUST_LOG=\"==bad\""));
        assert!(f.would_enable("anything", &Level::INFO));
    }
}
