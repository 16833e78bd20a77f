//! Reboot lock figures against a real local etcd (issue 6):
//! - acquire + release latency (one `try_acquire` + one `release_once`,
//!   i.e. 2 reads + 2 compare-and-swap writes), median and p99;
//! - wall time for 50 nodes with max=3 to pass through the lock when each
//!   holds it 100 ms (ideal: ceil(50/3) x 100 ms = 1.7 s), connections
//!   already open.
//!
//! `cargo bench --bench lock` measures; without `--bench` (as under
//! `cargo test --all-targets`) it does a tiny smoke run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ab_updater::lock::config::EtcdConfig;
use ab_updater::lock::etcd::{Attempt, EtcdTuning};
use ab_updater::lock::{EtcdLock, RebootLock};
use ab_updater::testing::etcd::EtcdProcess;

struct Plan {
    latency_rounds: usize,
    nodes: usize,
    max: u32,
    hold: Duration,
    passes: usize,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = if full {
        Plan {
            latency_rounds: 1000,
            nodes: 50,
            max: 3,
            hold: Duration::from_millis(100),
            passes: 3,
        }
    } else {
        Plan {
            latency_rounds: 20,
            nodes: 6,
            max: 3,
            hold: Duration::from_millis(10),
            passes: 1,
        }
    };
    let etcd = EtcdProcess::start_single().expect("starting etcd (Debian package etcd-server)");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(&plan, etcd.endpoint(), full));
}

fn config(endpoint: &str, group: &str) -> EtcdConfig {
    EtcdConfig::plain(vec![endpoint.parse().expect("endpoint URL")], group)
}

async fn run(plan: &Plan, endpoint: &str, full: bool) {
    let mode = if full { "bench" } else { "smoke run" };
    println!("lock benchmark ({mode}) against etcd at {endpoint}");

    let lock = EtcdLock::new(&config(endpoint, "latency"), "bench-node").expect("lock");
    // Warm up the connection and create the key.
    assert_eq!(lock.try_acquire().await.expect("acquire"), Attempt::Taken);
    lock.release_once().await.expect("release");
    let mut samples = Vec::with_capacity(plan.latency_rounds);
    for _ in 0..plan.latency_rounds {
        let start = Instant::now();
        assert_eq!(lock.try_acquire().await.expect("acquire"), Attempt::Taken);
        assert!(lock.release_once().await.expect("release"));
        samples.push(start.elapsed());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "acquire+release latency over {} rounds: median {:.2} ms, p99 {:.2} ms, max {:.2} ms (target median < 20 ms)",
        samples.len(),
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(samples[samples.len() - 1]),
    );

    for pass in 0..plan.passes {
        let group = format!("pass-{pass}");
        let admin = EtcdLock::new(&config(endpoint, &group), "admin").expect("lock");
        admin.set_max(plan.max).await.expect("set-max");
        let tuning = EtcdTuning::default();
        let nodes: Vec<Arc<EtcdLock>> = (0..plan.nodes)
            .map(|i| {
                let id = format!("node-{i:02}");
                Arc::new(
                    EtcdLock::with_tuning(&config(endpoint, &group), &id, tuning).expect("lock"),
                )
            })
            .collect();
        // Connect every node first: measure the lock, not 50 TCP handshakes.
        for node in &nodes {
            node.status().await.expect("status");
        }
        let start = Instant::now();
        let tasks: Vec<_> = nodes
            .into_iter()
            .map(|node| {
                let hold = plan.hold;
                tokio::spawn(async move {
                    node.acquire().await.expect("acquire");
                    tokio::time::sleep(hold).await;
                    node.release().await.expect("release");
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("node task");
        }
        let took = start.elapsed();
        let rounds = plan.nodes.div_ceil(plan.max as usize) as u32;
        let ideal = plan.hold * rounds;
        println!(
            "{} nodes, max={}, hold {} ms: all through in {:.0} ms (ideal {:.0} ms, overhead {:.0} ms = {:.1} ms per round of max holders)",
            plan.nodes,
            plan.max,
            plan.hold.as_millis(),
            ms(took),
            ms(ideal),
            ms(took.saturating_sub(ideal)),
            ms(took.saturating_sub(ideal)) / f64::from(rounds),
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
