//! Payload benchmarks (DESIGN/issue 3): apply throughput and peak RSS of a
//! full payload of a 1 GiB ext4 image into an image-file slot, against the
//! shell pipeline `zstd -dc P.zst | tee >(sha256sum) > slot && sha256sum slot`;
//! delta size against `zstd --patch-from -19` and against the full payload;
//! build times.
//!
//! `cargo bench --bench payload_apply` measures (env `BENCH_IMAGE_MIB`,
//! default 1024, and `BENCH_DELTA_MIB`, default 256, size the images;
//! `BENCH_SKIP_APPLY=1` runs only the delta part; `BENCH_DIR` holds the files).
//! Without `--bench` (as under `cargo test --all-targets`) it does a tiny
//! smoke run of the same code paths.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use ab_updater::io::Region;
use ab_updater::payload::keys::load_signing_key;
use ab_updater::payload::{
    apply_from_reader, build_payload, Applier, ApplyPolicy, BuildOptions, TrustedKeys,
    DEFAULT_OP_SIZE,
};
use rand::{Rng, SeedableRng};

const CHILD_ENV: &str = "PAYLOAD_BENCH_CHILD";

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Child process: apply payload argv into slot file, print "secs vmhwm_kib".
fn child(spec: &str) {
    let mut parts = spec.split('|');
    let (payload, slot) = (parts.next().unwrap(), parts.next().unwrap());
    let mut keys = TrustedKeys::new();
    keys.add(
        load_signing_key(&repo("fixtures/keys/insecure-test.key"))
            .unwrap()
            .verifying_key(),
    );
    let policy = ApplyPolicy {
        compatible: "amd64-usr".into(),
        installed_version: "1.0.0".parse().unwrap(),
        installed_epoch: 0,
        allow_downgrade: false,
        now: SystemTime::now(),
        min_signatures: 1,
    };
    let started = Instant::now();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(slot)
        .unwrap();
    let len = f.metadata().unwrap().len();
    let target = Region::new(f, 0, len).unwrap();
    let applier = Applier::new(target, None::<Region<File>>, keys, policy, None);
    apply_from_reader(applier, &mut File::open(payload).unwrap(), None).unwrap();
    let secs = started.elapsed().as_secs_f64();
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("0");
    println!("{secs} {hwm}");
}

fn run_child(payload: &Path, slot: &Path) -> (f64, u64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(
            CHILD_ENV,
            format!("{}|{}", payload.display(), slot.display()),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "apply child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut it = text.split_whitespace();
    (
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse().unwrap(),
    )
}

/// A directory tree of ~`mib` MiB: text files and structured binary files.
fn make_tree(dir: &Path, seed: u64, mib: u64) {
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
        "static",
        "const",
        "struct",
        "int",
        "void",
        "if",
        "else",
        "while",
        "for",
    ];
    let mut total = 0u64;
    let mut i = 0u64;
    while total < mib << 20 {
        let sub = dir.join(format!("d{}", i % 31));
        fs::create_dir_all(&sub).unwrap();
        let size = rng.gen_range(2_000..400_000);
        let data: Vec<u8> = if i % 3 == 0 {
            (0..size)
                .map(|j| {
                    if j % 16 < 5 {
                        rng.gen()
                    } else {
                        (j / 16 % 251) as u8
                    }
                })
                .collect()
        } else {
            let mut s = String::with_capacity(size + 16);
            while s.len() < size {
                s.push_str(words[rng.gen_range(0..words.len())]);
                s.push(if rng.gen_ratio(1, 12) { '\n' } else { ' ' });
            }
            s.into_bytes()
        };
        total += data.len() as u64;
        fs::write(sub.join(format!("f{i:05}")), data).unwrap();
        i += 1;
    }
}

/// Change ~`percent`% of the files in place (and append to some).
fn change_tree(dir: &Path, seed: u64, percent: u32, rewrite: bool) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        if rng.gen_range(0..100) >= percent {
            continue;
        }
        let mut data = fs::read(&f).unwrap();
        if rewrite {
            // A new build of the file: same kind of content, all bytes new.
            for b in &mut data {
                *b = if b.is_ascii() {
                    rng.gen_range(b' '..=b'z')
                } else {
                    rng.gen()
                };
            }
            fs::write(&f, data).unwrap();
            continue;
        }
        let at = rng.gen_range(0..data.len());
        let end = (at + rng.gen_range(100..8000)).min(data.len());
        for b in &mut data[at..end] {
            *b = rng.gen_range(b'a'..=b'z');
        }
        if rng.gen_bool(0.3) {
            data.extend_from_slice(b"appended line of the new version\n");
        }
        fs::write(&f, data).unwrap();
    }
}

