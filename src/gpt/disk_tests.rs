//! AbDisk on in-memory devices: byte preservation, repair, failed writes.

use std::io::Cursor;

use proptest::prelude::*;

use super::*;
use crate::gpt::attrs::AB_MASK;
use crate::gpt::testutil::*;
use crate::testing::{CutMode, PowerCut};

fn open(img: Vec<u8>) -> AbDisk<Cursor<Vec<u8>>> {
    AbDisk::open(Cursor::new(img)).unwrap()
}

#[test]
fn fresh_disk_reports_flatcar_install_state() {
    for ss in [512, 4096] {
        let disk = open(image(ss));
        let [a, b] = disk.slots();
        assert_eq!((a.priority, a.tries, a.successful), (1, 0, true));
        assert_eq!((b.priority, b.tries, b.successful), (0, 0, false));
        assert_eq!((a.entry_index, b.entry_index), (2, 3));
        assert_eq!(a.offset_bytes % (1 << 20), 0);
        assert_eq!(a.size_bytes, 1 << 20);
        assert_ne!(a.partuuid, b.partuuid);
        assert_eq!(disk.slot_by_partuuid(b.partuuid), Some(SlotId::B));
        assert_eq!(disk.slot_by_partuuid(Uuid::nil()), None);
        assert_eq!(disk.next_boot().unwrap(), SlotId::A);
        assert_eq!(disk.sector_size(), ss);
        assert!(disk.problems().is_empty());
    }
}

#[test]
fn update_cycle_and_rollback() {
    let mut disk = open(image(512));
    disk.set_install_ready(SlotId::B).unwrap();
    assert_eq!(disk.next_boot().unwrap(), SlotId::B);
    assert_eq!(disk.boot().unwrap(), SlotId::B);
    assert_eq!(disk.slot(SlotId::B).tries, 0);
    // Not marked good: the next boot falls back to A.
    assert_eq!(disk.boot().unwrap(), SlotId::A);
    disk.mark_bad(SlotId::B).unwrap();
    assert_eq!(disk.slot(SlotId::B).priority, 0);
    // A successful install.
    disk.set_install_ready(SlotId::B).unwrap();
    assert_eq!(disk.boot().unwrap(), SlotId::B);
    disk.mark_good(SlotId::B).unwrap();
    let [a, b] = disk.slots();
    assert_eq!((b.priority, b.tries, b.successful), (2, 0, true));
    assert_eq!(a.priority, 1);
    disk.prioritize(SlotId::A).unwrap();
    assert_eq!(disk.next_boot().unwrap(), SlotId::A);
    // Everything we wrote reads back identically.
    let reread = open(disk.into_inner().into_inner());
    assert_eq!(reread.next_boot().unwrap(), SlotId::A);
    assert!(reread.problems().is_empty());
}

#[test]
fn nothing_bootable_is_an_error_and_writes_nothing() {
    let mut disk = open(image(512));
    disk.mark_bad(SlotId::A).unwrap();
    let before = disk.device_mut().get_ref().clone();
    let err = format!("{:#}", disk.boot().unwrap_err());
    assert!(
        err.contains("no slot is bootable: A has priority 0; B has priority 0"),
        "{err}"
    );
    assert!(err.contains("updatectl slots mark-good"), "{err}");
    assert_eq!(disk.device_mut().get_ref(), &before);
    assert!(disk.next_boot().is_err());
}

#[test]
fn unchanged_attributes_write_nothing() {
    let dev = PowerCut::counting(Cursor::new(image(512)));
    let mut disk = AbDisk::open(dev).unwrap();
    disk.mark_good(SlotId::A).unwrap(); // already good and first
    disk.boot().unwrap(); // successful, tries 0: no decrement
    assert_eq!(disk.device_mut().writes(), 0);
}

#[test]
fn every_single_damage_is_repaired_to_the_exact_original_bytes() {
    for ss in [512, 4096] {
        let clean = image(ss);
        let g = layout(&clean);
        let [ph, bh] = header_offsets(&g);
        let [pe, be] = entries_offsets(&g);
        for offset in [ph + 30, pe + 2 * 128 + 50, bh + 60, be + 3 * 128 + 20, 510] {
            let mut img = clean.clone();
            corrupt(&mut img, offset);
            let mut disk = open(img);
            assert!(!disk.problems().is_empty());
            assert!(disk.repair().unwrap(), "something was repaired");
            assert!(!disk.repair().unwrap(), "a second repair has nothing to do");
            let repaired = disk.into_inner().into_inner();
            if offset == 510 {
                // The MBR is rebuilt as a fresh protective MBR (same bytes).
                assert_eq!(repaired[..512], clean[..512]);
            }
            assert_eq!(
                repaired, clean,
                "damage at byte {offset}, {ss}-byte sectors"
            );
        }
    }
}

