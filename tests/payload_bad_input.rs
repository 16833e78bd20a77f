//! Every class of bad payload is refused with a message naming the problem,
//! and nothing is written unless the problem is only found mid-stream.

mod common;

use std::path::PathBuf;

use ab_updater::payload::format::{Extent, Header, FORMAT_VERSION, HEADER_LEN, MAX_MANIFEST_BYTES};
use ab_updater::payload::{Applier, ApplyError, ApplyPolicy, Checkpoint, OpType, TrustedKeys};
use common::*;

const BLOCKS: usize = 48;
const SLOT: u64 = BLOCKS as u64 * 4096;

/// Small synthetic images: text, zero and pseudo-random blocks.
struct Small {
    _dir: tempfile::TempDir,
    old: PathBuf,
    new: PathBuf,
    old_bytes: Vec<u8>,
}

fn image(seed: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut x = 0x9e37_79b9u32;
    for b in 0..BLOCKS {
        for i in 0..4096usize {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let v = match b % 4 {
                0 => 0,
                1 => b"the quick brown fox jumps over the lazy dog "[i % 44],
                2 => (x % 7) as u8,
                _ => (x >> 8) as u8,
            };
            out.push(v);
        }
    }
    // The new version differs in a few blocks.
    for i in 0..seed as usize * 5000 {
        out[9 * 4096 + i] = b'Z';
    }
    out
}

fn small() -> Small {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.img");
    let new = dir.path().join("new.img");
    let old_bytes = image(0);
    std::fs::write(&old, &old_bytes).unwrap();
    std::fs::write(&new, image(1)).unwrap();
    Small {
        _dir: dir,
        old,
        new,
        old_bytes,
    }
}

fn small_opts() -> ab_updater::payload::BuildOptions {
    let mut o = opts("2.0.0");
    o.op_size = 4 * 4096;
    o
}

struct Outcome {
    result: Result<(), ApplyError>,
    wrote: bool,
    target_changed: bool,
}

/// Feed `payload` to a fresh two-slot disk; check the active slot stays intact.
fn run_with(
    s: &Small,
    payload: &[u8],
    keys: TrustedKeys,
    policy: ApplyPolicy,
    cp: Option<Checkpoint>,
    slot: u64,
) -> Outcome {
    let disk = Disk::new(slot, &s.old_bytes);
    let before_b = disk.slot_bytes(true);
    let before_a = disk.slot_bytes(false);
    let mut a = Applier::new(disk.target(), Some(disk.source()), keys, policy, cp);
    let mut result = Ok(());
    for c in payload.chunks(1000) {
        result = a.write(c);
        if result.is_err() {
            break;
        }
    }
    let wrote = a.writing_started();
    if result.is_ok() {
        result = a.finish().map(|_| ());
    }
    assert_eq!(disk.slot_bytes(false), before_a, "active slot changed");
    Outcome {
        result,
        wrote,
        target_changed: disk.slot_bytes(true) != before_b,
    }
}

fn run(s: &Small, payload: &[u8]) -> Outcome {
    run_with(s, payload, trusted(), policy(), None, SLOT)
}

/// Expect a refusal before any write, with `needle` in the message.
fn refused(o: Outcome, needle: &str) -> ApplyError {
    let err = o.result.expect_err("payload must be refused");
    assert!(
        err.to_string().contains(needle),
        "message {:?} lacks {needle:?}",
        err.to_string()
    );
    assert!(!o.wrote && !o.target_changed, "target written for: {err}");
    err
}

fn full(s: &Small) -> Vec<u8> {
    build(&s.new, None, &small_opts(), &[key1()])
}

fn delta(s: &Small) -> Vec<u8> {
    build(&s.new, Some(&s.old), &small_opts(), &[key1()])
}

#[test]
fn good_payloads_apply() {
    let s = small();
    run(&s, &full(&s)).result.unwrap();
    run(&s, &delta(&s)).result.unwrap();
}

#[test]
fn wrong_magic_and_version() {
    let s = small();
    let mut p = full(&s);
    p[0] = b'X';
    assert_eq!(refused(run(&s, &p), "wrong magic").omaha_code(), 21);
    let mut p = full(&s);
    p[11] = 9;
    refused(run(&s, &p), "unsupported payload format version 9");
}

