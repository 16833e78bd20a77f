//! Unit and property tests of the pure manifest checks.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;

use super::error::ApplyError;
use super::format::{
    Extent, Header, Manifest, OpType, Operation, PayloadKind, SourceInfo, FORMAT_VERSION,
    MAX_BLOB_BYTES,
};
use super::validate::{check_policy, validate_structure, ApplyPolicy, EMPTY_SHA256};

const SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SLOT: u64 = 64 * 4096;

fn header() -> Header {
    Header {
        version: FORMAT_VERSION,
        manifest_len: 1,
        signature_len: 76,
    }
}

fn data_op(op: OpType, dst: Extent, offset: u64, len: u64) -> Operation {
    Operation {
        op,
        dst: vec![dst],
        src: vec![],
        data_offset: offset,
        data_len: len,
        data_sha256: SHA.into(),
    }
}

fn blobless(op: OpType, dst: Extent, src: Vec<Extent>, offset: u64) -> Operation {
    Operation {
        op,
        dst: vec![dst],
        src,
        data_offset: offset,
        data_len: 0,
        data_sha256: EMPTY_SHA256.into(),
    }
}

/// A valid full manifest of 16 blocks: REPLACE 2, ZERO 6, REPLACE_ZSTD 8.
fn full() -> Manifest {
    Manifest {
        format_version: FORMAT_VERSION,
        kind: PayloadKind::Full,
        version: "2.0.0".into(),
        compatible: "amd64-usr".into(),
        epoch: 3,
        expires: None,
        target_size: 16 * 4096,
        target_sha256: SHA.into(),
        source: None,
        data_len: 8192 + 100,
        operations: vec![
            data_op(OpType::Replace, Extent(0, 2), 0, 8192),
            blobless(OpType::Zero, Extent(2, 6), vec![], 8192),
            data_op(OpType::ReplaceZstd, Extent(8, 8), 8192, 100),
        ],
    }
}

/// A valid delta manifest: SOURCE_COPY 4 blocks, ZSTD_PATCH 4 blocks.
fn delta() -> Manifest {
    Manifest {
        kind: PayloadKind::Delta,
        target_size: 8 * 4096,
        source: Some(SourceInfo {
            version: Some("1.0.0".into()),
            size: 8 * 4096,
            sha256: SHA.into(),
        }),
        data_len: 50,
        operations: vec![
            blobless(OpType::SourceCopy, Extent(0, 4), vec![Extent(4, 4)], 0),
            Operation {
                src: vec![Extent(0, 8)],
                ..data_op(OpType::ZstdPatch, Extent(4, 4), 0, 50)
            },
        ],
        ..full()
    }
}

fn policy() -> ApplyPolicy {
    ApplyPolicy {
        compatible: "amd64-usr".into(),
        installed_version: "1.5.0".parse().unwrap(),
        installed_epoch: 3,
        allow_downgrade: false,
        now: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        min_signatures: 1,
    }
}

fn structure_err(m: &Manifest) -> String {
    validate_structure(m, &header(), SLOT)
        .expect_err("must be rejected")
        .to_string()
}

#[test]
fn valid_manifests_pass() {
    validate_structure(&full(), &header(), SLOT).unwrap();
    validate_structure(&delta(), &header(), SLOT).unwrap();
    check_policy(&full(), &policy()).unwrap();
}

#[test]
fn extents_outside_the_image_are_refused() {
    let mut m = full();
    m.operations[2].dst = vec![Extent(8, 9)];
    assert!(structure_err(&m).contains("outside the target image"));
    m.operations[2].dst = vec![Extent(u64::MAX, 2)];
    assert!(structure_err(&m).contains("outside the target image"));
    m.operations[2].dst = vec![Extent(8, 0)];
    assert!(structure_err(&m).contains("outside the target image"));
    let mut d = delta();
    d.operations[0].src = vec![Extent(6, 4)];
    assert!(structure_err(&d).contains("outside the source image"));
    let mut m = full();
    m.operations[1].dst = vec![];
    assert!(structure_err(&m).contains("no destination"));
}

