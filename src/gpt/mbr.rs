//! The protective MBR in LBA 0: a single partition of type 0xEE covering the
//! disk, so MBR-only tools see the disk as in use instead of empty.

/// MBR partition type of the GPT protective partition.
pub const PROTECTIVE_TYPE: u8 = 0xEE;
/// Size of the MBR structure (the first 512 bytes of LBA 0, whatever the sector size).
pub const MBR_BYTES: usize = 512;

/// Whether `mbr` (the first 512 bytes of the disk) has the 0x55AA signature
/// and a 0xEE partition (a plain protective or a hybrid MBR).
pub fn is_protective(mbr: &[u8]) -> bool {
    mbr.len() >= MBR_BYTES
        && mbr[510] == 0x55
        && mbr[511] == 0xAA
        && (0..4).any(|i| mbr[446 + 16 * i + 4] == PROTECTIVE_TYPE)
}

/// A protective MBR for a disk of `disk_sectors` sectors, keeping the boot
/// code and disk signature (bytes 0..446) of `old`.
pub fn protective(old: &[u8], disk_sectors: u64) -> [u8; MBR_BYTES] {
    let mut mbr = [0u8; MBR_BYTES];
    let keep = old.len().min(446);
    mbr[..keep].copy_from_slice(&old[..keep]);
    let p = &mut mbr[446..462];
    // Status 0, CHS start 0/0/2, type 0xEE, CHS end "maximum", LBA 1.
    p[0] = 0x00;
    p[1..4].copy_from_slice(&[0x00, 0x02, 0x00]);
    p[4] = PROTECTIVE_TYPE;
    p[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
    p[8..12].copy_from_slice(&1u32.to_le_bytes());
    // The size saturates at 0xFFFFFFFF for disks beyond 2 TiB (UEFI spec).
    let size = u32::try_from(disk_sectors.saturating_sub(1)).unwrap_or(u32::MAX);
    p[12..16].copy_from_slice(&size.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    mbr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protective_mbr_is_recognised_and_keeps_boot_code() {
        let mut old = [0u8; 512];
        old[..3].copy_from_slice(b"GRB");
        let mbr = protective(&old, 1000);
        assert!(is_protective(&mbr));
        assert_eq!(&mbr[..3], b"GRB");
        assert_eq!(u32::from_le_bytes(mbr[458..462].try_into().unwrap()), 999);
        let huge = protective(&old, u64::MAX);
        assert_eq!(
            u32::from_le_bytes(huge[458..462].try_into().unwrap()),
            u32::MAX
        );
    }

    #[test]
    fn missing_signature_or_type_is_not_protective() {
        assert!(!is_protective(&[0u8; 512]));
        assert!(!is_protective(&[0u8; 10]));
        let mut mbr = protective(&[], 100);
        mbr[446 + 4] = 0x83;
        assert!(!is_protective(&mbr));
    }
}
