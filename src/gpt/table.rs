//! A whole GPT as read from a device: both headers and entry arrays checked,
//! the valid copy chosen, and the canonical bytes of every copy computed so
//! damaged copies can be rewritten (like `cgpt repair`).
//!
//! Which copy wins (same order as cgpt): the primary header with its own
//! entries, the primary header with the backup's entries, the backup header
//! with its own entries, the backup header with the primary's entries. A pair
//! is usable when the header passed all checks and the entry array matches
//! the header's CRC. When both copies are valid but differ (a crash between
//! writing the backup and the primary), the primary wins: that is what GRUB
//! and cgpt boot from, so repair must agree with them.

use std::io::{Read, Seek, SeekFrom};

use anyhow::{bail, Context, Result};

use super::entries;
use super::header::Header;
use super::mbr;

/// Sector sizes we detect, in probing order.
pub const SECTOR_SIZES: [u64; 2] = [512, 4096];

/// A validated GPT with exactly one USR-A and one USR-B partition.
#[derive(Debug, Clone)]
pub struct Gpt {
    /// Logical sector size in bytes (512 or 4096).
    pub sector_size: u64,
    /// Device size in sectors.
    pub disk_sectors: u64,
    /// The trusted header in primary form (`my_lba` 1, `alternate_lba` = backup).
    pub header: Header,
    /// Where the backup copy keeps its entry array.
    pub backup_entries_lba: u64,
    /// The trusted entry array, raw bytes (`num_entries * entry_size`).
    pub entries: Vec<u8>,
    /// Entry indexes of USR-A and USR-B.
    pub slots: [usize; 2],
    /// Whether LBA 0 holds a protective MBR.
    pub mbr_ok: bool,
    /// Whether the primary header + entries on disk equal the canonical bytes.
    pub primary_ok: bool,
    /// Whether the backup header + entries on disk equal the canonical bytes.
    pub backup_ok: bool,
    /// What was found damaged, for warnings (empty when everything is intact).
    pub problems: Vec<String>,
}

/// One region of the device and the bytes it should hold.
pub type Area = (u64, Vec<u8>);

/// Bounds-checked positioned reads on a device of known length.
struct Dev<'a, R> {
    dev: &'a mut R,
    len: u64,
}

impl<R: Read + Seek> Dev<'_, R> {
    fn read_at(&mut self, offset: u64, len: u64) -> Result<Vec<u8>> {
        if offset.checked_add(len).is_none_or(|end| end > self.len) {
            bail!(
                "the image is truncated: {len} bytes at offset {offset} are past its end ({} bytes)",
                self.len
            );
        }
        self.dev
            .seek(SeekFrom::Start(offset))
            .with_context(|| format!("seeking to byte {offset}"))?;
        // `len` is bounded by the callers (a sector, or a checked entry array).
        let mut buf = vec![0u8; len as usize];
        self.dev
            .read_exact(&mut buf)
            .with_context(|| format!("reading {len} bytes at offset {offset}"))?;
        Ok(buf)
    }
}

impl Gpt {
    /// Parse a whole disk image held in memory. Total: never panics, and
    /// allocates at most about 4 MiB whatever the input (the fuzz entry point).
    pub fn parse(image: &[u8]) -> Result<Gpt> {
        Gpt::read(&mut std::io::Cursor::new(image))
    }

