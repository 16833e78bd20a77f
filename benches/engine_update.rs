//! End-to-end figures of the update engine (issue 5):
//! - time of one whole update (check → download over loopback → apply →
//!   read-back verify → GPT flip) by the `update-engine` process, against the
//!   offline apply of the same payload from a local file (target ≤ 1.1×);
//! - the daemon's resident memory idle (target ≤ 10 MiB), its peak while
//!   updating (target ≤ 32 MiB) and what it keeps once the update is staged,
//!   from /proc/PID/status.
//!
//! `cargo bench --bench engine_update` measures with a 256 MiB image; under
//! `cargo test --all-targets` (no `--bench`) it runs the same with 4 MiB.

#[path = "../tests/engine_support/mod.rs"]
mod engine_support;

use std::fs::{File, OpenOptions};
use std::time::{Duration, Instant};

use ab_updater::gpt::open_disk;
use ab_updater::io::Region;
use ab_updater::payload::{apply_from_reader, Applier};
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
/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer for clock_gettime.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn offline_apply(sb: &Sandbox) -> (Duration, Duration) {
    let start = Instant::now();
    let cpu = thread_cpu();
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
    let (keys, policy) = ab_updater::testing::insecure_test_trust();
    let applier = Applier::new(target, Some(source), keys, policy, None);
    apply_from_reader(applier, &mut File::open(&sb.payload).unwrap(), None).unwrap();
    (start.elapsed(), thread_cpu() - cpu)
}

/// A plain HTTP download of the payload from the same server, discarded:
/// the floor that the server and loopback set for the engine.
async fn raw_download(sb: &Sandbox) -> Duration {
    let url = sb.url.replace("/v1/update/", "/payloads/v2.payload");
    let start = Instant::now();
    let mut response = reqwest::get(&url).await.unwrap();
    let mut total = 0u64;
    while let Some(chunk) = response.chunk().await.unwrap() {
        total += chunk.len() as u64;
    }
    assert_eq!(total, sb.payload_len);
    start.elapsed()
}

/// What one engine run measured.
struct Run {
    wall: Duration,
    cpu: Duration,
    idle_kib: u64,
    peak_kib: u64,
    after_kib: u64,
    phases: Vec<(String, Duration)>,
}

/// CPU time (user + sys) of process `pid` so far.
fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the comm.
    let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// One update by a fresh engine process (fresh state directory).
async fn engine_run(sb: &Sandbox, idle_wait: Duration) -> Run {
    let _ = std::fs::remove_dir_all(sb.state_dir());
    let (mut child, client) = sb.spawn_process().await;
    tokio::time::sleep(idle_wait).await;
    let idle_kib = proc_kib(child.id(), "VmRSS");
    let mut events = client.events().await.unwrap();
    let start = Instant::now();
    client.check().await.unwrap();
    let mut phases: Vec<(String, Duration)> = Vec::new();
    loop {
        let r = events.next().await.unwrap().unwrap();
        assert_ne!(r.phase, "reporting-error-event", "{r:?}");
        if phases.last().is_none_or(|(p, _)| *p != r.phase) {
            phases.push((r.phase.clone(), start.elapsed()));
        }
        if r.phase == "updated-need-reboot" {
            break;
        }
    }
    let wall = start.elapsed();
    let cpu = proc_cpu(child.id());
    let peak_kib = proc_kib(child.id(), "VmHWM");
    // Idle again, with an update staged: what the daemon keeps until reboot.
    tokio::time::sleep(idle_wait / 2).await;
    let after_kib = proc_kib(child.id(), "VmRSS");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    child.wait().unwrap();
    assert_eq!(sb.slot_bytes(SlotId::B, sb.new_image.len()), sb.new_image);
    Run {
        wall,
        cpu,
        idle_kib,
        peak_kib,
        after_kib,
        phases,
    }
}

fn main() {
    let measure = std::env::args().any(|a| a == "--bench");
    let (mib, rounds) = if measure { (256, 3) } else { (4, 1) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut sb = Sandbox::new(mib, mib as u64 + 8, &[]).await;
        // The daemon's default checkpoint interval, as in production.
        sb.small_checkpoints = false;
        sb.write_config("1.0.0", "[reboot]\nstrategy = \"off\"\n");
        let idle_wait = Duration::from_millis(if measure { 2000 } else { 200 });
        // Alternate the two so that both see the same machine load; the
        // best of each is the figure (noise only ever adds time).
        let mut offline = Vec::new();
        let mut runs = Vec::new();
        let mut raw = Vec::new();
        for _ in 0..rounds {
            offline.push(offline_apply(&sb));
            runs.push(engine_run(&sb, idle_wait).await);
            raw.push(raw_download(&sb).await);
        }
        let best_offline = offline.iter().min_by_key(|o| o.0).unwrap();
        let best = runs.iter().min_by_key(|r| r.wall).unwrap();
        let list = |d: Vec<Duration>| {
            d.iter()
                .map(|d| format!("{:.3}", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(" ")
        };

        println!(
            "engine_update: {mib} MiB image, payload {} bytes, best of {rounds}",
            sb.payload_len
        );
        println!(
            "  offline apply (file -> slot, verify)       {:>8.3} s   runs: {}",
            best_offline.0.as_secs_f64(),
            list(offline.iter().map(|o| o.0).collect())
        );
        println!(
            "  engine end to end (check .. GPT flip)      {:>8.3} s   runs: {}",
            best.wall.as_secs_f64(),
            list(runs.iter().map(|r| r.wall).collect())
        );
        println!(
            "  plain HTTP GET of the payload (no apply)   {:>8.3} s   runs: {}",
            raw.iter().min().unwrap().as_secs_f64(),
            list(raw.clone())
        );
        println!(
            "  ratio {:.2}x (target <= 1.1x)",
            best.wall.as_secs_f64() / best_offline.0.as_secs_f64()
        );
        let steps: Vec<String> = best
            .phases
            .iter()
            .map(|(p, t)| format!("{p} {:.3}", t.as_secs_f64()))
            .collect();
        println!("  phases (s): {}", steps.join(", "));
        println!(
            "  CPU time: daemon (whole update) {} s; offline apply {} s",
            list(runs.iter().map(|r| r.cpu).collect()),
            list(offline.iter().map(|o| o.1).collect())
        );
        println!(
            "  daemon RSS idle {:.1} MiB (target <= 10), peak while updating {:.1} MiB (target <= 32), idle with the update staged {:.1} MiB",
            runs.iter().map(|r| r.idle_kib).max().unwrap() as f64 / 1024.0,
            runs.iter().map(|r| r.peak_kib).max().unwrap() as f64 / 1024.0,
            runs.iter().map(|r| r.after_kib).max().unwrap() as f64 / 1024.0
        );
    });
}
