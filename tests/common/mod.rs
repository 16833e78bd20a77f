//! Shared helpers of the payload integration tests: realistic ext4 images,
//! a two-slot disk file, the insecure fixture keys and payload surgery.
#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ab_updater::io::Region;
use ab_updater::payload::format::{Header, Manifest, FORMAT_VERSION, HEADER_LEN};
use ab_updater::payload::keys::load_signing_key;
use ab_updater::payload::{build_payload, sign, Applier, ApplyPolicy, BuildOptions, TrustedKeys};
use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

/// A file in the repository.
pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The insecure test signing key (fixtures/keys/insecure-test.key).
pub fn key1() -> SigningKey {
    load_signing_key(&repo("fixtures/keys/insecure-test.key")).unwrap()
}

/// The second insecure test key, for rotation.
pub fn key2() -> SigningKey {
    load_signing_key(&repo("fixtures/keys/insecure-test2.key")).unwrap()
}

/// Trust only key1.
pub fn trusted() -> TrustedKeys {
    let mut t = TrustedKeys::new();
    t.add(key1().verifying_key());
    t
}

/// The policy of a node running 1.0.0 on amd64-usr.
pub fn policy() -> ApplyPolicy {
    ab_updater::testing::insecure_test_trust().1
}

/// Build options for version `v`.
pub fn opts(v: &str) -> BuildOptions {
    BuildOptions {
        version: v.into(),
        compatible: "amd64-usr".into(),
        epoch: 0,
        expires: None,
        op_size: 256 << 10,
        source_version: None,
    }
}

/// Write a directory tree of text and binary files (~`mib` MiB), deterministic for `seed`.
pub fn make_tree(dir: &Path, seed: u64, mib: usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let words = [
        "update",
        "engine",
        "slot",
        "kernel",
        "partition",
        "payload",
        "verify",
        "boot",
        "usr",
        "systemd",
        "network",
        "config",
        "the",
        "and",
        "of",
        "#include",
        "fn",
        "return",
        "0x1f",
    ];
    let mut total = 0usize;
    let mut i = 0;
    while total < mib << 20 {
        let sub = dir.join(format!("d{}", i % 7));
        fs::create_dir_all(&sub).unwrap();
        let size = rng.gen_range(1_000..120_000);
        let data: Vec<u8> = if i % 3 == 0 {
            // Binary-like: structured records with some noise, compressible ~2x.
            (0..size)
                .map(|j| {
                    if j % 16 < 6 {
                        rng.gen()
                    } else {
                        (j / 16 % 251) as u8
                    }
                })
                .collect()
        } else {
            let mut s = String::new();
            while s.len() < size {
                s.push_str(words[rng.gen_range(0..words.len())]);
                s.push(if rng.gen_ratio(1, 12) { '\n' } else { ' ' });
            }
            s.into_bytes()
        };
        total += data.len();
        fs::write(sub.join(format!("f{i:04}")), data).unwrap();
        i += 1;
    }
}

/// Change about `percent`% of the files (rewrite a region in place or append).
pub fn change_tree(dir: &Path, seed: u64, percent: u32) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut files: Vec<PathBuf> = walk(dir);
    files.sort();
    for f in files {
        if rng.gen_range(0..100) >= percent {
            continue;
        }
        let mut data = fs::read(&f).unwrap();
        let at = rng.gen_range(0..data.len());
        let end = (at + rng.gen_range(100..4000)).min(data.len());
        for b in &mut data[at..end] {
            *b = rng.gen_range(b'a'..=b'z');
        }
        if rng.gen_bool(0.3) {
            data.extend_from_slice(b"appended line of the new version\n");
        }
        fs::write(&f, data).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `mkfs.ext4 -d tree img` with fixed UUID and hash seed (like a reproducible OS build).
pub fn mkfs(tree: &Path, img: &Path, mib: u64) {
    let status = Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-b",
            "4096",
            "-U",
            "6a1b2c3d-0000-4000-8000-000000000001",
        ])
        .args(["-E", "hash_seed=6a1b2c3d-0000-4000-8000-000000000002"])
        .arg("-d")
        .arg(tree)
        .arg(img)
        .arg(format!("{mib}M"))
        .status()
        .expect("mkfs.ext4 (e2fsprogs) must be installed");
    assert!(status.success(), "mkfs.ext4 failed");
}

/// An old and a new ext4 image (~5% of files changed), made once per test binary.
pub struct Images {
    _dir: tempfile::TempDir,
    /// Version 1.0.0.
    pub old: PathBuf,
    /// Version 2.0.0.
    pub new: PathBuf,
}

