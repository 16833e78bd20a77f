//! The one-machine scenarios: `happy` (update, reboot, health ok, marked
//! good) and `rollback` (health check fails, marked bad, the emulated
//! bootloader falls back to slot A, the engine reports the rollback).

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Result};

use super::display::Display;
use super::images::{self, ImageKind, V2};
use super::node::Node;
use super::{events_table, serve, settle, Event, Report, Scenario};
use crate::engine::status::human_bytes;
use crate::slot::SlotId;

/// The health check of a good boot (any command that exits 0 would do).
const HEALTHY: &[&str] = &["true"];
/// The health check of version 2 in the rollback scenario.
const UNHEALTHY: &[&str] = &["false"];
/// Strategy `immediate` with a reboot command that does nothing: the demo
/// emulates the reboot itself once the engine says it is rebooting. No
/// users to warn, no grace period.
const REBOOT_TOML: &str =
    "[reboot]\nstrategy = \"immediate\"\ncommand = [\"true\"]\nwall = false\ngrace_seconds = 0\n";

/// Run `happy` or `rollback` in `dir`.
pub(super) async fn run(dir: &Path, scenario: Scenario, display: &Display) -> Result<Report> {
    display.step("Building OS versions 1.0.0 and 2.0.0, a signing key and payloads");
    let build = tokio::task::block_in_place(|| images::build(dir))?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    display.say(&format!(
        "    images: {} ({} MiB each)",
        match build.kind {
            ImageKind::Ext4 => "ext4 file systems made with mkfs.ext4 -d",
            ImageKind::Generated => "generated files (mkfs.ext4 not installed)",
        },
        images::IMAGE_MIB
    ));
    display.say(&format!(
        "    payloads signed with a fresh ed25519 key: full {}, delta 1.0.0→2.0.0 {}",
        human_bytes(size(&build.full)),
        human_bytes(size(&build.delta))
    ));

    display.step("Making a test disk with 1.0.0 in USR-A and booting it");
    let mut node = tokio::task::block_in_place(|| Node::create(dir.join("node1"), 1, &build))?;
    let gpt_before = node.table()?;
    display.block(&gpt_before);

    let (url, server) = serve(build.releases.clone()).await?;
    display.step(&format!("update-server listening on {url}"));

    display.step("Starting update-engine on 1.0.0 and asking for an update check");
    node.write_config(&build, &url, &[HEALTHY], REBOOT_TOML)?;
    let engine = node.start().await?;
    let last = engine
        .check_until(&["rebooting", "reporting-error-event"], display)
        .await?;
    engine.stop().await?;
    ensure!(
        last.phase == "rebooting",
        "the update failed: {}",
        last.human_line()
    );
    let target = SlotId::B;
    node.installed(target, V2);
    display.step("GPT after the install: USR-B is install-ready (tries=1, higher priority)");
    display.block(&node.table()?);

    display.step("Emulated reboot (the bootloader's gptprio.next)");
    let booted = node.boot()?;
    display.say(&format!("    booted USR-{booted} (one try used)"));
    ensure!(
        booted == target,
        "the bootloader picked {booted}, not {target}"
    );

    let health = match scenario {
        Scenario::Rollback => UNHEALTHY,
        Scenario::Happy => HEALTHY,
    };
    display.step(&format!(
        "Starting update-engine on {} with health check {health:?}",
        node.booted_version()?
    ));
    node.write_config(&build, &url, &[health], REBOOT_TOML)?;
    let engine = node.start().await?;
    let last = engine.wait_for(&["good", "rebooting"], display).await?;
    engine.stop().await?;

    let (final_phase, events) = match scenario {
        Scenario::Happy => {
            ensure!(last.phase == "good", "2.0.0 was not marked good");
            let events = settle(&server, |e| has(e, 3, 2)).await?;
            ("good".to_string(), events)
        }
        Scenario::Rollback => {
            ensure!(
                last.status == "UPDATE_STATUS_ATTEMPTING_ROLLBACK",
                "expected a rollback reboot, got {}",
                last.human_line()
            );
            display.step("GPT after the failed health check: USR-B marked bad (priority 0)");
            display.block(&node.table()?);
            display.step("Emulated reboot");
            let booted = node.boot()?;
            display.say(&format!(
                "    booted USR-{booted}: the bootloader fell back"
            ));
            ensure!(booted == SlotId::A, "the bootloader picked {booted}, not A");
            display.step(&format!(
                "Starting update-engine on {}",
                node.booted_version()?
            ));
            node.write_config(&build, &url, &[HEALTHY], REBOOT_TOML)?;
            let engine = node.start().await?;
            let last = engine.wait_for(&["rolled-back"], display).await?;
            engine.stop().await?;
            let events = settle(&server, |e| {
                e.iter()
                    .any(|e| e.event_type == 3 && e.error_code == Some(44))
            })
            .await?;
            (last.phase, events)
        }
    };
    stop_server(server).await;

    let gpt_after = node.table()?;
    display.step("GPT after");
    display.block(&gpt_after);
    display.step("Events the update server received");
    display.block(&events_table(&events));
    Ok(Report {
        gpt_before,
        gpt_after,
        slots_after: vec![node.slots()?],
        booted_after: vec![booted_slot(&node)?],
        final_phase: vec![final_phase],
        events,
        elapsed: Duration::ZERO,
    })
}

fn has(events: &[Event], event_type: u32, result: u32) -> bool {
    events
        .iter()
        .any(|e| e.event_type == event_type && e.event_result == result)
}

fn booted_slot(node: &Node) -> Result<SlotId> {
    Ok(crate::gpt::emulated::last(&node.disk)?
        .map(|b| b.slot)
        .unwrap_or(SlotId::A))
}

async fn stop_server(server: crate::server::ServerHandle) {
    if let Err(e) = server.shutdown().await {
        tracing::warn!(error = %e, "stopping the demo's update server");
    }
}
