//! The engine's reboot coordination against a real etcd: a node takes a
//! slot of the group's semaphore before its (emulated) reboot, keeps it over
//! the reboot and the trial boot, and gives it back once the new slot is
//! marked good; with two nodes and `max` 1 only one reboots at a time.

mod engine_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ab_updater::cli::update_engine::run_until;
use ab_updater::engine::api::client::Client;
use ab_updater::lock::config::EtcdConfig;
use ab_updater::lock::EtcdLock;
use ab_updater::slot::SlotId;
use ab_updater::testing::etcd::EtcdProcess;
use engine_support::{Sandbox, MACHINE_ID};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const NODE_B: &str = "fedcba9876543210fedcba9876543210";

/// Config of a node in `group`: etcd-lock, and a reboot command that
/// appends `<machine id>` to `record` instead of rebooting.
fn lock_config(etcd: &str, group: &str, machine_id: &str, record: &Path) -> String {
    format!(
        r#"[identity]
machine_id = "{machine_id}"
[reboot]
strategy = "etcd-lock"
command = ["/bin/sh", "-c", "echo {machine_id} >> {record}"]
[lock.etcd]
endpoints = ["{etcd}"]
group = "{group}"
"#,
        record = record.display()
    )
}

struct Node {
    client: Client,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Node {
    /// Run the engine of `sb` in-process with short lock retry delays.
    async fn start(sb: &Sandbox) -> Node {
        let mut args = sb.args();
        args.lock_retry_max_ms = 200;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run_until(args, async move {
            let _ = stopped.await;
        }));
        let client = Client::new(&sb.socket());
        for _ in 0..500 {
            assert!(!task.is_finished(), "engine exited at start");
            if client.status().await.is_ok() {
                return Node { client, stop, task };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("engine did not start");
    }

    async fn phase(&self) -> String {
        self.client.status().await.unwrap().phase
    }

    /// Poll until the phase is `phase` (at most a minute).
    async fn until(&self, phase: &str) {
        for _ in 0..1200 {
            if self.phase().await == phase {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("never reached {phase}; at {}", self.phase().await);
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

fn etcd_config(endpoint: &str, group: &str) -> EtcdConfig {
    EtcdConfig::plain(vec![endpoint.parse().unwrap()], group)
}

async fn holders(lock: &EtcdLock) -> Vec<String> {
    let status = lock.status().await.unwrap();
    status
        .semaphore
        .holders()
        .iter()
        .map(|h| h.id.clone())
        .collect()
}

fn records(path: &PathBuf) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Wait until `path` lists `n` reboots.
async fn until_records(path: &PathBuf, n: usize) -> Vec<String> {
    for _ in 0..1200 {
        let seen = records(path);
        if seen.len() >= n {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} reboots recorded: {:?}", records(path));
}

/// The emulated reboot: the engine stops, the bootloader picks the new
/// slot, the new OS reports 2.0.0, the engine starts on it.
async fn reboot_into_new_slot(sb: &Sandbox, node: Node, config: &str) -> Node {
    node.stop().await;
    assert_eq!(sb.boot(), SlotId::B);
    sb.write_config("2.0.0", config);
    Node::start(sb).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slot_is_taken_before_the_reboot_and_released_after_mark_good() {
    let etcd = EtcdProcess::start_single().unwrap();
    let observer = EtcdLock::new(&etcd_config(etcd.endpoint(), "one"), "observer").unwrap();
    let sb = Sandbox::new(4, 8, &[]).await;
    let record = sb.dir.path().join("reboots");
    let config = lock_config(etcd.endpoint(), "one", MACHINE_ID, &record);
    sb.write_config("1.0.0", &config);

    let node = Node::start(&sb).await;
    node.client.check().await.unwrap();
    assert_eq!(until_records(&record, 1).await, [MACHINE_ID]);
    assert_eq!(node.phase().await, "rebooting");
    assert_eq!(holders(&observer).await, [MACHINE_ID]);

    let node = reboot_into_new_slot(&sb, node, &config).await;
    node.until("good").await;
    // Released once the new slot is marked good (a task; poll for it).
    for _ in 0..200 {
        if holders(&observer).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(holders(&observer).await.is_empty());
    assert!(sb.slots()[1].successful);
    let metrics = node.client.metrics().await.unwrap();
    assert!(
        metrics.contains("update_engine_reboot_lock_held 0"),
        "{metrics}"
    );
    node.stop().await;
    assert_eq!(records(&record).len(), 1, "rebooted once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_max_one_only_one_of_two_nodes_reboots_at_a_time() {
    let etcd = EtcdProcess::start_single().unwrap();
    let observer = EtcdLock::new(&etcd_config(etcd.endpoint(), "two"), "observer").unwrap();
    let shared = tempfile::tempdir().unwrap();
    let record = shared.path().join("reboots");
    let a = Sandbox::new(4, 8, &[]).await;
    let b = Sandbox::new(4, 8, &[]).await;
    let config_a = lock_config(etcd.endpoint(), "two", MACHINE_ID, &record);
    let config_b = lock_config(etcd.endpoint(), "two", NODE_B, &record);
    a.write_config("1.0.0", &config_a);
    b.write_config("1.0.0", &config_b);

    let node_a = Node::start(&a).await;
    node_a.client.check().await.unwrap();
    until_records(&record, 1).await;
    let node_b = Node::start(&b).await;
    node_b.client.check().await.unwrap();
    node_b.until("waiting-for-lock").await;
    let status = node_b.client.status().await.unwrap();
    assert!(
        status.message.unwrap().contains("waiting for a slot"),
        "B says why it waits"
    );
    // A is mid-reboot with the only slot: B keeps waiting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(node_b.phase().await, "waiting-for-lock");
    assert_eq!(records(&record), [MACHINE_ID]);
    assert_eq!(holders(&observer).await, [MACHINE_ID]);

    // A comes back on the new slot, is marked good, gives the slot back:
    // now B takes it and reboots.
    let node_a = reboot_into_new_slot(&a, node_a, &config_a).await;
    node_a.until("good").await;
    assert_eq!(until_records(&record, 2).await, [MACHINE_ID, NODE_B]);
    assert_eq!(holders(&observer).await, [NODE_B]);
    node_a.stop().await;
    node_b.stop().await;
}