/// The shared pair of images (16 MiB file systems holding ~4 MiB of files).
pub fn images() -> &'static Images {
    static IMAGES: OnceLock<Images> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        make_tree(&tree, 1, 4);
        let old = dir.path().join("old.img");
        mkfs(&tree, &old, 16);
        change_tree(&tree, 2, 5);
        let new = dir.path().join("new.img");
        mkfs(&tree, &new, 16);
        Images {
            _dir: dir,
            old,
            new,
        }
    })
}

/// sha256 hex of a byte slice.
pub fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A disk file with slot A at [0, slot) and slot B at [slot, 2*slot).
pub struct Disk {
    _dir: tempfile::TempDir,
    /// The disk image file.
    pub path: PathBuf,
    /// Size of each slot.
    pub slot: u64,
}

impl Disk {
    /// A disk whose slot A holds `a` and slot B is pre-filled with 0x5A.
    pub fn new(slot: u64, a: &[u8]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        let mut f = File::create(&path).unwrap();
        f.write_all(a).unwrap();
        f.set_len(slot).unwrap();
        f.seek(SeekFrom::Start(slot)).unwrap();
        f.write_all(&vec![0x5A; slot as usize]).unwrap();
        Self {
            _dir: dir,
            path,
            slot,
        }
    }

    /// Slot A (the active slot, the delta source) for reading.
    pub fn source(&self) -> Region<File> {
        Region::new(File::open(&self.path).unwrap(), 0, self.slot).unwrap()
    }

    /// Slot B (the target) for writing.
    pub fn target(&self) -> Region<File> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .unwrap();
        Region::new(f, self.slot, self.slot).unwrap()
    }

    /// An applier from slot A into slot B, trusting [`key1`], with [`policy`].
    pub fn applier(&self) -> Applier<Region<File>> {
        Applier::new(
            self.target(),
            Some(self.source()),
            trusted(),
            policy(),
            None,
        )
    }

    /// Bytes of slot A or B.
    pub fn slot_bytes(&self, b: bool) -> Vec<u8> {
        let mut r = if b { self.target() } else { self.source() };
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        v
    }

    /// sha256 of the first `len` bytes of slot B.
    pub fn b_hash(&self, len: u64) -> String {
        sha(&self.slot_bytes(true)[..len as usize])
    }
}

/// Build a payload into a new temp file; returns (dir guard, bytes).
pub fn build(
    target: &Path,
    source: Option<&Path>,
    o: &ab_updater::payload::BuildOptions,
    keys: &[SigningKey],
) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p");
    build_payload(target, source, keys, o, &out).unwrap();
    fs::read(out).unwrap()
}

/// Split a payload into (header, manifest, manifest bytes, signature block, data).
pub fn split(p: &[u8]) -> (Header, Manifest, Vec<u8>, Vec<u8>, Vec<u8>) {
    let (h, m) = ab_updater::payload::parse_header_and_manifest(p).unwrap();
    let ms = HEADER_LEN;
    let ss = ms + h.manifest_len as usize;
    let ds = h.data_start() as usize;
    (
        h,
        m,
        p[ms..ss].to_vec(),
        p[ss..ds].to_vec(),
        p[ds..].to_vec(),
    )
}

/// Assemble a payload from a manifest and data, signed by `keys`.
pub fn assemble(m: &Manifest, data: &[u8], keys: &[SigningKey]) -> Vec<u8> {
    let mb = m.encode();
    let h = Header {
        version: FORMAT_VERSION,
        manifest_len: mb.len() as u64,
        signature_len: sign::block_len(keys.len()),
    }
    .encode();
    let sig = sign::sign_block(&sign::signed_digest(&h, &mb), keys);
    [h.to_vec(), mb, sig, data.to_vec()].concat()
}

/// The full payload of `images().new` (version 2.0.0, 256 KiB ops, key1), built once.
pub fn full_payload() -> &'static [u8] {
    static P: OnceLock<Vec<u8>> = OnceLock::new();
    P.get_or_init(|| build(&images().new, None, &opts("2.0.0"), &[key1()]))
}

/// The delta payload old → new (version 2.0.0, 64 KiB ops, key1), built once.
pub fn delta_payload() -> &'static [u8] {
    static P: OnceLock<Vec<u8>> = OnceLock::new();
    P.get_or_init(|| {
        let mut o = opts("2.0.0");
        o.op_size = 64 << 10;
        build(&images().new, Some(&images().old), &o, &[key1()])
    })
}
