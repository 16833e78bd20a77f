//! GUID partition table: reading, validating, crash-safe writing and A/B slot attributes.
//!
//! Layers, from pure to I/O:
//! - [`attrs`]: bit math on the attribute word (priority 48-51, tries 52-55, successful 56);
//! - [`select`]: `gptprio.next`, `cgpt prioritize` and the lifecycle steps on bare values;
//! - [`header`], [`entries`], [`mbr`]: on-disk structures, parsed and checked without I/O;
//! - [`table`]: a whole GPT read from a device, the valid copy chosen, repair planned;
//! - [`AbDisk`]: the A/B view used by everything else, with crash-safe writes;
//! - [`open_disk`], [`find_host_disk`], [`make`]: files, host block devices, test disks.

pub mod attrs;
mod disk;
pub mod emulated;
pub mod entries;
pub mod header;
mod host;
mod lock;
pub mod make;
pub mod mbr;
pub mod select;
pub mod table;

use std::fs::{File, OpenOptions};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

pub use disk::AbDisk;
pub use entries::USR_TYPE;
pub use host::{find_host_disk, find_host_disk_in, usr_partuuid};
pub use lock::LOCK_WAIT;
pub use table::Gpt;

use crate::slot::SlotId;

/// One USR slot as found on the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SlotInfo {
    /// Which slot (by label).
    pub id: SlotId,
    /// 0-based index in the GPT entry array (partition number - 1).
    pub entry_index: u32,
    /// Unique partition GUID (PARTUUID).
    pub partuuid: uuid::Uuid,
    /// First byte of the partition on the disk.
    pub offset_bytes: u64,
    /// Size of the partition in bytes.
    pub size_bytes: u64,
    /// Bits 48-51 of the attributes.
    pub priority: u8,
    /// Bits 52-55 of the attributes.
    pub tries: u8,
    /// Bit 56 of the attributes.
    pub successful: bool,
}

/// Open a disk image or block device and validate its A/B GPT. With
/// `writable`, changes are synced to stable storage (`fsync`) between the
/// backup and the primary write.
///
/// The open disk holds a BSD lock on the file (systemd's block device
/// locking convention): exclusive when writable, shared otherwise, so the
/// daemon, `updatectl slots` and partitioning tools that follow the
/// convention never change the GPT at the same time, and a reader never
/// reads while a writer is between its two copies. A lock held by someone
/// else is waited for up to [`LOCK_WAIT`], then reported. Dropping the disk
/// releases it.
pub fn open_disk(path: &Path, writable: bool) -> Result<AbDisk<File>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("opening disk {}", path.display()))?;
    if meta.is_dir() {
        bail!(
            "{} is a directory, not a disk image or block device",
            path.display()
        );
    }
    let file = OpenOptions::new()
        .read(true)
        .write(writable)
        .open(path)
        .with_context(|| format!("opening disk {}", path.display()))?;
    lock::lock(&file, path, writable, LOCK_WAIT)?;
    AbDisk::open_with_sync(file, |f| f.sync_all())
        .with_context(|| format!("reading the GPT of {}", path.display()))
}

#[cfg(test)]
mod testutil;
