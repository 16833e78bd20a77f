//! Persisting download checkpoints, and reading back what they made
//! durable, without pausing the apply.
//!
//! A checkpoint may only be written once every write it counts is durable,
//! so saving one means a sync of the target slot first. Done inline, each
//! sync stops the applier until the disk has caught up. With a second
//! handle on the slot ([`Applier::second_handle`]) the sync and the write of
//! the checkpoint file run on their own thread instead: the checkpoint is
//! taken before that sync starts, so every write it counts was issued before
//! the sync and is durable when the sync returns.
//!
//! After each such sync the thread also reads back the bytes that sync made
//! final (the applier's [`settled_len`](Applier::settled_len) when the
//! checkpoint was taken) into a [`Readback`]. The applier's final check then
//! only reads the rest ([`Applier::finish_with`]): the whole slot is still
//! read back, each byte after the flush that made it durable (DESIGN §3's
//! order), but most of it while the download runs instead of after it.
//!
//! Requests coalesce: while one save runs, at most one more waits; further
//! requests are dropped (a later one brings newer progress anyway). Dropping
//! the [`Checkpointer`] waits for the thread, so no checkpoint file is ever
//! written after the download that asked for it has ended (a late write
//! could resurrect a checkpoint the engine just removed).

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;

use tracing::warn;

use crate::io::{Device, PositionedFile, Region};
use crate::payload::{Applier, Checkpoint, Readback};

/// One save: where the apply stood, and how much of the slot was final then.
struct Request {
    checkpoint: Checkpoint,
    settled: u64,
}

type Background = (SyncSender<Request>, JoinHandle<Option<Readback>>);

/// Saves an applier's checkpoints at `path`, in the background when it can.
pub struct Checkpointer {
    path: PathBuf,
    background: Option<Background>,
}

impl Checkpointer {
    /// Save at `path`; through `second_handle` on a thread of its own when given.
    pub fn new(second_handle: Option<Region<PositionedFile>>, path: PathBuf) -> Self {
        let background = second_handle.and_then(|handle| {
            let (tx, rx) = mpsc::sync_channel::<Request>(1);
            let thread_path = path.clone();
            std::thread::Builder::new()
                .name("checkpoint".into())
                .spawn(move || run(handle, rx, &thread_path))
                .map_err(|e| warn!(error = %e, "no checkpoint thread; saving checkpoints inline"))
                .ok()
                .map(|thread| (tx, thread))
        });
        Checkpointer { path, background }
    }

    /// Whether saves run on their own thread.
    pub fn in_background(&self) -> bool {
        self.background.is_some()
    }

