//! The etcd v3 reboot lock: a counting semaphore per group (DESIGN §6).
//!
//! Every change is read-modify-write with compare-and-swap on the key's
//! `mod_revision` in one transaction, so two nodes racing for the last slot
//! can never both win: the second write fails its compare, re-reads, and sees
//! the slot gone. All writes are idempotent (taking a held slot or releasing
//! a free one changes nothing), which makes retrying after a lost reply safe.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use super::config::EtcdConfig;
use super::{Backoff, Holding, LockError, RebootLock};

mod client;
pub mod keys;
pub mod semaphore;
mod watch;
pub mod wire;

use client::Connection;
pub use client::Timeouts;
pub use semaphore::{AcquireOutcome, Holder, Semaphore, SemaphoreError};
use wire::{b64, RangeResponse, TxnResponse};

/// Timing knobs of [`EtcdLock`]; the defaults suit production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtcdTuning {
    /// Per-endpoint connect and request timeouts.
    pub timeouts: Timeouts,
    /// Delays between retries while etcd is unreachable.
    pub backoff: Backoff,
    /// While all slots are taken we watch the key; this bounds one watch so a
    /// silently broken watch stream cannot stall a node forever.
    pub recheck: Duration,
}

impl Default for EtcdTuning {
    fn default() -> Self {
        EtcdTuning {
            timeouts: Timeouts::default(),
            backoff: Backoff::default(),
            recheck: Duration::from_secs(60),
        }
    }
}

/// Result of one [`EtcdLock::try_acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// We took a free slot.
    Taken,
    /// We already held a slot.
    AlreadyHeld,
    /// All slots are taken.
    Full {
        /// The semaphore as seen.
        semaphore: Semaphore,
        /// etcd revision of that read (a watch starts after it).
        revision: i64,
    },
}

/// What [`EtcdLock::status`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockStatus {
    /// The etcd key of the group.
    pub key: String,
    /// False when the key does not exist yet (shown as the default, max 1).
    pub exists: bool,
    /// The semaphore value.
    pub semaphore: Semaphore,
}

/// A reboot semaphore in etcd, bound to one group and one holder id.
pub struct EtcdLock {
    conn: Connection,
    key: String,
    holder: String,
    tuning: EtcdTuning,
}

/// The value read from the key: `None` when absent, else the semaphore and
/// the key's `mod_revision`; plus the store revision of the read.
struct Read {
    current: Option<(Semaphore, i64)>,
    revision: i64,
}

impl EtcdLock {
    /// A lock for `holder` (normally the machine id) with default tuning.
    pub fn new(config: &EtcdConfig, holder: &str) -> Result<Self, LockError> {
        Self::with_tuning(config, holder, EtcdTuning::default())
    }

    /// A lock for `holder` with explicit timeouts and retry delays.
    pub fn with_tuning(
        config: &EtcdConfig,
        holder: &str,
        tuning: EtcdTuning,
    ) -> Result<Self, LockError> {
        let key = keys::semaphore_key(&config.group).map_err(LockError::Config)?;
        semaphore::validate_holder_id(holder).map_err(LockError::Config)?;
        Ok(EtcdLock {
            conn: Connection::new(config, tuning.timeouts)?,
            key,
            holder: holder.to_string(),
            tuning,
        })
    }

    /// The etcd key of this lock's group.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The holder id this lock acts for.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// One read of the semaphore (tries every endpoint once).
    pub async fn status(&self) -> Result<LockStatus, LockError> {
        let read = self.read().await?;
        Ok(LockStatus {
            key: self.key.clone(),
            exists: read.current.is_some(),
            semaphore: read
                .current
                .map(|(s, _)| s)
                .unwrap_or_else(|| Semaphore::new(1)),
        })
    }

    /// One attempt to take a slot: no waiting when full, no retrying when
    /// etcd is unreachable (write conflicts are retried: each one means
    /// another node made progress). Creates the key with `max` 1 when missing.
    pub async fn try_acquire(&self) -> Result<Attempt, LockError> {
        self.try_acquire_from(None).await
    }

    /// [`Self::try_acquire`] starting from a value already seen (a watch
    /// event), saving one read when the wait ends.
    async fn try_acquire_from(&self, known: Option<Read>) -> Result<Attempt, LockError> {
        self.update(known, |sem, _, revision| {
            match sem.acquire(&self.holder, Utc::now()) {
                AcquireOutcome::Taken => Change::Write(Attempt::Taken),
                AcquireOutcome::AlreadyHeld => Change::Keep(Attempt::AlreadyHeld),
                AcquireOutcome::Full => Change::Keep(Attempt::Full {
                    semaphore: sem.clone(),
                    revision,
                }),
            }
        })
        .await
    }

    /// One attempt to give the slot back; returns whether we held one.
    /// A missing key is left missing.
    pub async fn release_once(&self) -> Result<bool, LockError> {
        self.update(None, |sem, _, _| {
            if sem.release(&self.holder) {
                Change::Write(true)
            } else {
                Change::Keep(false)
            }
        })
        .await
    }

    /// Set the number of slots of the group (creating the key if needed);
    /// returns the previous `max`. Holders keep their slots when it shrinks.
    pub async fn set_max(&self, max: u32) -> Result<u32, LockError> {
        self.update(None, |sem, existed, _| {
            let old = sem.max();
            sem.set_max(max);
            if existed && old == max {
                Change::Keep(old)
            } else {
                Change::Write(old)
            }
        })
        .await
    }

