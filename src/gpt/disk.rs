//! `AbDisk`: a validated A/B GPT on any `Read + Write + Seek` device, with
//! repair and crash-safe writes.
//!
//! Write order for every change (DESIGN §2): backup entries + backup header,
//! sync, primary entries + primary header, sync. A power cut while writing
//! the backup leaves the primary (old state) intact; a cut while writing the
//! primary leaves a complete backup (new state) that readers fall back to
//! because the primary's CRCs no longer match. So at every instant at least
//! one copy is valid and describes the old or the new state. A damaged copy
//! is first rebuilt from the valid one (and synced) before anything changes,
//! otherwise the first half of the change could overwrite the only good copy.

use std::io::{self, Read, Seek, SeekFrom, Write};

use anyhow::{anyhow, Context, Result};
use tracing::{info, warn};
use uuid::Uuid;

use super::attrs::SlotAttrs;
use super::mbr;
use super::select;
use super::table::{Area, Gpt};
use super::SlotInfo;
use crate::slot::SlotId;

/// How a device makes written data durable.
type SyncFn<D> = fn(&mut D) -> io::Result<()>;

/// A validated GPT with exactly one USR-A and one USR-B partition.
pub struct AbDisk<D> {
    dev: D,
    gpt: Gpt,
    sync: SyncFn<D>,
    // Set when a write failed half way: the in-memory table may no longer
    // match the device, so the next call re-reads it first.
    stale: bool,
}

impl<D: Read + Write + Seek> AbDisk<D> {
    /// Read and validate the GPT (at least one valid copy is needed; a damaged
    /// one is reported and repaired on the next change). Detects 512- and
    /// 4096-byte sectors. Durability between the two write phases uses
    /// `Write::flush`; for files use [`super::open_disk`], which syncs to disk.
    pub fn open(dev: D) -> Result<Self> {
        Self::open_with_sync(dev, |d| d.flush())
    }

    /// Like [`AbDisk::open`] with `sync` as the "make it durable" step between
    /// the backup and the primary write (e.g. `File::sync_all`).
    pub fn open_with_sync(mut dev: D, sync: SyncFn<D>) -> Result<Self> {
        let gpt = Gpt::read(&mut dev)?;
        for problem in &gpt.problems {
            warn!("{problem}; it will be repaired from the valid copy before the next change");
        }
        Ok(AbDisk {
            dev,
            gpt,
            sync,
            stale: false,
        })
    }

    /// Everything known about one slot.
    pub fn slot(&self, id: SlotId) -> SlotInfo {
        let index = self.gpt.slots[id as usize];
        let entry = self.gpt.entry(index);
        let attrs = SlotAttrs::from_bits(entry.attributes());
        let ss = self.gpt.sector_size;
        SlotInfo {
            id,
            entry_index: index as u32,
            partuuid: entry.unique_guid(),
            offset_bytes: entry.first_lba() * ss,
            size_bytes: (entry.last_lba() - entry.first_lba() + 1) * ss,
            priority: attrs.priority,
            tries: attrs.tries,
            successful: attrs.successful,
        }
    }

    /// Both slots, A then B.
    pub fn slots(&self) -> [SlotInfo; 2] {
        [self.slot(SlotId::A), self.slot(SlotId::B)]
    }

    /// Logical sector size of the disk (512 or 4096).
    pub fn sector_size(&self) -> u64 {
        self.gpt.sector_size
    }

    /// The disk GUID.
    pub fn disk_guid(&self) -> Uuid {
        self.gpt.header.disk_guid
    }

    /// Damage found when the disk was read (empty when intact).
    pub fn problems(&self) -> &[String] {
        &self.gpt.problems
    }

    /// The slot whose PARTUUID is `partuuid`, if it is one of ours.
    pub fn slot_by_partuuid(&self, partuuid: Uuid) -> Option<SlotId> {
        SlotId::ALL
            .into_iter()
            .find(|&id| self.slot(id).partuuid == partuuid)
    }

