//! Header parsing and serialization round trips.

use super::*;
use crate::gpt::testutil::*;

#[test]
fn round_trip_is_byte_exact() {
    for ss in [512u64, 4096] {
        let img = image(ss);
        let g = layout(&img);
        for off in header_offsets(&g) {
            let sector = &img[off..off + ss as usize];
            let h = Header::parse(sector).unwrap();
            assert_eq!(h.to_sector(ss as usize), sector);
        }
    }
}

#[test]
fn extra_header_bytes_are_kept_and_covered_by_the_crc() {
    let img = image(512);
    let mut h = Header::parse(&img[512..1024]).unwrap();
    h.header_size = 100;
    h.extra = vec![7; 8];
    let sector = h.to_sector(512);
    assert_eq!(Header::parse(&sector).unwrap(), h);
    let mut bad = sector.clone();
    bad[95] = 8;
    assert!(format!("{:#}", Header::parse(&bad).unwrap_err()).contains("CRC32 mismatch"));
}

#[test]
fn bad_fixed_fields_are_errors() {
    let img = image(512);
    let good = img[512..1024].to_vec();
    let err = |b: &[u8]| format!("{:#}", Header::parse(b).unwrap_err());
    assert!(err(&good[..50]).contains("too short"));
    let mut b = good.clone();
    b[0] = b'X';
    assert!(err(&b).contains("no \"EFI PART\" signature"));
    let mut h = Header::parse(&good).unwrap();
    h.revision = 2;
    assert!(err(&h.to_sector(512)).contains("unknown GPT revision"));
    let mut b = good.clone();
    b[12..16].copy_from_slice(&600u32.to_le_bytes());
    assert!(err(&b).contains("header size 600 is outside 92..=512"));
    let mut b = Header::parse(&good).unwrap().to_sector(512);
    b[20] = 1;
    let crc = {
        let mut c = b[..92].to_vec();
        c[16..20].fill(0);
        crc32fast::hash(&c)
    };
    b[16..20].copy_from_slice(&crc.to_le_bytes());
    assert!(err(&b).contains("reserved header field is not zero"));
}

#[test]
fn header_must_be_where_it_was_read() {
    let img = image(512);
    let h = Header::parse(&img[512..1024]).unwrap();
    let g = layout(&img);
    let e = h.check_geometry(512, g.disk_sectors, 5, true).unwrap_err();
    assert!(format!("{e:#}").contains("header says it is at LBA 1 but was read from LBA 5"));
    let mut moved = h.clone();
    moved.my_lba = 3;
    let e = moved
        .check_geometry(512, g.disk_sectors, 3, true)
        .unwrap_err();
    assert!(format!("{e:#}").contains("primary header location 3 is not LBA 1"));
}
