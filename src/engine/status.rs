//! The status report: what `GET /v1/status` returns, what the key=value
//! status file holds and the one human line for sd_notify and `updatectl`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::state::{RebootReason, State};
use crate::slot::SlotId;

/// A snapshot of the engine for clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// update_engine status string (`UPDATE_STATUS_...`).
    pub status: String,
    /// Finer phase (`downloading`, `waiting-for-lock`, `trial-boot`, ...).
    pub phase: String,
    /// The running OS version.
    pub current_version: String,
    /// The booted slot.
    pub booted_slot: Option<SlotId>,
    /// The version being installed or staged.
    pub new_version: Option<String>,
    /// Payload size of the update being installed.
    pub new_size: Option<u64>,
    /// Payload bytes received so far.
    pub bytes_downloaded: u64,
    /// Progress of the current phase, 0.0 to 1.0.
    pub progress: f64,
    /// Time of the last answered check.
    pub last_checked_time: Option<DateTime<Utc>>,
    /// Error code while reporting an error.
    pub error_code: Option<u32>,
    /// Error message while reporting an error.
    pub message: Option<String>,
    /// When the next maintenance window opens, while waiting for one.
    pub window_opens: Option<DateTime<Utc>>,
    /// Change counter: increases with every state change.
    pub seq: u64,
}

/// Facts outside the state machine that the report includes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportContext {
    /// The running OS version.
    pub current_version: String,
    /// The booted slot.
    pub booted_slot: Option<SlotId>,
    /// Time of the last answered check.
    pub last_check: Option<DateTime<Utc>>,
}

impl StatusReport {
    /// Build the report of `state`.
    pub fn new(state: &State, ctx: &ReportContext, seq: u64) -> Self {
        let mut r = StatusReport {
            status: state.status().into(),
            phase: state.phase().into(),
            current_version: ctx.current_version.clone(),
            booted_slot: ctx.booted_slot,
            new_version: None,
            new_size: None,
            bytes_downloaded: 0,
            progress: 0.0,
            last_checked_time: ctx.last_check,
            error_code: None,
            message: None,
            window_opens: None,
            seq,
        };
        if let Some(offer) = state.offer() {
            r.new_version = Some(offer.version.clone());
            r.new_size = Some(offer.size);
        }
        if let Some(staged) = state.staged() {
            r.new_version = Some(staged.version.clone());
            r.progress = 1.0;
        }
        match state {
            State::Downloading { bytes, total, .. } => {
                r.bytes_downloaded = *bytes;
                r.progress = if *total == 0 {
                    0.0
                } else {
                    *bytes as f64 / *total as f64
                };
            }
            State::Verifying { offer } | State::Finalizing { offer } => {
                r.bytes_downloaded = offer.size;
                r.progress = 1.0;
            }
            State::ReportingErrorEvent { code, message, .. } => {
                r.error_code = Some(*code);
                r.message = Some(message.clone());
            }
            State::WaitingForWindow { until, .. } => r.window_opens = Some(*until),
            State::TrialBoot { version, .. }
            | State::Good { version }
            | State::RolledBack { version }
            | State::Rebooting {
                reason: RebootReason::HealthCheckFailed { version },
            } => r.new_version = Some(version.clone()),
            _ => {}
        }
        r
    }

    /// The `/run/update-engine/status` text: update_engine_client's keys
    /// (`LAST_CHECKED_TIME`, `PROGRESS`, `CURRENT_OP`, `NEW_VERSION`,
    /// `NEW_SIZE`) plus ours; one `KEY=value` per line, values on one line.
    pub fn key_values(&self) -> String {
        let one_line = |s: &str| s.replace(['\n', '\r'], " ");
        let mut out = format!(
            "LAST_CHECKED_TIME={}\nPROGRESS={:.6}\nCURRENT_OP={}\nNEW_VERSION={}\nNEW_SIZE={}\n",
            self.last_checked_time.map_or(0, |t| t.timestamp()),
            self.progress,
            self.status,
            one_line(self.new_version.as_deref().unwrap_or("0.0.0.0")),
            self.new_size.unwrap_or(0),
        );
        out += &format!(
            "PHASE={}\nCURRENT_VERSION={}\nBOOTED_SLOT={}\nBYTES_DOWNLOADED={}\n",
            self.phase,
            one_line(&self.current_version),
            self.booted_slot.map(|s| s.to_string()).unwrap_or_default(),
            self.bytes_downloaded,
        );
        if let Some(code) = self.error_code {
            out += &format!("ERROR_CODE={code}\n");
        }
        out
    }

    /// One human line, e.g. `Downloading 2.0.0: 45% (12.0 of 27.0 MiB)`.
    pub fn human_line(&self) -> String {
        let new = self.new_version.as_deref().unwrap_or("?");
        match self.phase.as_str() {
            "idle" => format!("Idle, running {}", self.current_version),
            "checking-for-update" => "Checking for an update".into(),
            "update-available" => format!("Update {new} available"),
            "downloading" => format!(
                "Downloading {new}: {:.0}% ({} of {})",
                self.progress * 100.0,
                human_bytes(self.bytes_downloaded),
                human_bytes(self.new_size.unwrap_or(0)),
            ),
            "verifying" => format!("Verifying {new}"),
            "finalizing" => format!("Finalizing {new}"),
            "updated-need-reboot" => format!("Updated to {new}; reboot needed"),
            "reporting-error-event" => format!(
                "Update failed (error {}): {}",
                self.error_code.unwrap_or(0),
                self.message.as_deref().unwrap_or("")
            ),
            "waiting-for-window" => format!(
                "Updated to {new}; waiting for the maintenance window at {}",
                self.window_opens
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            ),
            "waiting-for-lock" => format!("Updated to {new}; waiting for the reboot lock"),
            "running-pre-reboot-hooks" => format!("Updated to {new}; running pre-reboot hooks"),
            "rebooting" if self.status == "UPDATE_STATUS_ATTEMPTING_ROLLBACK" => {
                format!("Health checks of {new} failed; rebooting into the previous slot")
            }
            "rebooting" => format!("Rebooting into {new}"),
            "trial-boot" => format!("Trial boot of {new}: running health checks"),
            "good" => format!("Running {new}, marked good"),
            "rolled-back" => format!(
                "Update to {new} rolled back; running {}",
                self.current_version
            ),
            other => other.to_string(),
        }
    }
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
