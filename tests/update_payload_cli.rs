//! `update-payload` end to end on GPT disk images: keygen, build, inspect,
//! verify and the offline apply with its GPT flip or safe failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ab_updater::gpt::make::{make_disk, DiskSpec};
use ab_updater::gpt::{open_disk, SlotInfo};
use ab_updater::slot::SlotId;
use common::*;

const SLOT: u64 = 20 << 20;

fn cli(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_update-payload"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn failed(out: Output, needle: &str) -> String {
    assert!(!out.status.success(), "unexpected success");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(needle), "stderr {err:?} lacks {needle:?}");
    err
}

struct Setup {
    dir: tempfile::TempDir,
    disk: PathBuf,
    pubkey: PathBuf,
    full: PathBuf,
    delta: PathBuf,
}

/// Payloads built once (through the CLI) for all tests of this binary.
fn payloads() -> &'static (tempfile::TempDir, PathBuf, PathBuf) {
    static P: std::sync::OnceLock<(tempfile::TempDir, PathBuf, PathBuf)> =
        std::sync::OnceLock::new();
    P.get_or_init(|| {
        let imgs = images();
        let dir = tempfile::tempdir().unwrap();
        let full = dir.path().join("full.payload");
        let delta = dir.path().join("delta.payload");
        let key = repo("fixtures/keys/insecure-test.key");
        ok(cli(&[
            &"build",
            &"--target",
            &imgs.new,
            &"--version",
            &"2.0.0",
            &"--key",
            &key,
            &"--out",
            &full,
        ]));
        ok(cli(&[
            &"build",
            &"--target",
            &imgs.new,
            &"--source",
            &imgs.old,
            &"--source-version",
            &"1.0.0",
            &"--version",
            &"2.0.0",
            &"--key",
            &key,
            &"--op-size",
            &"524288",
            &"--out",
            &delta,
        ]));
        (dir, full, delta)
    })
}

fn setup() -> Setup {
    let imgs = images();
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    make_disk(&disk, &DiskSpec::new(SLOT), Some(&imgs.old), None).unwrap();
    let (_, full, delta) = payloads();
    Setup {
        dir,
        disk,
        pubkey: repo("fixtures/keys/insecure-test.pub"),
        full: full.clone(),
        delta: delta.clone(),
    }
}

fn slots(disk: &Path) -> [SlotInfo; 2] {
    open_disk(disk, false).unwrap().slots()
}

fn slot_bytes(disk: &Path, id: SlotId, len: usize) -> Vec<u8> {
    let info = open_disk(disk, false).unwrap().slot(id);
    let all = std::fs::read(disk).unwrap();
    all[info.offset_bytes as usize..info.offset_bytes as usize + len].to_vec()
}

