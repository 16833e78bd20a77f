//! Round trips of full and delta payloads on realistic ext4 images, fed in
//! chunks of every size, interrupted and resumed at random offsets.

mod common;

use std::fs::File;
use std::io::Cursor;

use ab_updater::io::Region;
use ab_updater::payload::{apply_from_reader, Applier, Checkpoint, OpType, PayloadKind, Readback};
use common::*;
use rand::{Rng, SeedableRng};

const SLOT: u64 = 20 << 20;

fn apply_bytes(disk: &Disk, payload: &[u8], chunk: usize) -> ab_updater::payload::VerifiedImage {
    let mut a = disk.applier();
    for c in payload.chunks(chunk) {
        a.write(c).unwrap();
    }
    a.finish().unwrap()
}

#[test]
fn full_round_trip_leaves_active_slot_untouched() {
    let imgs = images();
    let old = std::fs::read(&imgs.old).unwrap();
    let new = std::fs::read(&imgs.new).unwrap();
    let payload = full_payload();
    let (_, m, ..) = split(payload);
    assert_eq!(m.kind, PayloadKind::Full);
    assert!(m.operations.iter().any(|o| o.op == OpType::Zero));
    assert!(m.operations.iter().any(|o| o.op == OpType::ReplaceZstd));
    assert!(m
        .operations
        .iter()
        .filter(|o| o.op != OpType::Zero)
        .all(|o| o.dst[0].1 * 4096 <= 256 << 10));
    let disk = Disk::new(SLOT, &old);
    let before = sha(&disk.slot_bytes(false));
    let img = apply_bytes(&disk, payload, 64 << 10);
    assert_eq!(img.sha256, sha(&new));
    assert_eq!(disk.b_hash(new.len() as u64), sha(&new));
    assert_eq!(sha(&disk.slot_bytes(false)), before, "active slot changed");
    assert!((payload.len() as u64) < new.len() as u64 / 2);
}

#[test]
fn delta_round_trip_is_small_and_exact() {
    let imgs = images();
    let old = std::fs::read(&imgs.old).unwrap();
    let new = std::fs::read(&imgs.new).unwrap();
    let full = full_payload();
    let delta = delta_payload();
    let (_, m, ..) = split(delta);
    assert_eq!(m.kind, PayloadKind::Delta);
    assert_eq!(m.source.as_ref().unwrap().sha256, sha(&old));
    assert!(m.operations.iter().any(|o| o.op == OpType::SourceCopy));
    // ~5% of the files changed: the delta must be a small fraction of the full payload.
    assert!(
        delta.len() * 100 <= full.len() * 15,
        "delta {} vs full {}",
        delta.len(),
        full.len()
    );
    let disk = Disk::new(SLOT, &old);
    let img = apply_bytes(&disk, delta, 1 << 20);
    assert_eq!(img.sha256, sha(&new));
    assert_eq!(disk.b_hash(new.len() as u64), sha(&new));
    assert_eq!(
        disk.slot_bytes(false)[..old.len()],
        old[..],
        "active slot changed"
    );
}

#[test]
fn moved_blocks_become_source_copies() {
    // Target = source with its halves swapped: everything is a SOURCE_COPY.
    let imgs = images();
    let old = std::fs::read(&imgs.old).unwrap();
    let half = old.len() / 2;
    let dir = tempfile::tempdir().unwrap();
    let swapped = dir.path().join("swapped.img");
    std::fs::write(&swapped, [&old[half..], &old[..half]].concat()).unwrap();
    let delta = build(&swapped, Some(&imgs.old), &opts("2.0.0"), &[key1()]);
    let (_, m, ..) = split(&delta);
    assert!(m
        .operations
        .iter()
        .all(|o| matches!(o.op, OpType::SourceCopy | OpType::Zero)));
    let disk = Disk::new(SLOT, &old);
    apply_bytes(&disk, &delta, 7777);
    assert_eq!(
        disk.b_hash(old.len() as u64),
        sha(&std::fs::read(&swapped).unwrap())
    );
}

#[test]
fn one_byte_chunks_work() {
    let imgs = images();
    let old = std::fs::read(&imgs.old).unwrap();
    let disk = Disk::new(SLOT, &old);
    let img = apply_bytes(&disk, delta_payload(), 1);
    assert_eq!(img.sha256, sha(&std::fs::read(&imgs.new).unwrap()));
}

