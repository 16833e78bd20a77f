//! `updatectl history [--json]`: every update attempt, oldest first.

use std::path::Path;

use anyhow::Result;

use super::status::block_on;
use crate::engine::api::client::Client;
use crate::engine::status::human_bytes;
use crate::engine::store::{Attempt, Outcome};

/// Arguments of `history`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Run `updatectl history`.
pub fn run(socket: &Path, args: &Args) -> Result<()> {
    let history = block_on(Client::new(socket).history())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&history)?);
    } else {
        print!("{}", render(&history));
    }
    Ok(())
}

/// The table form.
pub fn render(history: &[Attempt]) -> String {
    if history.is_empty() {
        return "No update attempts yet.\n".into();
    }
    let mut out = format!(
        "{:<20} {:>8} {:<12} {:<12} {:>10}  {}\n",
        "STARTED (UTC)", "SECONDS", "VERSION", "RESULT", "BYTES", "ERROR"
    );
    for a in history {
        let result = match a.result {
            Outcome::Installed => "installed",
            Outcome::Good => "good",
            Outcome::Failed => "failed",
            Outcome::RolledBack => "rolled-back",
        };
        let error = match (a.error_code, &a.error) {
            (Some(code), Some(e)) => format!("{code}: {e}"),
            (Some(code), None) => code.to_string(),
            _ => String::new(),
        };
        out += &format!(
            "{:<20} {:>8} {:<12} {:<12} {:>10}  {}\n",
            a.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            (a.ended_at - a.started_at).num_seconds().max(0),
            a.version,
            result,
            human_bytes(a.bytes),
            error
        )
        .replace(['\r'], " ");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn table_golden() {
        let t = |s: i64| chrono::Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap();
        let history = [
            Attempt {
                version: "2.0.0".into(),
                started_at: t(0),
                ended_at: t(75),
                bytes: 3 << 20,
                result: Outcome::Failed,
                error_code: Some(10),
                error: Some("payload hash mismatch".into()),
            },
            Attempt {
                version: "2.0.0".into(),
                started_at: t(100),
                ended_at: t(160),
                bytes: 8 << 20,
                result: Outcome::Installed,
                error_code: None,
                error: None,
            },
        ];
        assert_eq!(
            render(&history),
            "STARTED (UTC)         SECONDS VERSION      RESULT            BYTES  ERROR\n\
             2027-01-15 08:00:00        75 2.0.0        failed          3.0 MiB  10: payload hash mismatch\n\
             2027-01-15 08:01:40        60 2.0.0        installed       8.0 MiB  \n"
        );
        assert_eq!(render(&[]), "No update attempts yet.\n");
    }
}
