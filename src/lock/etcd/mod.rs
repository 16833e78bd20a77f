//! The etcd v3 reboot lock: a counting semaphore per group (DESIGN §6).
//!
//! Every change is read-modify-write with compare-and-swap on the key's
//! `mod_revision` in one transaction, so two nodes racing for the last slot
//! can never both win: the second write fails its compare, re-reads, and sees
//! the slot gone. All writes are idempotent (taking a held slot or releasing
//! a free one changes nothing), which makes retrying after a lost reply safe.

use std::time::Duration;

use chrono::Utc;
use etcd_client::{Compare, CompareOp, Txn, TxnOp, WatchOptions};

use super::config::EtcdConfig;
use super::{Backoff, Holding, LockError, RebootLock};

mod client;
pub mod keys;
pub mod semaphore;

use client::Connection;
pub use client::Timeouts;
pub use semaphore::{AcquireOutcome, Holder, Semaphore, SemaphoreError};

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
        self.update(
            |sem, _, revision| match sem.acquire(&self.holder, Utc::now()) {
                AcquireOutcome::Taken => Change::Write(Attempt::Taken),
                AcquireOutcome::AlreadyHeld => Change::Keep(Attempt::AlreadyHeld),
                AcquireOutcome::Full => Change::Keep(Attempt::Full {
                    semaphore: sem.clone(),
                    revision,
                }),
            },
        )
        .await
    }

    /// One attempt to give the slot back; returns whether we held one.
    /// A missing key is left missing.
    pub async fn release_once(&self) -> Result<bool, LockError> {
        self.update(|sem, _, _| {
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
        self.update(|sem, existed, _| {
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
    /// either keeps it or changes it in place to be written back.
    async fn update<R>(
        &self,
        mut decide: impl FnMut(&mut Semaphore, bool, i64) -> Change<R>,
    ) -> Result<R, LockError> {
        loop {
            let read = self.read().await?;
            let existed = read.current.is_some();
            let (mut sem, mod_revision) = match read.current {
                Some((sem, rev)) => (sem, Some(rev)),
                None => (Semaphore::new(1), None),
            };
            match decide(&mut sem, existed, read.revision) {
                Change::Keep(result) => return Ok(result),
                Change::Write(result) => {
                    if self.put_if_unchanged(mod_revision, sem.to_json()).await? {
                        return Ok(result);
                    }
                    tracing::debug!(key = %self.key, "semaphore changed under us; re-reading");
                }
            }
        }
    }

    async fn read(&self) -> Result<Read, LockError> {
        let key = self.key.clone();
        let resp = self
            .conn
            .run(|mut client| {
                let key = key.clone();
                async move { client.get(key, None).await }
            })
            .await?;
        let revision = resp.header().map_or(0, |h| h.revision());
        let current = match resp.kvs().first() {
            None => None,
            Some(kv) => {
                let sem = Semaphore::parse(kv.value()).map_err(|e| LockError::Corrupt {
                    key: self.key.clone(),
                    reason: e.to_string(),
                })?;
                Some((sem, kv.mod_revision()))
            }
        };
        Ok(Read { current, revision })
    }

    /// Write `value` only if the key is still at `mod_revision` (or still
    /// absent for `None`); false when someone wrote in between.
    async fn put_if_unchanged(
        &self,
        mod_revision: Option<i64>,
        value: Vec<u8>,
    ) -> Result<bool, LockError> {
        let key = self.key.clone();
        let compare = match mod_revision {
            Some(rev) => Compare::mod_revision(key.clone(), CompareOp::Equal, rev),
            // Version 0 means "does not exist": creating races like updating.
            None => Compare::version(key.clone(), CompareOp::Equal, 0),
        };
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::put(key, value, None)]);
        let resp = self
            .conn
            .run(|mut client| {
                let txn = txn.clone();
                async move { client.txn(txn).await }
            })
            .await?;
        Ok(resp.succeeded())
    }

    /// Wait until the key changes after `revision`, at most `recheck`.
    /// Falls back to a backoff sleep when the watch cannot be set up.
    async fn wait_for_change(&self, revision: i64) {
        let key = self.key.clone();
        let holder = self.holder.clone();
        let watch = self.conn.run(|mut client| {
            let key = key.clone();
            let holder = holder.clone();
            async move {
                let options = WatchOptions::new().with_start_revision(revision + 1);
                let (_watcher, mut stream) = client.watch(key, Some(options)).await?;
                while let Some(resp) = stream.message().await? {
                    // `canceled` covers a compacted start revision: re-read.
                    if resp.canceled() || resp.events().iter().any(|e| may_have_room(e, &holder)) {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        });
        match tokio::time::timeout(self.tuning.recheck, watch).await {
            Ok(Ok(true)) | Err(_) => {}
            Ok(Ok(false)) => self.sleep(0).await,
            Ok(Err(err)) => {
                tracing::warn!(key = %self.key, error = %err, "cannot watch the reboot semaphore");
                self.sleep(0).await;
            }
        }
    }

    async fn sleep(&self, attempt: u32) {
        let unit = rand::Rng::gen(&mut rand::thread_rng());
        tokio::time::sleep(self.tuning.backoff.delay(attempt, unit)).await;
    }
}

/// Whether a watch event is worth a re-read: anything but a value that is
/// still full (another node taking a slot). Waking every waiter on every
/// write would make all of them re-read and race for nothing.
fn may_have_room(event: &etcd_client::Event, holder: &str) -> bool {
    let Some(kv) = event.kv() else {
        return true;
    };
    if event.event_type() != etcd_client::EventType::Put {
        return true;
    }
    match Semaphore::parse(kv.value()) {
        Ok(sem) => sem.available() > 0 || sem.is_held_by(holder),
        // A broken value: re-read so the caller reports it.
        Err(_) => true,
    }
}

enum Change<R> {
    Keep(R),
    Write(R),
}

impl RebootLock for EtcdLock {
    async fn acquire(&self) -> Result<(), LockError> {
        let mut failures = 0u32;
        loop {
            match self.try_acquire().await {
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
                    tracing::info!(
                        key = %self.key,
                        max = semaphore.max(),
                        holders = semaphore.holders().len(),
                        "all reboot slots taken; waiting"
                    );
                    self.wait_for_change(revision).await;
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
