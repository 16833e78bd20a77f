//! The events log: one JSON line per thing a client reported (a ping, an
//! update check, each `<event>`), kept in memory for in-process tests and
//! optionally appended to a file for tests that run the binary.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::omaha::Request;

/// What one record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// `<ping>`.
    Ping,
    /// `<updatecheck>`.
    UpdateCheck,
    /// `<event>`.
    Event,
}

/// One line of the events log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// When the server received it (RFC 3339, UTC).
    pub time: String,
    /// Ping, update check or event.
    pub kind: RecordKind,
    /// `app@appid`.
    pub app_id: String,
    /// `app@machineid`.
    pub machine_id: Option<String>,
    /// `app@version`: what the client runs.
    pub version: String,
    /// `app@track`.
    pub track: Option<String>,
    /// `event@eventtype` (events only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub event_type: Option<u32>,
    /// `event@eventresult` (events only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub event_result: Option<u32>,
    /// `event@errorcode` (events only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_code: Option<i64>,
    /// `event@previousversion` (events only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub previous_version: Option<String>,
}

/// Turn a request into its records, in document order per app: ping,
/// update check, then events.
pub fn records_of(request: &Request, time: &str) -> Vec<EventRecord> {
    let mut out = Vec::new();
    for app in &request.apps {
        let base = EventRecord {
            time: time.to_owned(),
            kind: RecordKind::Ping,
            app_id: app.app_id.clone(),
            machine_id: app.machine_id.clone(),
            version: app.version.clone(),
            track: app.track.clone(),
            event_type: None,
            event_result: None,
            error_code: None,
            previous_version: None,
        };
        if app.ping.is_some() {
            out.push(base.clone());
        }
        if app.update_check.is_some() {
            out.push(EventRecord {
                kind: RecordKind::UpdateCheck,
                ..base.clone()
            });
        }
        for e in &app.events {
            out.push(EventRecord {
                kind: RecordKind::Event,
                event_type: Some(e.event_type),
                event_result: Some(e.event_result),
                error_code: e.error_code,
                previous_version: e.previous_version.clone(),
                ..base.clone()
            });
        }
    }
    out
}

/// The log: in memory, and appended to a file when one was given.
#[derive(Debug, Default)]
pub struct EventLog {
    inner: Mutex<(Vec<EventRecord>, Option<File>)>,
}

impl EventLog {
    /// A log that also appends JSON lines to `path` (created if missing).
    pub fn with_file(path: &Path) -> anyhow::Result<EventLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening events log {}", path.display()))?;
        Ok(EventLog {
            inner: Mutex::new((Vec::new(), Some(file))),
        })
    }

    /// Record these, in order, after everything recorded before.
    pub fn append(&self, records: Vec<EventRecord>) {
        if records.is_empty() {
            return;
        }
        let mut text = String::new();
        for r in &records {
            // Serializing plain strings and numbers cannot fail.
            text.push_str(&serde_json::to_string(r).unwrap_or_default());
            text.push('\n');
        }
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (memory, file) = &mut *guard;
        if let Some(file) = file {
            // One write per request keeps each request's lines together.
            if let Err(err) = file.write_all(text.as_bytes()) {
                tracing::warn!(error = %err, "cannot append to the events log; keeping records in memory only");
            }
        }
        memory.extend(records);
    }

    /// Everything recorded so far.
    pub fn snapshot(&self) -> Vec<EventRecord> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_follow_document_order_and_reach_the_file() {
        let req = Request::parse(include_bytes!(
            "../../fixtures/omaha/request-update-engine.xml"
        ))
        .unwrap();
        let records = records_of(&req, "2026-01-01T00:00:00Z");
        let kinds: Vec<_> = records.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [RecordKind::Ping, RecordKind::UpdateCheck, RecordKind::Event]
        );
        assert_eq!(records[2].event_type, Some(3));
        assert_eq!(records[2].previous_version.as_deref(), Some("3760.1.0"));
        assert_eq!(
            records[0].machine_id.as_deref(),
            Some("4b5a1c3f0f0e4a2d9c1e7a6b5d4c3b2a")
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let log = EventLog::with_file(&path).unwrap();
        log.append(records.clone());
        log.append(Vec::new());
        assert_eq!(log.snapshot(), records);
        let lines: Vec<EventRecord> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines, records);
    }

    #[test]
    fn failing_writes_keep_records_in_memory() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let log = EventLog::with_file(Path::new("/dev/full")).unwrap();
        let req = Request::parse(include_bytes!(
            "../../fixtures/omaha/request-update-engine.xml"
        ))
        .unwrap();
        log.append(records_of(&req, "t"));
        assert_eq!(log.snapshot().len(), 3);
    }

    #[test]
    fn unwritable_log_path_is_an_error() {
        let err = EventLog::with_file(Path::new("/nonexistent/dir/events.jsonl")).unwrap_err();
        assert!(format!("{err:#}").contains("opening events log /nonexistent/dir/events.jsonl"));
    }
}
