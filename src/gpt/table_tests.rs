//! Reading and validating whole tables: every class of bad input gets a
//! clear error, and every single damaged copy is detected as repairable.

use super::*;
use crate::gpt::entries::{encode_name, USR_TYPE};
use crate::gpt::testutil::*;

fn assert_err(img: &[u8], needle: &str) {
    let msg = parse_err(img);
    assert!(msg.contains(needle), "expected {needle:?} in: {msg}");
}

#[test]
fn fresh_images_parse_clean_with_both_sector_sizes() {
    for ss in SECTOR_SIZES {
        let img = image(ss);
        let g = Gpt::parse(&img).unwrap();
        assert_eq!(g.sector_size, ss);
        assert!(!g.needs_repair(), "{:?}", g.problems);
        assert_eq!(g.slots, [2, 3]);
        assert_eq!(g.entry(2).name(), "USR-A");
        assert_eq!(g.entry(3).name(), "USR-B");
    }
}

#[test]
fn each_single_damaged_copy_is_found_and_the_other_wins() {
    for ss in SECTOR_SIZES {
        let clean = image(ss);
        let g = layout(&clean);
        let [ph, bh] = header_offsets(&g);
        let [pe, be] = entries_offsets(&g);
        for (offset, primary_bad) in [
            (ph + 30, true),
            (pe + 3 * 128 + 5, true),
            (bh + 30, false),
            (be + 7, false),
        ] {
            let mut img = clean.clone();
            corrupt(&mut img, offset);
            let damaged = Gpt::parse(&img).unwrap();
            assert_eq!(
                damaged.entries, g.entries,
                "the valid copy's entries are used"
            );
            assert_eq!(
                (damaged.primary_ok, damaged.backup_ok),
                (!primary_bad, primary_bad)
            );
            assert!(!damaged.problems.is_empty());
            // The canonical bytes of the damaged copy equal the original ones.
            let want = if primary_bad {
                g.primary_areas()
            } else {
                g.backup_areas()
            };
            let got = if primary_bad {
                damaged.primary_areas()
            } else {
                damaged.backup_areas()
            };
            assert_eq!(want, got);
        }
        let mut img = clean.clone();
        img[..512].fill(0);
        let g = Gpt::parse(&img).unwrap();
        assert!(!g.mbr_ok && g.primary_ok && g.backup_ok);
    }
}

#[test]
fn both_headers_corrupt_is_an_error() {
    let mut img = image(512);
    let g = layout(&img);
    for off in header_offsets(&g) {
        corrupt(&mut img, off + 40);
    }
    assert_err(&img, "no valid GPT header: primary: header CRC32 mismatch");
}

#[test]
fn both_entry_arrays_corrupt_is_an_error() {
    let mut img = image(4096);
    let g = layout(&img);
    for off in entries_offsets(&g) {
        corrupt(&mut img, off + 200);
    }
    assert_err(&img, "both GPT partition entry arrays are damaged");
}

#[test]
fn truncated_images_are_errors() {
    let img = image(512);
    assert_err(
        &img[..img.len() / 2],
        "the device is smaller than its GPT header claims",
    );
    assert_err(&img[..img.len() / 2], "truncated");
    assert_err(&img[..1000], "only 1000 bytes: too small to hold a GPT");
    assert_err(
        &img[..img.len() - 100],
        "not a multiple of the 512-byte sector size",
    );
    assert_err(&[], "only 0 bytes");
}

#[test]
fn not_a_disk_is_an_error() {
    let text = "hello, this is a text file\n".repeat(400);
    assert_err(text.as_bytes(), "no GPT found");
    assert_err(&vec![0u8; 1 << 20], "this is not a GPT disk image");
}

