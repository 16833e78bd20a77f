//! Test-disk creation: layout, sizes, images, refusals.

use super::*;
use crate::gpt::open_disk;
use crate::slot::SlotId;

#[test]
fn sizes_accept_binary_suffixes() {
    assert_eq!(parse_size("64M").unwrap(), 64 << 20);
    assert_eq!(parse_size("1G").unwrap(), 1 << 30);
    assert_eq!(parse_size("512k").unwrap(), 512 << 10);
    assert_eq!(parse_size("4MiB").unwrap(), 4 << 20);
    assert_eq!(parse_size(" 4096 ").unwrap(), 4096);
    assert_eq!(parse_size("2T").unwrap(), 2 << 40);
    let err = |s| format!("{:#}", parse_size(s).unwrap_err());
    assert!(err("64X").contains("unknown unit \"X\""));
    assert!(err("M").contains("invalid size \"M\": expected e.g. 64M or 1G"));
    assert!(err("99999999999999T").contains("too large"));
}

#[test]
fn plan_aligns_partitions_like_flatcar() {
    let (parts, sectors) = plan(&DiskSpec::new(64 << 20)).unwrap();
    let numbers: Vec<u32> = parts.iter().map(|p| p.number).collect();
    assert_eq!(numbers, [1, 3, 4, 9]);
    for p in &parts {
        assert_eq!(p.first_lba % 2048, 0, "{} starts on a MiB", p.label);
    }
    assert_eq!(parts[1].last_lba - parts[1].first_lba + 1, (64 << 20) / 512);
    assert_eq!(sectors, (1 + 16 + 64 + 64 + 16 + 1) * 2048);
    let (parts4k, sectors4k) = plan(&DiskSpec {
        sector_size: 4096,
        ..DiskSpec::new(8 << 20)
    })
    .unwrap();
    assert_eq!(parts4k[1].first_lba, (17 << 20) / 4096);
    assert_eq!(sectors4k * 4096, (1 + 16 + 8 + 8 + 16 + 1) << 20);
}

#[test]
fn bad_specs_are_errors() {
    let err = |spec: DiskSpec| format!("{:#}", plan(&spec).unwrap_err());
    assert!(err(DiskSpec {
        sector_size: 1024,
        ..DiskSpec::new(1 << 20)
    })
    .contains("512 or 4096"));
    assert!(err(DiskSpec::new(1000)).contains("slot size 1000 must be a non-zero multiple"));
    assert!(err(DiskSpec::new(0)).contains("slot size 0"));
    assert!(err(DiskSpec {
        sector_size: 4096,
        ..DiskSpec::new(512 * 3)
    })
    .contains("4096-byte sector"));
    assert!(err(DiskSpec::new(1 << 60)).contains("absurdly large"));
}

#[test]
fn make_disk_copies_images_and_stays_sparse() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.img");
    let b = dir.path().join("b.img");
    std::fs::write(&a, vec![0xAA; 3 << 20]).unwrap();
    let mut b_bytes = vec![0u8; 2 << 20];
    b_bytes[(1 << 20) + 5] = 0xBB;
    std::fs::write(&b, &b_bytes).unwrap();
    let out = dir.path().join("disk.img");
    make_disk(&out, &DiskSpec::new(4 << 20), Some(&a), Some(&b)).unwrap();
    let disk = open_disk(&out, false).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let sa = disk.slot(SlotId::A);
    let sb = disk.slot(SlotId::B);
    let at = |off: u64| bytes[off as usize];
    assert_eq!(at(sa.offset_bytes), 0xAA);
    assert_eq!(at(sa.offset_bytes + (3 << 20) - 1), 0xAA);
    assert_eq!(at(sa.offset_bytes + (3 << 20)), 0);
    assert_eq!(at(sb.offset_bytes + (1 << 20) + 5), 0xBB);
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&out).unwrap();
    assert!(meta.blocks() * 512 < meta.len() / 2, "the image is sparse");
}

#[test]
fn make_disk_refuses_bad_inputs_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.img");
    std::fs::write(&big, vec![1u8; (1 << 20) + 1]).unwrap();
    let out = dir.path().join("disk.img");
    let err = make_disk(&out, &DiskSpec::new(1 << 20), Some(&big), None).unwrap_err();
    assert!(
        format!("{err:#}").contains("larger than the 1048576-byte slot; pass a larger --slot-size"),
        "{err:#}"
    );
    assert!(!out.exists());
    let err = make_disk(
        &out,
        &DiskSpec::new(1 << 20),
        None,
        Some(&dir.path().join("missing")),
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("opening the USR-B image"),
        "{err:#}"
    );
    let err = make_disk(dir.path(), &DiskSpec::new(1 << 20), None, None).unwrap_err();
    assert!(
        format!("{err:#}").contains("is not a regular file; refusing to overwrite it"),
        "{err:#}"
    );
    let err = make_disk(
        &dir.path().join("no/such/dir.img"),
        &DiskSpec::new(1 << 20),
        None,
        None,
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("creating"), "{err:#}");
}

#[test]
fn open_disk_rejects_directories_and_missing_paths() {
    let dir = tempfile::tempdir().unwrap();
    let err = format!("{:#}", open_disk(dir.path(), false).err().unwrap());
    assert!(
        err.contains("is a directory, not a disk image or block device"),
        "{err}"
    );
    let err = format!(
        "{:#}",
        open_disk(&dir.path().join("nope"), false).err().unwrap()
    );
    assert!(err.contains("opening disk"), "{err}");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just text\n".repeat(500)).unwrap();
    let err = format!("{:#}", open_disk(&text, true).err().unwrap());
    assert!(
        err.contains("reading the GPT of") && err.contains("no GPT found"),
        "{err}"
    );
}

#[test]
fn host_disk_is_found_by_partuuid() {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    let dev = dir.path().join("dev");
    std::fs::create_dir_all(&sys).unwrap();
    std::fs::create_dir_all(&dev).unwrap();
    for name in ["loop0", "sda", "vda"] {
        std::fs::create_dir(sys.join(name)).unwrap();
    }
    std::fs::write(dev.join("loop0"), b"").unwrap();
    make_disk(&dev.join("sda"), &DiskSpec::new(1 << 20), None, None).unwrap();
    make_disk(&dev.join("vda"), &DiskSpec::new(1 << 20), None, None).unwrap();
    let b = open_disk(&dev.join("vda"), false)
        .unwrap()
        .slot(SlotId::B)
        .partuuid;
    let (path, slot) =
        crate::gpt::find_host_disk_in(&format!("ro mount.usr=PARTUUID={b}"), &sys, &dev).unwrap();
    assert_eq!((path, slot), (dev.join("vda"), SlotId::B));
    let err = crate::gpt::find_host_disk_in(
        "usr=PARTUUID=7130c94a-213a-4e5a-8e26-6cce9662f132",
        &sys,
        &dev,
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("no disk with USR-A/USR-B found whose slot has PARTUUID 7130c94a"),
        "{msg}"
    );
    assert!(
        msg.contains("looked at 3 block devices") && msg.contains("pass --disk IMG"),
        "{msg}"
    );
}
