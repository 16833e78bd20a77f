//! `updatectl slots` (show, --json, mark-good, mark-bad, prioritize), run as a built binary.

mod gpt_support;

use gpt_support::{p, stderr, stdout};

use std::process::{Command, Output};

use ab_updater::gpt::open_disk;
use ab_updater::slot::SlotId;

fn updatectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_updatectl"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn shows_both_slots_and_the_next_boot() {
    let dir = tempfile::tempdir().unwrap();
    let img = gpt_support::make(dir.path(), "disk.img", 512);
    let [a, b] = open_disk(&img, false).unwrap().slots();
    let out = updatectl(&["slots", "--disk", p(&img)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = format!(
        "disk: {} (512-byte sectors)\n\
         SLOT  LABEL  PART  PARTUUID                              PRIORITY  TRIES  SUCCESSFUL\n\
         A     USR-A  3     {:<37} 1         0      yes\n\
         B     USR-B  4     {:<37} 0         0      no\n\
         next boot: A (A: highest priority 1, marked successful; B is not bootable (has priority 0))\n",
        img.display(),
        a.partuuid.to_string(),
        b.partuuid.to_string()
    );
    assert_eq!(stdout(&out), expected);
}

#[test]
fn json_output_has_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let img = gpt_support::make(dir.path(), "disk.img", 4096);
    open_disk(&img, true)
        .unwrap()
        .set_install_ready(SlotId::B)
        .unwrap();
    let out = updatectl(&[
        "--socket",
        "/nonexistent.sock",
        "slots",
        "--disk",
        p(&img),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sector_size"], 4096);
    assert_eq!(v["next_boot"], "B");
    assert_eq!(
        v["reason"],
        "B: highest priority 2 with 1 try left; A has priority 1"
    );
    assert_eq!(v["booted"], serde_json::Value::Null);
    let b = &v["slots"][1];
    assert_eq!(b["slot"], "B");
    assert_eq!(b["label"], "USR-B");
    assert_eq!(b["partition"], 4);
    assert_eq!(
        (
            b["priority"].as_u64(),
            b["tries"].as_u64(),
            b["successful"].as_bool()
        ),
        (Some(2), Some(1), Some(false))
    );
    let partuuid = open_disk(&img, false)
        .unwrap()
        .slot(SlotId::B)
        .partuuid
        .to_string();
    assert_eq!(b["partuuid"], partuuid);
    assert_eq!(v["slots"][0]["successful"], true);
    assert_eq!(v["problems"], serde_json::json!([]));
}

#[test]
fn mark_good_mark_bad_and_prioritize_change_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let img = gpt_support::make(dir.path(), "disk.img", 512);
    let out = updatectl(&["slots", "mark-good", "B", "--disk", p(&img)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "B marked good: priority 2 tries 0 successful 1; next boot: \
         B: highest priority 2, marked successful; A has priority 1\n"
    );
    let out = updatectl(&["slots", "--disk", p(&img), "prioritize", "a"]);
    assert!(
        stdout(&out).starts_with("A prioritized: priority 2 tries 0 successful 1"),
        "{}",
        stdout(&out)
    );
    let out = updatectl(&["slots", "mark-bad", "USR-A", "--disk", p(&img)]);
    assert!(
        stdout(&out).starts_with("A marked bad: priority 0"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("next boot: B:"), "{}", stdout(&out));
    let disk = open_disk(&img, false).unwrap();
    assert_eq!(disk.next_boot().unwrap(), SlotId::B);
    drop(disk);
    gpt_support::assert_tools_agree(&img);
}

#[test]
fn a_change_waits_while_another_process_holds_the_disk() {
    // The daemon (or a partitioning tool) holds the disk's BSD lock while it
    // rewrites the GPT: `updatectl slots mark-bad` waits for it instead of
    // interleaving its own writes.
    let dir = tempfile::tempdir().unwrap();
    let img = gpt_support::make(dir.path(), "disk.img", 512);
    let holder = open_disk(&img, true).unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(400));
        drop(holder);
    });
    let started = std::time::Instant::now();
    let out = updatectl(&["slots", "mark-bad", "B", "--disk", p(&img)]);
    let waited = started.elapsed();
    release.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        waited >= std::time::Duration::from_millis(350),
        "changed the disk after {waited:?}, while the lock was held"
    );
    let disk = open_disk(&img, false).unwrap();
    assert_eq!(disk.slot(SlotId::B).priority, 0);
}

#[test]
fn damaged_copies_are_reported_then_repaired_by_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let img = gpt_support::make(dir.path(), "disk.img", 512);
    let mut bytes = std::fs::read(&img).unwrap();
    let last = bytes.len() - 512;
    bytes[last + 40] ^= 0xff;
    std::fs::write(&img, &bytes).unwrap();
    let out = updatectl(&["slots", "--disk", p(&img)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("warning: backup GPT header is damaged: header CRC32 mismatch"),
        "{}",
        stdout(&out)
    );
    let out = updatectl(&["slots", "prioritize", "A", "--disk", p(&img)]);
    assert!(out.status.success(), "{}", stderr(&out));
    gpt_support::assert_tools_agree(&img);
}

#[test]
fn nothing_bootable_is_shown_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let img = gpt_support::make(dir.path(), "disk.img", 512);
    updatectl(&["slots", "mark-bad", "A", "--disk", p(&img)]);
    let out = updatectl(&["slots", "--disk", p(&img)]);
    assert!(out.status.success());
    assert!(
        stdout(&out)
            .contains("next boot: none (no slot is bootable: A has priority 0; B has priority 0)"),
        "{}",
        stdout(&out)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&updatectl(&["slots", "--disk", p(&img), "--json"]).stdout).unwrap();
    assert_eq!(v["next_boot"], serde_json::Value::Null);
}

#[test]
fn errors_exit_non_zero_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let img = gpt_support::make(dir.path(), "disk.img", 512);
    let out = updatectl(&["slots", "mark-good", "C", "--disk", p(&img)]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown slot \"C\": expected A or B"),
        "{}",
        stderr(&out)
    );
    let text = dir.path().join("t.txt");
    std::fs::write(&text, "x".repeat(10_000)).unwrap();
    let out = updatectl(&["slots", "--disk", p(&text)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("updatectl: reading the GPT of"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("no GPT found"), "{}", stderr(&out));
    let out = updatectl(&[
        "slots",
        "mark-bad",
        "A",
        "--disk",
        p(&dir.path().join("missing.img")),
    ]);
    assert!(stderr(&out).contains("opening disk"), "{}", stderr(&out));
    // A read-only image cannot be changed: a clear error, nothing written.
    let ro = dir.path().join("ro.img");
    std::fs::copy(&img, &ro).unwrap();
    let mut perms = std::fs::metadata(&ro).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&ro, perms).unwrap();
    if nix::unistd::geteuid().is_root() {
        return; // root may write read-only files
    }
    let out = updatectl(&["slots", "mark-bad", "A", "--disk", p(&ro)]);
    assert!(stderr(&out).contains("opening disk"), "{}", stderr(&out));
}

#[test]
fn without_disk_the_host_disk_is_searched() {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if cmdline.contains("usr=") {
        return; // running on an A/B host: the answer depends on its disks
    }
    let out = updatectl(&["slots"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("no disk with USR-A/USR-B found") && err.contains("pass --disk IMG"),
        "{err}"
    );
}
