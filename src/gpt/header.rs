//! The GPT header: parsing with CRC check, serialization, and the geometry
//! checks that make every later offset computation safe.
//!
//! Everything here is pure (bytes in, values or errors out) so the checks are
//! unit-tested without disks. The reader (`table.rs`) never trusts a header
//! field before it passed [`Header::parse`] and [`Header::check_geometry`].

use anyhow::{bail, ensure, Result};
use uuid::Uuid;

/// "EFI PART", the first 8 bytes of every GPT header.
pub const SIGNATURE: &[u8; 8] = b"EFI PART";
/// GPT revision 1.0, the only one defined.
pub const REVISION_1_0: u32 = 0x0001_0000;
/// Size of the header fields defined by UEFI.
pub const HEADER_SIZE: u32 = 92;
/// Most partition entries we accept (UEFI tools use 128; 4096 leaves room).
pub const MAX_ENTRIES: u32 = 4096;
/// Largest entry array we read (4096 entries of 128 bytes = 512 KiB fits).
pub const MAX_ENTRY_ARRAY_BYTES: u64 = 1 << 20;
/// Largest partition entry size we accept (UEFI: 128 * 2^n).
pub const MAX_ENTRY_SIZE: u32 = 4096;

/// A parsed GPT header (primary or backup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header revision (must be 1.0).
    pub revision: u32,
    /// Bytes covered by the header CRC (92 up to one sector).
    pub header_size: u32,
    /// LBA of this header (1 for the primary, last LBA for the backup).
    pub my_lba: u64,
    /// LBA of the other header.
    pub alternate_lba: u64,
    /// First LBA partitions may use.
    pub first_usable_lba: u64,
    /// Last LBA partitions may use.
    pub last_usable_lba: u64,
    /// Disk GUID.
    pub disk_guid: Uuid,
    /// First LBA of this copy's partition entry array.
    pub entries_lba: u64,
    /// Number of entries in the array.
    pub num_entries: u32,
    /// Size of one entry in bytes.
    pub entry_size: u32,
    /// CRC32 of the entry array (`num_entries * entry_size` bytes).
    pub entries_crc32: u32,
    /// Bytes 92..header_size, kept verbatim (normally none).
    pub extra: Vec<u8>,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

impl Header {
    /// Parse and CRC-check a header from the first bytes of its sector.
    /// Total: any input gives a value or an error, never a panic.
    pub fn parse(sector: &[u8]) -> Result<Header> {
        ensure!(
            sector.len() >= HEADER_SIZE as usize,
            "sector too short for a GPT header"
        );
        ensure!(&sector[..8] == SIGNATURE, "no \"EFI PART\" signature");
        let revision = u32_at(sector, 8);
        ensure!(
            revision == REVISION_1_0,
            "unknown GPT revision {revision:#010x}"
        );
        let header_size = u32_at(sector, 12);
        ensure!(
            (HEADER_SIZE as usize..=sector.len()).contains(&(header_size as usize)),
            "header size {header_size} is outside {HEADER_SIZE}..={}",
            sector.len()
        );
        let stored_crc = u32_at(sector, 16);
        let mut covered = sector[..header_size as usize].to_vec();
        covered[16..20].fill(0);
        let actual_crc = crc32fast::hash(&covered);
        ensure!(
            stored_crc == actual_crc,
            "header CRC32 mismatch (stored {stored_crc:#010x}, computed {actual_crc:#010x})"
        );
        ensure!(u32_at(sector, 20) == 0, "reserved header field is not zero");
        let guid: [u8; 16] = sector[56..72].try_into().expect("16 bytes");
        Ok(Header {
            revision,
            header_size,
            my_lba: u64_at(sector, 24),
            alternate_lba: u64_at(sector, 32),
            first_usable_lba: u64_at(sector, 40),
            last_usable_lba: u64_at(sector, 48),
            disk_guid: Uuid::from_bytes_le(guid),
            entries_lba: u64_at(sector, 72),
            num_entries: u32_at(sector, 80),
            entry_size: u32_at(sector, 84),
            entries_crc32: u32_at(sector, 88),
            extra: sector[HEADER_SIZE as usize..header_size as usize].to_vec(),
        })
    }

    /// Size of the entry array in bytes (bounded by the geometry check).
    pub fn entries_bytes(&self) -> u64 {
        u64::from(self.num_entries) * u64::from(self.entry_size)
    }

    /// Sectors the entry array occupies.
    pub fn entries_sectors(&self, sector_size: u64) -> u64 {
        self.entries_bytes().div_ceil(sector_size)
    }

