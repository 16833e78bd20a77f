//! `updatectl watch`: follow the engine live. While downloading, a one-line
//! progress bar with bytes, rate and ETA; otherwise the status line.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::status::block_on;
use crate::engine::api::client::Client;
use crate::engine::status::{human_bytes, StatusReport};

/// Arguments of `watch`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Width of the progress bar in characters.
const BAR_WIDTH: usize = 30;
/// Weight of the newest sample in the smoothed download rate.
const RATE_SMOOTHING: f64 = 0.3;

/// Run `updatectl watch` until the engine closes the stream.
pub fn run(socket: &Path, _args: &Args) -> Result<()> {
    block_on(async {
        let mut events = Client::new(socket).events().await?;
        let tty = std::io::stdout().is_terminal();
        let mut meter = Meter::default();
        let mut out = std::io::stdout().lock();
        while let Some(report) = events.next().await? {
            let line = meter.line(&report, Instant::now());
            if tty {
                // Rewrite the same terminal line; clear what a longer one left.
                write!(out, "\r{line}\x1b[K")
            } else {
                writeln!(out, "{line}")
            }
            .and_then(|()| out.flush())
            .context("writing to stdout")?;
        }
        if tty {
            writeln!(out).context("writing to stdout")?;
        }
        Ok(())
    })
}

/// Turns status reports into display lines and measures the download rate.
#[derive(Debug, Default)]
pub struct Meter {
    last: Option<(Instant, u64)>,
    rate: Option<f64>,
}

impl Meter {
    /// The line for `report`, received at `now`.
    pub fn line(&mut self, report: &StatusReport, now: Instant) -> String {
        if report.phase != "downloading" {
            self.last = None;
            self.rate = None;
            return report.human_line();
        }
        let bytes = report.bytes_downloaded;
        if let Some((then, before)) = self.last {
            let secs = now.saturating_duration_since(then).as_secs_f64();
            if secs > 0.0 && bytes >= before {
                let sample = (bytes - before) as f64 / secs;
                self.rate = Some(match self.rate {
                    Some(rate) => rate + RATE_SMOOTHING * (sample - rate),
                    None => sample,
                });
            }
        }
        self.last = Some((now, bytes));
        let total = report.new_size.unwrap_or(0);
        render_bar(
            report.new_version.as_deref().unwrap_or("?"),
            bytes,
            total,
            self.rate,
        )
    }
}

/// `Downloading 2.0.0 [######....] 40% 4.0 MiB/10.0 MiB 1.0 MiB/s ETA 0:06`.
pub fn render_bar(version: &str, bytes: u64, total: u64, rate: Option<f64>) -> String {
    let fraction = if total == 0 {
        0.0
    } else {
        (bytes as f64 / total as f64).clamp(0.0, 1.0)
    };
    let filled = (fraction * BAR_WIDTH as f64).round() as usize;
    let bar = format!("{}{}", "#".repeat(filled), ".".repeat(BAR_WIDTH - filled));
    let mut line = format!(
        "Downloading {version} [{bar}] {:3.0}% {}/{}",
        fraction * 100.0,
        human_bytes(bytes),
        human_bytes(total)
    );
    match rate {
        Some(rate) if rate >= 1.0 => {
            let eta = Duration::from_secs_f64(total.saturating_sub(bytes) as f64 / rate);
            let secs = eta.as_secs();
            line += &format!(
                " {}/s ETA {}:{:02}",
                human_bytes(rate as u64),
                secs / 60,
                secs % 60
            );
        }
        _ => line += " --/s ETA --:--",
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::state::{Offer, State};
    use crate::engine::status::ReportContext;

    fn downloading(bytes: u64) -> StatusReport {
        let state = State::Downloading {
            offer: Offer {
                version: "2.0.0".into(),
                urls: vec![],
                size: 10 << 20,
                sha256_hex: String::new(),
            },
            bytes,
            total: 10 << 20,
        };
        StatusReport::new(&state, &ReportContext::default(), 1)
    }

    #[test]
    fn bar_golden() {
        assert_eq!(
            render_bar("2.0.0", 4 << 20, 10 << 20, Some(1048576.0)),
            "Downloading 2.0.0 [############..................]  40% 4.0 MiB/10.0 MiB 1.0 MiB/s ETA 0:06"
        );
        assert_eq!(
            render_bar("2.0.0", 0, 0, None),
            "Downloading 2.0.0 [..............................]   0% 0 B/0 B --/s ETA --:--"
        );
    }

    #[test]
    fn meter_measures_the_rate_between_reports() {
        let mut m = Meter::default();
        let t0 = Instant::now();
        let first = m.line(&downloading(0), t0);
        assert!(first.ends_with("--/s ETA --:--"), "{first}");
        let second = m.line(&downloading(2 << 20), t0 + Duration::from_secs(2));
        assert!(second.ends_with("1.0 MiB/s ETA 0:08"), "{second}");
        // Another phase resets the meter and shows the status line.
        let idle = StatusReport::new(&State::Idle, &ReportContext::default(), 2);
        assert_eq!(m.line(&idle, t0), "Idle, running ");
        assert!(m.line(&downloading(5), t0).ends_with("--/s ETA --:--"));
    }
}
