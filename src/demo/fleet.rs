//! The `fleet` scenario: N machines, each with its own disk, state and
//! machine id, update at once and reboot through one etcd semaphore with
//! `max` slots. A monitor reads the semaphore while they run; the timeline
//! shows who held a slot when, and never more than `max` at once.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use tokio::sync::watch;

use super::display::Display;
use super::images::{self, Build, V2};
use super::node::{reboot_toml, Node, HEALTHY};
use super::timeline::{holder_changes, lock_chart, timeline_line, TimelineEntry};
use super::{events_table, serve, settle, Options, Report};
use crate::engine::status::StatusReport;
use crate::lock::config::EtcdConfig;
use crate::lock::EtcdLock;
use crate::slot::SlotId;
use crate::testing::etcd::EtcdProcess;

/// How long an emulated machine stays down while it reboots.
const REBOOT_MILLIS: u64 = 400;
/// How often the monitor reads the semaphore.
const MONITOR_MILLIS: u64 = 10;
/// Width of the lock chart.
const CHART_COLUMNS: usize = 60;
/// The lock group of the demo fleet.
const GROUP: &str = "demo";
/// Longest wait between two lock attempts of an engine (a hidden engine
/// flag; the default of a minute would make the demo crawl).
const LOCK_RETRY_MAX_MS: &str = "200";

/// What the fleet run showed.
#[derive(Debug, Clone)]
pub struct FleetReport {
    /// Every phase change and lock change, in time order.
    pub timeline: Vec<TimelineEntry>,
    /// The most holders the monitor ever saw.
    pub max_holders_seen: usize,
    /// The semaphore's `max`.
    pub max: u32,
}

/// Fail early, before building anything, when the fleet cannot run.
pub(super) fn check_prerequisites(options: &Options) -> Result<()> {
    ensure!(options.nodes >= 1, "--nodes must be at least 1");
    ensure!(options.max >= 1, "--max must be at least 1");
    if !on_path("etcd") {
        bail!(
            "the fleet scenario needs etcd, which is not installed: run `apt-get install etcd-server` (Debian/Ubuntu) and try again"
        );
    }
    Ok(())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let candidate = dir.join(program);
            std::fs::metadata(&candidate)
                .map(|m| {
                    use std::os::unix::fs::PermissionsExt;
                    m.is_file() && m.permissions().mode() & 0o111 != 0
                })
                .unwrap_or(false)
        })
    })
}

/// Run the fleet in `dir`.
pub(super) async fn run(dir: &Path, options: &Options, display: &Display) -> Result<Report> {
    display.step("Starting a real etcd on 127.0.0.1");
    let etcd = tokio::task::block_in_place(EtcdProcess::start_single)?;
    display.say(&format!("    etcd at {}", etcd.endpoint()));

    display.step("Building OS versions 1.0.0 and 2.0.0, a signing key and payloads");
    let build = tokio::task::block_in_place(|| images::build(dir))?;

    display.step(&format!(
        "Making {} machines, each with its own disk (1.0.0 in USR-A), state and machine id",
        options.nodes
    ));
    let mut nodes = Vec::new();
    for i in 1..=options.nodes {
        let mut node =
            tokio::task::block_in_place(|| Node::create(dir.join(format!("node{i}")), i, &build))?;
        node.engine_args = vec!["--lock-retry-max-ms".into(), LOCK_RETRY_MAX_MS.into()];
        nodes.push(node);
    }
    let gpt_before = nodes[0].table()?;

    let config = EtcdConfig::plain(
        vec![etcd.endpoint().parse().context("etcd's client URL")?],
        GROUP,
    );
    let admin = EtcdLock::new(&config, "demo-admin").map_err(|e| anyhow::anyhow!("{e}"))?;
    admin
        .set_max(options.max)
        .await
        .map_err(|e| anyhow::anyhow!("setting the semaphore's max: {e}"))?;
    display.say(&format!(
        "    reboot lock: etcd key {}, max {}",
        admin.key(),
        options.max
    ));

    let (url, server) = serve(build.releases.clone()).await?;
    display.step(&format!("update-server listening on {url}"));

    let reboot = format!(
        "{}[lock.etcd]\nendpoints = [\"{}\"]\ngroup = \"{GROUP}\"\n",
        reboot_toml("etcd-lock"),
        etcd.endpoint()
    );
    display.step(&format!(
        "All {} engines check at once; each reboots only while it holds a lock slot",
        options.nodes
    ));
    let start = Instant::now();
    let timeline = Arc::new(Mutex::new(Vec::new()));
    let names: Vec<(String, String)> = nodes
        .iter()
        .map(|n| (n.machine_id.clone(), n.name.clone()))
        .collect();
    let (stop_monitor, stopped) = watch::channel(false);
    let monitor = tokio::spawn(monitor(
        admin,
        names,
        start,
        timeline.clone(),
        *display,
        stopped,
    ));
    let mut tasks = Vec::new();
    for node in nodes {
        let ctx = CycleContext {
            build: build.clone(),
            url: url.clone(),
            reboot: reboot.clone(),
            start,
            timeline: timeline.clone(),
            display: *display,
        };
        tasks.push(tokio::spawn(cycle(node, ctx)));
    }
    let mut nodes = Vec::new();
    for task in tasks {
        nodes.push(task.await.context("a node task panicked")??);
    }
    let _ = stop_monitor.send(true);
    let max_holders_seen = monitor.await.context("the lock monitor panicked")??;
    let count = nodes.len();
    let events = settle(&server, |e| {
        e.iter()
            .filter(|e| e.event_type == 3 && e.event_result == 2)
            .count()
            == count
    })
    .await?;
    if let Err(e) = server.shutdown().await {
        tracing::warn!(error = %e, "stopping the demo's update server");
    }
    drop(etcd);

    let mut timeline = timeline.lock().map(|t| t.clone()).unwrap_or_default();
    timeline.sort_by_key(|e: &TimelineEntry| e.at);
    let end = start.elapsed();
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    display.step(&format!(
        "Reboot lock over time (# = holds a slot; one column = {} ms)",
        end.as_millis() / CHART_COLUMNS as u128
    ));
    display.block(&lock_chart(&timeline, &names, end, CHART_COLUMNS));
    display.step(&format!(
        "All {count} machines run {V2}; at most {max_holders_seen} held the reboot lock at once (max {})",
        options.max
    ));
    display.step("GPT of node1 after");
    let gpt_after = nodes[0].table()?;
    display.block(&gpt_after);
    display.step("Events the update server received");
    display.block(&events_table(&events));
    let mut slots_after = Vec::new();
    let mut booted_after = Vec::new();
    for node in &nodes {
        slots_after.push(node.slots()?);
        booted_after.push(
            crate::gpt::emulated::last(&node.disk)?
                .map(|b| b.slot)
                .unwrap_or(SlotId::A),
        );
    }
    Ok(Report {
        gpt_before,
        gpt_after,
        slots_after,
        booted_after,
        final_phase: vec!["good".to_string(); count],
        events,
        fleet: Some(FleetReport {
            timeline,
            max_holders_seen,
            max: options.max,
        }),
        elapsed: Duration::ZERO,
    })
}

