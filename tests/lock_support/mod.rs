//! Shared helpers of the etcd lock tests (real etcd, races, watches).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ab_updater::lock::config::EtcdConfig;
use ab_updater::lock::etcd::wire::EventType;
use ab_updater::lock::etcd::{EtcdTuning, Semaphore, Timeouts};
use ab_updater::lock::{Backoff, EtcdLock, RebootLock};
use ab_updater::testing::etcd_http::EtcdHttp;
use tokio::sync::watch;

/// Settings for `endpoints` in `group`, no TLS, no auth.
pub fn config(endpoints: &[String], group: &str) -> EtcdConfig {
    EtcdConfig::plain(
        endpoints.iter().map(|e| e.parse().unwrap()).collect(),
        group,
    )
}

/// Short retry delays so tests do not sit in production backoffs.
pub fn fast() -> EtcdTuning {
    EtcdTuning {
        timeouts: Timeouts {
            connect: Duration::from_secs(1),
            request: Duration::from_secs(3),
        },
        backoff: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(300),
        },
        recheck: Duration::from_secs(5),
    }
}

/// A lock for `holder` with [`fast`] tuning.
pub fn lock(cfg: &EtcdConfig, holder: &str) -> EtcdLock {
    EtcdLock::with_tuning(cfg, holder, fast()).unwrap()
}

/// A raw etcd client, for putting foreign values and watching.
pub async fn raw(endpoint: &str) -> EtcdHttp {
    EtcdHttp::new(endpoint)
}

/// What the key went through during a race.
pub struct RaceReport {
    /// Every value the key took, in revision order.
    pub values: Vec<Semaphore>,
    /// Every id that ever held a slot.
    pub ever_held: BTreeSet<String>,
    /// How many nodes finished (acquired, held, released).
    pub finished: usize,
}

/// `nodes` lock holders race for `max` slots, each holding `hold`; after
/// `kill_after` of them finished, `fault` is awaited (e.g. kills a member). A
/// watch started before the race records every revision of the key,
/// re-subscribing on another endpoint if its member dies.
pub async fn race(
    cfg: &EtcdConfig,
    nodes: usize,
    max: u32,
    hold: Duration,
    kill_after: usize,
    fault: impl std::future::Future<Output = ()>,
) -> RaceReport {
    let admin = lock(cfg, "admin");
    admin.set_max(max).await.unwrap();
    let client = raw(cfg.endpoints[0].as_str()).await;
    let start_rev = client.get(admin.key()).await.unwrap().header.revision;

    let (stop_tx, stop_rx) = watch::channel(None::<i64>);
    let endpoints: Vec<String> = cfg.endpoints.iter().map(|u| u.to_string()).collect();
    let key = admin.key().to_string();
    let watcher = tokio::spawn(record_key(endpoints, key.clone(), start_rev + 1, stop_rx));

    let finished = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..nodes {
        let node = lock(cfg, &format!("node-{i:02}"));
        let finished = finished.clone();
        tasks.push(tokio::spawn(async move {
            node.acquire().await.unwrap();
            tokio::time::sleep(hold).await;
            node.release().await.unwrap();
            finished.fetch_add(1, Ordering::SeqCst);
        }));
    }
    while finished.load(Ordering::SeqCst) < kill_after.min(nodes) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    fault.await;
    for task in tasks {
        task.await.unwrap();
    }
    let last = admin_last_revision(&admin, cfg).await;
    stop_tx.send(Some(last)).unwrap();
    let values = watcher.await.unwrap();
    let mut ever_held = BTreeSet::new();
    for v in &values {
        for h in v.holders() {
            ever_held.insert(h.id.clone());
        }
    }
    RaceReport {
        values,
        ever_held,
        finished: finished.load(Ordering::SeqCst),
    }
}

/// The key's current mod_revision, read through any live endpoint.
async fn admin_last_revision(admin: &EtcdLock, cfg: &EtcdConfig) -> i64 {
    for ep in &cfg.endpoints {
        if let Ok(resp) = EtcdHttp::new(ep.as_str()).get(admin.key()).await {
            return resp.kvs[0].mod_revision;
        }
    }
    panic!("no endpoint answered");
}

/// Collect every PUT of `key` from `from_rev` on, until `stop` names a
/// revision and it has been seen. Moves to the next endpoint on errors.
async fn record_key(
    endpoints: Vec<String>,
    key: String,
    from_rev: i64,
    mut stop: watch::Receiver<Option<i64>>,
) -> Vec<Semaphore> {
    let mut values = Vec::new();
    let mut next_rev = from_rev;
    let mut index = 0;
    loop {
        if stop.borrow().is_some_and(|last| next_rev > last) {
            return values;
        }
        let endpoint = &endpoints[index % endpoints.len()];
        index += 1;
        let Ok(mut stream) = EtcdHttp::new(endpoint).watch(&key, next_rev).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Ok(Some(resp)) => {
                        assert!(!resp.canceled, "watch canceled: {}", resp.cancel_reason);
                        for event in &resp.events {
                            let kv = event.kv.as_ref().unwrap();
                            assert_eq!(event.kind, EventType::Put);
                            assert_eq!(kv.mod_revision, next_rev.max(kv.mod_revision));
                            next_rev = kv.mod_revision + 1;
                            values.push(Semaphore::parse(&kv.value).unwrap());
                        }
                    }
                    _ => break,
                },
                _ = stop.changed() => {}
            }
            if stop.borrow().is_some_and(|last| next_rev > last) {
                return values;
            }
        }
    }
}

/// The invariant: no revision of the key ever listed more than `max`
/// holders, every node held a slot at some point, all finished, and the
/// semaphore ends empty.
pub fn assert_race_ok(report: &RaceReport, nodes: usize, max: u32) {
    assert_eq!(report.finished, nodes);
    assert!(!report.values.is_empty());
    for (i, v) in report.values.iter().enumerate() {
        assert!(
            v.holders().len() <= max as usize,
            "revision #{i} had {} holders: {:?}",
            v.holders().len(),
            v.holders()
        );
        assert_eq!(v.max(), max);
    }
    let expected: BTreeSet<String> = (0..nodes).map(|i| format!("node-{i:02}")).collect();
    assert_eq!(report.ever_held, expected);
    assert!(report.values.last().unwrap().holders().is_empty());
    // Each node took a slot once and gave it back once: 2 writes per node.
    assert_eq!(report.values.len(), 2 * nodes);
}
