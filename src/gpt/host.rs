//! Host mode: find the block device that holds the booted USR slot.
//!
//! The kernel command line names the booted /usr by PARTUUID
//! (`mount.usr=PARTUUID=…`, or `usr=PARTUUID=…` on older CoreOS). We do not
//! rely on udev's /dev/disk/by-partuuid links (absent in early boot and in
//! containers); instead every whole disk in /sys/block is read with our own
//! GPT parser and the one whose USR-A or USR-B has that PARTUUID wins.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use uuid::Uuid;

use crate::slot::SlotId;

/// The PARTUUID of /usr named on a kernel command line, if any. The last
/// occurrence wins, as for the kernel's own parameters.
pub fn usr_partuuid(cmdline: &str) -> Option<Uuid> {
    cmdline.split_whitespace().rev().find_map(|arg| {
        let value = arg
            .strip_prefix("mount.usr=")
            .or_else(|| arg.strip_prefix("usr="))?;
        let id = value
            .strip_prefix("PARTUUID=")
            .or_else(|| value.strip_prefix("/dev/disk/by-partuuid/"))?;
        Uuid::parse_str(id.trim_matches('"')).ok()
    })
}

/// The disk that backs /usr on this host and the booted slot, from
/// /proc/cmdline and the block devices in /sys/block.
pub fn find_host_disk() -> Result<(PathBuf, SlotId)> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").context("reading /proc/cmdline")?;
    find_host_disk_in(&cmdline, Path::new("/sys/block"), Path::new("/dev"))
}

/// [`find_host_disk`] with the command line and directories given (for tests):
/// each entry name of `sys_block` is opened as `dev_dir/NAME`.
pub fn find_host_disk_in(
    cmdline: &str,
    sys_block: &Path,
    dev_dir: &Path,
) -> Result<(PathBuf, SlotId)> {
    let Some(partuuid) = usr_partuuid(cmdline) else {
        bail!(
            "no disk with USR-A/USR-B found: the kernel command line has no mount.usr=PARTUUID=… \
             or usr=PARTUUID=… (this system did not boot from an A/B USR slot); pass --disk IMG"
        );
    };
    let mut names: Vec<String> = std::fs::read_dir(sys_block)
        .with_context(|| format!("listing block devices in {}", sys_block.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    for name in &names {
        let path = dev_dir.join(name);
        // Devices without a readable A/B GPT (CD drives, RAM disks, data
        // disks) are simply not the one we are looking for.
        let Ok(disk) = super::open_disk(&path, false) else {
            continue;
        };
        if let Some(id) = disk.slot_by_partuuid(partuuid) {
            return Ok((path, id));
        }
    }
    bail!(
        "no disk with USR-A/USR-B found whose slot has PARTUUID {partuuid} (named on the kernel \
         command line; looked at {} block devices in {}); pass --disk IMG",
        names.len(),
        sys_block.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "7130c94a-213a-4e5a-8e26-6cce9662f132";

    #[test]
    fn finds_partuuid_in_every_spelling() {
        let id = Uuid::parse_str(ID).unwrap();
        for line in [
            format!("root=LABEL=ROOT mount.usr=PARTUUID={ID} rootflags=rw"),
            format!("usr=PARTUUID={}", ID.to_uppercase()),
            format!("mount.usr=/dev/disk/by-partuuid/{ID} quiet"),
            format!(
                "mount.usr=PARTUUID=00000000-0000-0000-0000-000000000001 mount.usr=PARTUUID={ID}"
            ),
        ] {
            assert_eq!(usr_partuuid(&line), Some(id), "{line}");
        }
        assert_eq!(
            usr_partuuid("root=/dev/sda9 mount.usr=/dev/mapper/usr"),
            None
        );
        assert_eq!(usr_partuuid("mount.usr=PARTUUID=not-a-uuid"), None);
        assert_eq!(usr_partuuid("ousr=PARTUUID=".to_string().as_str()), None);
    }

    #[test]
    fn without_usr_on_the_command_line_says_to_pass_disk() {
        let err =
            find_host_disk_in("quiet", Path::new("/nonexistent"), Path::new("/dev")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("no disk with USR-A/USR-B found"), "{msg}");
        assert!(msg.contains("pass --disk IMG"), "{msg}");
    }

    #[test]
    fn missing_sys_block_is_reported() {
        let err = find_host_disk_in(
            &format!("usr=PARTUUID={ID}"),
            Path::new("/nonexistent-sys"),
            Path::new("/dev"),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("listing block devices in /nonexistent-sys"),
            "{err:#}"
        );
    }
}
