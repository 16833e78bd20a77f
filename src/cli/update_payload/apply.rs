//! `update-payload apply`: the offline form of the daemon's install pipeline
//! on a disk image or block device: pick the target slot like the bootloader
//! would, stream-verify-write the payload into it, read it back, then flip.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::gpt::open_disk;
use crate::io::Region;
use crate::payload::{apply_from_reader, Applier, ApplyPolicy, KeyId, TrustedKeys};
use crate::slot::SlotId;
use crate::version::OsVersion;

/// Arguments of `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Payload file.
    pub payload: PathBuf,
    /// Trusted public key (NAME.pub); repeat for several (rotation).
    #[arg(long = "pubkey", value_name = "PUB", required = true)]
    pub pubkeys: Vec<PathBuf>,
    /// Key id (16 hex digits) never to accept; repeatable.
    #[arg(long = "revoked-key-id", value_name = "ID")]
    pub revoked: Vec<KeyId>,
    /// Number of distinct trusted keys that must have signed.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub min_signatures: usize,
    /// GPT disk image or block device with USR-A and USR-B.
    #[arg(long, value_name = "D")]
    pub disk: PathBuf,
    /// Slot to install into (default: the one the bootloader would not boot next).
    #[arg(long, value_name = "A|B")]
    pub slot: Option<SlotId>,
    /// OS version installed now; without it the downgrade check is skipped.
    #[arg(long, value_name = "V")]
    pub installed_version: Option<OsVersion>,
    /// Security epoch installed now.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub installed_epoch: u64,
    /// Accept a payload older than the installed version or epoch.
    #[arg(long)]
    pub allow_downgrade: bool,
    /// This system's board/product string; the payload must name it.
    #[arg(long, value_name = "S", default_value = "amd64-usr")]
    pub compatible: String,
}

/// Apply, verify and flip; on any failure after writing began the target
/// slot is left with priority 0 and the active slot is untouched.
pub fn run(args: ApplyArgs) -> Result<()> {
    let mut keys = TrustedKeys::from_files(&args.pubkeys)?;
    for id in &args.revoked {
        keys.revoke(*id);
    }
    let disk = open_disk(&args.disk, true)?;
    // The active slot is what the bootloader would boot now (no decrement).
    let active = disk
        .next_boot()
        .context("finding the slot the bootloader would boot")?;
    let target = args.slot.unwrap_or(active.other());
    if target == active {
        bail!(
            "slot {target} is the active slot (the bootloader boots it next); install into slot {} instead",
            active.other()
        );
    }
    let (t, a) = (disk.slot(target), disk.slot(active));
    drop(disk);
    let installed_version = match args.installed_version {
        Some(v) => v,
        None => {
            tracing::warn!("no --installed-version given: the downgrade check is skipped");
            "0".parse()?
        }
    };
    let policy = ApplyPolicy {
        compatible: args.compatible,
        installed_version,
        installed_epoch: args.installed_epoch,
        allow_downgrade: args.allow_downgrade,
        now: SystemTime::now(),
        min_signatures: args.min_signatures,
    };
    let open_rw = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&args.disk)
            .with_context(|| format!("opening {} for writing", args.disk.display()))
    };
    let target_region = Region::new(open_rw()?, t.offset_bytes, t.size_bytes)?;
    let source_file = File::open(&args.disk)
        .with_context(|| format!("opening {} for reading", args.disk.display()))?;
    let source_region = Region::new(source_file, a.offset_bytes, a.size_bytes)?;
    let started = Arc::new(AtomicBool::new(false));
    let hook_started = started.clone();
    let disk_path = args.disk.clone();
    // Before the first byte lands in the target, make it unbootable: a crash
    // or failure from here on can then never leave a half-written slot that
    // the bootloader might pick.
    let hook = move || {
        open_disk(&disk_path, true)?.mark_bad(target)?;
        hook_started.store(true, Ordering::SeqCst);
        Ok(())
    };
    let applier = Applier::new(target_region, Some(source_region), keys, policy, None)
        .before_first_write(hook);
    let mut payload = File::open(&args.payload)
        .with_context(|| format!("opening payload {}", args.payload.display()))?;
    let image = match apply_from_reader(applier, &mut payload, None) {
        Ok(image) => image,
        Err(e) if started.load(Ordering::SeqCst) => {
            return Err(anyhow::Error::new(e).context(format!(
                "applying {} failed; slot {target} is left unbootable (priority 0), slot {active} is untouched",
                args.payload.display()
            )))
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "refusing {}; nothing was written",
                args.payload.display()
            )))
        }
    };
    // Only now, with the slot verified and synced, make it the next boot.
    open_disk(&args.disk, true)?
        .set_install_ready(target)
        .with_context(|| format!("marking slot {target} install-ready"))?;
    println!(
        "installed {} into slot {target} (sha256 {}); it boots next once (tries=1), slot {active} remains the fallback",
        image.version, image.sha256
    );
    Ok(())
}
