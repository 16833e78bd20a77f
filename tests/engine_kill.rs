//! The engine killed (SIGKILL) or stopped (SIGTERM) in the middle of an
//! update, as a real process: the new slot is never bootable half-written,
//! and a restart continues (from the checkpoint) or cleanly restarts.

mod engine_support;

use ab_updater::slot::SlotId;
use engine_support::Sandbox;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const STAGE_ONLY: &str = "[reboot]\nstrategy = \"off\"\n";

/// Follow `client`'s events until downloading reached `at_least` bytes.
async fn wait_for_bytes(client: &ab_updater::engine::api::client::Client, at_least: u64) {
    let mut events = client.events().await.unwrap();
    client.check().await.unwrap();
    loop {
        let r = events.next().await.unwrap().unwrap();
        assert_ne!(r.phase, "reporting-error-event", "{r:?}");
        if r.phase == "downloading" && r.bytes_downloaded >= at_least {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_download_then_restart_completes_the_update() {
    // The first download is slow (1 MiB/s) so the kill lands in the middle.
    let sb = Sandbox::new(4, 8, &["download/throttle:1M@1"]).await;
    sb.write_config("1.0.0", STAGE_ONLY);
    let (mut child, client) = sb.spawn_process().await;
    wait_for_bytes(&client, 2 << 20).await;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();

    // Half-written: the new slot must not be bootable, the old one untouched.
    let [a, b] = sb.slots();
    assert_eq!(b.priority, 0, "{b:?}");
    assert!(a.successful && a.priority > 0, "{a:?}");
    assert!(
        sb.state_dir().join("checkpoint.json").exists(),
        "a checkpoint was saved on the way"
    );

    // Restart: the install resumes on its own (no new check needed).
    let engine = sb.start().await;
    let seen = engine.wait_for(&["updated-need-reboot", "idle"]).await;
    assert_eq!(seen.last().unwrap().phase, "updated-need-reboot");
    assert_eq!(sb.slot_bytes(SlotId::B, sb.new_image.len()), sb.new_image);
    let [a, b] = sb.slots();
    assert!(b.priority > a.priority && b.tries == 1, "{b:?}");
    engine.stop().await;
    // One download started; the resumed part finished it.
    let events = sb.events();
    assert_eq!(events.iter().filter(|e| e.0 == 13).count(), 1, "{events:?}");
    assert!(events.contains(&(3, 1, None, None)), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_download_is_checkpointed_by_time() {
    // Default byte threshold (16 MiB) is more than this whole payload: only
    // the one-second checkpoint interval can save progress before the kill.
    // Checkpoints are at operation boundaries (2 MiB ops): at 1 MiB/s the
    // first op is complete ~2 s in, and the kill comes ~2.5 s later, so at
    // least one time-based checkpoint falls after it.
    let mut sb = Sandbox::new(8, 16, &["download/throttle:1M@1"]).await;
    sb.small_checkpoints = false;
    sb.write_config("1.0.0", STAGE_ONLY);
    let (mut child, client) = sb.spawn_process().await;
    wait_for_bytes(&client, 9 << 19).await;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    let checkpoint = std::fs::read_to_string(sb.state_dir().join("checkpoint.json"))
        .expect("a time-based checkpoint was saved before the kill");
    let value: serde_json::Value = serde_json::from_str(&checkpoint).unwrap();
    let offset = value["offset"].as_u64().unwrap_or(0);
    assert!(
        offset >= 1 << 20,
        "checkpoint offset {offset}: {checkpoint}"
    );
    let [a, b] = sb.slots();
    assert_eq!(b.priority, 0, "{b:?}");
    assert!(a.successful && a.priority > 0, "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_download_saves_the_checkpoint_and_resume_is_cheap() {
    let sb = Sandbox::new(4, 8, &["download/throttle:1M@1"]).await;
    sb.write_config("1.0.0", STAGE_ONLY);
    let (mut child, client) = sb.spawn_process().await;
    wait_for_bytes(&client, 2 << 20).await;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "a clean stop exits 0: {status}");
    assert!(!sb.socket().exists());
    assert!(sb.state_dir().join("checkpoint.json").exists());

    let engine = sb.start().await;
    engine.wait_for(&["updated-need-reboot"]).await;
    assert_eq!(sb.slot_bytes(SlotId::B, sb.new_image.len()), sb.new_image);
    let history = engine.client.history().await.unwrap();
    engine.stop().await;
    let bytes = history.last().unwrap().bytes;
    assert!(
        bytes as f64 <= 1.2 * sb.payload_len as f64,
        "{bytes} bytes over both runs for a {}-byte payload",
        sb.payload_len
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_staged_keeps_the_staged_update() {
    let sb = Sandbox::new(1, 4, &[]).await;
    sb.write_config("1.0.0", STAGE_ONLY);
    let (mut child, client) = sb.spawn_process().await;
    let mut events = client.events().await.unwrap();
    client.check().await.unwrap();
    while events.next().await.unwrap().unwrap().phase != "updated-need-reboot" {}
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    // Same boot: still staged, nothing downloaded again.
    let engine = sb.start().await;
    assert_eq!(
        engine.client.status().await.unwrap().phase,
        "updated-need-reboot"
    );
    engine.stop().await;
    assert_eq!(sb.events().iter().filter(|e| e.0 == 13).count(), 1);
    // And the reboot still goes to the new slot.
    assert_eq!(sb.boot(), SlotId::B);
}
