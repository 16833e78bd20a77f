//! `update-server make-disk` and `update-server boot`, run as built binaries.

mod gpt_support;

use gpt_support::{p, stderr, stdout};

use std::process::{Command, Output};

use ab_updater::gpt::{emulated, open_disk};
use ab_updater::slot::SlotId;

fn server(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_update-server"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn make_disk_creates_a_flatcar_like_disk_with_images() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    let usr_a = dir.path().join("a.bin");
    std::fs::write(&usr_a, b"USR-A image contents").unwrap();
    let out = server(&[
        "make-disk",
        "--out",
        p(&img),
        "--slot-size",
        "2M",
        "--usr-a",
        p(&usr_a),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("created {} (512-byte sectors", img.display())),
        "{text}"
    );
    let disk = open_disk(&img, false).unwrap();
    let a = disk.slot(SlotId::A);
    assert!(
        text.contains(&format!(
            "USR-A partition 3 PARTUUID={} 2097152 bytes",
            a.partuuid
        )),
        "{text}"
    );
    let bytes = std::fs::read(&img).unwrap();
    let at = a.offset_bytes as usize;
    assert_eq!(&bytes[at..at + 20], b"USR-A image contents");
    gpt_support::assert_tools_agree(&img);
}

#[test]
fn make_disk_with_4096_byte_sectors() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    let out = server(&[
        "make-disk",
        "--out",
        p(&img),
        "--slot-size",
        "1M",
        "--sector-size",
        "4096",
        "--efi-size",
        "1M",
        "--root-size",
        "1M",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(open_disk(&img, false).unwrap().sector_size(), 4096);
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 6 << 20);
}

#[test]
fn make_disk_errors_exit_non_zero_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![1u8; (1 << 20) + 1]).unwrap();
    let cases: [(Vec<&str>, &str); 4] = [
        (vec!["--slot-size", "64X"], "unknown unit \"X\""),
        (
            vec!["--slot-size", "1M", "--usr-b", p(&big)],
            "larger than the 1048576-byte slot; pass a larger --slot-size",
        ),
        (
            vec!["--slot-size", "1M", "--sector-size", "1024"],
            "sector size must be 512 or 4096",
        ),
        (
            vec!["--slot-size", "1000"],
            "slot size 1000 must be a non-zero multiple of the 512-byte sector size",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["make-disk", "--out", p(&img)];
        args.extend(extra);
        let out = server(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
        assert!(!img.exists(), "{args:?}: nothing created");
    }
    let out = server(&["make-disk", "--out", p(dir.path()), "--slot-size", "1M"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not a regular file; refusing to overwrite it"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn boot_emulates_gptprio_and_records_the_boot() {
    let dir = tempfile::tempdir().unwrap();
    let img = gpt_support::make(dir.path(), "disk.img", 512);
    let a = open_disk(&img, false).unwrap().slot(SlotId::A);
    let out = server(&["boot", "--disk", p(&img)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "booted A (USR-A) PARTUUID={} priority 1 tries left 0 successful 1\n",
            a.partuuid
        )
    );
    assert_eq!(emulated::last(&img).unwrap().unwrap().slot, SlotId::A);
    let slots = Command::new(env!("CARGO_BIN_EXE_updatectl"))
        .args(["slots", "--disk", p(&img)])
        .output()
        .unwrap();
    assert!(
        stdout(&slots).contains("\nbooted: A\n"),
        "{}",
        stdout(&slots)
    );
    // A trial boot of B uses its one try; the next boot falls back to A.
    open_disk(&img, true)
        .unwrap()
        .set_install_ready(SlotId::B)
        .unwrap();
    let out = server(&["boot", "--disk", p(&img)]);
    assert!(
        stdout(&out).starts_with("booted B (USR-B)"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("tries left 0 successful 0"),
        "{}",
        stdout(&out)
    );
    assert_eq!(emulated::last(&img).unwrap().unwrap().slot, SlotId::B);
    let out = server(&["boot", "--disk", p(&img)]);
    assert!(
        stdout(&out).starts_with("booted A (USR-A)"),
        "{}",
        stdout(&out)
    );
    // A record that does not match the image (recreated disk) is ignored.
    let out = server(&["make-disk", "--out", p(&img), "--slot-size", "1M"]);
    assert!(out.status.success());
    let slots = Command::new(env!("CARGO_BIN_EXE_updatectl"))
        .args(["slots", "--disk", p(&img), "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&slots.stdout).unwrap();
    assert_eq!(v["booted"], serde_json::Value::Null);
    gpt_support::assert_tools_agree(&img);
}

#[test]
fn boot_with_nothing_bootable_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let img = gpt_support::make(dir.path(), "disk.img", 512);
    open_disk(&img, true).unwrap().mark_bad(SlotId::A).unwrap();
    let before = std::fs::read(&img).unwrap();
    let out = server(&["boot", "--disk", p(&img)]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("update-server: booting "), "{err}");
    assert!(
        err.contains("no slot is bootable: A has priority 0; B has priority 0"),
        "{err}"
    );
    assert_eq!(std::fs::read(&img).unwrap(), before);
    assert!(emulated::last(&img).unwrap().is_none());
}

#[test]
fn boot_of_something_that_is_not_a_disk_fails() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello\n".repeat(1000)).unwrap();
    let out = server(&["boot", "--disk", p(&text)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no GPT found"), "{}", stderr(&out));
    let out = server(&["boot", "--disk", p(&dir.path().join("missing.img"))]);
    assert!(stderr(&out).contains("opening disk"), "{}", stderr(&out));
    let out = server(&["boot", "--disk", p(dir.path())]);
    assert!(
        stderr(&out).contains("is a directory, not a disk image"),
        "{}",
        stderr(&out)
    );
}