#[test]
fn absurd_header_fields_are_errors() {
    type Edit = fn(&mut Header);
    let cases: [(Edit, &str); 9] = [
        (
            |h| h.num_entries = 1_000_000_000,
            "absurd partition entry count 1000000000",
        ),
        (|h| h.num_entries = 0, "absurd partition entry count 0"),
        (|h| h.entry_size = 0, "absurd partition entry size 0"),
        (|h| h.entry_size = 200, "absurd partition entry size 200"),
        (
            |h| h.entry_size = 1 << 30,
            "absurd partition entry size 1073741824",
        ),
        (
            |h| h.last_usable_lba = u64::MAX - 3,
            "past the end of the device",
        ),
        (
            |h| h.first_usable_lba = h.last_usable_lba + 1,
            "is after last usable LBA",
        ),
        (
            |h| h.first_usable_lba = 3,
            "overlaps the header or the usable area",
        ),
        (|h| h.entries_lba = 1 << 60, "entry array"),
    ];
    for (edit, needle) in cases {
        let mut img = image(512);
        edit_headers(&mut img, [true, true], edit);
        assert_err(&img, needle);
    }
    // The backup's location field past the end of the disk.
    let mut img = image(512);
    edit_headers(&mut img, [true, false], |h| h.alternate_lba = 1 << 40);
    let g = Gpt::parse(&img);
    // The primary is rejected, the backup at the real end still works.
    assert!(g.unwrap().problems[0].contains("smaller than its GPT header claims"));
}

#[test]
fn header_with_only_primary_absurd_falls_back_to_backup() {
    let mut img = image(512);
    edit_headers(&mut img, [true, false], |h| h.num_entries = 1_000_000_000);
    let g = Gpt::parse(&img).unwrap();
    assert!(!g.primary_ok && g.backup_ok);
    assert!(
        g.problems[0].contains("absurd partition entry count"),
        "{:?}",
        g.problems
    );
}

fn set_range(e: &mut [u8], index: usize, first: u64, last: u64) {
    let e = &mut e[index * 128..(index + 1) * 128];
    e[32..40].copy_from_slice(&first.to_le_bytes());
    e[40..48].copy_from_slice(&last.to_le_bytes());
}

#[test]
fn overlapping_and_misplaced_partitions_are_errors() {
    let mut img = image(512);
    let g = layout(&img);
    let b_first = g.entry(3).first_lba();
    edit_entries(&mut img, |e| set_range(e, 2, 2048 * 2, b_first));
    assert_err(&img, "overlapping partitions: 3 (LBA");
    let mut img = image(512);
    edit_entries(&mut img, |e| set_range(e, 0, 10, 2000));
    assert_err(&img, "outside the usable area");
    let mut img = image(512);
    edit_entries(&mut img, |e| set_range(e, 0, 3000, 2999));
    assert_err(&img, "ends at LBA 2999 before it starts at LBA 3000");
}

#[test]
fn wrong_number_of_usr_slots_is_an_error() {
    let mut none = image(512);
    edit_entries(&mut none, |e| {
        e[2 * 128..2 * 128 + 16].fill(0);
        e[3 * 128..3 * 128 + 16].fill(0);
    });
    assert_err(
        &none,
        "found 0 USR partitions (type 5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6), expected exactly 2",
    );
    let mut one = image(512);
    edit_entries(&mut one, |e| e[3 * 128..3 * 128 + 16].fill(0));
    assert_err(&one, "found 1 USR partitions");
    let mut three = image(512);
    edit_entries(&mut three, |e| {
        e[8 * 128..8 * 128 + 16].copy_from_slice(&USR_TYPE.to_bytes_le());
        e[8 * 128 + 56..9 * 128].copy_from_slice(&encode_name("USR-C"));
    });
    assert_err(&three, "found 3 USR partitions");
    let mut twins = image(512);
    edit_entries(&mut twins, |e| {
        e[3 * 128 + 56..4 * 128].copy_from_slice(&encode_name("USR-A"))
    });
    assert_err(
        &twins,
        "must be labelled USR-A and USR-B, found 3 \"USR-A\", 4 \"USR-A\"",
    );
}

#[test]
fn parse_is_total_on_arbitrary_small_inputs() {
    // A cheap in-tree stand-in for the fuzzer: damage each header byte.
    let clean = image(512);
    for i in 512..512 + 92 {
        for v in [0u8, 1, 0x7f, 0x80, 0xff] {
            let mut img = clean.clone();
            img[i] = v;
            let _ = Gpt::parse(&img);
            // Again with a correct CRC so the field checks are reached.
            let mut covered = img[512..512 + 92].to_vec();
            covered[16..20].fill(0);
            let crc = crc32fast::hash(&covered);
            img[512 + 16..512 + 20].copy_from_slice(&crc.to_le_bytes());
            let _ = Gpt::parse(&img);
        }
    }
}
