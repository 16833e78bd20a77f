//! `updatectl status [--json]`: the engine's current status.

use std::future::Future;
use std::path::Path;

use anyhow::{Context, Result};

use crate::engine::api::client::Client;
use crate::engine::status::{human_bytes, StatusReport};

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the JSON status report instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Run `future` on a small single-threaded runtime (the daemon commands
/// talk to the control socket asynchronously).
pub(super) fn block_on<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(future)
}

/// Run `updatectl status`.
pub fn run(socket: &Path, args: &Args) -> Result<()> {
    let report = block_on(Client::new(socket).status())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

/// The text form: a human line, then the details that are known.
pub fn render(r: &StatusReport) -> String {
    let mut out = format!("{}\n", r.human_line());
    out += &format!("  status:        {} ({})\n", r.status, r.phase);
    let slot = r
        .booted_slot
        .map(|s| format!(" (slot {s})"))
        .unwrap_or_default();
    out += &format!("  running:       {}{slot}\n", r.current_version);
    if let Some(v) = &r.new_version {
        out += &format!("  new version:   {v}\n");
    }
    if r.phase == "downloading" {
        out += &format!(
            "  downloaded:    {} of {} ({:.0}%)\n",
            human_bytes(r.bytes_downloaded),
            human_bytes(r.new_size.unwrap_or(0)),
            r.progress * 100.0
        );
    }
    if let Some(code) = r.error_code {
        out += &format!(
            "  error:         {code}: {}\n",
            r.message.as_deref().unwrap_or("")
        );
    } else if let Some(note) = &r.message {
        // Reboot coordination: why the staged update is not rebooting yet.
        out += &format!("  reboot:        {note}\n");
    }
    if let Some(t) = r.window_opens {
        out += &format!("  window opens:  {}\n", t.to_rfc3339());
    }
    let checked = r
        .last_checked_time
        .map_or_else(|| "never".to_string(), |t| t.to_rfc3339());
    out += &format!("  last check:    {checked}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::state::{Offer, State};
    use crate::engine::status::ReportContext;
    use crate::slot::SlotId;
    use chrono::TimeZone;

    #[test]
    fn renders_a_download_golden() {
        let state = State::Downloading {
            offer: Offer {
                version: "2.0.0".into(),
                urls: vec![],
                size: 8 << 20,
                sha256_hex: String::new(),
            },
            bytes: 2 << 20,
            total: 8 << 20,
        };
        let ctx = ReportContext {
            current_version: "1.0.0".into(),
            booted_slot: Some(SlotId::A),
            last_check: Some(chrono::Utc.timestamp_opt(1_800_000_000, 0).unwrap()),
        };
        assert_eq!(
            render(&StatusReport::new(&state, &ctx, 3)),
            "Downloading 2.0.0: 25% (2.0 MiB of 8.0 MiB)\n\
             \x20 status:        UPDATE_STATUS_DOWNLOADING (downloading)\n\
             \x20 running:       1.0.0 (slot A)\n\
             \x20 new version:   2.0.0\n\
             \x20 downloaded:    2.0 MiB of 8.0 MiB (25%)\n\
             \x20 last check:    2027-01-15T08:00:00+00:00\n"
        );
    }

    #[test]
    fn renders_an_error_and_a_never_checked_engine() {
        let state = State::ReportingErrorEvent {
            code: 10,
            message: "payload hash mismatch".into(),
            staged: None,
        };
        let text = render(&StatusReport::new(&state, &ReportContext::default(), 1));
        assert!(
            text.contains("  error:         10: payload hash mismatch\n"),
            "{text}"
        );
        assert!(text.ends_with("  last check:    never\n"), "{text}");
    }

    #[test]
    fn renders_the_window_opening_and_why_the_reboot_waits() {
        let opens = chrono::Utc.with_ymd_and_hms(2025, 3, 8, 23, 0, 0).unwrap();
        let state = State::WaitingForWindow {
            staged: crate::engine::state::Staged {
                version: "2.0.0".into(),
                slot: SlotId::B,
            },
            until: opens,
        };
        let mut report = StatusReport::new(&state, &ReportContext::default(), 1);
        report.message =
            Some("waiting for the maintenance window, which opens at 2025-03-08T23:00:00Z".into());
        let text = render(&report);
        assert!(
            text.contains("  reboot:        waiting for the maintenance window, which opens at 2025-03-08T23:00:00Z\n"),
            "{text}"
        );
        assert!(
            text.contains("  window opens:  2025-03-08T23:00:00+00:00\n"),
            "{text}"
        );
    }
}
