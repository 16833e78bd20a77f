//! Waiting for a slot: a watch on the semaphore key, kept open across the
//! wake-ups of one `acquire`.
//!
//! Every release wakes every waiter, and only one of them wins the slot; the
//! others go back to waiting. Re-opening a watch each time would cost each
//! loser a new connection and a new watch in etcd per hand-over, so the
//! stream stays open and the waiter skips the events its last read already
//! covered.

use serde_json::json;

use super::client::{self, Failure, Lines};
use super::wire::{b64, EventType, WatchMessage, WatchResponse};
use super::{EtcdLock, Read, Semaphore};
use crate::lock::LockError;

/// An open watch of the semaphore key.
pub(super) struct KeyWatch {
    lines: Lines,
    /// An answer read while opening that already carried events.
    pending: Option<WatchResponse>,
}

/// What ended one wait.
enum Woken {
    /// A write that may leave room: its value and mod_revision.
    Value(Vec<u8>, i64),
    /// Something else changed (a delete, a compaction): read again.
    Reread,
    /// etcd ended the stream.
    Ended,
}

impl EtcdLock {
    /// Wait until the key changes after `revision` in a way that may free a
    /// slot, at most `recheck`; returns the new value when the watch saw it.
    /// `watch` is reused when open and left open for the next wait; it is
    /// dropped when it broke or `recheck` passed (a silently broken stream
    /// must not stall a node). Falls back to a backoff sleep when the watch
    /// cannot be set up.
    pub(super) async fn wait_for_change(
        &self,
        watch: &mut Option<KeyWatch>,
        revision: i64,
    ) -> Option<Read> {
        let waited = tokio::time::timeout(self.tuning.recheck, self.next_change(watch, revision));
        match waited.await {
            Ok(Ok(Woken::Value(value, mod_revision))) => {
                // A value we cannot parse is left to the next read to report.
                let sem = self.parse_value(&value).ok()?;
                Some(Read {
                    current: Some((sem, mod_revision)),
                    revision: mod_revision,
                })
            }
            Ok(Ok(Woken::Reread)) => None,
            Err(_) => {
                *watch = None;
                None
            }
            Ok(Ok(Woken::Ended)) => {
                *watch = None;
                self.sleep(0).await;
                None
            }
            Ok(Err(err)) => {
                *watch = None;
                tracing::warn!(key = %self.key, error = %err, "cannot watch the reboot semaphore");
                self.sleep(0).await;
                None
            }
        }
    }

    async fn next_change(
        &self,
        watch: &mut Option<KeyWatch>,
        revision: i64,
    ) -> Result<Woken, LockError> {
        let open = match watch {
            Some(open) => open,
            None => match self.open_watch(revision).await? {
                Some(opened) => watch.insert(opened),
                None => return Ok(Woken::Reread),
            },
        };
        loop {
            let resp = match open.pending.take() {
                Some(resp) => resp,
                None => match open.lines.next::<WatchMessage>().await {
                    Ok(Some(message)) => match into_response(message) {
                        Ok(Some(resp)) => resp,
                        Ok(None) => continue,
                        Err(failure) => {
                            return Err(client::classify(open.lines.endpoint(), &failure))
                        }
                    },
                    Ok(None) => return Ok(Woken::Ended),
                    Err(failure) => return Err(client::classify(open.lines.endpoint(), &failure)),
                },
            };
            if resp.canceled {
                let failure = client::canceled(&resp.cancel_reason);
                let err = client::classify(open.lines.endpoint(), &failure);
                // The stream is over either way; the caller drops it on errors.
                *watch = None;
                if resp.compact_revision > 0 {
                    return Ok(Woken::Reread);
                }
                return Err(err);
            }
            if let Some(woken) = self.woken_by(&resp, revision) {
                return Ok(woken);
            }
        }
    }

    /// Open a watch from `revision + 1` and read its first answer, so a
    /// refused watch (expired token, no permission) fails inside `run`,
    /// which logs in again or tries the next endpoint. `None`: the revision
    /// was compacted away (read again).
    async fn open_watch(&self, revision: i64) -> Result<Option<KeyWatch>, LockError> {
        let body = json!({ "create_request": {
            "key": b64(self.key.as_bytes()),
            "start_revision": (revision + 1).to_string(),
        }});
        self.conn
            .run(|member| {
                let body = &body;
                async move {
                    let mut lines = member.stream("/v3/watch", body).await?;
                    loop {
                        let Some(message) = lines.next::<WatchMessage>().await? else {
                            return Err(Failure::Transport(
                                "the watch stream closed before the watch was created".into(),
                            ));
                        };
                        let Some(resp) = into_response(message)? else {
                            continue;
                        };
                        if resp.canceled {
                            // Any reason but compaction (an expired token, no
                            // permission) is an error, so we log in again or
                            // back off instead of re-watching in a tight loop.
                            if resp.compact_revision > 0 {
                                return Ok(None);
                            }
                            return Err(client::canceled(&resp.cancel_reason));
                        }
                        let pending = (!resp.events.is_empty()).then_some(resp);
                        return Ok(Some(KeyWatch { lines, pending }));
                    }
                }
            })
            .await
    }