#[test]
fn changes_repair_first() {
    let clean = image(512);
    let g = layout(&clean);
    let mut img = clean.clone();
    corrupt(&mut img, header_offsets(&g)[0] + 30);
    let mut disk = open(img);
    disk.set_install_ready(SlotId::B).unwrap();
    let after = Gpt::parse(disk.device_mut().get_ref()).unwrap();
    assert!(!after.needs_repair());
    assert_eq!(disk.next_boot().unwrap(), SlotId::B);
}

#[test]
fn failed_write_rereads_the_device_before_the_next_change() {
    let img = image(512);
    // Cut after the backup entry array: the backup header is never written.
    let mut disk = AbDisk::open(PowerCut::new(Cursor::new(img), 1, CutMode::Stop)).unwrap();
    let err = format!("{:#}", disk.set_install_ready(SlotId::B).unwrap_err());
    assert!(
        err.contains("writing the backup GPT") && err.contains("power cut"),
        "{err}"
    );
    // The device is readable: old state, backup to be repaired.
    let inner = disk.into_inner().into_inner().into_inner();
    let mut disk = open(inner);
    assert_eq!(disk.next_boot().unwrap(), SlotId::A);
    assert!(!disk.problems().is_empty());
    disk.set_install_ready(SlotId::B).unwrap();
    assert_eq!(disk.next_boot().unwrap(), SlotId::B);
}

#[test]
fn dropped_last_write_leaves_the_new_backup_in_charge() {
    let img = image(512);
    let mut disk = AbDisk::open(PowerCut::new(Cursor::new(img), 3, CutMode::Drop)).unwrap();
    disk.set_install_ready(SlotId::B).unwrap(); // 4 writes, the 4th dropped
                                                // The primary header never reached the disk; a fresh read sees the
                                                // complete backup (new state) and a damaged primary.
    let g = Gpt::parse(disk.device_mut().get_ref().get_ref()).unwrap();
    assert!(!g.primary_ok && g.backup_ok);
    assert_eq!(disk.next_boot().unwrap(), SlotId::B);
}

#[test]
fn open_rejects_bad_input_without_writing() {
    let dev = PowerCut::counting(Cursor::new(b"not a disk".repeat(1000)));
    let err = AbDisk::open(dev).err().unwrap();
    assert!(format!("{err:#}").contains("no GPT found"), "{err:#}");
}

/// Fill the two USR entries' attribute words with `noise` outside the A/B
/// bits and every spare byte of the array with a pattern.
fn noisy_image(noise: u64) -> (Vec<u8>, Gpt) {
    let mut img = image(512);
    edit_entries(&mut img, |e| {
        for (i, b) in e.iter_mut().enumerate() {
            // Unused entries (and reserved tails) get non-zero junk that must survive.
            if i / 128 >= 10 && i % 128 >= 16 {
                *b = (i % 251) as u8;
            }
        }
        for idx in [2usize, 3] {
            let at = idx * 128 + 48;
            let old = u64::from_le_bytes(e[at..at + 8].try_into().unwrap());
            let mixed = (old & AB_MASK) | (noise & !AB_MASK);
            e[at..at + 8].copy_from_slice(&mixed.to_le_bytes());
        }
    });
    let g = layout(&img);
    (img, g)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn changes_touch_only_the_ab_bits(noise in any::<u64>(), ops in proptest::collection::vec(0u8..9, 1..6)) {
        let (img, before) = noisy_image(noise);
        let mut disk = open(img);
        for op in ops {
            let id = if op % 2 == 0 { SlotId::A } else { SlotId::B };
            let _ = match op / 2 {
                0 => disk.set_install_ready(id),
                1 => disk.mark_good(id),
                2 => disk.mark_bad(id),
                3 => disk.prioritize(id),
                _ => disk.boot().map(|_| ()),
            };
        }
        let after = Gpt::parse(disk.device_mut().get_ref()).unwrap();
        prop_assert!(!after.needs_repair());
        for (i, (x, y)) in before.entries.iter().zip(&after.entries).enumerate() {
            let entry = i / 128;
            let in_ab_bits = (entry == 2 || entry == 3) && (48 + 6..48 + 8).contains(&(i % 128));
            if !in_ab_bits {
                prop_assert_eq!(x, y, "byte {} of the entry array changed", i);
            }
        }
        for idx in [2, 3] {
            prop_assert_eq!(after.attributes(idx) & !AB_MASK, noise & !AB_MASK);
        }
        prop_assert_eq!(&after.header.disk_guid, &before.header.disk_guid);
    }
}
