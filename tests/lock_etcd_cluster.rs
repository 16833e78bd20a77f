//! The etcd reboot lock on a real 3-member cluster losing a member mid-race.

mod lock_support;

use std::time::Duration;

use ab_updater::testing::etcd::EtcdCluster;
use ab_updater::testing::etcd_http::EtcdHttp;

/// Index of the current leader, asked of the live members.
async fn leader_index(cluster: &EtcdCluster, alive: &[usize]) -> usize {
    for _ in 0..100 {
        let mut ids = Vec::new();
        let mut leader = None;
        for &i in alive {
            if let Ok(status) = EtcdHttp::new(cluster.member(i).endpoint()).status().await {
                ids.push((status.header.member_id, i));
                if status.leader != 0 {
                    leader = Some(status.leader);
                }
            }
        }
        if let Some(found) = leader.and_then(|l| ids.iter().find(|(id, _)| *id == l)) {
            return found.1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no leader found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_survives_losing_a_follower() {
    let mut cluster = EtcdCluster::start(3).unwrap();
    let cfg = lock_support::config(&cluster.endpoints(), "default");
    let leader = leader_index(&cluster, &[0, 1, 2]).await;
    let follower = (leader + 1) % 3;
    let report = lock_support::race(&cfg, 50, 3, Duration::from_millis(20), 10, async {
        cluster.kill(follower);
    })
    .await;
    lock_support::assert_race_ok(&report, 50, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_survives_losing_the_leader() {
    let mut cluster = EtcdCluster::start(3).unwrap();
    let cfg = lock_support::config(&cluster.endpoints(), "default");
    let report = lock_support::race(&cfg, 50, 3, Duration::from_millis(20), 10, async {
        let leader = leader_index(&cluster, &[0, 1, 2]).await;
        cluster.kill(leader);
    })
    .await;
    lock_support::assert_race_ok(&report, 50, 3);
}
