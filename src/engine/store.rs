//! The engine's files: `state.json` (current operation, last install, blocked
//! version), `checkpoint.json` (payload resume point), `history.jsonl` (one
//! line per attempt) in the state directory; the key=value status file and
//! the reboot-required flag in the run directory. Every replace is atomic
//! (`fsutil::write_atomic`); history lines are appended and fsynced.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::state::Offer;
use crate::fsutil::write_atomic;
use crate::slot::SlotId;

/// Version of the `state.json` layout.
const STATE_FORMAT: u32 = 1;
/// History lines returned at most (older ones stay in the file).
pub const HISTORY_LIMIT: usize = 1000;
/// History files larger than this are not read (an operator should rotate them).
const HISTORY_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Where the engine keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Persistent state (default `/var/lib/update-engine`).
    pub state_dir: PathBuf,
    /// The key=value status file (default `/run/update-engine/status`).
    pub status_file: PathBuf,
    /// Present while a reboot is pending (default `/run/reboot-required`).
    pub reboot_required: PathBuf,
}

impl Paths {
    /// The host paths of DESIGN §7.
    pub fn host() -> Self {
        Paths {
            state_dir: "/var/lib/update-engine".into(),
            status_file: "/run/update-engine/status".into(),
            reboot_required: "/run/reboot-required".into(),
        }
    }

    /// Sandbox paths: everything volatile under `run_dir`.
    pub fn sandbox(state_dir: PathBuf, run_dir: &Path) -> Self {
        Paths {
            state_dir,
            status_file: run_dir.join("status"),
            reboot_required: run_dir.join("reboot-required"),
        }
    }
}

/// Which step of an installation was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Streaming the payload into the target slot.
    Downloading,
    /// Reading the target slot back.
    Verifying,
    /// Flipping the GPT.
    Finalizing,
}

/// An installation in progress. Written before the first byte goes to the
/// target slot (the pending marker), removed once the update is staged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// What is being installed.
    pub offer: Offer,
    /// The inactive slot being written.
    pub target: SlotId,
    /// The version running when it started.
    pub from_version: String,
    /// The step running.
    pub stage: Stage,
    /// When the attempt started.
    pub started_at: DateTime<Utc>,
    /// Bytes received over the network so far, across resumes.
    pub network_bytes: u64,
}

/// The update installed last, kept until its boot is judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// Installed version.
    pub version: String,
    /// The slot it went to.
    pub slot: SlotId,
    /// The version it replaces (reported as `previousversion`).
    pub previous_version: String,
    /// Boot id of the boot that installed it: the same id after a restart
    /// means "no reboot yet", another means the machine rebooted.
    pub boot_id: String,
    /// When the install finished.
    pub installed_at: DateTime<Utc>,
}

/// Everything in `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persisted {
    /// Layout version.
    pub format: u32,
    /// An installation in progress.
    pub operation: Option<Operation>,
    /// The update installed last and not yet judged.
    pub installed: Option<Installed>,
    /// A version rolled back on this machine: never retried.
    pub blocked_version: Option<String>,
    /// Time of the last answered check.
    pub last_check: Option<DateTime<Utc>>,
}

