//! `updatectl slots`: show both USR slots and what boots next, or mark a
//! slot good/bad or prioritize it, on an image (`--disk`) or the host disk.

use std::fs::File;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde::Serialize;

use crate::gpt::emulated::{self, LastBoot};
use crate::gpt::{find_host_disk, open_disk, AbDisk, SlotInfo};
use crate::slot::SlotId;

/// Arguments of `slots`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Disk image or block device (default: the disk that backs /usr).
    #[arg(long, global = true)]
    pub disk: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Change a slot instead of showing them.
    #[command(subcommand)]
    pub action: Option<Action>,
}

/// Changes to a slot.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum Action {
    /// successful=1, tries=0, prioritized (the slot booted and is healthy).
    MarkGood {
        /// A or B.
        slot: SlotId,
    },
    /// priority=0 (the slot must never boot again until reinstalled).
    MarkBad {
        /// A or B.
        slot: SlotId,
    },
    /// Give the slot the highest priority (as `cgpt prioritize`).
    Prioritize {
        /// A or B.
        slot: SlotId,
    },
}

/// One slot in `--json` output.
#[derive(Debug, Serialize)]
struct SlotJson {
    slot: SlotId,
    label: &'static str,
    partuuid: String,
    partition: u32,
    priority: u8,
    tries: u8,
    successful: bool,
    offset_bytes: u64,
    size_bytes: u64,
}

/// `--json` output.
#[derive(Debug, Serialize)]
struct Report {
    disk: String,
    sector_size: u64,
    booted: Option<SlotId>,
    slots: Vec<SlotJson>,
    next_boot: Option<SlotId>,
    reason: String,
    problems: Vec<String>,
}

/// Run `slots`.
pub fn run(args: &Args) -> Result<()> {
    let (path, booted) = match &args.disk {
        // Sandbox mode: the booted slot is the last emulated boot, if the
        // record still matches this image (it is not, after make-disk).
        Some(path) => (path.clone(), emulated::last(path).ok().flatten()),
        None => {
            let (path, slot) = find_host_disk()?;
            (
                path,
                Some(LastBoot {
                    slot,
                    partuuid: uuid::Uuid::nil(),
                }),
            )
        }
    };
    let mut disk = open_disk(&path, args.action.is_some())?;
    if let Some(action) = args.action {
        let (id, verb) = apply(&mut disk, action)
            .with_context(|| format!("changing the slots of {}", path.display()))?;
        let s = disk.slot(id);
        println!(
            "{id} {verb}: priority {} tries {} successful {}; next boot: {}",
            s.priority,
            s.tries,
            u8::from(s.successful),
            disk.explain_next_boot()
        );
        return Ok(());
    }
    let booted = booted
        .filter(|b| b.partuuid.is_nil() || disk.slot_by_partuuid(b.partuuid) == Some(b.slot))
        .map(|b| b.slot);
    let report = report(&disk, path.display().to_string(), booted);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("encoding JSON")?
        );
    } else {
        print!("{}", text(&report));
    }
    Ok(())
}

/// The `updatectl slots` table of an image, with its last emulated boot
/// (the demo prints it before and after an update).
pub fn table(path: &std::path::Path) -> Result<String> {
    let disk = open_disk(path, false)?;
    let booted = emulated::last(path)
        .ok()
        .flatten()
        .filter(|b| disk.slot_by_partuuid(b.partuuid) == Some(b.slot))
        .map(|b| b.slot);
    Ok(text(&report(&disk, path.display().to_string(), booted)))
}

fn apply(disk: &mut AbDisk<File>, action: Action) -> Result<(SlotId, &'static str)> {
    Ok(match action {
        Action::MarkGood { slot } => (slot, disk.mark_good(slot).map(|()| "marked good")?),
        Action::MarkBad { slot } => (slot, disk.mark_bad(slot).map(|()| "marked bad")?),
        Action::Prioritize { slot } => (slot, disk.prioritize(slot).map(|()| "prioritized")?),
    })
}

fn report(disk: &AbDisk<File>, path: String, booted: Option<SlotId>) -> Report {
    let slot_json = |s: SlotInfo| SlotJson {
        slot: s.id,
        label: s.id.label(),
        partuuid: s.partuuid.to_string(),
        partition: s.entry_index + 1,
        priority: s.priority,
        tries: s.tries,
        successful: s.successful,
        offset_bytes: s.offset_bytes,
        size_bytes: s.size_bytes,
    };
    Report {
        disk: path,
        sector_size: disk.sector_size(),
        booted,
        slots: disk.slots().into_iter().map(slot_json).collect(),
        next_boot: disk.next_boot().ok(),
        reason: disk.explain_next_boot(),
        problems: disk.problems().to_vec(),
    }
}

/// The human table.
fn text(r: &Report) -> String {
    let mut out = format!("disk: {} ({}-byte sectors)\n", r.disk, r.sector_size);
    if let Some(b) = r.booted {
        out.push_str(&format!("booted: {b}\n"));
    }
    out.push_str(
        "SLOT  LABEL  PART  PARTUUID                              PRIORITY  TRIES  SUCCESSFUL\n",
    );
    for s in &r.slots {
        out.push_str(&format!(
            "{:<5} {:<6} {:<5} {:<37} {:<9} {:<6} {}\n",
            s.slot.to_string(),
            s.label,
            s.partition,
            s.partuuid,
            s.priority,
            s.tries,
            if s.successful { "yes" } else { "no" }
        ));
    }
    match r.next_boot {
        Some(id) => out.push_str(&format!("next boot: {id} ({})\n", r.reason)),
        None => out.push_str(&format!("next boot: none ({})\n", r.reason)),
    }
    for p in &r.problems {
        out.push_str(&format!(
            "warning: {p}; the next change (mark-good, prioritize, ...) repairs it\n"
        ));
    }
    out
}