#[test]
fn keygen_inspect_verify() {
    let s = setup();
    let name = s.dir.path().join("k");
    let out = ok(cli(&[&"keygen", &"--out", &name]));
    assert!(out.starts_with("key id "), "{out}");
    assert!(s.dir.path().join("k.key").exists() && s.dir.path().join("k.pub").exists());
    failed(cli(&[&"keygen", &"--out", &name]), "refusing to overwrite");

    let text = ok(cli(&[&"inspect", &s.delta]));
    assert!(text.contains("kind:           Delta"), "{text}");
    assert!(text.contains("signed by:      a5e972e4b8619843"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(cli(&[&"inspect", &s.full, &"--json"]))).unwrap();
    assert_eq!(json["manifest"]["version"], "2.0.0");
    assert_eq!(json["signed_by"][0], "a5e972e4b8619843");

    let imgs = images();
    let v = ok(cli(&[&"verify", &s.full, &"--pubkey", &s.pubkey]));
    assert!(v.contains("OK, Full payload for version 2.0.0"), "{v}");
    ok(cli(&[
        &"verify",
        &s.delta,
        &"--pubkey",
        &s.pubkey,
        &"--source",
        &imgs.old,
    ]));
    failed(
        cli(&[
            &"verify",
            &s.delta,
            &"--pubkey",
            &s.pubkey,
            &"--source",
            &imgs.new,
        ]),
        "delta source mismatch",
    );
    let other = repo("fixtures/keys/insecure-test2.pub");
    failed(cli(&[&"verify", &s.full, &"--pubkey", &other]), "(unknown)");
    failed(cli(&[&"inspect", &s.disk]), "wrong magic");
}

#[test]
fn apply_full_then_flip() {
    let s = setup();
    let imgs = images();
    let old = std::fs::read(&imgs.old).unwrap();
    let new = std::fs::read(&imgs.new).unwrap();
    assert_eq!(
        open_disk(&s.disk, false).unwrap().next_boot().unwrap(),
        SlotId::A
    );
    let out = ok(cli(&[
        &"apply",
        &s.full,
        &"--pubkey",
        &s.pubkey,
        &"--disk",
        &s.disk,
        &"--installed-version",
        &"1.0.0",
    ]));
    assert!(out.contains("installed 2.0.0 into slot B"), "{out}");
    let [a, b] = slots(&s.disk);
    assert_eq!((b.tries, b.successful), (1, false));
    assert!(b.priority > a.priority && a.priority > 0);
    assert_eq!(
        open_disk(&s.disk, false).unwrap().next_boot().unwrap(),
        SlotId::B
    );
    assert_eq!(slot_bytes(&s.disk, SlotId::B, new.len()), new);
    assert_eq!(slot_bytes(&s.disk, SlotId::A, old.len()), old);
}

#[test]
fn apply_delta_uses_the_active_slot_as_source() {
    let s = setup();
    let imgs = images();
    let new = std::fs::read(&imgs.new).unwrap();
    let old = std::fs::read(&imgs.old).unwrap();
    ok(cli(&[
        &"apply",
        &s.delta,
        &"--pubkey",
        &s.pubkey,
        &"--disk",
        &s.disk,
        &"--installed-version",
        &"1.0.0",
    ]));
    assert_eq!(slot_bytes(&s.disk, SlotId::B, new.len()), new);
    assert_eq!(slot_bytes(&s.disk, SlotId::A, old.len()), old);
    // Now B boots next; the same delta against B as source must be refused.
    let before = std::fs::read(&s.disk).unwrap();
    failed(
        cli(&[
            &"apply",
            &s.delta,
            &"--pubkey",
            &s.pubkey,
            &"--disk",
            &s.disk,
        ]),
        "delta source mismatch",
    );
    assert_eq!(std::fs::read(&s.disk).unwrap(), before, "disk changed");
}

#[test]
fn refusals_leave_the_disk_unchanged() {
    let s = setup();
    let before = std::fs::read(&s.disk).unwrap();
    let base = |extra: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut v: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"apply", &s.full, &"--disk", &s.disk];
        v.extend_from_slice(extra);
        cli(&v)
    };
    failed(
        base(&[&"--pubkey", &s.pubkey, &"--slot", &"A"]),
        "slot A is the active slot",
    );
    failed(
        base(&[&"--pubkey", &repo("fixtures/keys/insecure-test2.pub")]),
        "nothing was written",
    );
    failed(
        base(&[
            &"--pubkey",
            &s.pubkey,
            &"--revoked-key-id",
            &"a5e972e4b8619843",
        ]),
        "(revoked)",
    );
    failed(
        base(&[&"--pubkey", &s.pubkey, &"--installed-version", &"3.0.0"]),
        "--allow-downgrade",
    );
    failed(
        base(&[&"--pubkey", &s.pubkey, &"--compatible", &"arm64-usr"]),
        "payload is for",
    );
    assert_eq!(std::fs::read(&s.disk).unwrap(), before, "disk changed");
    ok(base(&[
        &"--pubkey",
        &s.pubkey,
        &"--installed-version",
        &"3.0.0",
        &"--allow-downgrade",
    ]));
}

#[test]
fn blob_failing_mid_stream_leaves_target_unbootable() {
    let s = setup();
    let imgs = images();
    let old = std::fs::read(&imgs.old).unwrap();
    let mut p = std::fs::read(&s.full).unwrap();
    let (h, m, ..) = split(&p);
    let last = m.operations.iter().rposition(|o| o.data_len > 0).unwrap();
    p[h.data_start() as usize + m.operations[last].data_offset as usize + 3] ^= 0x80;
    let bad = s.dir.path().join("bad.payload");
    std::fs::write(&bad, &p).unwrap();
    let [a_before, _] = slots(&s.disk);
    let err = failed(
        cli(&[&"apply", &bad, &"--pubkey", &s.pubkey, &"--disk", &s.disk]),
        "sha256 mismatch",
    );
    assert!(
        err.contains("slot B is left unbootable (priority 0)"),
        "{err}"
    );
    let [a, b] = slots(&s.disk);
    assert_eq!(b.priority, 0);
    assert_eq!(a, a_before);
    assert_eq!(slot_bytes(&s.disk, SlotId::A, old.len()), old);
    assert_eq!(
        open_disk(&s.disk, false).unwrap().next_boot().unwrap(),
        SlotId::A
    );
}
