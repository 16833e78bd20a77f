//! Partition entries inside a raw entry array: field access, validation of
//! the whole array (bounds, overlaps) and finding the two USR slots.
//!
//! The array is kept as the raw bytes read from disk; we only ever rewrite
//! the 8 attribute bytes of the two USR entries, so every other byte of every
//! entry (names, GUIDs, reserved tails of large entries) survives unchanged.

use anyhow::{bail, ensure, Result};
use uuid::Uuid;

use crate::slot::SlotId;

/// Partition type GUID of CoreOS/Flatcar USR partitions.
pub const USR_TYPE: Uuid = uuid::uuid!("5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6");
/// Partition name field: 36 UTF-16LE code units at byte 56.
pub const NAME_UNITS: usize = 36;

/// Read-only view of one partition entry (at least 128 bytes).
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a>(pub(crate) &'a [u8]);

impl Entry<'_> {
    /// Partition type GUID (nil = unused entry).
    pub fn type_guid(&self) -> Uuid {
        Uuid::from_bytes_le(self.0[0..16].try_into().expect("16 bytes"))
    }

    /// Unique partition GUID (the PARTUUID).
    pub fn unique_guid(&self) -> Uuid {
        Uuid::from_bytes_le(self.0[16..32].try_into().expect("16 bytes"))
    }

    /// First LBA of the partition.
    pub fn first_lba(&self) -> u64 {
        u64::from_le_bytes(self.0[32..40].try_into().expect("8 bytes"))
    }

    /// Last LBA of the partition (inclusive).
    pub fn last_lba(&self) -> u64 {
        u64::from_le_bytes(self.0[40..48].try_into().expect("8 bytes"))
    }

    /// The 64-bit attribute word.
    pub fn attributes(&self) -> u64 {
        u64::from_le_bytes(self.0[48..56].try_into().expect("8 bytes"))
    }

    /// Partition name, decoded from UTF-16LE up to the first NUL.
    pub fn name(&self) -> String {
        let units: Vec<u16> = self.0[56..56 + 2 * NAME_UNITS]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        String::from_utf16_lossy(&units)
    }

    /// Whether the entry describes a partition (type GUID not nil).
    pub fn is_used(&self) -> bool {
        self.0[0..16].iter().any(|&b| b != 0)
    }
}

/// Overwrite the attribute word of the entry at `index` (nothing else).
pub fn set_attributes(array: &mut [u8], entry_size: usize, index: usize, attributes: u64) {
    let start = index * entry_size + 48;
    array[start..start + 8].copy_from_slice(&attributes.to_le_bytes());
}

/// Iterate over the entries of an array.
pub fn iter(array: &[u8], entry_size: usize) -> impl Iterator<Item = Entry<'_>> {
    array.chunks_exact(entry_size).map(Entry)
}

/// Encode a partition name as the 72-byte UTF-16LE name field.
pub fn encode_name(name: &str) -> [u8; 2 * NAME_UNITS] {
    let mut out = [0u8; 2 * NAME_UNITS];
    for (i, unit) in name.encode_utf16().take(NAME_UNITS).enumerate() {
        out[2 * i..2 * i + 2].copy_from_slice(&unit.to_le_bytes());
    }
    out
}

/// Check that every used entry lies inside `first_usable..=last_usable`,
/// has first <= last, and that no two partitions overlap.
pub fn check(array: &[u8], entry_size: usize, first_usable: u64, last_usable: u64) -> Result<()> {
    let mut ranges: Vec<(u64, u64, usize)> = Vec::new();
    for (i, e) in iter(array, entry_size)
        .enumerate()
        .filter(|(_, e)| e.is_used())
    {
        let (first, last) = (e.first_lba(), e.last_lba());
        ensure!(
            first <= last,
            "partition {} ({:?}) ends at LBA {last} before it starts at LBA {first}",
            i + 1,
            e.name()
        );
        ensure!(
            first >= first_usable && last <= last_usable,
            "partition {} ({:?}) at LBA {first}..={last} is outside the usable area \
             {first_usable}..={last_usable}",
            i + 1,
            e.name()
        );
        ranges.push((first, last, i));
    }
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        let ((a_first, a_last, a), (b_first, b_last, b)) = (pair[0], pair[1]);
        if b_first <= a_last {
            bail!(
                "overlapping partitions: {} (LBA {a_first}..={a_last}) and {} (LBA {b_first}..={b_last}); \
                 fix the partition table with sgdisk/cgpt before using this disk",
                a + 1,
                b + 1
            );
        }
    }
    Ok(())
}

/// Where the two USR slots are in the array: entry indexes of A and B.
pub fn find_slots(array: &[u8], entry_size: usize) -> Result<[usize; 2]> {
    let usr: Vec<(usize, Entry)> = iter(array, entry_size)
        .enumerate()
        .filter(|(_, e)| e.type_guid() == USR_TYPE)
        .collect();
    let describe = || {
        usr.iter()
            .map(|(i, e)| format!("{} {:?}", i + 1, e.name()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if usr.len() != 2 {
        bail!(
            "found {} USR partitions (type {USR_TYPE}){}, expected exactly 2 labelled USR-A and USR-B: \
             this is not an A/B disk (create a test disk with `update-server make-disk`)",
            usr.len(),
            if usr.is_empty() { String::new() } else { format!(": {}", describe()) }
        );
    }
    let mut found = [None, None];
    for (i, e) in &usr {
        let name = e.name();
        match SlotId::from_label(&name) {
            Some(id) if found[id as usize].is_none() => found[id as usize] = Some(*i),
            _ => bail!(
                "USR partitions must be labelled USR-A and USR-B, found {}; relabel them \
                 (e.g. `sgdisk -c N:USR-A`)",
                describe()
            ),
        }
    }
    let [Some(a), Some(b)] = found else {
        bail!(
            "USR partitions must be labelled USR-A and USR-B, found {}",
            describe()
        );
    };
    Ok([a, b])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_named(name: &[u8; 2 * NAME_UNITS]) -> Vec<u8> {
        let mut e = vec![0u8; 128];
        e[56..128].copy_from_slice(name);
        e
    }

    #[test]
    fn names_round_trip_through_utf16le() {
        for name in ["USR-A", "EFI-SYSTEM", "ü-ROOT", ""] {
            assert_eq!(Entry(&entry_named(&encode_name(name))).name(), name);
        }
        let long = "x".repeat(40);
        assert_eq!(
            Entry(&entry_named(&encode_name(&long))).name(),
            "x".repeat(36)
        );
        let mut broken = encode_name("AB");
        broken[2..4].copy_from_slice(&0xD800u16.to_le_bytes()); // unpaired surrogate
        assert_eq!(Entry(&entry_named(&broken)).name(), "A\u{fffd}");
    }

    #[test]
    fn set_attributes_touches_only_the_attribute_word() {
        let mut array = vec![0xABu8; 3 * 256];
        set_attributes(&mut array, 256, 1, 0x0102_0304_0506_0708);
        for (i, b) in array.iter().enumerate() {
            if (256 + 48..256 + 56).contains(&i) {
                continue;
            }
            assert_eq!(*b, 0xAB, "byte {i}");
        }
        assert_eq!(Entry(&array[256..512]).attributes(), 0x0102_0304_0506_0708);
        assert_eq!(iter(&array, 256).count(), 3);
    }
}
