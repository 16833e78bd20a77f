//! End-to-end figures of the update engine (issue 5):
//! - time of one whole update (check → download over loopback → apply →
//!   read-back verify → GPT flip) by the `update-engine` process, against the
//!   offline apply of the same payload from a local file (target ≤ 1.1×);
//! - the daemon's resident memory idle (target ≤ 10 MiB) and its peak while
//!   updating (target ≤ 32 MiB), from /proc/PID/status.
//!
//! `cargo bench --bench engine_update` measures with a 256 MiB image; under
//! `cargo test --all-targets` (no `--bench`) it runs the same with 4 MiB.

#[path = "../tests/engine_support/mod.rs"]
mod engine_support;

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use ab_updater::gpt::open_disk;
use ab_updater::io::Region;
use ab_updater::payload::{apply_from_reader, Applier, ApplyPolicy, TrustedKeys};
use ab_updater::slot::SlotId;
use engine_support::Sandbox;

/// A status line of /proc/PID/status in KiB (`VmRSS`, `VmHWM`).
fn proc_kib(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `update-payload apply` without the GPT flip: the payload from a file
/// into slot B, then the read-back verification.
fn offline_apply(sb: &Sandbox) -> Duration {
    let start = Instant::now();
    let disk = open_disk(&sb.disk, false).unwrap();
    let (a, b) = (disk.slot(SlotId::A), disk.slot(SlotId::B));
    drop(disk);
    let rw = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&sb.disk)
        .unwrap();
    let target = Region::new(rw, b.offset_bytes, b.size_bytes).unwrap();
    let source = Region::new(File::open(&sb.disk).unwrap(), a.offset_bytes, a.size_bytes).unwrap();
    let keys = TrustedKeys::from_files(&[
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/keys/insecure-test.pub")
    ])
    .unwrap();
    let policy = ApplyPolicy {
        compatible: "amd64-usr".into(),
        installed_version: "1.0.0".parse().unwrap(),
        installed_epoch: 0,
        allow_downgrade: false,
        now: SystemTime::now(),
        min_signatures: 1,
    };
    let applier = Applier::new(target, Some(source), keys, policy, None);
    apply_from_reader(applier, &mut File::open(&sb.payload).unwrap(), None).unwrap();
    start.elapsed()
}

fn main() {
    let measure = std::env::args().any(|a| a == "--bench");
    let mib = if measure { 256 } else { 4 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sb = Sandbox::new(mib, mib as u64 + 8, &[]).await;
        sb.write_config("1.0.0", "[reboot]\nstrategy = \"off\"\n");
        let offline = offline_apply(&sb);

        let (mut child, client) = sb.spawn_process().await;
        tokio::time::sleep(Duration::from_millis(if measure { 2000 } else { 200 })).await;
        let idle_kib = proc_kib(child.id(), "VmRSS");
        let mut events = client.events().await.unwrap();
        let start = Instant::now();
        client.check().await.unwrap();
        loop {
            let r = events.next().await.unwrap().unwrap();
            assert_ne!(r.phase, "reporting-error-event", "{r:?}");
            if r.phase == "updated-need-reboot" {
                break;
            }
        }
        let e2e = start.elapsed();
        let peak_kib = proc_kib(child.id(), "VmHWM");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        child.wait().unwrap();
        assert_eq!(sb.slot_bytes(SlotId::B, sb.new_image.len()), sb.new_image);

        println!("engine_update: {mib} MiB image, payload {} bytes", sb.payload_len);
        println!(
            "  offline apply (file -> slot, verify)       {:>8.3} s",
            offline.as_secs_f64()
        );
        println!(
            "  engine end to end (check .. GPT flip)      {:>8.3} s  ({:.2}x offline; target <= 1.1x)",
            e2e.as_secs_f64(),
            e2e.as_secs_f64() / offline.as_secs_f64()
        );
        println!(
            "  daemon RSS idle {:.1} MiB (target <= 10), peak while updating {:.1} MiB (target <= 32)",
            idle_kib as f64 / 1024.0,
            peak_kib as f64 / 1024.0
        );
    });
}