    /// The slots in GPT entry order with their attributes (selection order).
    fn in_entry_order(&self) -> [(SlotId, SlotAttrs); 2] {
        let mut order = SlotId::ALL.map(|id| {
            let s = self.slot(id);
            (
                id,
                SlotAttrs {
                    priority: s.priority,
                    tries: s.tries,
                    successful: s.successful,
                },
            )
        });
        order.sort_by_key(|(id, _)| self.gpt.slots[*id as usize]);
        order
    }

    /// A sentence saying which slot boots next and why.
    pub fn explain_next_boot(&self) -> String {
        select::explain(&self.in_entry_order())
    }

    /// What `gptprio.next` would boot now (no decrement, no write).
    pub fn next_boot(&self) -> Result<SlotId> {
        let order = self.in_entry_order();
        let attrs = order.map(|(_, a)| a);
        select::select(&attrs)
            .map(|i| order[i].0)
            .ok_or_else(|| self.nothing_bootable())
    }

    fn nothing_bootable(&self) -> anyhow::Error {
        anyhow!(
            "{}; make a slot bootable with `updatectl slots mark-good A|B` or install an update",
            self.explain_next_boot()
        )
    }

    /// Emulate `gptprio.next`: select, use up one try, write crash-safely.
    pub fn boot(&mut self) -> Result<SlotId> {
        let mut chosen = None;
        self.change(|attrs| chosen = select::boot(attrs))?;
        let order = self.in_entry_order();
        let id = chosen
            .map(|i| order[i].0)
            .ok_or_else(|| self.nothing_bootable())?;
        info!(slot = %id, "bootloader emulation chose a slot");
        Ok(id)
    }

    /// A freshly written slot: successful=0, tries=1, prioritized above the other.
    pub fn set_install_ready(&mut self, id: SlotId) -> Result<()> {
        self.change_slot(id, select::install_ready)
    }

    /// The booted slot is healthy: successful=1, tries=0, prioritized.
    pub fn mark_good(&mut self, id: SlotId) -> Result<()> {
        self.change_slot(id, select::mark_good)
    }

    /// The slot failed: priority 0.
    pub fn mark_bad(&mut self, id: SlotId) -> Result<()> {
        self.change_slot(id, select::mark_bad)
    }

    /// `cgpt prioritize` semantics (see [`select::prioritize`]).
    pub fn prioritize(&mut self, id: SlotId) -> Result<()> {
        self.change_slot(id, select::prioritize)
    }

    /// Rewrite damaged copies (MBR, primary or backup) from the valid one.
    /// Returns whether anything was written.
    pub fn repair(&mut self) -> Result<bool> {
        self.reload_if_stale()?;
        if !self.gpt.needs_repair() {
            return Ok(false);
        }
        let result = self.write_repair();
        self.stale = result.is_err();
        result.map(|()| true)
    }

    /// The device.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Give the device back.
    pub fn into_inner(self) -> D {
        self.dev
    }

    fn change_slot(&mut self, id: SlotId, step: fn(&mut [SlotAttrs], usize)) -> Result<()> {
        self.reload_if_stale()?;
        let pos = self
            .in_entry_order()
            .iter()
            .position(|(s, _)| *s == id)
            .expect("both slots");
        self.change(|attrs| step(attrs, pos))
    }

    /// Repair first, then apply `f` to the attributes (entry order) and write
    /// the result if anything changed.
    fn change(&mut self, f: impl FnOnce(&mut [SlotAttrs])) -> Result<()> {
        self.repair()?;
        let order = self.in_entry_order();
        let mut attrs = order.map(|(_, a)| a);
        f(&mut attrs);
        let mut next = self.gpt.clone();
        for ((id, old), new) in order.iter().zip(attrs) {
            if *old != new {
                let index = self.gpt.slots[*id as usize];
                next.set_attributes(index, new.apply(self.gpt.attributes(index)));
            }
        }
        if next.entries == self.gpt.entries {
            return Ok(()); // nothing to change, nothing to write
        }
        let result = self.write_both(&next);
        match result {
            Ok(()) => {
                self.gpt = next;
                Ok(())
            }
            Err(e) => {
                self.stale = true;
                Err(e)
            }
        }
    }

