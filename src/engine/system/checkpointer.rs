//! Persisting download checkpoints without pausing the apply.
//!
//! A checkpoint may only be written once every write it counts is durable,
//! so saving one means a sync of the target slot first. Done inline, each
//! sync stops the applier until the disk has caught up. With a second
//! handle on the slot ([`Applier::sync_handle`]) the sync and the write of
//! the checkpoint file run on their own thread instead: the checkpoint is
//! taken before that sync starts, so every write it counts was issued before
//! the sync and is durable when the sync returns.
//!
//! Requests coalesce: while one save runs, at most one more waits; further
//! requests are dropped (a later one brings newer progress anyway). Dropping
//! the [`Checkpointer`] waits for the thread, so no checkpoint file is ever
//! written after the download that asked for it has ended (a late write
//! could resurrect a checkpoint the engine just removed).

use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;

use tracing::warn;

use crate::io::Device;
use crate::payload::{Applier, Checkpoint};

/// Saves an applier's checkpoints at `path`, in the background when it can.
pub struct Checkpointer {
    path: PathBuf,
    background: Option<(SyncSender<Checkpoint>, JoinHandle<()>)>,
}

impl Checkpointer {
    /// Save at `path`; through `sync_handle` on a thread of its own when given.
    pub fn new(sync_handle: Option<File>, path: PathBuf) -> Self {
        let background = sync_handle.and_then(|handle| {
            let (tx, rx) = mpsc::sync_channel::<Checkpoint>(1);
            let thread_path = path.clone();
            std::thread::Builder::new()
                .name("checkpoint".into())
                .spawn(move || {
                    for checkpoint in rx {
                        if let Err(e) = persist(&handle, &checkpoint, &thread_path) {
                            warn!(error = %format!("{e:#}"), "could not save the download checkpoint");
                        }
                    }
                })
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
        let Some(checkpoint) = applier.checkpoint() else {
            return;
        };
        match &self.background {
            Some((tx, _)) => match tx.try_send(checkpoint) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => save_inline(applier, &self.path),
            },
            None => save_inline(applier, &self.path),
        }
    }

    /// Wait for queued saves, then sync and save where `applier` stands now
    /// (the last word on shutdown).
    pub fn save_final<W: Device, S: Read + Seek>(mut self, applier: &mut Applier<W, S>) {
        self.join();
        save_inline(applier, &self.path);
    }

    fn join(&mut self) {
        if let Some((tx, thread)) = self.background.take() {
            drop(tx);
            if thread.join().is_err() {
                warn!("the checkpoint thread panicked");
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.join();
    }
}

fn save_inline<W: Device, S: Read + Seek>(applier: &mut Applier<W, S>, path: &Path) {
    if let Err(e) = applier.save_checkpoint(path) {
        warn!(error = %format!("{e:#}"), "could not save the download checkpoint");
    }
}

/// Make the slot durable, then write `checkpoint` atomically.
fn persist(handle: &File, checkpoint: &Checkpoint, path: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    handle
        .sync_data()
        .context("syncing the target slot for a checkpoint")?;
    let json = serde_json::to_vec(checkpoint).context("encoding checkpoint")?;
    crate::fsutil::write_atomic(path, &json, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::Region;
    use crate::payload::{
        build_payload, keys::load_signing_key, ApplyPolicy, BuildOptions, TrustedKeys,
    };
    use std::fs::OpenOptions;

    type FileApplier = Applier<Region<File>, Region<File>>;

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
        let keys =
            TrustedKeys::from_files(&[repo().join("fixtures/keys/insecure-test.pub")]).unwrap();
        let policy = ApplyPolicy {
            compatible: "amd64-usr".into(),
            installed_version: "1.0.0".parse().unwrap(),
            installed_epoch: 0,
            allow_downgrade: false,
            now: std::time::SystemTime::now(),
            min_signatures: 1,
        };
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
        let mut checkpointer = Checkpointer::new(applier.sync_handle(), path.clone());
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
        let mut checkpointer = Checkpointer::new(applier.sync_handle(), path.clone());
        checkpointer.request(&mut applier);
        // More progress after the queued request: the final save must win.
        let later = feed_past(&mut applier, &payload, first.next_op);
        checkpointer.save_final(&mut applier);
        assert_eq!(saved(&path), later);
    }

    #[test]
    fn nothing_is_saved_before_the_prefix_verified() {
        let dir = tempfile::tempdir().unwrap();
        let mut applier = applier_on_slot(dir.path());
        let path = dir.path().join("checkpoint.json");
        let mut checkpointer = Checkpointer::new(applier.sync_handle(), path.clone());
        checkpointer.request(&mut applier);
        checkpointer.save_final(&mut applier);
        assert!(!path.exists());
    }
}
