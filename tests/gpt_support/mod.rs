//! Shared helpers for the GPT integration tests: small test disks and the
//! real partitioning tools (sgdisk, sfdisk, cgpt) as independent oracles.
//! `scripts/test` installs the tools; a missing tool fails the test loudly.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use ab_updater::gpt::make::{make_disk, DiskSpec};
use ab_updater::gpt::{open_disk, SlotInfo};
use ab_updater::slot::SlotId;

/// A small disk spec: 1 MiB for every partition.
pub fn small_spec(sector_size: u64) -> DiskSpec {
    DiskSpec {
        sector_size,
        slot_size: 1 << 20,
        efi_size: 1 << 20,
        root_size: 1 << 20,
    }
}

/// Create a small fresh disk image in `dir`.
pub fn make(dir: &Path, name: &str, sector_size: u64) -> PathBuf {
    let path = dir.join(name);
    make_disk(&path, &small_spec(sector_size), None, None).unwrap();
    path
}

/// Run a tool and return stdout + stderr; panics if it cannot be started.
pub fn tool(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): install gdisk, fdisk and cgpt (scripts/test does)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `sgdisk -v` must find no problem at all.
pub fn assert_sgdisk_clean(dev: &Path) {
    let (ok, out) = tool("sgdisk", &["-v", dev.to_str().unwrap()]);
    assert!(
        ok && out.contains("No problems found"),
        "sgdisk -v {}:\n{out}",
        dev.display()
    );
    assert!(
        !out.contains("Caution") && !out.contains("Warning"),
        "sgdisk -v {}:\n{out}",
        dev.display()
    );
}

/// Priority, tries and successful of partition `number` as `cgpt show` reports them.
pub fn cgpt_attrs(dev: &Path, number: u32) -> (u8, u8, bool) {
    let field = |flag: &str| -> u8 {
        let (ok, out) = tool(
            "cgpt",
            &[
                "show",
                "-i",
                &number.to_string(),
                flag,
                dev.to_str().unwrap(),
            ],
        );
        assert!(ok, "cgpt show -i {number} {flag}: {out}");
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("cgpt show {flag} printed {out:?}"))
    };
    (field("-P"), field("-T"), field("-S") == 1)
}

/// Attribute bits 48-63 that `sfdisk --dump` lists for the partition with
/// this PARTUUID (`attrs="GUID:48,56"`), plus its named low bits.
pub fn sfdisk_attrs(dev: &Path, partuuid: uuid::Uuid) -> String {
    let (ok, out) = tool("sfdisk", &["--dump", dev.to_str().unwrap()]);
    assert!(ok, "sfdisk --dump: {out}");
    let needle = format!("uuid={}", partuuid.to_string().to_uppercase());
    let line = out
        .lines()
        .find(|l| l.contains(&needle))
        .unwrap_or_else(|| panic!("{needle} not in:\n{out}"));
    match line.split_once("attrs=\"") {
        Some((_, rest)) => rest.split('"').next().unwrap().to_string(),
        None => String::new(),
    }
}

/// What sfdisk prints for attribute bits 48-63 of `attrs` (bit 0 and 2 by name).
pub fn expected_sfdisk_attrs(attrs: u64) -> String {
    let mut parts = Vec::new();
    if attrs & 1 != 0 {
        parts.push("RequiredPartition".to_string());
    }
    if attrs & 2 != 0 {
        parts.push("NoBlockIOProtocol".to_string());
    }
    if attrs & 4 != 0 {
        parts.push("LegacyBIOSBootable".to_string());
    }
    let bits: Vec<String> = (48..64)
        .filter(|b| attrs >> b & 1 == 1)
        .map(|b| b.to_string())
        .collect();
    if !bits.is_empty() {
        parts.push(format!("GUID:{}", bits.join(",")));
    }
    parts.join(" ")
}

/// The attribute word a slot should have on disk.
pub fn ab_bits(s: &SlotInfo) -> u64 {
    (u64::from(s.priority) << 48) | (u64::from(s.tries) << 52) | (u64::from(s.successful) << 56)
}

/// Check that cgpt, sfdisk and sgdisk agree with what we read from `dev`.
pub fn assert_tools_agree(dev: &Path) {
    let disk = open_disk(dev, false).unwrap();
    assert!(disk.problems().is_empty(), "{:?}", disk.problems());
    for id in SlotId::ALL {
        let s = disk.slot(id);
        assert_eq!(
            cgpt_attrs(dev, s.entry_index + 1),
            (s.priority, s.tries, s.successful),
            "cgpt show disagrees on {id}"
        );
        assert_eq!(
            sfdisk_attrs(dev, s.partuuid),
            expected_sfdisk_attrs(ab_bits(&s)),
            "sfdisk on {id}"
        );
    }
    assert_sgdisk_clean(dev);
}

/// A loop device with a chosen logical sector size, detached on drop.
pub struct Loop(pub PathBuf);

impl Loop {
    /// Attach `image` with `losetup -b SECTOR`; `None` where loop devices
    /// are not available (containers without /dev/loop-control).
    pub fn attach(image: &Path, sector_size: u64) -> Option<Loop> {
        let out = Command::new("losetup")
            .args([
                "-f",
                "--show",
                "-b",
                &sector_size.to_string(),
                image.to_str().unwrap(),
            ])
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "losetup unavailable here: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        Some(Loop(PathBuf::from(
            String::from_utf8_lossy(&out.stdout).trim(),
        )))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

/// A command's standard output as text.
pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A command's standard error as text.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A path as a command-line argument.
pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}
