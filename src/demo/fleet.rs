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

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    /// Time since the nodes started.
    pub at: Duration,
    /// `node3`.
    pub node: String,
    /// What happened.
    pub what: String,
}

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

    let config = EtcdConfig {
        endpoints: vec![etcd.endpoint().parse().context("etcd's client URL")?],
        group: GROUP.into(),
        ca_file: None,
        cert_file: None,
        key_file: None,
        username: None,
        password: None,
    };
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

/// Timeline entries for a change of holders from `before` to `now`:
/// releases first, so that counting along the timeline never overshoots.
pub fn holder_changes(before: &[String], now: &[String], at: Duration) -> Vec<TimelineEntry> {
    let mut out = Vec::new();
    for n in before.iter().filter(|n| !now.contains(n)) {
        let rest: Vec<&str> = now.iter().map(String::as_str).collect();
        out.push(TimelineEntry {
            at,
            node: n.clone(),
            what: if rest.is_empty() {
                "released its slot (lock free)".to_string()
            } else {
                format!("released its slot (held by {})", rest.join(", "))
            },
        });
    }
    for n in now.iter().filter(|n| !before.contains(n)) {
        out.push(TimelineEntry {
            at,
            node: n.clone(),
            what: format!("took a reboot lock slot (held by {})", now.join(", ")),
        });
    }
    out
}

/// Who held a lock slot when, one row per node and one column per step of
/// `end / columns` (sampled at the column's middle), and a last row with the
/// number of holders per column.
pub fn lock_chart(
    timeline: &[TimelineEntry],
    nodes: &[String],
    end: Duration,
    columns: usize,
) -> String {
    let columns = columns.max(1);
    let held_at = |node: &str, t: Duration| {
        let mut held = false;
        for e in timeline.iter().filter(|e| e.node == node && e.at <= t) {
            if e.what.starts_with("took a reboot lock slot") {
                held = true;
            } else if e.what.starts_with("released its slot") {
                held = false;
            }
        }
        held
    };
    let at = |c: usize| end.mul_f64((c as f64 + 0.5) / columns as f64);
    let mut counts = vec![0usize; columns];
    let mut out = String::new();
    for node in nodes {
        let row: String = (0..columns)
            .map(|c| {
                if held_at(node, at(c)) {
                    counts[c] += 1;
                    '#'
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!("{node:<7} {row}\n"));
    }
    let total: String = counts
        .iter()
        .map(|&n| char::from_digit(n.min(9) as u32, 10).unwrap_or('9'))
        .collect();
    out.push_str(&format!("{:<7} {total}\n", "holders"));
    out
}

/// `+1.23s  node3  took a reboot lock slot (...)`.
pub fn timeline_line(e: &TimelineEntry) -> String {
    format!("+{:>6.2}s  {:<7} {}", e.at.as_secs_f64(), e.node, e.what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn holder_changes_names_who_took_and_who_released() {
        let at = Duration::from_millis(1500);
        let got = holder_changes(&s(&["node1"]), &s(&["node1", "node2"]), at);
        assert_eq!(
            got,
            [TimelineEntry {
                at,
                node: "node2".into(),
                what: "took a reboot lock slot (held by node1, node2)".into()
            }]
        );
        let got = holder_changes(&s(&["node1", "node2"]), &s(&["node3"]), at);
        let what: Vec<_> = got
            .iter()
            .map(|e| (e.node.as_str(), e.what.as_str()))
            .collect();
        assert_eq!(
            what,
            [
                ("node1", "released its slot (held by node3)"),
                ("node2", "released its slot (held by node3)"),
                ("node3", "took a reboot lock slot (held by node3)"),
            ]
        );
        let got = holder_changes(&s(&["node3"]), &[], at);
        assert_eq!(got[0].what, "released its slot (lock free)");
        assert!(holder_changes(&s(&["a"]), &s(&["a"]), at).is_empty());
    }

    #[test]
    fn lock_chart_samples_each_column_in_its_middle() {
        let e = |ms: u64, node: &str, what: &str| TimelineEntry {
            at: Duration::from_millis(ms),
            node: node.into(),
            what: what.into(),
        };
        let timeline = [
            e(0, "n1", "took a reboot lock slot (held by n1)"),
            e(40, "n1", "released its slot (held by n2)"),
            e(40, "n2", "took a reboot lock slot (held by n2)"),
            e(50, "n2", "booted USR-B"),
            e(80, "n2", "released its slot (lock free)"),
        ];
        let chart = lock_chart(&timeline, &s(&["n1", "n2"]), Duration::from_millis(100), 10);
        assert_eq!(
            chart,
            "n1      ####......\nn2      ....####..\nholders 1111111100\n"
        );
    }

    #[test]
    fn timeline_line_golden() {
        let e = TimelineEntry {
            at: Duration::from_millis(1234),
            node: "node3".into(),
            what: "booted USR-B".into(),
        };
        assert_eq!(timeline_line(&e), "+  1.23s  node3   booted USR-B");
    }

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