    /// Read-modify-write loop: `decide` sees the current value (a fresh
    /// `max` 1 semaphore when the key is missing, with `existed` false) and
    /// either keeps it or changes it in place to be written back. `known`
    /// is a value already seen; a lost race brings the winner's value back
    /// with the failed write, so a conflict costs no extra read.
    async fn update<R>(
        &self,
        mut known: Option<Read>,
        mut decide: impl FnMut(&mut Semaphore, bool, i64) -> Change<R>,
    ) -> Result<R, LockError> {
        loop {
            let read = match known.take() {
                Some(read) => read,
                None => self.read().await?,
            };
            let existed = read.current.is_some();
            let (mut sem, mod_revision) = match read.current {
                Some((sem, rev)) => (sem, Some(rev)),
                None => (Semaphore::new(1), None),
            };
            match decide(&mut sem, existed, read.revision) {
                Change::Keep(result) => return Ok(result),
                Change::Write(result) => {
                    match self.put_if_unchanged(mod_revision, sem.to_json()).await? {
                        None => return Ok(result),
                        Some(current) => {
                            tracing::debug!(key = %self.key, "semaphore changed under us; deciding again");
                            known = Some(current);
                        }
                    }
                }
            }
        }
    }

    async fn read(&self) -> Result<Read, LockError> {
        let body = json!({ "key": b64(self.key.as_bytes()) });
        let resp: RangeResponse = self.conn.call("/v3/kv/range", &body).await?;
        self.parse_read(&resp)
    }

    fn parse_read(&self, resp: &RangeResponse) -> Result<Read, LockError> {
        let revision = resp.header.revision;
        let current = match resp.kvs.first() {
            None => None,
            Some(kv) => Some((self.parse_value(&kv.value)?, kv.mod_revision)),
        };
        Ok(Read { current, revision })
    }

    fn parse_value(&self, value: &[u8]) -> Result<Semaphore, LockError> {
        Semaphore::parse(value).map_err(|e| LockError::Corrupt {
            key: self.key.clone(),
            reason: e.to_string(),
        })
    }

    /// Write `value` only if the key is still at `mod_revision` (or still
    /// absent for `None`). Returns `None` when written, else the value
    /// someone else wrote in between (read in the same transaction).
    async fn put_if_unchanged(
        &self,
        mod_revision: Option<i64>,
        value: Vec<u8>,
    ) -> Result<Option<Read>, LockError> {
        let key = b64(self.key.as_bytes());
        // 64-bit numbers are JSON strings in the gateway's protobuf JSON.
        let compare = match mod_revision {
            Some(rev) => json!({
                "key": key, "target": "MOD", "result": "EQUAL", "mod_revision": rev.to_string(),
            }),
            // Version 0 means "does not exist": creating races like updating.
            None => json!({ "key": key, "target": "VERSION", "result": "EQUAL", "version": "0" }),
        };
        let body = json!({
            "compare": [compare],
            "success": [{ "request_put": { "key": key, "value": b64(&value) } }],
            "failure": [{ "request_range": { "key": key } }],
        });
        let resp: TxnResponse = self.conn.call("/v3/kv/txn", &body).await?;
        if resp.succeeded {
            return Ok(None);
        }
        match resp
            .responses
            .into_iter()
            .next()
            .and_then(|r| r.response_range)
        {
            Some(mut range) => {
                if range.header.revision == 0 {
                    range.header.revision = resp.header.revision;
                }
                Ok(Some(self.parse_read(&range)?))
            }
            // Not what we asked for: fall back to a fresh read.
            None => Ok(Some(self.read().await?)),
        }
    }

    async fn sleep(&self, attempt: u32) {
        let unit = rand::Rng::gen(&mut rand::thread_rng());
        tokio::time::sleep(self.tuning.backoff.delay(attempt, unit)).await;
    }
}

enum Change<R> {
    Keep(R),
    Write(R),
}

impl RebootLock for EtcdLock {
    async fn acquire(&self) -> Result<(), LockError> {
        let mut failures = 0u32;
        let mut known = None;
        let mut watch = None;
        let mut announced = false;
        loop {
            match self.try_acquire_from(known.take()).await {
                Ok(Attempt::Taken) => {
                    tracing::info!(key = %self.key, holder = %self.holder, "took a reboot slot");
                    return Ok(());
                }
                Ok(Attempt::AlreadyHeld) => {
                    tracing::info!(key = %self.key, holder = %self.holder, "already holding a reboot slot");
                    return Ok(());
                }
                Ok(Attempt::Full {
                    semaphore,
                    revision,
                }) => {
                    failures = 0;
                    // Every hand-over wakes all waiters; say it once per acquire.
                    if !announced {
                        let holders: Vec<&str> =
                            semaphore.holders().iter().map(|h| h.id.as_str()).collect();
                        tracing::info!(
                            key = %self.key,
                            max = semaphore.max(),
                            holders = %holders.join(","),
                            "all reboot slots taken; waiting"
                        );
                        announced = true;
                    }
                    known = self.wait_for_change(&mut watch, revision).await;
                }
                Err(err) if err.is_transient() => {
                    tracing::warn!(key = %self.key, error = %err, "cannot take a reboot slot yet");
                    self.sleep(failures).await;
                    failures = failures.saturating_add(1);
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn release(&self) -> Result<(), LockError> {
        let mut failures = 0u32;
        loop {
            match self.release_once().await {
                Ok(held) => {
                    tracing::info!(key = %self.key, holder = %self.holder, held, "released the reboot slot");
                    return Ok(());
                }
                Err(err) if err.is_transient() => {
                    tracing::warn!(key = %self.key, error = %err, "cannot release the reboot slot yet");
                    self.sleep(failures).await;
                    failures = failures.saturating_add(1);
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn holding(&self) -> Result<Holding, LockError> {
        let status = self.status().await?;
        Ok(if status.semaphore.is_held_by(&self.holder) {
            Holding::Held
        } else {
            Holding::NotHeld
        })
    }
}