impl Default for Persisted {
    fn default() -> Self {
        Persisted {
            format: STATE_FORMAT,
            operation: None,
            installed: None,
            blocked_version: None,
            last_check: None,
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Installed and waiting for a reboot.
    Installed,
    /// Booted and marked good.
    Good,
    /// Failed with an error code.
    Failed,
    /// Booted back to the old slot.
    RolledBack,
}

/// One line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The version attempted.
    pub version: String,
    /// Start of the attempt.
    pub started_at: DateTime<Utc>,
    /// End of the attempt.
    pub ended_at: DateTime<Utc>,
    /// Bytes received over the network.
    pub bytes: u64,
    /// How it ended.
    pub result: Outcome,
    /// update_engine error code, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u32>,
    /// What went wrong, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The engine's files.
#[derive(Debug, Clone)]
pub struct Store {
    paths: Paths,
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
            format!(
                "parsing {}: the file is damaged; move it away to start over",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

impl Store {
    /// Open the store, creating the state directory (0700) when missing.
    pub fn open(paths: Paths) -> Result<Self> {
        fs::create_dir_all(&paths.state_dir)
            .with_context(|| format!("creating state directory {}", paths.state_dir.display()))?;
        Ok(Store { paths })
    }

    /// The configured paths.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    fn state_path(&self) -> PathBuf {
        self.paths.state_dir.join("state.json")
    }

    /// Where the payload checkpoint is kept.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.paths.state_dir.join("checkpoint.json")
    }

    fn history_path(&self) -> PathBuf {
        self.paths.state_dir.join("history.jsonl")
    }

    /// Load `state.json` (defaults when it does not exist yet).
    pub fn load(&self) -> Result<Persisted> {
        let state: Persisted = read_json(&self.state_path())?.unwrap_or_default();
        anyhow::ensure!(
            state.format == STATE_FORMAT,
            "{} has format {} but this engine understands {STATE_FORMAT}; move it away to start over",
            self.state_path().display(),
            state.format
        );
        Ok(state)
    }

    /// Replace `state.json` atomically.
    pub fn save(&self, state: &Persisted) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(state).context("encoding engine state")?;
        write_atomic(&self.state_path(), &bytes, 0o600)
    }

    /// Load the payload checkpoint, if one was saved.
    pub fn load_checkpoint<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        read_json(&self.checkpoint_path())
    }

    /// Replace the payload checkpoint atomically.
    pub fn save_checkpoint<T: Serialize>(&self, checkpoint: &T) -> Result<()> {
        let bytes = serde_json::to_vec(checkpoint).context("encoding payload checkpoint")?;
        write_atomic(&self.checkpoint_path(), &bytes, 0o600)
    }

    /// Forget the payload checkpoint (the next attempt starts clean).
    pub fn clear_checkpoint(&self) -> Result<()> {
        remove_if_present(&self.checkpoint_path())
    }

    /// Append one attempt to the history and fsync it.
    pub fn append_history(&self, attempt: &Attempt) -> Result<()> {
        let path = self.history_path();
        let mut line = serde_json::to_vec(attempt).context("encoding history entry")?;
        line.push(b'\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .with_context(|| format!("appending to {}", path.display()))
    }

    /// The last `HISTORY_LIMIT` attempts, oldest first. A line torn by a
    /// crash during an append is skipped with a warning.
    pub fn history(&self) -> Result<Vec<Attempt>> {
        let path = self.history_path();
        let text = match fs::metadata(&path) {
            Ok(meta) if meta.len() > HISTORY_MAX_BYTES => anyhow::bail!(
                "{} is larger than {HISTORY_MAX_BYTES} bytes; rotate it",
                path.display()
            ),
            Ok(_) => {
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut out = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            match serde_json::from_str(line) {
                Ok(attempt) => out.push(attempt),
                Err(e) => {
                    warn!(line = i + 1, error = %e, file = %path.display(), "skipping damaged history line")
                }
            }
        }
        let skip = out.len().saturating_sub(HISTORY_LIMIT);
        Ok(out.split_off(skip))
    }

    /// Write the key=value status file (its directory is created if needed).
    pub fn write_status(&self, key_values: &str) -> Result<()> {
        let path = &self.paths.status_file;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        write_atomic(path, key_values.as_bytes(), 0o644)
    }

    /// Create or remove the reboot-required flag file.
    pub fn set_reboot_required(&self, required: bool) -> Result<()> {
        let path = &self.paths.reboot_required;
        if required {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            write_atomic(path, b"*** System restart required ***\n", 0o644)
        } else {
            remove_if_present(path)
        }
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
