//! The engine against update-server faults, on real sockets: each failure
//! ends with the right update_engine error code, the active slot untouched
//! and the new slot non-bootable; interruptions resume.

mod engine_support;

use ab_updater::slot::SlotId;
use engine_support::Sandbox;

/// Run one interactive check to its end; returns (error code if it failed, final phase).
async fn check_once(sb: &Sandbox) -> (Option<u32>, String) {
    let engine = sb.start().await;
    let seen = engine.check_until(&["idle", "rebooting"]).await;
    engine.stop().await;
    let code = seen.iter().find_map(|r| r.error_code);
    (code, seen.last().unwrap().phase.clone())
}

/// The active slot A is still the good, bootable one with its old bytes;
/// B is not bootable.
fn assert_safe(sb: &Sandbox) {
    let [a, b] = sb.slots();
    assert!(a.successful && a.priority > 0, "{a:?}");
    assert_eq!(b.priority, 0, "{b:?}");
    let len = sb.new_image.len();
    assert!(
        sb.slot_bytes(SlotId::A, len) == engine_support::image_bytes(1, len),
        "the active slot was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_on_check_are_2000_plus_status() {
    let sb = Sandbox::new(1, 4, &["check/http-500@1"]).await;
    assert_eq!(check_once(&sb).await, (Some(2500), "idle".into()));
    // The fault hit only the first check: the next one installs.
    assert_eq!(check_once(&sb).await, (None, "rebooting".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_resume_with_range() {
    let sb = Sandbox::new(4, 8, &["download/drop-at:1M@2"]).await;
    assert_eq!(check_once(&sb).await, (None, "rebooting".into()));
    assert_eq!(sb.slot_bytes(SlotId::B, sb.new_image.len()), sb.new_image);
    let engine = sb.start().await;
    let history = engine.client.history().await.unwrap();
    engine.stop().await;
    let bytes = history[0].bytes;
    assert!(bytes >= sb.payload_len, "{bytes} {history:?}");
    assert!(
        bytes as f64 <= 1.2 * sb.payload_len as f64,
        "{bytes} bytes downloaded for a {}-byte payload",
        sb.payload_len
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_ignoring_range_still_completes() {
    let sb = Sandbox::new(2, 4, &["download/drop-at:512K@1", "download/no-range"]).await;
    assert_eq!(check_once(&sb).await, (None, "rebooting".into()));
    assert_eq!(sb.slot_bytes(SlotId::B, sb.new_image.len()), sb.new_image);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_download_is_retried() {
    let mut sb = Sandbox::new(1, 4, &["download/stall:30@1"]).await;
    sb.serve(&["download/stall:30@1"]).await;
    sb.write_config("1.0.0", "");
    let mut args = sb.args();
    args.stall_seconds = 1;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(ab_updater::cli::update_engine::run_until(
        args,
        async move {
            let _ = stopped.await;
        },
    ));
    let client = ab_updater::engine::api::client::Client::new(&sb.socket());
    while client.status().await.is_err() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut events = client.events().await.unwrap();
    client.check().await.unwrap();
    loop {
        let r = events.next().await.unwrap().unwrap();
        assert_ne!(r.phase, "reporting-error-event", "{r:?}");
        if r.phase == "rebooting" {
            break;
        }
    }
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_byte_fails_with_the_operation_hash_code_and_the_next_attempt_starts_clean() {
    // Past the header, manifest and signatures: inside the first data blob.
    let sb = Sandbox::new(2, 4, &["download/corrupt-byte:1M@1"]).await;
    assert_eq!(check_once(&sb).await, (Some(29), "idle".into()));
    assert_safe(&sb);
    assert!(!sb.state_dir().join("checkpoint.json").exists());
    let events = sb.events();
    assert_eq!(events.last(), Some(&(3, 0, Some(29), None)), "{events:?}");
    // The fault hit once: the next attempt installs from scratch.
    assert_eq!(check_once(&sb).await, (None, "rebooting".into()));
    assert_eq!(sb.slot_bytes(SlotId::B, sb.new_image.len()), sb.new_image);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_sha256_in_the_response_is_a_payload_hash_mismatch() {
    let sb = Sandbox::new(1, 4, &["check/wrong-sha256"]).await;
    assert_eq!(check_once(&sb).await, (Some(10), "idle".into()));
    assert_safe(&sb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_size_in_the_response_is_a_size_mismatch() {
    let sb = Sandbox::new(1, 4, &["check/wrong-size"]).await;
    assert_eq!(check_once(&sb).await, (Some(11), "idle".into()));
    assert_safe(&sb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_huge_responses_are_parse_errors() {
    for fault in ["check/malformed-xml", "check/huge-response:2M"] {
        let sb = Sandbox::new(1, 4, &[fault]).await;
        assert_eq!(check_once(&sb).await, (Some(31), "idle".into()), "{fault}");
        assert!(sb.events().is_empty(), "no install attempt, no event");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_loops_end_as_errors() {
    let sb = Sandbox::new(1, 4, &["check/redirect-loop"]).await;
    assert_eq!(check_once(&sb).await, (Some(2), "idle".into()));
    let sb = Sandbox::new(1, 4, &["download/redirect-loop"]).await;
    assert_eq!(check_once(&sb).await, (Some(9), "idle".into()));
    assert_safe(&sb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noupdate_and_an_unknown_app_id() {
    let sb = Sandbox::new(1, 4, &["check/noupdate"]).await;
    assert_eq!(check_once(&sb).await, (None, "idle".into()));
    assert!(sb.events().is_empty());
    let sb = Sandbox::new(1, 4, &[]).await;
    sb.write_config(
        "1.0.0",
        "[identity]\napp_id = \"{00000000-0000-0000-0000-000000000001}\"\n",
    );
    assert_eq!(check_once(&sb).await, (Some(34), "idle".into()));
}