    /// The wake-up `resp` brings, if any: the newest event after `revision`
    /// that may leave room for us.
    fn woken_by(&self, resp: &WatchResponse, revision: i64) -> Option<Woken> {
        let event = resp.events.iter().rev().find(|e| {
            // Events up to `revision` are already in what we last read.
            let new = e.kv.as_ref().is_none_or(|kv| kv.mod_revision > revision);
            new && may_have_room(e, &self.holder)
        })?;
        Some(match (&event.kv, event.kind) {
            (Some(kv), EventType::Put) => Woken::Value(kv.value.clone(), kv.mod_revision),
            // A delete: the caller reads (and finds the key missing).
            _ => Woken::Reread,
        })
    }
}

/// The answer in a stream message, or the stream's error.
fn into_response(message: WatchMessage) -> Result<Option<WatchResponse>, Failure> {
    match (message.result, message.error) {
        (_, Some(error)) => Err(client::stream_failure(error.grpc_code, &error.message)),
        (resp, None) => Ok(resp),
    }
}

/// Whether a watch event is worth a re-read: anything but a value that is
/// still full (another node taking a slot). Waking every waiter on every
/// write would make all of them re-read and race for nothing.
fn may_have_room(event: &super::wire::Event, holder: &str) -> bool {
    let Some(kv) = &event.kv else {
        return true;
    };
    if event.kind != EventType::Put {
        return true;
    }
    match Semaphore::parse(&kv.value) {
        Ok(sem) => sem.available() > 0 || sem.is_held_by(holder),
        // A broken value: re-read so the caller reports it.
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::config::EtcdConfig;
    use crate::lock::etcd::wire::{Event, KeyValue};

    fn lock() -> EtcdLock {
        let config = EtcdConfig::plain(vec!["http://127.0.0.1:1".parse().unwrap()], "default");
        EtcdLock::new(&config, "me").unwrap()
    }

    fn put(holders: &[&str], max: u32, mod_revision: i64) -> Event {
        let mut sem = Semaphore::new(max);
        for h in holders {
            sem.acquire(h, chrono::Utc::now());
        }
        Event {
            kind: EventType::Put,
            kv: Some(KeyValue {
                value: sem.to_json(),
                mod_revision,
                ..KeyValue::default()
            }),
        }
    }

    fn answer(events: Vec<Event>) -> WatchResponse {
        WatchResponse {
            events,
            ..WatchResponse::default()
        }
    }

    #[test]
    fn events_already_read_and_full_values_do_not_wake() {
        let lock = lock();
        // A release at 5 that our read at 6 already covered, then a take.
        let resp = answer(vec![put(&[], 1, 5), put(&["b"], 1, 6)]);
        assert!(lock.woken_by(&resp, 6).is_none());
        // The same release seen for the first time wakes us with its value.
        match lock.woken_by(&resp, 4) {
            Some(Woken::Value(value, 5)) => {
                assert!(Semaphore::parse(&value).unwrap().holders().is_empty())
            }
            _ => panic!("expected the release at 5"),
        }
        // A value naming us as holder wakes us too (someone took it for us).
        assert!(lock
            .woken_by(&answer(vec![put(&["me"], 1, 9)]), 8)
            .is_some());
    }

    #[test]
    fn deletes_and_broken_values_make_the_waiter_read_again() {
        let lock = lock();
        let delete = Event {
            kind: EventType::Delete,
            kv: Some(KeyValue {
                mod_revision: 7,
                ..KeyValue::default()
            }),
        };
        assert!(matches!(
            lock.woken_by(&answer(vec![delete]), 6),
            Some(Woken::Reread)
        ));
        let broken = Event {
            kind: EventType::Put,
            kv: Some(KeyValue {
                value: b"garbage".to_vec(),
                mod_revision: 8,
                ..KeyValue::default()
            }),
        };
        assert!(matches!(
            lock.woken_by(&answer(vec![broken]), 7),
            Some(Woken::Value(_, 8))
        ));
    }

    #[test]
    fn stream_errors_and_answers_are_told_apart() {
        let error: WatchMessage =
            serde_json::from_slice(br#"{"error":{"grpc_code":14,"message":"closing"}}"#).unwrap();
        let failure = into_response(error).unwrap_err();
        assert!(client::classify("e", &failure).is_transient());
        assert!(into_response(WatchMessage::default()).unwrap().is_none());
    }
}