    /// Read and validate the GPT of `dev`, detecting 512- or 4096-byte sectors.
    pub fn read<R: Read + Seek>(dev: &mut R) -> Result<Gpt> {
        let len = dev
            .seek(SeekFrom::End(0))
            .context("finding the device size")?;
        let mut dev = Dev { dev, len };
        if len < 3 * 512 {
            bail!("only {len} bytes: too small to hold a GPT (truncated image, or not a disk)");
        }
        let ss = detect_sector_size(&mut dev)?;
        if len % ss != 0 {
            bail!(
                "size {len} is not a multiple of the {ss}-byte sector size: the image is truncated"
            );
        }
        let disk_sectors = len / ss;
        let mut problems = Vec::new();
        let primary = read_header(&mut dev, ss, disk_sectors, 1, true);
        let backup_lba = match &primary {
            Ok(h) => h.alternate_lba,
            Err(_) => disk_sectors - 1,
        };
        let backup = read_header(&mut dev, ss, disk_sectors, backup_lba, false);
        let (primary, backup) = match (primary, backup) {
            (Err(p), Err(b)) => bail!("no valid GPT header: primary: {p:#}; backup: {b:#}"),
            (p, b) => (
                p.map_err(|e| problems.push(format!("primary GPT header is damaged: {e:#}")))
                    .ok(),
                b.map_err(|e| problems.push(format!("backup GPT header is damaged: {e:#}")))
                    .ok(),
            ),
        };
        let read_entries =
            |dev: &mut Dev<R>, h: &Header| dev.read_at(h.entries_lba * ss, h.entries_bytes());
        let primary_array = primary
            .as_ref()
            .map(|h| read_entries(&mut dev, h))
            .transpose()?;
        let backup_array = backup
            .as_ref()
            .map(|h| read_entries(&mut dev, h))
            .transpose()?;
        for (h, e, which) in [
            (&primary, &primary_array, "primary"),
            (&backup, &backup_array, "backup"),
        ] {
            if let (Some(h), Some(e)) = (h, e) {
                if crc32fast::hash(e) != h.entries_crc32 {
                    problems.push(format!(
                        "{which} GPT partition entry array is damaged (CRC32 mismatch)"
                    ));
                }
            }
        }

        // The first (header, entries) pair whose CRC matches, in cgpt's order.
        let pairs = [
            (primary.as_ref(), primary_array.as_ref(), true),
            (primary.as_ref(), backup_array.as_ref(), true),
            (backup.as_ref(), backup_array.as_ref(), false),
            (backup.as_ref(), primary_array.as_ref(), false),
        ];
        let chosen = pairs.into_iter().find_map(|(h, e, is_primary)| {
            let (h, e) = (h?, e?);
            let fits = e.len() as u64 == h.entries_bytes() && crc32fast::hash(e) == h.entries_crc32;
            fits.then(|| (h.clone(), e.clone(), is_primary))
        });
        let Some((chosen, entries, from_primary)) = chosen else {
            bail!("both GPT partition entry arrays are damaged (CRC32 mismatch in primary and backup)");
        };
        // Normalize to primary form; a primary rebuilt from the backup keeps
        // its entry array at the standard LBA 2 (as cgpt and sgdisk do).
        let header = if from_primary {
            chosen
        } else {
            chosen.mirrored(2)
        };
        let n = header.entries_sectors(ss);
        let backup_lba = header.alternate_lba;
        let backup_entries_lba = match &backup {
            Some(b)
                if b.my_lba == backup_lba
                    && b.entries_lba > header.last_usable_lba
                    && b.entries_lba.saturating_add(n) <= backup_lba =>
            {
                b.entries_lba
            }
            _ => backup_lba - n,
        };
        let entry_size = header.entry_size as usize;
        entries::check(
            &entries,
            entry_size,
            header.first_usable_lba,
            header.last_usable_lba,
        )?;
        let slots = entries::find_slots(&entries, entry_size)?;

        let mut gpt = Gpt {
            sector_size: ss,
            disk_sectors,
            header,
            backup_entries_lba,
            entries,
            slots,
            mbr_ok: true,
            primary_ok: true,
            backup_ok: true,
            problems,
        };
        // Compare every copy on disk with its canonical bytes: anything that
        // differs is rewritten before (or instead of) the next change.
        gpt.mbr_ok = mbr::is_protective(&dev.read_at(0, mbr::MBR_BYTES as u64)?);
        gpt.primary_ok = gpt.matches(&mut dev, &gpt.primary_areas())?;
        gpt.backup_ok = gpt.matches(&mut dev, &gpt.backup_areas())?;
        if !gpt.mbr_ok {
            gpt.problems.push("protective MBR is missing".to_string());
        }
        for (ok, which) in [(gpt.primary_ok, "primary"), (gpt.backup_ok, "backup")] {
            if !ok && !gpt.problems.iter().any(|p| p.starts_with(which)) {
                gpt.problems
                    .push(format!("{which} GPT copy differs from the valid one"));
            }
        }
        Ok(gpt)
    }