#[test]
fn truncated_anywhere() {
    let s = small();
    let p = full(&s);
    let (h, m, ..) = split(&p);
    let ms = HEADER_LEN;
    let ss = ms + h.manifest_len as usize;
    let ds = h.data_start() as usize;
    refused(run(&s, &p[..10]), "stream ended at byte 10 in the header");
    refused(run(&s, &p[..ms + 5]), "in the manifest");
    refused(run(&s, &p[..ss + 5]), "in the signature block");
    for (i, op) in m
        .operations
        .iter()
        .enumerate()
        .filter(|(_, o)| o.data_len > 0)
    {
        let cut = ds + op.data_offset as usize + op.data_len as usize / 2;
        let err = run(&s, &p[..cut]).result.unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("in the data of operation {i} of")),
            "{err}"
        );
        assert_eq!(err.omaha_code(), 11);
    }
    let err = run(&s, &p[..p.len() - 1]).result.unwrap_err();
    assert!(err.to_string().contains("payload truncated"), "{err}");
}

#[test]
fn trailing_bytes_are_refused() {
    let s = small();
    let mut p = full(&s);
    p.push(0);
    let err = run(&s, &p).result.unwrap_err();
    assert!(err.to_string().contains("trailing bytes"), "{err}");
}

#[test]
fn flipped_bit_in_each_region() {
    let s = small();
    let p = full(&s);
    let (h, m, ..) = split(&p);
    let ss = HEADER_LEN + h.manifest_len as usize;
    let ds = h.data_start() as usize;
    let flip = |at: usize| {
        let mut q = p.clone();
        q[at] ^= 0x10;
        q
    };
    // Header length fields: the manifest/signature boundaries move.
    assert!(run(&s, &flip(20)).result.is_err());
    refused(
        run(&s, &flip(HEADER_LEN + 20)),
        "does not match the header and manifest",
    );
    refused(run(&s, &flip(ss + 2)), "malformed signature block");
    refused(run(&s, &flip(ss + 5)), "(unknown)");
    refused(
        run(&s, &flip(ss + 40)),
        "does not match the header and manifest",
    );
    for (i, op) in m
        .operations
        .iter()
        .enumerate()
        .filter(|(_, o)| o.data_len > 0)
    {
        let o = run(&s, &flip(ds + op.data_offset as usize));
        let err = o.result.unwrap_err();
        assert!(
            matches!(err, ApplyError::BlobHash { index, .. } if index == i),
            "{err}"
        );
        assert_eq!(err.omaha_code(), 29);
    }
    let err = run(&s, &flip(p.len() - 1)).result.unwrap_err();
    assert!(err.to_string().contains("sha256 mismatch"), "{err}");
}

#[test]
fn unknown_and_revoked_keys() {
    let s = small();
    let p = build(&s.new, None, &small_opts(), &[key2()]);
    let err = refused(run(&s, &p), "(unknown)");
    assert_eq!(err.omaha_code(), 12);
    let mut keys = trusted();
    let id2 = keys.add(key2().verifying_key());
    keys.revoke(id2);
    refused(run_with(&s, &p, keys, policy(), None, SLOT), "(revoked)");
    let mut p2 = policy();
    p2.min_signatures = 2;
    refused(
        run_with(&s, &full(&s), trusted(), p2, None, SLOT),
        "2 required",
    );
}

#[test]
fn valid_signature_over_a_different_manifest() {
    let s = small();
    let a = full(&s);
    let mut o = small_opts();
    o.version = "3.0.0".into();
    let b = build(&s.new, None, &o, &[key1()]);
    let (_, _, mb, _, data) = split(&b);
    let (.., sig_a, _) = split(&a);
    let h = Header {
        version: FORMAT_VERSION,
        manifest_len: mb.len() as u64,
        signature_len: sig_a.len() as u64,
    };
    let forged = [h.encode().to_vec(), mb, sig_a, data].concat();
    refused(run(&s, &forged), "does not match the header and manifest");
}