    fn reload_if_stale(&mut self) -> Result<()> {
        if self.stale {
            self.gpt =
                Gpt::read(&mut self.dev).context("re-reading the GPT after a failed write")?;
            self.stale = false;
        }
        Ok(())
    }

    /// Rewrite only what is damaged; the backup first when both are (the
    /// primary is what firmware reads, so it is written last).
    fn write_repair(&mut self) -> Result<()> {
        let gpt = self.gpt.clone();
        if !gpt.backup_ok {
            self.write_areas(&gpt.backup_areas())
                .context("repairing the backup GPT")?;
            self.sync().context("syncing the repaired backup GPT")?;
            self.gpt.backup_ok = true;
        }
        if !gpt.primary_ok {
            self.write_areas(&gpt.primary_areas())
                .context("repairing the primary GPT")?;
            self.sync().context("syncing the repaired primary GPT")?;
            self.gpt.primary_ok = true;
        }
        if !gpt.mbr_ok {
            let old = self.read_mbr()?;
            let pmbr = mbr::protective(&old, gpt.disk_sectors);
            self.write_areas(&[(0, pmbr.to_vec())])
                .context("writing the protective MBR")?;
            self.sync().context("syncing the protective MBR")?;
            self.gpt.mbr_ok = true;
        }
        info!("repaired the GPT from its valid copy");
        self.gpt.problems.clear();
        Ok(())
    }

    fn read_mbr(&mut self) -> Result<Vec<u8>> {
        let mut old = vec![0u8; mbr::MBR_BYTES];
        self.dev
            .seek(SeekFrom::Start(0))
            .context("seeking to the MBR")?;
        self.dev.read_exact(&mut old).context("reading the MBR")?;
        Ok(old)
    }

    /// The crash-safe two-phase write of a changed table (see module docs).
    fn write_both(&mut self, next: &Gpt) -> Result<()> {
        self.write_areas(&next.backup_areas())
            .context("writing the backup GPT")?;
        self.sync().context("syncing the backup GPT")?;
        self.write_areas(&next.primary_areas())
            .context("writing the primary GPT")?;
        self.sync().context("syncing the primary GPT")
    }

    fn write_areas(&mut self, areas: &[Area]) -> Result<()> {
        for (offset, bytes) in areas {
            self.dev
                .seek(SeekFrom::Start(*offset))
                .with_context(|| format!("seeking to byte {offset}"))?;
            self.dev
                .write_all(bytes)
                .with_context(|| format!("writing {} bytes at byte {offset}", bytes.len()))?;
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        (self.sync)(&mut self.dev)
    }
}

/// Write a complete fresh GPT (`gpt` built in memory) plus a protective MBR,
/// backup first like every other write. Used when creating test disks.
pub(crate) fn write_fresh<D: Write + Seek>(dev: &mut D, gpt: &Gpt) -> Result<()> {
    let pmbr = mbr::protective(&[], gpt.disk_sectors);
    let areas = gpt
        .backup_areas()
        .into_iter()
        .chain(gpt.primary_areas())
        .chain([(0, pmbr.to_vec())]);
    for (offset, bytes) in areas {
        dev.seek(SeekFrom::Start(offset))
            .with_context(|| format!("seeking to byte {offset}"))?;
        dev.write_all(&bytes)
            .with_context(|| format!("writing {} bytes at byte {offset}", bytes.len()))?;
    }
    dev.flush().context("flushing the new GPT")
}

#[cfg(test)]
#[path = "disk_tests.rs"]
mod tests;