    /// Check every field that later becomes an offset or a size, for a header
    /// found at `at_lba` of a device of `disk_sectors` sectors. `primary`
    /// says which copy this is. Both copies' entry areas must fit, so either
    /// copy can be rebuilt from this header.
    pub fn check_geometry(
        &self,
        sector_size: u64,
        disk_sectors: u64,
        at_lba: u64,
        primary: bool,
    ) -> Result<()> {
        ensure!(
            self.my_lba == at_lba,
            "header says it is at LBA {} but was read from LBA {at_lba}",
            self.my_lba
        );
        ensure!(
            (1..=MAX_ENTRIES).contains(&self.num_entries),
            "absurd partition entry count {} (expected 1..={MAX_ENTRIES})",
            self.num_entries
        );
        ensure!(
            self.entry_size >= 128
                && self.entry_size <= MAX_ENTRY_SIZE
                && self.entry_size.is_power_of_two(),
            "absurd partition entry size {} (expected 128, 256, ... {MAX_ENTRY_SIZE})",
            self.entry_size
        );
        ensure!(
            self.entries_bytes() <= MAX_ENTRY_ARRAY_BYTES,
            "partition entry array of {} bytes is larger than {MAX_ENTRY_ARRAY_BYTES}",
            self.entries_bytes()
        );
        let n = self.entries_sectors(sector_size);
        let (primary_lba, backup_lba) = if primary {
            (self.my_lba, self.alternate_lba)
        } else {
            (self.alternate_lba, self.my_lba)
        };
        ensure!(
            primary_lba == 1,
            "primary header location {primary_lba} is not LBA 1"
        );
        if backup_lba >= disk_sectors {
            bail!(
                "the device is smaller than its GPT header claims: backup header at LBA {backup_lba} \
                 but the device has only {disk_sectors} sectors of {sector_size} bytes \
                 (truncated image, or copied to a smaller device)"
            );
        }
        ensure!(
            self.last_usable_lba < disk_sectors,
            "last usable LBA {} is past the end of the device ({disk_sectors} sectors)",
            self.last_usable_lba
        );
        ensure!(
            self.first_usable_lba <= self.last_usable_lba,
            "first usable LBA {} is after last usable LBA {}",
            self.first_usable_lba,
            self.last_usable_lba
        );
        // Primary entries: the recorded area (primary) or the canonical LBA 2
        // where a rebuilt primary goes; both must end before the first usable LBA.
        let primary_entries = if primary { self.entries_lba } else { 2 };
        ensure!(
            primary_entries >= 2 && primary_entries.saturating_add(n) <= self.first_usable_lba,
            "primary entry array (LBA {primary_entries}, {n} sectors) overlaps the header or the \
             usable area starting at LBA {}",
            self.first_usable_lba
        );
        // Backup entries: the recorded area (backup) or right before the
        // backup header where a rebuilt backup goes.
        let backup_entries = if primary {
            backup_lba.saturating_sub(n)
        } else {
            self.entries_lba
        };
        ensure!(
            backup_entries > self.last_usable_lba && backup_entries.saturating_add(n) <= backup_lba,
            "backup entry array (LBA {backup_entries}, {n} sectors) overlaps the usable area \
             ending at LBA {} or the backup header at LBA {backup_lba}",
            self.last_usable_lba
        );
        Ok(())
    }

    /// The header as one sector: fields, CRC over `header_size` bytes, zero padding.
    pub fn to_sector(&self, sector_size: usize) -> Vec<u8> {
        let mut b = vec![0u8; sector_size];
        b[..8].copy_from_slice(SIGNATURE);
        b[8..12].copy_from_slice(&self.revision.to_le_bytes());
        b[12..16].copy_from_slice(&self.header_size.to_le_bytes());
        b[24..32].copy_from_slice(&self.my_lba.to_le_bytes());
        b[32..40].copy_from_slice(&self.alternate_lba.to_le_bytes());
        b[40..48].copy_from_slice(&self.first_usable_lba.to_le_bytes());
        b[48..56].copy_from_slice(&self.last_usable_lba.to_le_bytes());
        b[56..72].copy_from_slice(&self.disk_guid.to_bytes_le());
        b[72..80].copy_from_slice(&self.entries_lba.to_le_bytes());
        b[80..84].copy_from_slice(&self.num_entries.to_le_bytes());
        b[84..88].copy_from_slice(&self.entry_size.to_le_bytes());
        b[88..92].copy_from_slice(&self.entries_crc32.to_le_bytes());
        let end = HEADER_SIZE as usize + self.extra.len();
        b[HEADER_SIZE as usize..end].copy_from_slice(&self.extra);
        let crc = crc32fast::hash(&b[..self.header_size as usize]);
        b[16..20].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// This header moved to the other end of the disk: `my_lba` and
    /// `alternate_lba` swapped and the entry array at `entries_lba`.
    pub fn mirrored(&self, entries_lba: u64) -> Header {
        Header {
            my_lba: self.alternate_lba,
            alternate_lba: self.my_lba,
            entries_lba,
            ..self.clone()
        }
    }
}

#[cfg(test)]
#[path = "header_tests.rs"]
mod tests;
