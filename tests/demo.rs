//! The demo's scenarios as tests: the same code path as
//! `update-server demo`, quiet, asserting the final GPT and the events the
//! server received.

use ab_updater::demo::{self, Event, Options, Report, Scenario};
use ab_updater::slot::SlotId;

fn options(scenario: Scenario) -> Options {
    Options {
        scenario,
        keep: None,
        quiet: true,
    }
}

fn codes(events: &[Event]) -> Vec<String> {
    events.iter().map(Event::code).collect()
}

async fn run(scenario: Scenario) -> Report {
    demo::run(&options(scenario)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_ends_on_a_good_slot_b_with_the_four_events() {
    let report = run(Scenario::Happy).await;
    let [a, b] = report.slots_after[0];
    assert!(b.successful && b.tries == 0, "{b:?}");
    assert!(b.priority > a.priority && a.priority > 0, "{a:?} {b:?}");
    assert!(a.successful, "the old slot stays a fallback: {a:?}");
    assert_eq!(report.booted_after, [SlotId::B]);
    assert_eq!(report.final_phase, ["good"]);
    assert_eq!(codes(&report.events), ["13/1", "14/1", "3/1", "3/2"]);
    let last = &report.events[3];
    assert_eq!(last.version, "2.0.0");
    assert_eq!(last.previous_version.as_deref(), Some("1.0.0"));
    assert!(report.events[..3].iter().all(|e| e.version == "1.0.0"));
    // The tables the demo prints show the same story.
    assert!(
        report.gpt_before.contains("next boot: A"),
        "{}",
        report.gpt_before
    );
    assert!(
        report.gpt_after.contains("next boot: B"),
        "{}",
        report.gpt_after
    );
    assert!(
        report.gpt_after.contains("booted: B"),
        "{}",
        report.gpt_after
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_marks_b_bad_falls_back_to_a_and_reports_44() {
    let report = run(Scenario::Rollback).await;
    let [a, b] = report.slots_after[0];
    assert_eq!(b.priority, 0, "the failed slot never boots again: {b:?}");
    assert!(!b.successful, "{b:?}");
    assert!(a.successful && a.priority > 0, "{a:?}");
    assert_eq!(report.booted_after, [SlotId::A]);
    assert_eq!(report.final_phase, ["rolled-back"]);
    assert_eq!(
        codes(&report.events),
        ["13/1", "14/1", "3/1", "3/0 errorcode=44"]
    );
    assert!(
        report.gpt_after.contains("next boot: A"),
        "{}",
        report.gpt_after
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_refuses_a_directory_that_is_not_empty_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious"), "x").unwrap();
    let mut opts = options(Scenario::Happy);
    opts.keep = Some(dir.path().to_path_buf());
    let err = demo::run(&opts).await.unwrap_err();
    assert!(format!("{err:#}").contains("is not empty"), "{err:#}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_leaves_the_working_files() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("demo");
    let mut opts = options(Scenario::Happy);
    opts.keep = Some(keep.clone());
    demo::run(&opts).await.unwrap();
    for file in [
        "node1/disk.img",
        "releases/releases.toml",
        "releases/v2.payload",
        "releases/v1-to-v2.payload",
        "trusted-keys/demo.pub",
    ] {
        assert!(keep.join(file).exists(), "{file} missing");
    }
}

#[test]
fn the_binary_runs_the_demo_quietly() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_update-server"))
        .args(["demo", "--scenario", "rollback", "--quiet"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
