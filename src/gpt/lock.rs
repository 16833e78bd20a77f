//! BSD file locks on a disk while its GPT is read or changed.
//!
//! systemd's block device locking convention (systemd.io/BLOCK_DEVICE_LOCKING):
//! whoever changes a disk's partition table holds `LOCK_EX` on the whole-disk
//! device node; readers such as udev take `LOCK_SH`. The same lock on an image
//! file keeps two of our own processes (the daemon flipping a slot, an operator
//! running `updatectl slots mark-bad`) from interleaving their writes of the
//! two GPT copies: each write is crash-safe on its own, but two writers could
//! each repair from a copy the other was rewriting and lose one's change.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// How long opening a disk waits for a lock someone else holds. GPT changes
/// take milliseconds, so a lock held longer belongs to something stuck or to
/// a tool working on the disk; the error says so instead of hanging.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

const POLL: Duration = Duration::from_millis(20);

/// Take an exclusive (`exclusive`) or shared lock on `file`, waiting up to
/// `wait`. Held until `file` is closed. A filesystem without BSD locks is
/// used unlocked, with a warning: refusing would make such disks unusable.
pub fn lock(file: &File, path: &Path, exclusive: bool, wait: Duration) -> Result<()> {
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    } | libc::LOCK_NB;
    let deadline = Instant::now() + wait;
    loop {
        // SAFETY: flock on a descriptor `file` owns for the whole call.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if Instant::now() < deadline => std::thread::sleep(POLL),
            Some(libc::EWOULDBLOCK) => bail!(
                "{}: another process holds the disk's lock (update-engine, updatectl slots or a \
                 partitioning tool changing the partition table) and did not release it within \
                 {} s; try again when it is done",
                path.display(),
                wait.as_secs_f64()
            ),
            _ => {
                tracing::warn!(disk = %path.display(), error = %err, "cannot lock the disk; going on without the lock");
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &Path) -> File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap()
    }

    #[test]
    fn writers_exclude_each_other_and_readers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        std::fs::write(&path, [0u8; 512]).unwrap();
        let short = Duration::from_millis(60);
        let writer = open(&path);
        lock(&writer, &path, true, short).unwrap();
        // Each open is its own open file description: the locks conflict
        // even inside one process, as between two processes.
        for exclusive in [true, false] {
            let err = lock(&open(&path), &path, exclusive, short).unwrap_err();
            let text = format!("{err:#}");
            assert!(
                text.contains("another process holds the disk's lock"),
                "{text}"
            );
            assert!(text.contains("within 0.06 s"), "{text}");
        }
        drop(writer);
        // Readers share; a writer waits for them.
        let (r1, r2) = (open(&path), open(&path));
        lock(&r1, &path, false, short).unwrap();
        lock(&r2, &path, false, short).unwrap();
        assert!(lock(&open(&path), &path, true, short).is_err());
        drop((r1, r2));
        lock(&open(&path), &path, true, short).unwrap();
    }

    #[test]
    fn a_waiting_writer_gets_the_lock_when_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        std::fs::write(&path, [0u8; 512]).unwrap();
        let holder = open(&path);
        lock(&holder, &path, true, Duration::ZERO).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(holder);
        });
        let started = Instant::now();
        lock(&open(&path), &path, true, Duration::from_secs(5)).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(80));
        release.join().unwrap();
    }
}
