//! The etcd reboot lock against one real etcd process.

mod lock_support;

use std::time::Duration;

use ab_updater::lock::etcd::{Attempt, Semaphore};
use ab_updater::lock::{EtcdLock, Holding, LockError, RebootLock};
use ab_updater::testing::etcd::{free_port, EtcdProcess};
use lock_support::{config, lock, raw};

const KEY: &str = "coreos.com/updateengine/rebootlock/semaphore";

async fn stored(endpoint: &str, key: &str) -> Option<Vec<u8>> {
    raw(endpoint).await.value(key).await.unwrap()
}

#[tokio::test]
async fn acquire_release_and_idempotence() {
    let etcd = EtcdProcess::start_single().unwrap();
    let cfg = config(&[etcd.endpoint().into()], "default");
    let a = lock(&cfg, "node-a");
    let b = lock(&cfg, "node-b");
    assert_eq!(a.key(), KEY);

    let status = a.status().await.unwrap();
    assert!(!status.exists);
    assert_eq!(a.holding().await.unwrap(), Holding::NotHeld);

    // A missing key is created with max 1.
    assert_eq!(a.try_acquire().await.unwrap(), Attempt::Taken);
    let status = a.status().await.unwrap();
    assert!(status.exists);
    assert_eq!(status.semaphore.max(), 1);
    let holder = &status.semaphore.holders()[0];
    assert_eq!(holder.id, "node-a");
    assert!(holder.since.is_some());
    assert_eq!(a.holding().await.unwrap(), Holding::Held);

    // locksmith#58: asking again while holding is fine and changes nothing.
    let before = stored(etcd.endpoint(), KEY).await;
    assert_eq!(a.try_acquire().await.unwrap(), Attempt::AlreadyHeld);
    a.acquire().await.unwrap();
    assert_eq!(stored(etcd.endpoint(), KEY).await, before);

    match b.try_acquire().await.unwrap() {
        Attempt::Full { semaphore, .. } => assert_eq!(semaphore.holders()[0].id, "node-a"),
        other => panic!("b got {other:?}"),
    }

    assert!(a.release_once().await.unwrap());
    assert!(!a.release_once().await.unwrap());
    a.release().await.unwrap();
    // Releasing when nobody holds anything leaves a missing key missing.
    let other = lock_support::lock(&config(&[etcd.endpoint().into()], "never-used"), "x");
    assert!(!other.release_once().await.unwrap());
    assert_eq!(stored(etcd.endpoint(), other.key()).await, None);

    assert_eq!(b.try_acquire().await.unwrap(), Attempt::Taken);

    // The same through the run-time-selected wrapper.
    let any = ab_updater::lock::AnyLock::Etcd(Box::new(lock(&cfg, "node-c")));
    assert_eq!(any.holding().await.unwrap(), Holding::NotHeld);
    b.release().await.unwrap();
    any.acquire().await.unwrap();
    assert_eq!(any.holding().await.unwrap(), Holding::Held);
    any.release().await.unwrap();
}

#[tokio::test]
async fn a_waiting_node_gets_the_slot_when_it_is_released() {
    let etcd = EtcdProcess::start_single().unwrap();
    let cfg = config(&[etcd.endpoint().into()], "workers");
    let a = lock(&cfg, "node-a");
    let b = lock(&cfg, "node-b");
    // c re-reads every 30 ms even without a watch event.
    let mut tuning = lock_support::fast();
    tuning.recheck = Duration::from_millis(30);
    let c = EtcdLock::with_tuning(&cfg, "node-c", tuning).unwrap();
    assert_eq!(
        a.key(),
        "coreos.com/updateengine/rebootlock/groups/workers/semaphore"
    );
    a.acquire().await.unwrap();
    let mut waiting_b = tokio::spawn(async move {
        b.acquire().await.unwrap();
        b
    });
    let mut waiting_c = tokio::spawn(async move {
        c.acquire().await.unwrap();
        c
    });
    // b and c wait; neither may get in while a holds the only slot.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting_b.is_finished() && !waiting_c.is_finished());
    a.release().await.unwrap();
    // Exactly one of them gets the slot; the other only after a release.
    let (first, second) = tokio::select! {
        b = &mut waiting_b => (b.unwrap(), waiting_c),
        c = &mut waiting_c => (c.unwrap(), waiting_b),
    };
    assert_eq!(first.holding().await.unwrap(), Holding::Held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!second.is_finished());
    first.release().await.unwrap();
    let second = second.await.unwrap();
    assert_eq!(second.holding().await.unwrap(), Holding::Held);
}

