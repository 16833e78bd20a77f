//! Real tools as oracles: after every kind of change we make, `sgdisk -v`
//! finds no problem, `cgpt show` reports the priority/tries/successful we
//! set and `sfdisk --dump` shows the same attribute bits; attributes set by
//! `cgpt add` and `sgdisk -A` are read (and preserved) by us.

mod gpt_support;

use std::path::Path;

use ab_updater::gpt::open_disk;
use ab_updater::slot::SlotId;
use gpt_support::*;

/// Every kind of change we make, in an order that makes each one do something.
fn change_sequence(dev: &Path) {
    type Step = fn(&mut ab_updater::gpt::AbDisk<std::fs::File>) -> anyhow::Result<()>;
    let steps: [(&str, Step); 9] = [
        ("install-ready B", |d| d.set_install_ready(SlotId::B)),
        ("boot (B, tries 1->0)", |d| {
            d.boot().map(|id| assert_eq!(id, SlotId::B))
        }),
        ("boot (rollback to A)", |d| {
            d.boot().map(|id| assert_eq!(id, SlotId::A))
        }),
        ("mark-bad B", |d| d.mark_bad(SlotId::B)),
        ("install-ready B again", |d| d.set_install_ready(SlotId::B)),
        ("boot B", |d| d.boot().map(|id| assert_eq!(id, SlotId::B))),
        ("mark-good B", |d| d.mark_good(SlotId::B)),
        ("prioritize A", |d| d.prioritize(SlotId::A)),
        ("mark-bad A", |d| d.mark_bad(SlotId::A)),
    ];
    assert_tools_agree(dev);
    for (name, step) in steps {
        let mut disk = open_disk(dev, true).unwrap();
        step(&mut disk).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        drop(disk);
        assert_tools_agree(dev);
    }
    let disk = open_disk(dev, false).unwrap();
    let [a, b] = disk.slots();
    assert_eq!((a.priority, b.priority, b.successful), (0, 1, true));
    assert_eq!(disk.next_boot().unwrap(), SlotId::B);
}

#[test]
fn fresh_disk_looks_like_flatcar_to_every_tool() {
    let dir = tempfile::tempdir().unwrap();
    let img = make(dir.path(), "disk.img", 512);
    assert_tools_agree(&img);
    let disk = open_disk(&img, false).unwrap();
    assert_eq!(cgpt_attrs(&img, 3), (1, 0, true));
    assert_eq!(cgpt_attrs(&img, 4), (0, 0, false));
    assert_eq!(
        sfdisk_attrs(&img, disk.slot(SlotId::A).partuuid),
        "GUID:48,56"
    );
    let (_, labels) = tool("sgdisk", &["-p", img.to_str().unwrap()]);
    for label in ["EFI-SYSTEM", "USR-A", "USR-B", "ROOT"] {
        assert!(labels.contains(label), "{labels}");
    }
}

#[test]
fn every_change_is_seen_by_the_tools() {
    let dir = tempfile::tempdir().unwrap();
    change_sequence(&make(dir.path(), "disk.img", 512));
}

#[test]
fn four_k_sectors_on_a_loop_device() {
    let dir = tempfile::tempdir().unwrap();
    let img = make(dir.path(), "disk4k.img", 4096);
    let Some(dev) = Loop::attach(&img, 4096) else {
        eprintln!("skipping the tool oracles for 4096-byte sectors: no loop devices here");
        return;
    };
    let (_, ss) = tool("blockdev", &["--getss", dev.0.to_str().unwrap()]);
    assert_eq!(ss.trim(), "4096");
    change_sequence(&dev.0);
}

#[test]
fn attributes_set_by_cgpt_are_read_by_us() {
    let dir = tempfile::tempdir().unwrap();
    let img = make(dir.path(), "disk.img", 512);
    let path = img.to_str().unwrap();
    let a_before = open_disk(&img, false).unwrap().slot(SlotId::A);
    for (p, t, s) in [
        (0, 0, 0),
        (15, 15, 1),
        (2, 1, 0),
        (1, 0, 1),
        (7, 3, 1),
        (0, 9, 0),
        (15, 0, 0),
        (3, 15, 0),
    ] {
        let (ok, out) = tool(
            "cgpt",
            &[
                "add",
                "-i",
                "4",
                "-P",
                &p.to_string(),
                "-T",
                &t.to_string(),
                "-S",
                &s.to_string(),
                path,
            ],
        );
        assert!(ok, "cgpt add: {out}");
        let disk = open_disk(&img, false).unwrap();
        let b = disk.slot(SlotId::B);
        assert_eq!((b.priority, b.tries, b.successful), (p, t, s == 1));
        assert_eq!(disk.slot(SlotId::A), a_before, "cgpt add -i 4 left A alone");
        assert!(disk.problems().is_empty());
    }
}