/// What every node's cycle shares.
struct CycleContext {
    build: Build,
    url: String,
    reboot: String,
    start: Instant,
    timeline: Arc<Mutex<Vec<TimelineEntry>>>,
    display: Display,
}

impl CycleContext {
    fn note(&self, node: &str, what: String) {
        let entry = TimelineEntry {
            at: self.start.elapsed(),
            node: node.to_string(),
            what,
        };
        self.display.say(&format!("    {}", timeline_line(&entry)));
        if let Ok(mut t) = self.timeline.lock() {
            t.push(entry);
        }
    }

    /// An observer that notes each new phase of `node`.
    fn phases<'a>(&'a self, node: &'a str) -> impl FnMut(&StatusReport) + Send + 'a {
        let mut last = String::new();
        move |r: &StatusReport| {
            if r.phase != last && r.phase != "idle" {
                last = r.phase.clone();
                self.note(node, r.human_line());
            }
        }
    }
}

/// One machine: check, install, wait for the lock, reboot, mark good.
async fn cycle(mut node: Node, ctx: CycleContext) -> Result<Node> {
    let name = node.name.clone();
    node.write_config(&ctx.build, &ctx.url, &[HEALTHY], &ctx.reboot)?;
    let engine = node.start().await?;
    let last = engine
        .check_observed(
            &["rebooting", "reporting-error-event"],
            &mut ctx.phases(&name),
        )
        .await
        .with_context(|| format!("{name}: installing"))?;
    engine.stop().await?;
    ensure!(
        last.phase == "rebooting",
        "{name}: the update failed: {}",
        last.human_line()
    );
    // The machine is down for a while: this is when the lock matters.
    tokio::time::sleep(Duration::from_millis(REBOOT_MILLIS)).await;
    node.installed(SlotId::B, V2);
    let booted = node.boot()?;
    ensure!(
        booted == SlotId::B,
        "{name}: the bootloader picked {booted}"
    );
    ctx.note(&name, format!("booted USR-{booted}"));
    node.write_config(&ctx.build, &ctx.url, &[HEALTHY], &ctx.reboot)?;
    let engine = node.start().await?;
    let last = engine
        .wait_observed(&["good", "rebooting"], &mut ctx.phases(&name))
        .await
        .with_context(|| format!("{name}: trial boot"))?;
    engine.stop().await?;
    ensure!(last.phase == "good", "{name}: {}", last.human_line());
    Ok(node)
}

/// Read the semaphore every few milliseconds until told to stop; note each
/// change of holders; return the most holders seen at once.
async fn monitor(
    lock: EtcdLock,
    names: Vec<(String, String)>,
    start: Instant,
    timeline: Arc<Mutex<Vec<TimelineEntry>>>,
    display: Display,
    mut stop: watch::Receiver<bool>,
) -> Result<usize> {
    let name_of = |id: &str| {
        names
            .iter()
            .find(|(m, _)| m == id)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let mut held: Vec<String> = Vec::new();
    let mut most = 0;
    loop {
        let status = lock
            .status()
            .await
            .map_err(|e| anyhow::anyhow!("reading the semaphore: {e}"))?;
        let now: Vec<String> = status
            .semaphore
            .holders()
            .iter()
            .map(|h| name_of(&h.id))
            .collect();
        most = most.max(now.len());
        for entry in holder_changes(&held, &now, start.elapsed()) {
            display.say(&format!("    {}", timeline_line(&entry)));
            if let Ok(mut t) = timeline.lock() {
                t.push(entry);
            }
        }
        held = now;
        if *stop.borrow() {
            return Ok(most);
        }
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(MONITOR_MILLIS)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prerequisites_refuse_zero_nodes_or_slots() {
        let mut o = Options {
            scenario: super::super::Scenario::Fleet,
            nodes: 0,
            max: 2,
            keep: None,
            quiet: true,
        };
        assert!(format!("{:#}", check_prerequisites(&o).unwrap_err()).contains("--nodes"));
        o.nodes = 5;
        o.max = 0;
        assert!(format!("{:#}", check_prerequisites(&o).unwrap_err()).contains("--max"));
    }

    #[test]
    fn on_path_finds_only_executables() {
        assert!(on_path("sh"));
        assert!(!on_path("surely-not-installed-program-xyz"));
    }
}