    fn matches<R: Read + Seek>(&self, dev: &mut Dev<R>, areas: &[Area]) -> Result<bool> {
        for (offset, bytes) in areas {
            if dev.read_at(*offset, bytes.len() as u64)? != *bytes {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether any copy (MBR, primary, backup) needs rewriting.
    pub fn needs_repair(&self) -> bool {
        !(self.mbr_ok && self.primary_ok && self.backup_ok)
    }

    /// The entry array padded to whole sectors.
    fn entries_padded(&self) -> Vec<u8> {
        let mut bytes = self.entries.clone();
        bytes.resize(
            (self.header.entries_sectors(self.sector_size) * self.sector_size) as usize,
            0,
        );
        bytes
    }

    /// The primary header as it must be on disk, with the current entries CRC.
    pub fn primary_header(&self) -> Header {
        Header {
            entries_crc32: crc32fast::hash(&self.entries),
            ..self.header.clone()
        }
    }

    /// Primary entry array and header, in write order.
    pub fn primary_areas(&self) -> [Area; 2] {
        let h = self.primary_header();
        let ss = self.sector_size;
        [
            (h.entries_lba * ss, self.entries_padded()),
            (h.my_lba * ss, h.to_sector(ss as usize)),
        ]
    }

    /// Backup entry array and header, in write order.
    pub fn backup_areas(&self) -> [Area; 2] {
        let h = self.primary_header().mirrored(self.backup_entries_lba);
        let ss = self.sector_size;
        [
            (h.entries_lba * ss, self.entries_padded()),
            (h.my_lba * ss, h.to_sector(ss as usize)),
        ]
    }

    /// The attribute word of the entry at `index`.
    pub fn attributes(&self, index: usize) -> u64 {
        self.entry(index).attributes()
    }

    /// Read-only view of the entry at `index`.
    pub fn entry(&self, index: usize) -> entries::Entry<'_> {
        let size = self.header.entry_size as usize;
        entries::Entry(&self.entries[index * size..(index + 1) * size])
    }

    /// Replace the attribute word of the entry at `index`.
    pub fn set_attributes(&mut self, index: usize, attributes: u64) {
        entries::set_attributes(
            &mut self.entries,
            self.header.entry_size as usize,
            index,
            attributes,
        );
    }
}

/// Find the sector size by looking for "EFI PART" at LBA 1 and, failing
/// that, in the last sector, for 512 and then 4096 bytes per sector.
fn detect_sector_size<R: Read + Seek>(dev: &mut Dev<R>) -> Result<u64> {
    for ss in SECTOR_SIZES {
        if dev.len >= 2 * ss && dev.read_at(ss, 8)? == super::header::SIGNATURE {
            return Ok(ss);
        }
    }
    for ss in SECTOR_SIZES {
        if dev.len >= 2 * ss && dev.read_at(dev.len - ss, 8)? == super::header::SIGNATURE {
            return Ok(ss);
        }
    }
    bail!(
        "no GPT found: no \"EFI PART\" signature at LBA 1 or in the last sector \
         (512- or 4096-byte sectors); this is not a GPT disk image"
    )
}

fn read_header<R: Read + Seek>(
    dev: &mut Dev<R>,
    ss: u64,
    disk_sectors: u64,
    lba: u64,
    primary: bool,
) -> Result<Header> {
    let sector = dev.read_at(lba * ss, ss)?;
    let header = Header::parse(&sector)?;
    header.check_geometry(ss, disk_sectors, lba, primary)?;
    Ok(header)
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