#[test]
fn overlapping_destinations_are_refused() {
    let mut m = full();
    m.operations[1].dst = vec![Extent(1, 6)];
    let err = structure_err(&m);
    assert!(err.contains("destinations overlap"), "{err}");
}

#[test]
fn data_ranges_must_be_inside_and_in_order() {
    let mut m = full();
    m.data_len = 8192;
    assert!(structure_err(&m).contains("outside the 8192-byte data section"));
    let mut m = full();
    m.operations[2].data_offset = 8000;
    assert!(structure_err(&m).contains("previous one ended at 8192"));
    let mut m = full();
    m.data_len += 1;
    assert!(structure_err(&m).contains("operations use 8292 data bytes"));
}

#[test]
fn op_shape_rules() {
    let mut m = full();
    m.operations[0].data_len = 100;
    m.operations[1].data_offset = 100;
    m.operations[2].data_offset = 100;
    m.data_len = 200;
    assert!(structure_err(&m).contains("REPLACE of 100 bytes"));
    let mut m = full();
    m.operations[1].data_sha256 = SHA.into();
    assert!(structure_err(&m).contains("must carry no data"));
    let mut m = full();
    m.operations[2].data_len = 0;
    m.data_len = 8192;
    assert!(structure_err(&m).contains("has no data"));
    let mut m = full();
    m.operations[2].data_len = MAX_BLOB_BYTES + 1;
    m.data_len = 8192 + MAX_BLOB_BYTES + 1;
    assert!(structure_err(&m).contains("exceeds"));
    let mut m = full();
    m.operations[2].data_sha256 = "XYZ".into();
    assert!(structure_err(&m).contains("not 64 lowercase hex"));
    let mut d = delta();
    d.operations[0].src = vec![Extent(4, 3)];
    assert!(structure_err(&d).contains("SOURCE_COPY of 12288 bytes"));
    let mut d = delta();
    d.operations[1].src = vec![];
    assert!(structure_err(&d).contains("needs source extents"));
    let mut d = delta();
    d.operations[1].op = OpType::ReplaceZstd;
    assert!(structure_err(&d).contains("must not have source extents"));
}

#[test]
fn image_level_rules() {
    let mut m = full();
    m.target_size = SLOT + 4096;
    let err = validate_structure(&m, &header(), SLOT).unwrap_err();
    assert!(matches!(err, ApplyError::TooLarge(_)));
    assert!(err.to_string().contains("does not fit"), "{err}");
    let mut m = full();
    m.target_size = 100;
    assert!(structure_err(&m).contains("not a positive multiple"));
    let mut m = full();
    m.format_version = 7;
    assert!(structure_err(&m).contains("differs from header"));
    let mut m = full();
    m.source = delta().source;
    assert!(structure_err(&m).contains("full payload names a source"));
    let mut d = delta();
    d.source = None;
    assert!(structure_err(&d).contains("does not name its source"));
    let mut d = delta();
    d.source.as_mut().unwrap().size = 10;
    assert!(structure_err(&d).contains("source size 10"));
    let mut m = full();
    m.target_sha256 = "short".into();
    assert!(structure_err(&m).contains("target sha256"));
}

