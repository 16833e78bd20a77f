//! Time of the GPT operations the engine and bootloader emulation do, on a
//! real image file with fsync between the two write phases:
//! - flip: open the disk + install-ready (the step after a verified payload), target < 50 ms;
//! - boot: open + gptprio.next with a try decrement;
//! - mark-good: open + mark the booted slot good;
//! - flip (mem): the flip on an in-memory copy (CPU cost without fsync).
//!
//! `cargo bench --bench gpt_flip` measures; under `cargo test --all-targets`
//! (no `--bench` argument) it only does a tiny smoke run.

use std::path::Path;
use std::time::{Duration, Instant};

use ab_updater::gpt::make::{make_disk, DiskSpec};
use ab_updater::gpt::{open_disk, AbDisk};
use ab_updater::slot::SlotId;

fn stats(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<10} n={:<4} median {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms",
        samples.len(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3
    );
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn run(img: &Path, iterations: usize) {
    let (mut flip, mut boot, mut good) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..iterations {
        // Alternate the target so every flip really changes the table.
        let target = if i % 2 == 0 { SlotId::B } else { SlotId::A };
        flip.push(time(|| {
            open_disk(img, true)
                .unwrap()
                .set_install_ready(target)
                .unwrap()
        }));
        boot.push(time(|| {
            assert_eq!(open_disk(img, true).unwrap().boot().unwrap(), target)
        }));
        good.push(time(|| {
            open_disk(img, true).unwrap().mark_good(target).unwrap()
        }));
    }
    stats("flip", flip);
    // The same flip without the file system: open + install-ready on an
    // in-memory copy, i.e. the CPU cost (parse, CRCs, repair checks).
    let small = img.with_extension("small");
    let tiny = DiskSpec {
        efi_size: 1 << 20,
        root_size: 1 << 20,
        ..DiskSpec::new(1 << 20)
    };
    make_disk(&small, &tiny, None, None).unwrap();
    let bytes = std::fs::read(&small).unwrap();
    let mut in_memory = Vec::new();
    for i in 0..iterations {
        let target = if i % 2 == 0 { SlotId::B } else { SlotId::A };
        let dev = std::io::Cursor::new(bytes.clone());
        in_memory.push(time(|| {
            AbDisk::open(dev)
                .unwrap()
                .set_install_ready(target)
                .unwrap()
        }));
    }
    stats("flip (mem)", in_memory);
    stats("boot", boot);
    stats("mark-good", good);
}

fn main() {
    let measure = std::env::args().any(|a| a == "--bench");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let img = dir.path().join("bench.img");
    // Realistic slot size: the file is sparse, only the GPT is ever written.
    make_disk(&img, &DiskSpec::new(1 << 30), None, None).unwrap();
    if measure {
        println!(
            "GPT operations on {} (1 GiB slots, 512-byte sectors, fsync'd)",
            img.display()
        );
        run(&img, 300);
    } else {
        run(&img, 3);
    }
}
