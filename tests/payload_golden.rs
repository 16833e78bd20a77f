//! Golden fixtures pin the payload byte layout (docs/payload-format.md).
//! Regenerate with `fixtures/payload/regenerate.sh` after an intended format change.

mod common;

use std::path::Path;

use ab_updater::payload::format::OpType;
use ab_updater::payload::Applier;
use common::*;

const BLOCK: usize = 4096;

fn noise(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 11) as u8
        })
        .collect()
}

fn text(tag: &str) -> Vec<u8> {
    format!("{tag}: the payload golden fixture line\n")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(BLOCK)
        .collect()
}

/// Source: [text A, noise 1, zero, text B, noise 2, zero].
fn source_image() -> Vec<u8> {
    [
        text("A"),
        noise(1, BLOCK),
        vec![0; BLOCK],
        text("B"),
        noise(2, BLOCK),
        vec![0; BLOCK],
    ]
    .concat()
}

/// Target: [zero, noise 1, noise 3 (new), text B' (changed), text A (moved), zero].
fn target_image() -> Vec<u8> {
    let mut b2 = text("B");
    b2[100..120].copy_from_slice(b"CHANGED IN VERSION 2");
    [
        vec![0; BLOCK],
        noise(1, BLOCK),
        noise(3, BLOCK),
        b2,
        text("A"),
        vec![0; BLOCK],
    ]
    .concat()
}

fn check_or_update(name: &str, bytes: &[u8]) {
    let path = repo("fixtures/payload").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, bytes).unwrap();
        return;
    }
    let golden = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run fixtures/payload/regenerate.sh",
            path.display()
        )
    });
    assert!(
        golden == bytes,
        "{name} differs from the golden fixture: the byte layout changed; if intended, bump the format version, update docs/payload-format.md and run fixtures/payload/regenerate.sh"
    );
}

fn images_in(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let src = dir.join("source.img");
    let tgt = dir.join("target.img");
    std::fs::write(&src, source_image()).unwrap();
    std::fs::write(&tgt, target_image()).unwrap();
    (src, tgt)
}

fn golden_opts() -> ab_updater::payload::BuildOptions {
    let mut o = opts("2.0.0");
    o.op_size = 2 * BLOCK as u64;
    o.epoch = 1;
    o.expires = Some("2099-12-31T23:59:59Z".into());
    o
}

#[test]
fn full_payload_matches_golden_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (_, tgt) = images_in(dir.path());
    let p = build(&tgt, None, &golden_opts(), &[key1()]);
    let (_, m, ..) = split(&p);
    let kinds: Vec<OpType> = m.operations.iter().map(|o| o.op).collect();
    assert_eq!(
        kinds,
        [
            OpType::Zero,
            OpType::Replace,
            OpType::ReplaceZstd,
            OpType::Zero
        ]
    );
    check_or_update("full.payload", &p);
}

#[test]
fn delta_payload_matches_golden_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (src, tgt) = images_in(dir.path());
    let mut o = golden_opts();
    o.source_version = Some("1.0.0".into());
    let p = build(&tgt, Some(&src), &o, &[key1()]);
    let (_, m, ..) = split(&p);
    let kinds: Vec<OpType> = m.operations.iter().map(|o| o.op).collect();
    assert!(kinds.contains(&OpType::SourceCopy), "{kinds:?}");
    assert!(kinds.contains(&OpType::ZstdPatch), "{kinds:?}");
    check_or_update("delta.payload", &p);
}

#[test]
fn golden_payloads_apply_to_the_target_image() {
    for (name, with_source) in [("full.payload", false), ("delta.payload", true)] {
        let p = std::fs::read(repo("fixtures/payload").join(name)).unwrap();
        let disk = Disk::new(6 * BLOCK as u64, &source_image());
        let src = with_source.then(|| disk.source());
        let mut a = Applier::new(disk.target(), src, trusted(), policy(), None);
        a.write(&p).unwrap();
        let img = a.finish().unwrap();
        assert_eq!(img.sha256, sha(&target_image()), "{name}");
    }
}
