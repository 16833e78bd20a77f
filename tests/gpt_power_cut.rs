//! Power cut at every write. For every k of each change (flip, mark-good,
//! boot decrement, repair) the device loses power after the k-th write
//! (stopping, dropping later writes, or tearing the k-th write's last
//! sector). After each cut: we can read the disk, boot selection gives the
//! old answer or the new one (never none), `sgdisk` loads the same table we
//! do, and after our repair `sgdisk -v` finds no problem.

mod gpt_support;

use std::io::Cursor;

use ab_updater::gpt::{open_disk, AbDisk, Gpt};
use ab_updater::slot::SlotId;
use ab_updater::testing::{CutMode, PowerCut};
use gpt_support::*;

type Dev = PowerCut<Cursor<Vec<u8>>>;
type Op = fn(&mut AbDisk<Dev>) -> anyhow::Result<()>;

struct Scenario {
    name: &'static str,
    /// Bring a fresh image into the starting state.
    setup: fn(&mut Vec<u8>),
    op: Op,
}

fn with_disk(img: &mut Vec<u8>, f: impl FnOnce(&mut AbDisk<Cursor<Vec<u8>>>)) {
    let mut disk = AbDisk::open(Cursor::new(std::mem::take(img))).unwrap();
    f(&mut disk);
    *img = disk.into_inner().into_inner();
}

/// Flip one byte inside the copy named by `which` (so a change must repair first).
fn damage(img: &mut [u8], which: &str) {
    let g = Gpt::parse(img).unwrap();
    let ss = g.sector_size as usize;
    let offset = match which {
        "primary header" => ss + 40,
        "primary entries" => ss * 2 + 300,
        "backup header" => g.header.alternate_lba as usize * ss + 40,
        _ => g.backup_entries_lba as usize * ss + 300,
    };
    img[offset] ^= 0xff;
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "install-ready flip",
            setup: |_| {},
            op: |d| d.set_install_ready(SlotId::B),
        },
        Scenario {
            name: "mark-good after the trial boot",
            setup: |img| {
                with_disk(img, |d| {
                    d.set_install_ready(SlotId::B).unwrap();
                    d.boot().unwrap();
                })
            },
            op: |d| d.mark_good(SlotId::B),
        },
        Scenario {
            name: "boot decrement",
            setup: |img| with_disk(img, |d| d.set_install_ready(SlotId::B).unwrap()),
            op: |d| d.boot().map(|_| ()),
        },
        Scenario {
            name: "repair of the primary header",
            setup: |img| damage(img, "primary header"),
            op: |d| d.repair().map(|_| ()),
        },
        Scenario {
            name: "repair of the backup entries",
            setup: |img| damage(img, "backup entries"),
            op: |d| d.repair().map(|_| ()),
        },
        Scenario {
            name: "flip on a disk with a damaged primary array",
            setup: |img| damage(img, "primary entries"),
            op: |d| d.set_install_ready(SlotId::B),
        },
        Scenario {
            name: "mark-good on a disk with a damaged backup header",
            setup: |img| {
                with_disk(img, |d| {
                    d.set_install_ready(SlotId::B).unwrap();
                    d.boot().unwrap();
                });
                damage(img, "backup header");
            },
            op: |d| d.mark_good(SlotId::B),
        },
    ]
}

fn next_boot(img: &[u8]) -> SlotId {
    AbDisk::open(Cursor::new(img.to_vec()))
        .unwrap()
        .next_boot()
        .unwrap()
}

/// `sgdisk -i 4` attribute flags of the image as hex, as sgdisk loaded it.
fn sgdisk_attr_hex(path: &std::path::Path, number: u32) -> String {
    let (ok, out) = tool(
        "sgdisk",
        &["-i", &number.to_string(), path.to_str().unwrap()],
    );
    assert!(ok, "sgdisk -i: {out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("Attribute flags:"))
        .unwrap_or_else(|| panic!("{out}"));
    line.trim_start_matches("Attribute flags:")
        .trim()
        .to_lowercase()
}

fn run_all(sector_size: u64, with_sgdisk: bool) {
    let dir = tempfile::tempdir().unwrap();
    let fresh = std::fs::read(make(dir.path(), "fresh.img", sector_size)).unwrap();
    let cut_img = dir.path().join("cut.img");
    let mut checked = 0;
    for sc in scenarios() {
        let mut start = fresh.clone();
        (sc.setup)(&mut start);
        let old = next_boot(&start);
        // The complete change, counting its writes.
        let mut disk = AbDisk::open(PowerCut::counting(Cursor::new(start.clone()))).unwrap();
        (sc.op)(&mut disk).unwrap();
        let total = disk.device_mut().writes();
        let new = next_boot(disk.device_mut().get_ref().get_ref());
        assert!(total >= 2, "{}: {total} writes", sc.name);
        for k in 1..=total {
            for mode in [
                CutMode::Stop,
                CutMode::Drop,
                CutMode::Tear {
                    sector: sector_size as usize,
                },
            ] {
                let what = format!(
                    "{} ({sector_size}-byte sectors), cut at write {k}/{total}, {mode:?}",
                    sc.name
                );
                let mut disk =
                    AbDisk::open(PowerCut::new(Cursor::new(start.clone()), k, mode)).unwrap();
                let _ = (sc.op)(&mut disk);
                let after = disk.into_inner().into_inner().into_inner();
                let ours = AbDisk::open(Cursor::new(after.clone()))
                    .unwrap_or_else(|e| panic!("{what}: unreadable: {e:#}"));
                let chosen = ours
                    .next_boot()
                    .unwrap_or_else(|e| panic!("{what}: nothing bootable: {e:#}"));
                assert!(
                    chosen == old || chosen == new,
                    "{what}: boots {chosen}, expected {old} or {new}"
                );
                std::fs::write(&cut_img, &after).unwrap();
                if with_sgdisk {
                    // sgdisk picks the same copy we do.
                    for id in SlotId::ALL {
                        let s = ours.slot(id);
                        let bits = ab_bits(&s);
                        assert_eq!(
                            sgdisk_attr_hex(&cut_img, s.entry_index + 1),
                            format!("{bits:016x}"),
                            "{what}: {id}"
                        );
                    }
                }
                // Our repair heals the disk without changing the answer.
                let mut healed = open_disk(&cut_img, true).unwrap();
                healed.repair().unwrap();
                assert_eq!(
                    healed.next_boot().unwrap(),
                    chosen,
                    "{what}: repair changed the answer"
                );
                drop(healed);
                assert!(Gpt::parse(&std::fs::read(&cut_img).unwrap())
                    .unwrap()
                    .problems
                    .is_empty());
                if with_sgdisk {
                    assert_sgdisk_clean(&cut_img);
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 50, "only {checked} cuts checked");
}

#[test]
fn power_cut_at_every_write_512() {
    run_all(512, true);
}

#[test]
fn power_cut_at_every_write_4096() {
    // sgdisk assumes 512-byte sectors on image files: our own reader and
    // repair are the oracle here (the loop-device test covers the tools).
    run_all(4096, false);
}
