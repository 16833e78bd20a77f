//! Helpers for the GPT unit tests: small in-memory disks and surgical edits
//! that keep CRCs valid, so a test hits exactly the check it is about.

use super::header::Header;
use super::make::{self, DiskSpec};
use super::table::Gpt;

/// A small fresh A/B disk image in memory (1 MiB partitions).
pub fn image(sector_size: u64) -> Vec<u8> {
    let spec = DiskSpec {
        sector_size,
        slot_size: 1 << 20,
        efi_size: 1 << 20,
        root_size: 1 << 20,
    };
    let gpt = make::build(&spec).unwrap();
    let mut dev = std::io::Cursor::new(vec![0u8; (gpt.disk_sectors * sector_size) as usize]);
    super::disk::write_fresh(&mut dev, &gpt).unwrap();
    dev.into_inner()
}

/// The parsed table of a valid image (offsets for tests that then damage it).
pub fn layout(img: &[u8]) -> Gpt {
    Gpt::parse(img).unwrap()
}

/// Offsets of the primary and backup header sectors.
pub fn header_offsets(g: &Gpt) -> [usize; 2] {
    [
        g.sector_size as usize,
        (g.header.alternate_lba * g.sector_size) as usize,
    ]
}

/// Offsets of the primary and backup entry arrays.
pub fn entries_offsets(g: &Gpt) -> [usize; 2] {
    [
        (g.header.entries_lba * g.sector_size) as usize,
        (g.backup_entries_lba * g.sector_size) as usize,
    ]
}

/// Apply `edit` to the headers selected by `which` ([primary, backup]) and
/// re-serialize them with a correct CRC.
pub fn edit_headers(img: &mut [u8], which: [bool; 2], edit: impl Fn(&mut Header)) {
    let g = layout(img);
    edit_headers_of(img, &g, which, edit);
}

/// [`edit_headers`] with the layout of `g` (for images that no longer parse).
/// Headers whose CRC is already broken are left alone.
pub fn edit_headers_of(img: &mut [u8], g: &Gpt, which: [bool; 2], edit: impl Fn(&mut Header)) {
    let ss = g.sector_size as usize;
    for (off, yes) in header_offsets(g).into_iter().zip(which) {
        if yes {
            let Ok(mut h) = Header::parse(&img[off..off + ss]) else {
                continue;
            };
            edit(&mut h);
            img[off..off + ss].copy_from_slice(&h.to_sector(ss));
        }
    }
}

/// Apply `edit` to both entry arrays and fix the entry CRC in both headers.
pub fn edit_entries(img: &mut [u8], edit: impl Fn(&mut [u8])) {
    let g = layout(img);
    let len = g.entries.len();
    let mut entries = g.entries.clone();
    edit(&mut entries);
    for off in entries_offsets(&g) {
        img[off..off + len].copy_from_slice(&entries);
    }
    let crc = crc32fast::hash(&entries);
    edit_headers_of(img, &g, [true, true], |h| h.entries_crc32 = crc);
}

/// Flip one byte at `offset`.
pub fn corrupt(img: &mut [u8], offset: usize) {
    img[offset] ^= 0x5a;
}

/// The error chain of a failed parse as one string.
pub fn parse_err(img: &[u8]) -> String {
    format!("{:#}", Gpt::parse(img).unwrap_err())
}