#[test]
fn manifest_too_large() {
    let s = small();
    let h = Header {
        version: FORMAT_VERSION,
        manifest_len: MAX_MANIFEST_BYTES + 1,
        signature_len: 76,
    };
    let err = refused(run(&s, &h.encode()), "manifest length");
    assert_eq!(err.omaha_code(), 32);
}

#[test]
fn resigned_manifests_breaking_structure() {
    let s = small();
    let p = full(&s);
    let (_, m, _, _, data) = split(&p);
    let blob = m.operations.iter().position(|o| o.data_len > 0).unwrap();
    let mut bad = m.clone();
    bad.operations[blob].dst = vec![Extent(BLOCKS as u64 - 1, 4)];
    refused(
        run(&s, &assemble(&bad, &data, &[key1()])),
        "outside the target image",
    );
    let mut bad = m.clone();
    let other = (blob + 1) % bad.operations.len();
    bad.operations[other].dst = bad.operations[blob].dst.clone();
    refused(
        run(&s, &assemble(&bad, &data, &[key1()])),
        "destinations overlap",
    );
    let mut bad = m.clone();
    bad.data_len += 5;
    refused(
        run(&s, &assemble(&bad, &data, &[key1()])),
        "data section is",
    );
    let mut bad = m.clone();
    let last = bad.operations.iter().rposition(|o| o.data_len > 0).unwrap();
    bad.operations[last].data_len += 1_000_000;
    refused(run(&s, &assemble(&bad, &data, &[key1()])), "outside the");
}

#[test]
fn blob_that_hashes_right_but_does_not_decode() {
    // A correctly signed payload whose zstd blob is garbage: found only when
    // decoding, after writing began; the error names the operation.
    let s = small();
    let (_, mut m, _, _, mut data) = split(&full(&s));
    let i = m
        .operations
        .iter()
        .position(|o| o.op == OpType::ReplaceZstd)
        .unwrap();
    let op = &mut m.operations[i];
    let range = op.data_offset as usize..(op.data_offset + op.data_len) as usize;
    data[range.clone()].fill(0x42);
    op.data_sha256 = sha(&data[range]);
    let o = run(&s, &assemble(&m, &data, &[key1()]));
    let err = o.result.unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("operation {i} failed: zstd data does not decode")),
        "{err}"
    );
    assert_eq!(err.omaha_code(), 28);
}

#[test]
fn blob_that_decodes_to_the_wrong_size() {
    let s = small();
    let (_, mut m, _, _, mut data) = split(&full(&s));
    let i = m
        .operations
        .iter()
        .position(|o| o.op == OpType::ReplaceZstd)
        .unwrap();
    let short = zstd::bulk::compress(&[7u8; 100], 3).unwrap();
    let op = &mut m.operations[i];
    let start = op.data_offset as usize;
    let end = start + op.data_len as usize;
    data.splice(start..end, short.iter().copied());
    let delta = short.len() as i64 - op.data_len as i64;
    op.data_len = short.len() as u64;
    op.data_sha256 = sha(&short);
    for later in m.operations.iter_mut().skip(i + 1) {
        later.data_offset = (later.data_offset as i64 + delta) as u64;
    }
    m.data_len = (m.data_len as i64 + delta) as u64;
    let err = run(&s, &assemble(&m, &data, &[key1()])).result.unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("operation {i} failed: produced 100 bytes for")),
        "{err}"
    );
}

#[test]
fn wrong_target_hash_is_caught_by_read_back() {
    let s = small();
    let (_, mut m, _, _, data) = split(&full(&s));
    m.target_sha256 = "0".repeat(64);
    let err = run(&s, &assemble(&m, &data, &[key1()])).result.unwrap_err();
    assert!(
        err.to_string().contains("target verification failed"),
        "{err}"
    );
    assert_eq!(err.omaha_code(), 15);
}

#[test]
fn delta_against_the_wrong_source() {
    let s = small();
    let p = delta(&s);
    let other = small();
    let mut o = other;
    o.old_bytes = image(1);
    let err = refused(run(&o, &p), "delta source mismatch");
    assert_eq!(err.omaha_code(), 20);
    // No source slot at all.
    let disk = Disk::new(SLOT, &s.old_bytes);
    let mut a = Applier::new(
        disk.target(),
        None::<ab_updater::io::Region<std::fs::File>>,
        trusted(),
        policy(),
        None,
    );
    let err = a.write(&p).unwrap_err();
    assert!(
        err.to_string().contains("no source slot was given"),
        "{err}"
    );
    assert!(matches!(a.write(&p), Err(ApplyError::Poisoned)));
}

