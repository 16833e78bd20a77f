//! `update-server boot`: the bootloader step of sandbox mode.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::gpt::emulated::{self, LastBoot};
use crate::gpt::open_disk;

/// Arguments of `boot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The disk image to "boot".
    #[arg(long)]
    pub disk: PathBuf,
}

/// Select a slot like GRUB `gptprio.next`, use up one try, write the GPT,
/// record the boot beside the image and print `SLOT PARTUUID=…`.
pub fn run(args: &Args) -> Result<()> {
    let mut disk = open_disk(&args.disk, true)?;
    let id = disk
        .boot()
        .with_context(|| format!("booting {}", args.disk.display()))?;
    let slot = disk.slot(id);
    emulated::record(
        &args.disk,
        LastBoot {
            slot: id,
            partuuid: slot.partuuid,
        },
    )?;
    println!(
        "booted {id} ({}) PARTUUID={} priority {} tries left {} successful {}",
        id.label(),
        slot.partuuid,
        slot.priority,
        slot.tries,
        u8::from(slot.successful)
    );
    Ok(())
}