fn mkfs(tree: &Path, img: &Path, mib: u64) {
    let st = Command::new("mkfs.ext4")
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
        .unwrap();
    assert!(st.success());
}

/// Old and new image of `mib` MiB, files filling ~`fill`% of it.
fn image_pair(dir: &Path, tag: &str, mib: u64, fill: u64, rewrite: bool) -> (PathBuf, PathBuf) {
    let tree = dir.join(format!("tree-{tag}"));
    make_tree(&tree, 1, mib * fill / 100);
    let old = dir.join(format!("{tag}-old.img"));
    mkfs(&tree, &old, mib);
    change_tree(&tree, 2, 5, rewrite);
    let new = dir.join(format!("{tag}-new.img"));
    mkfs(&tree, &new, mib);
    fs::remove_dir_all(&tree).unwrap();
    (old, new)
}

fn opts(v: &str) -> BuildOptions {
    BuildOptions {
        version: v.into(),
        compatible: "amd64-usr".into(),
        epoch: 0,
        expires: None,
        op_size: DEFAULT_OP_SIZE,
        source_version: None,
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

fn shell(cmd: &str) -> Duration {
    let t = Instant::now();
    let st = Command::new("bash").arg("-c").arg(cmd).status().unwrap();
    assert!(st.success(), "{cmd} failed");
    t.elapsed()
}

fn slot_file(path: &Path, len: u64, prefill: bool) {
    let mut f = File::create(path).unwrap();
    if prefill {
        let chunk = vec![0x5Au8; 1 << 20];
        for _ in 0..len >> 20 {
            f.write_all(&chunk).unwrap();
        }
        f.sync_all().unwrap();
    } else {
        f.set_len(len).unwrap();
    }
}

/// Tiny run of the same code paths without mkfs or the zstd CLI (< 2 s).
fn smoke() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = load_signing_key(&repo("fixtures/keys/insecure-test.key")).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut old: Vec<u8> = (0..1 << 20)
        .map(|i| (i / 64 % 200) as u8 ^ rng.gen_range(0..4))
        .collect();
    old.resize(2 << 20, 0);
    let mut new = old.clone();
    new[4096..8192].fill(7);
    let (old_p, new_p) = (d.join("old.img"), d.join("new.img"));
    fs::write(&old_p, &old).unwrap();
    fs::write(&new_p, &new).unwrap();
    let payload = d.join("full.payload");
    let full = build_payload(
        &new_p,
        None,
        std::slice::from_ref(&key),
        &opts("2.0.0"),
        &payload,
    )
    .unwrap();
    let delta = build_payload(
        &new_p,
        Some(&old_p),
        &[key],
        &opts("2.0.0"),
        &d.join("delta.payload"),
    )
    .unwrap();
    let slot = d.join("slot.img");
    slot_file(&slot, new.len() as u64, false);
    let (secs, hwm) = run_child(&payload, &slot);
    assert_eq!(fs::read(&slot).unwrap(), new);
    println!(
        "payload_apply smoke: full {} B, delta {} B, apply {:.3}s, peak RSS {} KiB (run with --bench for figures)",
        full.payload_len, delta.payload_len, secs, hwm
    );
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
        return;
    }
    let real = std::env::args().any(|a| a == "--bench");
    if !real {
        smoke();
        return;
    }
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let image_mib = env("BENCH_IMAGE_MIB", 1024);
    let delta_mib = env("BENCH_DELTA_MIB", 256);
    let fill = 80;
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or("/tmp".into())).unwrap();
    let d = dir.path();
    let key = load_signing_key(&repo("fixtures/keys/insecure-test.key")).unwrap();

    // --- apply throughput and RSS on the big image ---
    if std::env::var_os("BENCH_SKIP_APPLY").is_none() {
        apply_figures(d, &key, image_mib, fill);
    }
    delta_figures(d, &key, "edited", delta_mib, fill, false);
    delta_figures(d, &key, "rewritten", delta_mib, fill, true);
}

