//! The whole update cycle on real sockets: check → download → verify →
//! write → flip → emulated reboot → engine restarted on the new slot →
//! health ok → marked good, with the server seeing 13/1, 14/1, 3/1, 3/2.
//! And the rollback path.

mod engine_support;

use ab_updater::slot::SlotId;
use engine_support::Sandbox;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_cycle_to_a_good_new_slot() {
    let sb = Sandbox::new(4, 8, &[]).await;
    let engine = sb.start().await;
    let seen = engine.check_until(&["rebooting", "idle"]).await;
    let phases: Vec<&str> = seen.iter().map(|r| r.phase.as_str()).collect();
    assert_eq!(phases.last(), Some(&"rebooting"), "{phases:?}");
    for phase in [
        "checking-for-update",
        "update-available",
        "downloading",
        "verifying",
        "finalizing",
        "updated-need-reboot",
    ] {
        assert!(phases.contains(&phase), "{phase} missing in {phases:?}");
    }
    // The new slot holds the new image and is install-ready.
    assert_eq!(sb.slot_bytes(SlotId::B, sb.new_image.len()), sb.new_image);
    let [a, b] = sb.slots();
    assert!(
        b.priority > a.priority && b.tries == 1 && !b.successful,
        "{a:?} {b:?}"
    );
    let run: Vec<_> = std::fs::read_dir(sb.dir.path().join("run"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        sb.dir.path().join("run/reboot-required").exists(),
        "{run:?}"
    );
    let status = std::fs::read_to_string(sb.dir.path().join("run/status")).unwrap();
    assert!(
        status.contains("CURRENT_OP=UPDATE_STATUS_UPDATED_NEED_REBOOT"),
        "{status}"
    );
    engine.stop().await;

    // Reboot: the bootloader picks B; the new OS reports version 2.0.0.
    assert_eq!(sb.boot(), SlotId::B);
    sb.write_config("2.0.0", "");
    let engine = sb.start().await;
    engine.wait_for(&["good"]).await;
    let b = sb.slots()[1];
    assert!(b.successful && b.tries == 0, "{b:?}");
    let history = engine.client.history().await.unwrap();
    let results: Vec<_> = history.iter().map(|a| format!("{:?}", a.result)).collect();
    assert_eq!(results, ["Installed", "Good"]);
    assert!(history[0].bytes >= sb.payload_len, "{history:?}");
    engine.stop().await;

    let events = sb.events();
    assert_eq!(
        events,
        [
            (13, 1, None, None),
            (14, 1, None, None),
            (3, 1, None, None),
            (3, 2, None, Some("1.0.0".to_string())),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_slot_that_never_gets_marked_good_is_rolled_back() {
    let sb = Sandbox::new(1, 4, &[]).await;
    let engine = sb.start().await;
    engine.check_until(&["rebooting"]).await;
    engine.stop().await;

    // The new slot boots once but the machine goes down before it is marked
    // good; the next boot falls back to A.
    assert_eq!(sb.boot(), SlotId::B);
    assert_eq!(sb.boot(), SlotId::A);
    let engine = sb.start().await;
    let status = engine.client.status().await.unwrap();
    assert_eq!(status.phase, "rolled-back");
    assert_eq!(
        sb.slots()[1].priority,
        0,
        "the failed slot never boots again"
    );
    // The same version is not retried.
    let seen = engine
        .check_until(&["idle", "rolled-back", "good", "downloading"])
        .await;
    assert_eq!(seen.last().unwrap().phase, "idle");
    engine.stop().await;
    let events = sb.events();
    assert_eq!(events.last(), Some(&(3, 0, Some(44), None)), "{events:?}");
    assert_eq!(
        events.iter().filter(|e| e.0 == 13).count(),
        1,
        "downloaded once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_health_checks_mark_the_slot_bad_and_reboot_back() {
    let sb = Sandbox::new(1, 4, &[]).await;
    let engine = sb.start().await;
    engine.check_until(&["rebooting"]).await;
    engine.stop().await;
    assert_eq!(sb.boot(), SlotId::B);
    sb.write_config("2.0.0", "[health]\ncommands = [[\"false\"]]\n");
    let engine = sb.start().await;
    let seen = engine.wait_for(&["rebooting"]).await;
    assert_eq!(
        seen.last().unwrap().status,
        "UPDATE_STATUS_ATTEMPTING_ROLLBACK"
    );
    engine.stop().await;
    assert_eq!(sb.slots()[1].priority, 0);
    assert_eq!(sb.boot(), SlotId::A);
    sb.write_config("1.0.0", "");
    let engine = sb.start().await;
    assert_eq!(engine.client.status().await.unwrap().phase, "rolled-back");
    engine.stop().await;
}
