//! `update-server demo`: the whole A/B cycle on one machine, without root,
//! loop devices or setup. Builds two OS versions and signed payloads, makes
//! a test disk, serves the update in-process, runs the real engine against
//! the disk image, emulates the reboot, and shows the GPT and the events the
//! server received. The tests (`tests/demo.rs`) run the same code quietly.

pub mod display;
pub mod images;
pub mod node;
mod single;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::gpt::SlotInfo;
use crate::server::{EventRecord, RecordKind, Server, ServerConfig, ServerHandle};
use crate::slot::SlotId;
use display::Display;

/// How long to wait for the server to receive an event the engine queued.
const EVENT_SETTLE_SECS: u64 = 10;

/// Which story the demo tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Update to version 2, reboot into it, health check passes, marked good.
    Happy,
    /// Version 2 fails its health check: marked bad, falls back to slot A.
    Rollback,
}

/// What to run and how loudly.
#[derive(Debug, Clone)]
pub struct Options {
    /// The scenario.
    pub scenario: Scenario,
    /// Keep the working files in this directory instead of a temporary one.
    pub keep: Option<PathBuf>,
    /// Print nothing.
    pub quiet: bool,
}

/// One Omaha event the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `app@machineid`.
    pub machine_id: String,
    /// `app@version` (what the client ran when it sent the event).
    pub version: String,
    /// `event@eventtype`.
    pub event_type: u32,
    /// `event@eventresult`.
    pub event_result: u32,
    /// `event@errorcode`.
    pub error_code: Option<i64>,
    /// `event@previousversion`.
    pub previous_version: Option<String>,
}

impl Event {
    /// `13/1`, `3/0 errorcode=44`, ...
    pub fn code(&self) -> String {
        match self.error_code {
            Some(code) => format!("{}/{} errorcode={code}", self.event_type, self.event_result),
            None => format!("{}/{}", self.event_type, self.event_result),
        }
    }
}

/// What a demo run ended with (the tests assert on it).
#[derive(Debug, Clone)]
pub struct Report {
    /// The `updatectl slots` table before the update (first node).
    pub gpt_before: String,
    /// The table at the end (first node).
    pub gpt_after: String,
    /// The slots at the end, per node.
    pub slots_after: Vec<[SlotInfo; 2]>,
    /// The slot each node last booted.
    pub booted_after: Vec<SlotId>,
    /// The engine's final phase, per node.
    pub final_phase: Vec<String>,
    /// Every event the server received, in arrival order.
    pub events: Vec<Event>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

/// Run the demo on the current tokio runtime (multi-threaded).
pub async fn run(options: &Options) -> Result<Report> {
    let started = Instant::now();
    let display = Display::new(options.quiet);
    let (_temp, dir) = workdir(options.keep.as_deref())?;
    display.say(&format!(
        "update-server demo ({:?}) in {}",
        options.scenario,
        dir.display()
    ));
    let mut report = match options.scenario {
        Scenario::Happy | Scenario::Rollback => {
            single::run(&dir, options.scenario, &display).await?
        }
    };
    report.elapsed = started.elapsed();
    display.say(&format!("\nDone in {:.1} s.", report.elapsed.as_secs_f64()));
    Ok(report)
}

/// A temporary directory (removed at the end), or `keep` (left in place).
fn workdir(keep: Option<&Path>) -> Result<(Option<tempfile::TempDir>, PathBuf)> {
    match keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating --keep directory {}", dir.display()))?;
            let used = std::fs::read_dir(dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .next()
                .is_some();
            anyhow::ensure!(
                !used,
                "--keep directory {} is not empty; pass a new or empty directory",
                dir.display()
            );
            Ok((None, dir.to_path_buf()))
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("update-demo-")
                .tempdir()
                .context("creating a temporary directory")?;
            let path = temp.path().to_path_buf();
            Ok((Some(temp), path))
        }
    }
}

/// Start update-server in-process on 127.0.0.1 (a free port).
async fn serve(releases: crate::server::Releases) -> Result<(String, ServerHandle)> {
    let config = ServerConfig {
        releases,
        faults: Vec::new(),
        events_log: None,
    };
    let (addr, server) = Server::bind(config, "127.0.0.1:0").await?;
    Ok((format!("http://{addr}/v1/update/"), server))
}

/// The events the server received so far.
fn events(server: &ServerHandle) -> Vec<Event> {
    server
        .events()
        .into_iter()
        .filter(|e: &EventRecord| e.kind == RecordKind::Event)
        .filter_map(|e| {
            Some(Event {
                machine_id: e.machine_id.unwrap_or_default(),
                version: e.version,
                event_type: e.event_type?,
                event_result: e.event_result?,
                error_code: e.error_code,
                previous_version: e.previous_version,
            })
        })
        .collect()
}

/// Wait until the server holds `done(events)`: the engine sends events from
/// its own queue, so the last one may still be on its way.
async fn settle(server: &ServerHandle, done: impl Fn(&[Event]) -> bool) -> Result<Vec<Event>> {
    let deadline = Instant::now() + Duration::from_secs(EVENT_SETTLE_SECS);
    loop {
        let seen = events(server);
        if done(&seen) {
            return Ok(seen);
        }
        if Instant::now() > deadline {
            let codes: Vec<String> = seen.iter().map(Event::code).collect();
            anyhow::bail!("the server did not receive the expected events; got {codes:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The events as a table with what each one means.
pub fn events_table(events: &[Event]) -> String {
    let mut out = String::from("MACHINE     VERSION  EVENT              MEANING\n");
    for e in events {
        let meaning = match (e.event_type, e.event_result, e.error_code) {
            (13, 1, _) => "download started".to_string(),
            (14, 1, _) => "download finished".to_string(),
            (3, 1, _) => "installed, reboot needed".to_string(),
            (3, 2, _) => format!(
                "booted the new version (previous {})",
                e.previous_version.as_deref().unwrap_or("?")
            ),
            (3, 0, Some(44)) => "rolled back to the previous slot".to_string(),
            (3, 0, _) => "update failed".to_string(),
            _ => "other".to_string(),
        };
        let machine: String = e.machine_id.chars().rev().take(8).collect();
        let machine: String = machine.chars().rev().collect();
        out.push_str(&format!(
            "…{:<10} {:<8} {:<18} {meaning}\n",
            machine,
            e.version,
            e.code()
        ));
    }
    out
}