#[test]
fn policy_refusals() {
    let s = small();
    let p = full(&s);
    let mut pol = policy();
    pol.compatible = "arm64-usr".into();
    let err = refused(
        run_with(&s, &p, trusted(), pol, None, SLOT),
        "payload is for \"amd64-usr\"",
    );
    assert_eq!(err.omaha_code(), 51);
    let mut pol = policy();
    pol.installed_version = "3.0.0".parse().unwrap();
    refused(
        run_with(&s, &p, trusted(), pol.clone(), None, SLOT),
        "older than the installed",
    );
    pol.allow_downgrade = true;
    run_with(&s, &p, trusted(), pol, None, SLOT).result.unwrap();
    let mut o = small_opts();
    o.expires = Some("2021-05-01T00:00:00Z".into());
    let expired = build(&s.new, None, &o, &[key1()]);
    refused(run(&s, &expired), "expired at 2021-05-01");
    let mut o = small_opts();
    o.epoch = 1;
    let e1 = build(&s.new, None, &o, &[key1()]);
    let mut pol = policy();
    pol.installed_epoch = 2;
    refused(
        run_with(&s, &e1, trusted(), pol, None, SLOT),
        "security epoch 1 is lower",
    );
}

#[test]
fn payload_bigger_than_the_slot() {
    let s = small();
    let err = refused(
        run_with(&s, &full(&s), trusted(), policy(), None, SLOT - 4096),
        "does not fit",
    );
    assert_eq!(err.omaha_code(), 32);
}

#[test]
fn checkpoint_of_another_payload_is_refused() {
    let s = small();
    let p = full(&s);
    let (h, ..) = split(&p);
    let cp = Checkpoint {
        payload_id: "ab".repeat(32),
        prefix_len: h.data_start(),
        next_op: 0,
        offset: h.data_start(),
    };
    refused(
        run_with(&s, &p, trusted(), policy(), Some(cp), SLOT),
        "checkpoint does not match",
    );
}

#[test]
fn checkpoint_pointing_between_blobs_is_refused() {
    let s = small();
    let p = full(&s);
    let disk = Disk::new(SLOT, &s.old_bytes);
    let mut a = disk.applier();
    let (h, ..) = split(&p);
    a.write(&p[..h.data_start() as usize]).unwrap();
    let mut cp = a.checkpoint().unwrap();
    cp.offset += 1;
    refused(
        run_with(&s, &p, trusted(), policy(), Some(cp.clone()), SLOT),
        "is not where operation",
    );
    cp.next_op = 10_000;
    refused(
        run_with(&s, &p, trusted(), policy(), Some(cp), SLOT),
        "does not exist",
    );
}

#[test]
fn blob_failing_mid_stream_stops_after_writing_began() {
    let s = small();
    let p = full(&s);
    let (h, m, ..) = split(&p);
    let last = m.operations.iter().rposition(|o| o.data_len > 0).unwrap();
    let mut q = p.clone();
    q[h.data_start() as usize + m.operations[last].data_offset as usize] ^= 1;
    let o = run(&s, &q);
    let err = o.result.unwrap_err();
    assert!(matches!(err, ApplyError::BlobHash { index, .. } if index == last));
    assert!(o.wrote, "earlier operations were written");
}

#[test]
fn failing_first_write_hook_stops_before_writing() {
    let s = small();
    let disk = Disk::new(SLOT, &s.old_bytes);
    let before = disk.slot_bytes(true);
    let mut a = disk
        .applier()
        .before_first_write(|| anyhow::bail!("GPT is read-only"));
    let err = a.write(&full(&s)).unwrap_err();
    assert!(
        err.to_string()
            .contains("preparing the target slot: GPT is read-only"),
        "{err}"
    );
    assert!(!a.writing_started());
    assert!(matches!(a.finish(), Err(ApplyError::Poisoned)));
    assert_eq!(disk.slot_bytes(true), before);
}
