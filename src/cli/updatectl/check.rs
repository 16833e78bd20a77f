//! `updatectl check [--wait]`: start an update check now; with `--wait`
//! follow it to its end and exit non-zero when the update failed.

use std::path::Path;

use anyhow::Result;

use super::status::block_on;
use crate::engine::api::client::Client;
use crate::engine::status::StatusReport;

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Wait until the check (and any update it finds) has finished.
    #[arg(long)]
    pub wait: bool,
}

/// Run `updatectl check`.
pub fn run(socket: &Path, args: &Args) -> Result<()> {
    block_on(async {
        let client = Client::new(socket);
        if !args.wait {
            let started = client.check().await?;
            println!("{}", started.human_line());
            return Ok(());
        }
        // Subscribe first so no change between the request and the stream is missed.
        let mut events = client.events().await?;
        let started = client.check().await?;
        let mut wait = Wait::new(started.seq);
        while let Some(report) = events.next().await? {
            match wait.feed(&report) {
                Some(Ok(line)) => {
                    println!("{line}");
                    return Ok(());
                }
                Some(Err(reason)) => anyhow::bail!("{reason}"),
                None => {}
            }
        }
        anyhow::bail!("update-engine stopped before the check finished")
    })
}

/// Follows status changes after a check started and says how it ended.
#[derive(Debug, Clone)]
pub struct Wait {
    since: u64,
    failure: Option<String>,
}

impl Wait {
    /// Follow changes from change number `since` (the check's own).
    pub fn new(since: u64) -> Self {
        Wait {
            since,
            failure: None,
        }
    }

    /// Feed the next report: `Some(Ok(line))` when the check ended well,
    /// `Some(Err(reason))` when it failed, `None` while it runs.
    pub fn feed(&mut self, r: &StatusReport) -> Option<Result<String, String>> {
        if r.seq < self.since {
            return None;
        }
        match r.phase.as_str() {
            "reporting-error-event" => {
                self.failure = Some(format!(
                    "update failed (error {}): {}",
                    r.error_code.unwrap_or(0),
                    r.message.as_deref().unwrap_or("")
                ));
                None
            }
            "idle" | "good" | "rolled-back" => Some(match self.failure.take() {
                Some(reason) => Err(reason),
                None => Ok(format!(
                    "No update available; running {}",
                    r.current_version
                )),
            }),
            "updated-need-reboot"
            | "waiting-for-window"
            | "waiting-for-lock"
            | "running-pre-reboot-hooks"
            | "rebooting" => Some(match self.failure.take() {
                // A failed check while an update is staged: the check failed.
                Some(reason) => Err(reason),
                None => Ok(r.human_line()),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::state::{Offer, Staged, State};
    use crate::engine::status::ReportContext;
    use crate::slot::SlotId;

    fn report(state: State, seq: u64) -> StatusReport {
        let ctx = ReportContext {
            current_version: "1.0.0".into(),
            ..ReportContext::default()
        };
        StatusReport::new(&state, &ctx, seq)
    }

    fn offer() -> Offer {
        Offer {
            version: "2.0.0".into(),
            urls: vec![],
            size: 1,
            sha256_hex: String::new(),
        }
    }

    #[test]
    fn ends_well_on_no_update_or_a_staged_update() {
        let mut w = Wait::new(5);
        assert_eq!(
            w.feed(&report(State::Idle, 4)),
            None,
            "older changes are ignored"
        );
        let checking = State::CheckingForUpdate {
            interactive: true,
            staged: None,
        };
        assert_eq!(w.feed(&report(checking, 5)), None);
        assert_eq!(
            w.feed(&report(State::Idle, 6)),
            Some(Ok("No update available; running 1.0.0".into()))
        );

        let mut w = Wait::new(1);
        assert_eq!(
            w.feed(&report(State::UpdateAvailable { offer: offer() }, 2)),
            None
        );
        let staged = State::UpdatedNeedReboot {
            staged: Staged {
                version: "2.0.0".into(),
                slot: SlotId::B,
            },
        };
        assert_eq!(
            w.feed(&report(staged, 3)),
            Some(Ok("Updated to 2.0.0; reboot needed".into()))
        );
    }

    #[test]
    fn a_failure_is_an_error_with_code_and_message() {
        let mut w = Wait::new(1);
        let failed = State::ReportingErrorEvent {
            code: 10,
            message: "payload hash mismatch".into(),
            staged: None,
        };
        assert_eq!(w.feed(&report(failed, 2)), None);
        assert_eq!(
            w.feed(&report(State::Idle, 3)),
            Some(Err("update failed (error 10): payload hash mismatch".into()))
        );
    }
}
