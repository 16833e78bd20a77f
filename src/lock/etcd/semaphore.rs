//! The reboot semaphore value stored in etcd (DESIGN §6): pure parse,
//! validation and acquire/release/set-max math, no I/O.
//!
//! Wire form, compatible with locksmith (whose Go decoder ignores unknown
//! fields and writes `"holders":null` for an empty list):
//!
//! ```json
//! {"semaphore":1,"max":3,"holders":["a","b"],
//!  "holder_times":{"a":"2026-11-29T17:00:00Z","b":"2026-11-29T17:02:10Z"}}
//! ```
//!
//! `semaphore` is the number of free slots and always equals
//! `max - len(holders)`; it goes negative when `max` is lowered below the
//! current holder count. `holder_times` is our addition: when each holder
//! took its slot, so an operator can spot a node that never came back. A
//! holder missing from it (written by locksmith) is shown with an unknown time.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Longest holder id accepted; machine ids are 32 hex characters.
pub const MAX_HOLDER_ID_LEN: usize = 256;

/// Why a stored value is not a usable semaphore. The caller names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SemaphoreError {
    /// The bytes are not JSON at all.
    #[error("a value that is not JSON ({0})")]
    NotJson(String),
    /// JSON, but not shaped like a reboot semaphore (another tool's value).
    #[error("a foreign JSON value, not a reboot semaphore ({0})")]
    Foreign(String),
    /// A semaphore whose fields contradict each other.
    #[error("an inconsistent semaphore: {0}")]
    Inconsistent(String),
}

/// One node holding a reboot slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The node's id (its machine id).
    pub id: String,
    /// When it took the slot; `None` when another tool wrote the entry.
    pub since: Option<DateTime<Utc>>,
}

/// A validated reboot semaphore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Semaphore {
    max: u32,
    holders: Vec<Holder>,
}

/// Outcome of [`Semaphore::acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireOutcome {
    /// The id was added; the new value must be written back.
    Taken,
    /// The id already held a slot; nothing changed (locksmith#58).
    AlreadyHeld,
    /// No free slot; nothing changed.
    Full,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    semaphore: i64,
    max: i64,
    holders: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    holder_times: Option<BTreeMap<String, String>>,
}

impl Semaphore {
    /// A fresh semaphore with `max` slots and no holders.
    pub fn new(max: u32) -> Self {
        Semaphore {
            max,
            holders: Vec::new(),
        }
    }

    /// Parse and validate a stored value. Total: never panics on any input.
    pub fn parse(bytes: &[u8]) -> Result<Self, SemaphoreError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| SemaphoreError::NotJson(e.to_string()))?;
        // serde fills a missing `Option` field with None; locksmith always
        // writes `holders` (null when empty), so its absence means a foreign value.
        if value.is_object() && value.get("holders").is_none() {
            return Err(SemaphoreError::Foreign("missing field `holders`".into()));
        }
        let wire: Wire =
            serde_json::from_value(value).map_err(|e| SemaphoreError::Foreign(e.to_string()))?;
        Self::from_wire(wire)
    }

    fn from_wire(wire: Wire) -> Result<Self, SemaphoreError> {
        let bad = |msg: String| Err(SemaphoreError::Inconsistent(msg));
        let max = match u32::try_from(wire.max) {
            Ok(max) => max,
            Err(_) => return bad(format!("max {} is out of range 0..=4294967295", wire.max)),
        };
        let ids = wire.holders.unwrap_or_default();
        let mut seen = HashSet::new();
        for id in &ids {
            validate_holder_id(id).map_err(SemaphoreError::Inconsistent)?;
            if !seen.insert(id.as_str()) {
                return bad(format!("holder {id:?} is listed twice"));
            }
        }
        let expected = i64::from(max) - ids.len() as i64;
        if wire.semaphore != expected {
            return bad(format!(
                "semaphore is {} but max {} minus {} holders is {expected}",
                wire.semaphore,
                max,
                ids.len()
            ));
        }
        let mut times = wire.holder_times.unwrap_or_default();
        let mut holders = Vec::with_capacity(ids.len());
        for id in ids {
            let since = match times.remove(&id) {
                None => None,
                Some(text) => match DateTime::parse_from_rfc3339(&text) {
                    Ok(t) => Some(t.with_timezone(&Utc)),
                    Err(e) => return bad(format!("holder_times[{id:?}] = {text:?}: {e}")),
                },
            };
            holders.push(Holder { id, since });
        }
        if let Some(stray) = times.keys().next() {
            return bad(format!(
                "holder_times names {stray:?}, which is not a holder"
            ));
        }
        Ok(Semaphore { max, holders })
    }

    /// The value to store, in the wire form described in the module docs.
    pub fn to_json(&self) -> Vec<u8> {
        let times: BTreeMap<String, String> = self
            .holders
            .iter()
            .filter_map(|h| {
                let t = h.since?;
                Some((h.id.clone(), t.to_rfc3339_opts(SecondsFormat::Secs, true)))
            })
            .collect();
        let wire = Wire {
            semaphore: self.available(),
            max: i64::from(self.max),
            holders: Some(self.holders.iter().map(|h| h.id.clone()).collect()),
            holder_times: Some(times),
        };
        // Serialising plain strings and integers cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Number of slots.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// Free slots: `max - holders`, negative after `max` was lowered.
    pub fn available(&self) -> i64 {
        i64::from(self.max) - self.holders.len() as i64
    }

    /// Current holders, in the order they took their slots.
    pub fn holders(&self) -> &[Holder] {
        &self.holders
    }

    /// Whether `id` holds a slot.
    pub fn is_held_by(&self, id: &str) -> bool {
        self.holders.iter().any(|h| h.id == id)
    }

    /// Take a slot for `id` at `now` if one is free; a holder asking again
    /// keeps its slot and its original time.
    pub fn acquire(&mut self, id: &str, now: DateTime<Utc>) -> AcquireOutcome {
        if self.is_held_by(id) {
            return AcquireOutcome::AlreadyHeld;
        }
        // `available() > 0` rather than `len < max` reads the same, but this
        // is the line that keeps a lowered `max` from admitting anyone until
        // enough holders have left.
        if self.available() <= 0 {
            return AcquireOutcome::Full;
        }
        self.holders.push(Holder {
            id: id.to_string(),
            since: Some(now.with_timezone(&Utc)),
        });
        AcquireOutcome::Taken
    }

    /// Give up `id`'s slot; returns whether it held one (not holding is fine).
    pub fn release(&mut self, id: &str) -> bool {
        let before = self.holders.len();
        self.holders.retain(|h| h.id != id);
        self.holders.len() != before
    }

    /// Change the number of slots; current holders keep theirs.
    pub fn set_max(&mut self, max: u32) {
        self.max = max;
    }
}

/// Check a holder id before it is written into the semaphore.
pub fn validate_holder_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_HOLDER_ID_LEN || id.chars().any(char::is_control) {
        return Err(format!(
            "holder id {id:?} must be 1 to {MAX_HOLDER_ID_LEN} characters without control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "semaphore_tests.rs"]
mod tests;