    /// Save where `applier` stands: queued for the thread, or inline.
    pub fn request<W: Device, S: Read + Seek>(&mut self, applier: &mut Applier<W, S>) {
        let (Some(checkpoint), Some(settled)) = (applier.checkpoint(), applier.settled_len())
        else {
            return;
        };
        match &self.background {
            Some((tx, _)) => match tx.try_send(Request {
                checkpoint,
                settled,
            }) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => save_inline(applier, &self.path),
            },
            None => save_inline(applier, &self.path),
        }
    }

    /// Wait for queued saves; what they read back, if anything, for
    /// [`Applier::finish_with`].
    pub fn finish(mut self) -> Option<Readback> {
        self.join()
    }

    /// Wait for queued saves, then sync and save where `applier` stands now
    /// (the last word on shutdown).
    pub fn save_final<W: Device, S: Read + Seek>(mut self, applier: &mut Applier<W, S>) {
        self.join();
        save_inline(applier, &self.path);
    }

    fn join(&mut self) -> Option<Readback> {
        let (tx, thread) = self.background.take()?;
        drop(tx);
        thread.join().unwrap_or_else(|_| {
            warn!("the checkpoint thread panicked");
            None
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.join();
    }
}

/// The thread: sync, save, read back, for each request in order.
fn run(
    mut handle: Region<PositionedFile>,
    requests: mpsc::Receiver<Request>,
    path: &Path,
) -> Option<Readback> {
    let mut readback = Some(Readback::default());
    for Request {
        checkpoint,
        settled,
    } in requests
    {
        if let Err(e) = handle.sync() {
            // Nothing it counts is known durable: neither save nor read back.
            warn!(error = %e, "could not sync the target slot for a download checkpoint");
            continue;
        }
        if let Err(e) = write(&checkpoint, path) {
            warn!(error = %format!("{e:#}"), "could not save the download checkpoint");
        }
        if let Some(r) = readback.as_mut() {
            if let Err(e) = r.advance(&mut handle, settled) {
                // The final check reads the whole slot back instead.
                warn!(error = %e, "reading back the target slot early failed");
                readback = None;
            }
        }
    }
    readback
}

fn save_inline<W: Device, S: Read + Seek>(applier: &mut Applier<W, S>, path: &Path) {
    if let Err(e) = applier.save_checkpoint(path) {
        warn!(error = %format!("{e:#}"), "could not save the download checkpoint");
    }
}

fn write(checkpoint: &Checkpoint, path: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let json = serde_json::to_vec(checkpoint).context("encoding checkpoint")?;
    crate::fsutil::write_atomic(path, &json, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::Region;
    use crate::payload::{build_payload, keys::load_signing_key, BuildOptions};
    use std::fs::OpenOptions;

    type FileApplier = Applier<Region<std::fs::File>, Region<std::fs::File>>;

    fn repo() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    /// An applier writing the 8 MiB file slot `dir/slot`.
    fn applier_on_slot(dir: &Path) -> FileApplier {
        std::fs::write(dir.join("slot"), vec![0u8; 8 << 20]).unwrap();
        let slot = OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join("slot"))
            .unwrap();
        let (keys, policy) = crate::testing::insecure_test_trust();
        Applier::new(
            Region::new(slot, 0, 8 << 20).unwrap(),
            None,
            keys,
            policy,
            None,
        )
    }

    /// A 4 MiB image's payload (1 MiB operations).
    fn payload(dir: &Path) -> Vec<u8> {
        // Incompressible, so every operation carries a 1 MiB blob.
        let image: Vec<u8> = (0..(4u32 << 20))
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(dir.join("v2.img"), &image).unwrap();
        let key = load_signing_key(&repo().join("fixtures/keys/insecure-test.key")).unwrap();
        let opts = BuildOptions {
            version: "2.0.0".into(),
            compatible: "amd64-usr".into(),
            epoch: 0,
            expires: None,
            op_size: 1 << 20,
            source_version: None,
        };
        let path = dir.join("v2.payload");
        build_payload(&dir.join("v2.img"), None, &[key], &opts, &path).unwrap();
        std::fs::read(&path).unwrap()
    }

    /// Feed `payload` from the applier's position until its next checkpoint
    /// is past operation `past_op`; returns that checkpoint.
    fn feed_past(applier: &mut FileApplier, payload: &[u8], past_op: usize) -> Checkpoint {
        while applier.checkpoint().is_none_or(|c| c.next_op <= past_op) {
            let at = applier.position() as usize;
            applier
                .write(&payload[at..(at + 4096).min(payload.len())])
                .unwrap();
        }
        applier.checkpoint().unwrap()
    }

    fn saved(path: &Path) -> Checkpoint {
        Checkpoint::load(path)
            .unwrap()
            .expect("a checkpoint was saved")
    }

    #[test]
    fn a_file_slot_saves_in_the_background_and_drop_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let payload = payload(dir.path());
        let mut applier = applier_on_slot(dir.path());
        let expected = feed_past(&mut applier, &payload, 0);
        let path = dir.path().join("checkpoint.json");
        let mut checkpointer = Checkpointer::new(applier.second_handle(), path.clone());
        assert!(checkpointer.in_background());
        checkpointer.request(&mut applier);
        // Dropping waits: the file is there as soon as drop returns.
        drop(checkpointer);
        assert_eq!(saved(&path), expected);
        assert!(expected.offset > expected.prefix_len);
    }

    #[test]
    fn without_a_handle_saves_are_inline() {
        let dir = tempfile::tempdir().unwrap();
        let payload = payload(dir.path());
        let mut applier = applier_on_slot(dir.path());
        let expected = feed_past(&mut applier, &payload, 0);
        let path = dir.path().join("checkpoint.json");
        let mut checkpointer = Checkpointer::new(None, path.clone());
        assert!(!checkpointer.in_background());
        checkpointer.request(&mut applier);
        // Written before `request` returned: there is no thread to wait for.
        assert_eq!(saved(&path), expected);
    }

    #[test]
    fn the_final_save_comes_after_every_queued_one() {
        let dir = tempfile::tempdir().unwrap();
        let payload = payload(dir.path());
        let mut applier = applier_on_slot(dir.path());
        let first = feed_past(&mut applier, &payload, 0);
        let path = dir.path().join("checkpoint.json");
        let mut checkpointer = Checkpointer::new(applier.second_handle(), path.clone());
        checkpointer.request(&mut applier);
        // More progress after the queued request: the final save must win.
        let later = feed_past(&mut applier, &payload, first.next_op);
        checkpointer.save_final(&mut applier);
        assert_eq!(saved(&path), later);
    }

    #[test]
    fn what_the_thread_read_back_lets_finish_skip_it() {
        let dir = tempfile::tempdir().unwrap();
        let payload = payload(dir.path());
        let mut applier = applier_on_slot(dir.path());
        let path = dir.path().join("checkpoint.json");
        let mut checkpointer = Checkpointer::new(applier.second_handle(), path.clone());
        feed_past(&mut applier, &payload, 1);
        let settled = applier.settled_len().unwrap();
        checkpointer.request(&mut applier);
        let at = applier.position() as usize;
        applier.write(&payload[at..]).unwrap();
        let readback = checkpointer.finish().expect("the thread read back");
        // Operations write the slot in order: two 1 MiB ones were settled.
        assert_eq!((settled, readback.len()), (2 << 20, 2 << 20));
        let image = applier.finish_with(Some(readback)).unwrap();
        assert_eq!(image.size, 4 << 20);
    }

    #[test]
    fn reading_back_while_the_applier_writes_sees_only_final_bytes() {
        // The thread syncs and reads the slot while this thread keeps
        // seeking and writing it: a read that ran ahead of settled bytes
        // would fail the final check. (That the reads never follow the
        // writer's shared file offset is pinned deterministically in
        // io::positioned; here the race window is too small to hit often.)
        let dir = tempfile::tempdir().unwrap();
        let payload = payload(dir.path());
        for _ in 0..3 {
            let mut applier = applier_on_slot(dir.path());
            let path = dir.path().join("checkpoint.json");
            let mut checkpointer = Checkpointer::new(applier.second_handle(), path);
            for piece in payload.chunks(4096) {
                applier.write(piece).unwrap();
                checkpointer.request(&mut applier);
            }
            let readback = checkpointer.finish();
            applier.finish_with(readback).unwrap();
        }
    }

    #[test]
    fn nothing_is_saved_before_the_prefix_verified() {
        let dir = tempfile::tempdir().unwrap();
        let mut applier = applier_on_slot(dir.path());
        let path = dir.path().join("checkpoint.json");
        let mut checkpointer = Checkpointer::new(applier.second_handle(), path.clone());
        checkpointer.request(&mut applier);
        checkpointer.save_final(&mut applier);
        assert!(!path.exists());
    }
}