/// Apply `payload` in `chunk`-sized pieces; after each, sync and read back
/// early as far as `settled_len` allows (as the engine's checkpoint thread
/// does), then finish with that read-back. Returns the image and how much
/// was read back early.
fn apply_reading_back_early(
    disk: &Disk,
    payload: &[u8],
    chunk: usize,
) -> (ab_updater::payload::VerifiedImage, u64) {
    let mut a = disk.applier();
    let mut readback = Readback::default();
    let mut second = disk.target();
    let mut last_settled = 0;
    for c in payload.chunks(chunk) {
        a.write(c).unwrap();
        let Some(settled) = a.settled_len() else {
            continue;
        };
        assert!(settled >= last_settled, "settled_len went back");
        last_settled = settled;
        a.sync().unwrap();
        readback
            .advance(&mut second, settled)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let early = readback.len();
    (a.finish_with(Some(readback)).unwrap(), early)
}

#[test]
fn early_read_back_of_settled_bytes_gives_the_same_verdict() {
    let imgs = images();
    let old = std::fs::read(&imgs.old).unwrap();
    let new = std::fs::read(&imgs.new).unwrap();
    // Slot B starts as 0x5A everywhere: an early read of a block that a
    // later operation writes would hash 0x5A bytes and fail the check.
    for (name, payload) in [("full", full_payload()), ("delta", delta_payload())] {
        let disk = Disk::new(SLOT, &old);
        let (img, early) = apply_reading_back_early(&disk, payload, 256 << 10);
        assert_eq!(img.sha256, sha(&new), "{name}");
        assert!(
            early * 2 >= new.len() as u64,
            "{name}: only {early} of {} bytes read back early",
            new.len()
        );
    }
    // Halves swapped: the operations do not write the slot in order.
    let half = old.len() / 2;
    let dir = tempfile::tempdir().unwrap();
    let swapped = dir.path().join("swapped.img");
    std::fs::write(&swapped, [&old[half..], &old[..half]].concat()).unwrap();
    let delta = build(&swapped, Some(&imgs.old), &opts("2.0.0"), &[key1()]);
    let disk = Disk::new(SLOT, &old);
    let (img, _) = apply_reading_back_early(&disk, &delta, 4096);
    assert_eq!(img.sha256, sha(&std::fs::read(&swapped).unwrap()));
}

#[test]
fn an_early_read_back_of_unsettled_bytes_fails_the_check() {
    // Reading bytes back before their operation wrote them (what a wrong
    // settled_len would do) must never pass: the stale 0x5A bytes are hashed.
    let imgs = images();
    let old = std::fs::read(&imgs.old).unwrap();
    let disk = Disk::new(SLOT, &old);
    let mut stale = Readback::default();
    stale
        .advance(&mut disk.target(), 1 << 20)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut a = disk.applier();
    a.write(full_payload()).unwrap();
    let err = a.finish_with(Some(stale)).unwrap_err();
    assert!(
        matches!(err, ab_updater::payload::ApplyError::TargetMismatch { .. }),
        "{err}"
    );
}

#[test]
fn a_read_back_longer_than_the_image_is_ignored() {
    let imgs = images();
    let old = std::fs::read(&imgs.old).unwrap();
    let new = std::fs::read(&imgs.new).unwrap();
    let disk = Disk::new(SLOT, &old);
    let mut too_long = Readback::default();
    too_long
        .advance(
            &mut Cursor::new(vec![0u8; new.len() + 4096]),
            new.len() as u64 + 1,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let mut a = disk.applier();
    assert_eq!(
        a.settled_len(),
        None,
        "nothing is settled before the manifest verified"
    );
    a.write(full_payload()).unwrap();
    assert_eq!(a.settled_len(), Some(new.len() as u64));
    assert_eq!(a.finish_with(Some(too_long)).unwrap().sha256, sha(&new));
}

fn interrupt_and_resume(payload: &[u8], old: &[u8], want: &str, seed: u64, rounds: usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let cp_path = dir.path().join("checkpoint.json");
    for _ in 0..rounds {
        let disk = Disk::new(SLOT, old);
        let active = sha(&disk.slot_bytes(false));
        let _ = std::fs::remove_file(&cp_path);
        // Interrupt twice at increasing offsets, then run to the end.
        let mut cp: Option<Checkpoint> = None;
        let mut cut = 0usize;
        for _ in 0..2 {
            cut = rng.gen_range(cut..payload.len());
            let mut a = Applier::new(
                disk.target(),
                Some(disk.source()),
                trusted(),
                policy(),
                cp.clone(),
            );
            match &cp {
                Some(c) => {
                    a.write(&payload[..c.prefix_len as usize]).unwrap();
                    let from = c.offset as usize;
                    if from < cut {
                        a.write(&payload[from..cut]).unwrap();
                    }
                }
                None => a.write(&payload[..cut]).unwrap(),
            }
            if a.save_checkpoint(&cp_path).unwrap() {
                cp = Checkpoint::load(&cp_path).unwrap();
            }
            // Dropped without finish: the "power cut".
        }
        let a = Applier::new(
            disk.target(),
            Some(disk.source()),
            trusted(),
            policy(),
            cp.clone(),
        );
        let mut f = Cursor::new(payload.to_vec());
        let img = apply_from_reader(a, &mut f, cp.as_ref()).unwrap();
        assert_eq!(img.sha256, want);
        assert_eq!(sha(&disk.slot_bytes(false)), active, "active slot changed");
    }
}

#[test]
fn interrupted_full_apply_resumes_to_the_same_image() {
    let imgs = images();
    let old = std::fs::read(&imgs.old).unwrap();
    let want = sha(&std::fs::read(&imgs.new).unwrap());
    interrupt_and_resume(full_payload(), &old, &want, 7, 12);
}

#[test]
fn interrupted_delta_apply_resumes_to_the_same_image() {
    let imgs = images();
    let old = std::fs::read(&imgs.old).unwrap();
    let want = sha(&std::fs::read(&imgs.new).unwrap());
    interrupt_and_resume(delta_payload(), &old, &want, 8, 12);
}

#[test]
fn rotation_and_minimum_signatures() {
    let imgs = images();
    let old = std::fs::read(&imgs.old).unwrap();
    // Signed by the new key only; the node trusts old and new keys.
    let payload = build(&imgs.new, None, &opts("2.0.0"), &[key2()]);
    let disk = Disk::new(SLOT, &old);
    let mut keys = trusted();
    let id2 = keys.add(key2().verifying_key());
    let mut a = Applier::new(
        disk.target(),
        Some(disk.source()),
        keys.clone(),
        policy(),
        None,
    );
    a.write(&payload).unwrap();
    assert_eq!(a.finish().unwrap().signed_by, vec![id2]);
    // Requiring two signatures: a doubly signed payload passes.
    let both = build(
        &imgs.new,
        Some(&imgs.old),
        &opts("2.0.0"),
        &[key1(), key2()],
    );
    let mut p = policy();
    p.min_signatures = 2;
    let mut a = Applier::new(disk.target(), Some(disk.source()), keys, p, None);
    a.write(&both).unwrap();
    assert_eq!(a.finish().unwrap().signed_by.len(), 2);
}

#[test]
fn payload_from_a_file_via_apply_from_reader() {
    let imgs = images();
    let old = std::fs::read(&imgs.old).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("full.payload");
    std::fs::write(&p, full_payload()).unwrap();
    let disk = Disk::new(SLOT, &old);
    let a = Applier::new(
        disk.target(),
        None::<Region<File>>,
        trusted(),
        policy(),
        None,
    );
    let img = apply_from_reader(a, &mut File::open(&p).unwrap(), None).unwrap();
    assert_eq!(img.sha256, sha(&std::fs::read(&imgs.new).unwrap()));
}

#[test]
fn checkpoint_files_and_early_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.json");
    assert!(Checkpoint::load(&path).unwrap().is_none());
    let disk = Disk::new(SLOT, &std::fs::read(&images().old).unwrap());
    let mut a = disk.applier();
    a.write(&full_payload()[..10]).unwrap();
    assert_eq!(a.position(), 10);
    assert!(a.checkpoint().is_none() && a.manifest().is_none());
    assert!(!a.save_checkpoint(&path).unwrap());
    assert!(!path.exists());
    std::fs::write(&path, "garbage").unwrap();
    let err = Checkpoint::load(&path).unwrap_err();
    assert!(format!("{err:#}").contains("parsing checkpoint"), "{err:#}");
    let err = Checkpoint::load(dir.path()).unwrap_err();
    assert!(format!("{err:#}").contains("reading checkpoint"), "{err:#}");
}
