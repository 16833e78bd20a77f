//! `update-server make-disk`: a fresh A/B test disk (see `gpt::make` for the layout).

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::gpt::make::{self, parse_size, DiskSpec};
use crate::gpt::open_disk;

/// Arguments of `make-disk`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image file to create (overwritten if it is a regular file).
    #[arg(long)]
    pub out: PathBuf,
    /// Size of each USR slot, e.g. 64M or 1G (binary units).
    #[arg(long, value_parser = parse_size)]
    pub slot_size: u64,
    /// Image to copy into USR-A (at most --slot-size bytes).
    #[arg(long)]
    pub usr_a: Option<PathBuf>,
    /// Image to copy into USR-B (at most --slot-size bytes).
    #[arg(long)]
    pub usr_b: Option<PathBuf>,
    /// Logical sector size of the disk.
    #[arg(long, default_value_t = 512, value_parser = parse_sector_size)]
    pub sector_size: u64,
    /// Size of the EFI-SYSTEM partition.
    #[arg(long, value_parser = parse_size, default_value = "16M")]
    pub efi_size: u64,
    /// Size of the ROOT partition.
    #[arg(long, value_parser = parse_size, default_value = "16M")]
    pub root_size: u64,
}

/// `512` or `4096`.
fn parse_sector_size(text: &str) -> Result<u64, String> {
    match text {
        "512" => Ok(512),
        "4096" => Ok(4096),
        _ => Err(format!("sector size must be 512 or 4096, not {text:?}")),
    }
}

/// Create the disk and print its slots.
pub fn run(args: &Args) -> Result<()> {
    let spec = DiskSpec {
        sector_size: args.sector_size,
        slot_size: args.slot_size,
        efi_size: args.efi_size,
        root_size: args.root_size,
    };
    make::make_disk(
        &args.out,
        &spec,
        args.usr_a.as_deref(),
        args.usr_b.as_deref(),
    )
    .with_context(|| format!("making test disk {}", args.out.display()))?;
    let disk = open_disk(&args.out, false)?;
    println!(
        "created {} ({}-byte sectors, disk GUID {})",
        args.out.display(),
        disk.sector_size(),
        disk.disk_guid()
    );
    for s in disk.slots() {
        println!(
            "{} partition {} PARTUUID={} {} bytes at byte {}",
            s.id.label(),
            s.entry_index + 1,
            s.partuuid,
            s.size_bytes,
            s.offset_bytes
        );
    }
    Ok(())
}