fn apply_figures(d: &Path, key: &ed25519_dalek::SigningKey, image_mib: u64, fill: u64) {
    let (_, new) = image_pair(d, "big", image_mib, fill, false);
    let size = fs::metadata(&new).unwrap().len();
    let payload = d.join("full.payload");
    let (summary, t_full) = timed(|| {
        build_payload(
            &new,
            None,
            std::slice::from_ref(key),
            &opts("2.0.0"),
            &payload,
        )
        .unwrap()
    });
    println!(
        "image {:.0} MiB: full payload {:.1} MiB ({} ops), built in {:.2}s",
        mib(size),
        mib(summary.payload_len),
        summary.manifest.operations.len(),
        t_full.as_secs_f64()
    );
    let slot = d.join("slot.img");
    let mut ours = Vec::new();
    for prefill in [false, true] {
        slot_file(&slot, size, prefill);
        let (secs, hwm) = run_child(&payload, &slot);
        let label = if prefill {
            "pre-filled"
        } else {
            "fresh sparse"
        };
        println!(
            "apply ({label} slot): {:.2}s, {:.0} MB/s, peak RSS {:.1} MiB (incl. fsync + full read-back)",
            secs,
            size as f64 / 1e6 / secs,
            hwm as f64 / 1024.0
        );
        ours.push(secs);
    }
    let zst = d.join("image.zst");
    shell(&format!(
        "zstd -q -9 -T2 -f {} -o {}",
        new.display(),
        zst.display()
    ));
    slot_file(&slot, size, true);
    let t_shell = shell(&format!(
        "zstd -dc {z} | tee >(sha256sum >/dev/null) > {s} && sha256sum {s} >/dev/null",
        z = zst.display(),
        s = slot.display()
    ))
    .as_secs_f64();
    println!(
        "shell pipeline zstd -dc | tee >(sha256sum) > slot && sha256sum slot: {:.2}s, {:.0} MB/s",
        t_shell,
        size as f64 / 1e6 / t_shell
    );
    println!(
        "ratio (shell time / our time): fresh {:.2}, pre-filled {:.2} (target >= 1.0)",
        t_shell / ours[0],
        t_shell / ours[1]
    );
    fs::remove_file(&slot).unwrap();
    fs::remove_file(&zst).unwrap();
}

/// Delta size and build time for ~5% of the files changed: `rewrite` replaces
/// those files entirely, otherwise a 0.1-8 KB region of each is edited.
fn delta_figures(
    d: &Path,
    key: &ed25519_dalek::SigningKey,
    tag: &str,
    delta_mib: u64,
    fill: u64,
    rewrite: bool,
) {
    let (old, new) = image_pair(d, tag, delta_mib, fill, rewrite);
    let full = d.join(format!("{tag}-full.payload"));
    let delta = d.join(format!("{tag}-delta.payload"));
    let (fs_, t_f) = timed(|| {
        build_payload(&new, None, std::slice::from_ref(key), &opts("2.0.0"), &full).unwrap()
    });
    let (ds, t_d) = timed(|| {
        build_payload(
            &new,
            Some(&old),
            std::slice::from_ref(key),
            &opts("2.0.0"),
            &delta,
        )
        .unwrap()
    });
    let zpatch = d.join(format!("{tag}-patch.zst"));
    let t_z = shell(&format!(
        "zstd -q -19 --patch-from={} {} -o {} 2>/dev/null",
        old.display(),
        new.display(),
        zpatch.display()
    ));
    let zlen = fs::metadata(&zpatch).unwrap().len();
    println!(
        "delta pair {delta_mib} MiB (~5% of files {tag}): full {:.2} MiB in {:.2}s, delta {:.3} MiB in {:.2}s, zstd --patch-from -19 {:.3} MiB in {:.2}s",
        mib(fs_.payload_len),
        t_f.as_secs_f64(),
        mib(ds.payload_len),
        t_d.as_secs_f64(),
        mib(zlen),
        t_z.as_secs_f64()
    );
    println!(
        "delta / zstd-patch-from = {:.3} (target <= 1.1), delta / full = {:.1}% (target <= 15%)",
        ds.payload_len as f64 / zlen as f64,
        100.0 * ds.payload_len as f64 / fs_.payload_len as f64
    );
}