#[test]
fn bits_set_by_other_tools_survive_our_changes() {
    let dir = tempfile::tempdir().unwrap();
    let img = make(dir.path(), "disk.img", 512);
    let path = img.to_str().unwrap();
    // Legacy BIOS bootable (2), required (0) and a high GUID bit (60) on B.
    for bit in ["0", "2", "60"] {
        let (ok, out) = tool("sgdisk", &["-A", &format!("4:set:{bit}"), path]);
        assert!(ok, "sgdisk -A: {out}");
    }
    let extra = 1 | 4 | (1 << 60);
    let mut disk = open_disk(&img, true).unwrap();
    disk.set_install_ready(SlotId::B).unwrap();
    disk.boot().unwrap();
    disk.mark_good(SlotId::B).unwrap();
    let b = disk.slot(SlotId::B);
    drop(disk);
    assert_eq!(
        sfdisk_attrs(&img, b.partuuid),
        expected_sfdisk_attrs(extra | ab_bits(&b))
    );
    assert_eq!(cgpt_attrs(&img, 4), (2, 0, true));
    assert_sgdisk_clean(&img);
}

#[test]
fn repaired_disks_pass_sgdisk() {
    let dir = tempfile::tempdir().unwrap();
    let clean = make(dir.path(), "clean.img", 512);
    let bytes = std::fs::read(&clean).unwrap();
    let last = bytes.len() - 512;
    // Primary header, primary entries, backup entries, backup header, MBR.
    for (name, offset) in [
        ("ph", 512 + 40),
        ("pe", 1024 + 300),
        ("be", last - 32 * 512 + 300),
        ("bh", last + 40),
        ("mbr", 510),
    ] {
        let img = dir.path().join(format!("{name}.img"));
        let mut damaged = bytes.clone();
        damaged[offset] ^= 0xff;
        std::fs::write(&img, &damaged).unwrap();
        let mut disk = open_disk(&img, true).unwrap();
        assert!(!disk.problems().is_empty(), "{name}: damage noticed");
        assert!(disk.repair().unwrap(), "{name}: repaired");
        drop(disk);
        assert_eq!(
            std::fs::read(&img).unwrap(),
            bytes,
            "{name}: repaired to the original bytes"
        );
        assert_tools_agree(&img);
    }
}

#[test]
fn prioritize_matches_real_cgpt_prioritize() {
    use ab_updater::gpt::attrs::SlotAttrs;
    use ab_updater::gpt::select;
    // cgpt prioritize only reorders ChromeOS kernel partitions, so give a
    // copy of our disk that type and compare cgpt's answer with ours.
    let dir = tempfile::tempdir().unwrap();
    let img = make(dir.path(), "kernels.img", 512);
    let path = img.to_str().unwrap();
    let kernel = "fe3a2a5d-4f32-41a7-b725-accc3285a309";
    let (ok, out) = tool(
        "sgdisk",
        &[
            "-t",
            &format!("3:{kernel}"),
            "-t",
            &format!("4:{kernel}"),
            path,
        ],
    );
    assert!(ok, "{out}");
    for pa in [0u8, 1, 2, 5, 15] {
        for pb in [0u8, 1, 2, 5, 15] {
            for chosen in [0usize, 1] {
                for (number, p) in [(3, pa), (4, pb)] {
                    let (ok, out) = tool(
                        "cgpt",
                        &["add", "-i", &number.to_string(), "-P", &p.to_string(), path],
                    );
                    assert!(ok, "{out}");
                }
                let (ok, out) = tool(
                    "cgpt",
                    &["prioritize", "-i", &(3 + chosen).to_string(), path],
                );
                assert!(ok, "{out}");
                let priority = |number: u32| {
                    let (ok, out) = tool("cgpt", &["show", "-i", &number.to_string(), "-P", path]);
                    assert!(ok, "{out}");
                    out.trim().parse::<u8>().unwrap()
                };
                let theirs = (priority(3), priority(4));
                let mut ours = [pa, pb].map(|priority| SlotAttrs {
                    priority,
                    tries: 0,
                    successful: true,
                });
                select::prioritize(&mut ours, chosen);
                assert_eq!(
                    theirs,
                    (ours[0].priority, ours[1].priority),
                    "A={pa} B={pb} chosen {chosen}"
                );
            }
        }
    }
}