#[tokio::test]
async fn set_max_and_lowered_max() {
    let etcd = EtcdProcess::start_single().unwrap();
    let cfg = config(&[etcd.endpoint().into()], "default");
    let admin = lock(&cfg, "admin");
    // set-max on a missing key creates it.
    assert_eq!(admin.set_max(3).await.unwrap(), 1);
    let nodes: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|id| lock(&cfg, id))
        .collect();
    for n in &nodes[..3] {
        assert_eq!(n.try_acquire().await.unwrap(), Attempt::Taken);
    }
    assert!(matches!(
        nodes[3].try_acquire().await.unwrap(),
        Attempt::Full { .. }
    ));

    assert_eq!(admin.set_max(1).await.unwrap(), 3);
    let status = admin.status().await.unwrap();
    assert_eq!(status.semaphore.available(), -2);
    assert_eq!(status.semaphore.holders().len(), 3);
    // Holders keep their slots; nobody new gets in until fewer than max hold.
    assert_eq!(nodes[0].try_acquire().await.unwrap(), Attempt::AlreadyHeld);
    nodes[0].release().await.unwrap();
    assert!(matches!(
        nodes[3].try_acquire().await.unwrap(),
        Attempt::Full { .. }
    ));
    nodes[1].release().await.unwrap();
    assert!(matches!(
        nodes[3].try_acquire().await.unwrap(),
        Attempt::Full { .. }
    ));
    nodes[2].release().await.unwrap();
    assert_eq!(nodes[3].try_acquire().await.unwrap(), Attempt::Taken);
    // Same max again: no write.
    let before = stored(etcd.endpoint(), KEY).await;
    assert_eq!(admin.set_max(1).await.unwrap(), 1);
    assert_eq!(stored(etcd.endpoint(), KEY).await, before);
}

#[tokio::test]
async fn corrupt_or_foreign_values_are_reported_and_never_overwritten() {
    let etcd = EtcdProcess::start_single().unwrap();
    let cfg = config(&[etcd.endpoint().into()], "default");
    let node = lock(&cfg, "node-a");
    let c = raw(etcd.endpoint()).await;
    for (value, what) in [
        (&b"{\"semaphore\":1,"[..], "not JSON"),
        (br#"{"leader":"someone","term":7}"#, "foreign"),
        (br#"{"semaphore":5,"max":1,"holders":[]}"#, "inconsistent"),
    ] {
        c.put(KEY, value).await.unwrap();
        let expect_corrupt = |err: LockError| {
            assert_eq!(err.kind(), "corrupt_value", "{err}");
            let text = err.to_string();
            assert!(text.contains(KEY) && text.contains(what), "{text}");
        };
        expect_corrupt(node.try_acquire().await.unwrap_err());
        expect_corrupt(node.acquire().await.unwrap_err());
        expect_corrupt(node.release().await.unwrap_err());
        expect_corrupt(node.set_max(5).await.unwrap_err());
        expect_corrupt(node.status().await.unwrap_err());
        expect_corrupt(node.holding().await.unwrap_err());
        assert_eq!(stored(etcd.endpoint(), KEY).await.unwrap(), value);
    }
}

#[tokio::test]
async fn unreachable_etcd_is_retried_and_never_reports_acquired() {
    let port = free_port().unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let cfg = config(std::slice::from_ref(&endpoint), "default");
    let node = lock(&cfg, "node-a");

    let err = node.status().await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains(&endpoint), "{err}");
    assert!(node.try_acquire().await.is_err());
    // The waiting acquire keeps trying and does not return while etcd is down.
    assert!(
        tokio::time::timeout(Duration::from_millis(800), node.acquire())
            .await
            .is_err()
    );

    // It succeeds once etcd appears on that endpoint.
    let pending = tokio::spawn(async move {
        node.acquire().await.unwrap();
        node
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished());
    let etcd = tokio::task::spawn_blocking(move || EtcdProcess::start_single_on(port))
        .await
        .unwrap()
        .unwrap();
    let node = pending.await.unwrap();
    assert_eq!(node.holding().await.unwrap(), Holding::Held);
    drop(etcd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_node_survives_an_etcd_crash_and_the_holder_keeps_its_slot() {
    let mut etcd = EtcdProcess::start_single().unwrap();
    let cfg = config(&[etcd.endpoint().into()], "default");
    let a = lock(&cfg, "node-a");
    a.acquire().await.unwrap();
    let b = lock(&cfg, "node-b");
    let waiting = tokio::spawn(async move {
        b.acquire().await.unwrap();
        b
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // etcd crashes under the waiting watch and comes back with its data.
    tokio::task::block_in_place(|| {
        etcd.kill();
        std::thread::sleep(Duration::from_millis(300));
        etcd.restart().unwrap();
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "b got in while a holds the only slot"
    );
    assert_eq!(a.holding().await.unwrap(), Holding::Held);
    a.release().await.unwrap();
    let b = waiting.await.unwrap();
    assert_eq!(b.holding().await.unwrap(), Holding::Held);
}

#[tokio::test]
async fn fails_over_past_a_dead_first_endpoint() {
    let etcd = EtcdProcess::start_single().unwrap();
    let dead = format!("http://127.0.0.1:{}", free_port().unwrap());
    let cfg = config(&[dead.clone(), etcd.endpoint().into()], "default");
    let node = lock(&cfg, "node-a");
    node.acquire().await.unwrap();
    assert_eq!(node.holding().await.unwrap(), Holding::Held);
    node.release().await.unwrap();
    let parsed = Semaphore::parse(&stored(etcd.endpoint(), KEY).await.unwrap()).unwrap();
    assert!(parsed.holders().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_racing_nodes_never_exceed_three_holders() {
    let etcd = EtcdProcess::start_single().unwrap();
    let cfg = config(&[etcd.endpoint().into()], "race");
    let report = lock_support::race(&cfg, 50, 3, Duration::from_millis(20), 0, async {}).await;
    lock_support::assert_race_ok(&report, 50, 3);
}