#[test]
fn policy_rules() {
    let mut p = policy();
    p.compatible = "arm64-usr".into();
    let err = check_policy(&full(), &p).unwrap_err().to_string();
    assert!(err.contains("payload is for \"amd64-usr\""), "{err}");
    let mut p = policy();
    p.installed_version = "3.0.0".parse().unwrap();
    let err = check_policy(&full(), &p).unwrap_err().to_string();
    assert!(err.contains("older than the installed 3.0.0"), "{err}");
    p.allow_downgrade = true;
    check_policy(&full(), &p).unwrap();
    let mut p = policy();
    p.installed_epoch = 4;
    let err = check_policy(&full(), &p).unwrap_err().to_string();
    assert!(err.contains("security epoch 3 is lower"), "{err}");
    let mut m = full();
    m.expires = Some("2020-01-01T00:00:00Z".into());
    let err = check_policy(&m, &policy()).unwrap_err().to_string();
    assert!(err.contains("expired at 2020-01-01"), "{err}");
    m.expires = Some("2100-01-01T00:00:00Z".into());
    check_policy(&m, &policy()).unwrap();
    m.expires = Some("tomorrow".into());
    assert!(check_policy(&m, &policy())
        .unwrap_err()
        .to_string()
        .contains("not RFC 3339"));
    let mut m = full();
    m.version = "two".into();
    assert!(check_policy(&m, &policy())
        .unwrap_err()
        .to_string()
        .contains("target version"));
    let mut p = policy();
    p.now = SystemTime::now();
    check_policy(&full(), &p).unwrap();
}

fn arb_manifest() -> impl Strategy<Value = Manifest> {
    // Random ops of random types with random extents and data ranges: the
    // property below compares the validator with an independent oracle.
    let op = (0u8..5, 0u64..40, 0u64..12, 0u64..40, 0u64..6, 0u64..3);
    prop::collection::vec(op, 0..8).prop_map(|ops| {
        let mut offset = 0;
        let operations = ops
            .into_iter()
            .map(|(t, start, count, src_start, len, skew)| {
                let op = [
                    OpType::Replace,
                    OpType::ReplaceZstd,
                    OpType::Zero,
                    OpType::SourceCopy,
                    OpType::ZstdPatch,
                ][t as usize];
                let blob = matches!(
                    op,
                    OpType::Replace | OpType::ReplaceZstd | OpType::ZstdPatch
                );
                let data_len = match op {
                    OpType::Replace => count * 4096,
                    _ if blob => len + 1,
                    _ => 0,
                };
                let src = match op {
                    OpType::SourceCopy => vec![Extent(src_start, count)],
                    OpType::ZstdPatch => vec![Extent(src_start, 2)],
                    _ => vec![],
                };
                let o = Operation {
                    op,
                    dst: vec![Extent(start, count)],
                    src,
                    // skew 0 keeps the data ranges contiguous; others break them.
                    data_offset: if skew == 2 { offset + 1 } else { offset },
                    data_len,
                    data_sha256: if blob {
                        SHA.into()
                    } else {
                        EMPTY_SHA256.into()
                    },
                };
                offset += data_len;
                o
            })
            .collect();
        Manifest {
            kind: PayloadKind::Delta,
            target_size: 32 * 4096,
            source: Some(SourceInfo {
                version: None,
                size: 32 * 4096,
                sha256: SHA.into(),
            }),
            data_len: offset,
            operations,
            ..full()
        }
    })
}

fn oracle(m: &Manifest) -> bool {
    let mut blocks = [false; 32];
    let mut next = 0;
    for op in &m.operations {
        if op.data_offset != next {
            return false;
        }
        next += op.data_len;
        for e in op.dst.iter().chain(op.src.iter()) {
            if e.1 == 0 || e.0 + e.1 > 32 {
                return false;
            }
        }
        for e in &op.dst {
            for b in e.0..e.0 + e.1 {
                if std::mem::replace(&mut blocks[b as usize], true) {
                    return false;
                }
            }
        }
    }
    true
}

proptest! {
    #[test]
    fn validator_agrees_with_oracle(m in arb_manifest()) {
        let ok = validate_structure(&m, &header(), 32 * 4096).is_ok();
        prop_assert_eq!(ok, oracle(&m));
    }

    #[test]
    fn encode_parse_round_trip(m in arb_manifest()) {
        prop_assert_eq!(Manifest::parse(&m.encode()).unwrap(), m);
    }
}
