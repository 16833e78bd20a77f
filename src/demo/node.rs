//! One emulated machine of the demo: a GPT disk image with version 1 in
//! USR-A, its own config, state and runtime directories and machine id, and
//! the real engine (`update-engine`'s `run_until`) started in-process on a
//! unix socket, exactly as the binary runs in sandbox mode.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::display::Display;
use super::images::{Build, IMAGE_MIB, V1};
use crate::cli::update_engine::{run_until, Args};
use crate::engine::api::client::Client;
use crate::engine::status::StatusReport;
use crate::gpt::{emulated, make, open_disk, SlotInfo};
use crate::slot::SlotId;

/// How long one step of the demo may take before it is declared stuck.
const STEP_TIMEOUT_SECS: u64 = 120;
/// How long the engine may take to bind its socket.
const START_TIMEOUT_SECS: u64 = 30;

/// One machine: disk, directories, identity and the version in each slot.
#[derive(Debug)]
pub struct Node {
    /// Display name (`node1`).
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// The GPT disk image.
    pub disk: PathBuf,
    /// `/etc/machine-id` of this node.
    pub machine_id: String,
    config_dir: PathBuf,
    /// The OS version in each slot (what its os-release would say).
    versions: [Option<String>; 2],
}

impl Node {
    /// Make `dir` with a disk holding `build.v1` in USR-A and boot it once.
    pub fn create(dir: PathBuf, index: usize, build: &Build) -> Result<Node> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let disk = dir.join("disk.img");
        // Slots twice the image size: updates never need the whole slot.
        make::make_disk(
            &disk,
            &make::DiskSpec::new(2 * (IMAGE_MIB << 20)),
            Some(&build.v1),
            None,
        )?;
        let node = Node {
            name: format!("node{index}"),
            config_dir: dir.join("config.d"),
            machine_id: format!("{:032x}", 0xde30_0000_u64 + index as u64),
            dir,
            disk,
            versions: [Some(V1.to_string()), None],
        };
        node.boot()?;
        Ok(node)
    }

    /// Emulate the bootloader (`gptprio.next`): pick a slot, use a try,
    /// record the boot so the engine sees a new boot id.
    pub fn boot(&self) -> Result<SlotId> {
        let mut disk = open_disk(&self.disk, true)?;
        let id = disk
            .boot()
            .with_context(|| format!("{}: no bootable USR slot", self.name))?;
        let partuuid = disk.slot(id).partuuid;
        emulated::record(&self.disk, emulated::LastBoot { slot: id, partuuid })?;
        Ok(id)
    }

    /// The slots as the GPT says now.
    pub fn slots(&self) -> Result<[SlotInfo; 2]> {
        Ok(open_disk(&self.disk, false)?.slots())
    }

    /// The `updatectl slots` table.
    pub fn table(&self) -> Result<String> {
        crate::cli::updatectl::slots::table(&self.disk)
    }

    /// The version of the OS in the booted slot (its os-release).
    pub fn booted_version(&self) -> Result<String> {
        let booted = emulated::last(&self.disk)?
            .map(|b| b.slot)
            .context("the disk was never booted")?;
        self.versions[booted as usize]
            .clone()
            .with_context(|| format!("slot {booted} holds no OS"))
    }

    /// Record that `slot` now holds `version` (after an install).
    pub fn installed(&mut self, slot: SlotId, version: &str) {
        self.versions[slot as usize] = Some(version.to_string());
    }

    /// Write the engine's config for the booted version: the server, the
    /// demo key, `health` commands and the `[reboot]`/`[lock]` TOML in `reboot`.
    pub fn write_config(
        &self,
        build: &Build,
        url: &str,
        health: &[&[&str]],
        reboot: &str,
    ) -> Result<()> {
        std::fs::create_dir_all(&self.config_dir)
            .with_context(|| format!("creating {}", self.config_dir.display()))?;
        let commands: Vec<String> = health.iter().map(|argv| format!("{:?}", argv)).collect();
        let text = format!(
            r#"# Written by `update-server demo` for {name}.
[identity]
machine_id = "{machine_id}"
version = "{version}"
[server]
url = "{url}"
# The demo asks for a check itself (POST /v1/check).
first_check_delay_seconds = 3600
[payload]
trusted_key_dirs = ["{keys}"]
[health]
grace_seconds = 0
commands = [{commands}]
[control]
# Lets this (unprivileged) user ask for a check over the socket.
write_group = "{group}"
{reboot}"#,
            name = self.name,
            machine_id = self.machine_id,
            version = self.booted_version()?,
            keys = build.trusted_keys.display(),
            commands = commands.join(", "),
            group = primary_group()?,
        );
        let path = self.config_dir.join("50-demo.toml");
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// Start the engine on this node (sandbox mode, in-process).
    pub async fn start(&self) -> Result<Engine> {
        let run = self.dir.join("run");
        let args: Vec<std::ffi::OsString> = vec![
            "update-engine".into(),
            "--config-dir".into(),
            self.config_dir.clone().into(),
            "--disk".into(),
            self.disk.clone().into(),
            "--state-dir".into(),
            self.dir.join("state").into(),
            "--run-dir".into(),
            run.clone().into(),
            // The demo has no systemd: unit checks would ask this "systemctl".
            "--systemctl".into(),
            "true".into(),
        ];
        let args = Args::try_parse_from(args).context("building the engine's command line")?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run_until(args, async move {
            let _ = stopped.await;
        }));
        let client = Client::new(&run.join("control.sock"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(START_TIMEOUT_SECS);
        while tokio::time::Instant::now() < deadline {
            if task.is_finished() {
                let result = task.await.context("the engine task panicked")?;
                result.with_context(|| format!("{}: the engine exited at start", self.name))?;
                bail!("{}: the engine exited at start", self.name);
            }
            if client.status().await.is_ok() {
                return Ok(Engine { client, stop, task });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
        bail!("{}: the engine did not open its socket in time", self.name)
    }
}

/// A running engine.
#[derive(Debug)]
pub struct Engine {
    /// Its control API.
    pub client: Client,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<()>>,
}

impl Engine {
    /// Stop it like SIGTERM does and wait for the exit.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("the engine task panicked")?
    }

    /// Ask for an update check and follow until a phase in `until`.
    pub async fn check_until(&self, until: &[&str], display: &Display) -> Result<StatusReport> {
        let mut events = self.client.events().await?;
        let started = self.client.check().await?;
        follow(&mut events, started.seq, until, display).await
    }

    /// Follow the event stream until a phase in `until`.
    pub async fn wait_for(&self, until: &[&str], display: &Display) -> Result<StatusReport> {
        let mut events = self.client.events().await?;
        follow(&mut events, 0, until, display).await
    }
}

async fn follow(
    events: &mut crate::engine::api::client::Events,
    since: u64,
    until: &[&str],
    display: &Display,
) -> Result<StatusReport> {
    let mut progress = display.progress();
    let step = async {
        while let Some(report) = events.next().await? {
            progress.show(&report);
            if report.seq >= since && until.contains(&report.phase.as_str()) {
                progress.finish();
                return Ok(report);
            }
        }
        bail!("the engine closed its event stream")
    };
    tokio::time::timeout(Duration::from_secs(STEP_TIMEOUT_SECS), step)
        .await
        .map_err(|_| anyhow::anyhow!("the engine never reached {until:?}"))?
}

/// The name of this process's primary group.
fn primary_group() -> Result<String> {
    let gid = nix::unistd::getegid();
    Ok(nix::unistd::Group::from_gid(gid)
        .context("looking up the primary group")?
        .with_context(|| format!("group {gid} has no name; the engine's write_group needs one"))?
        .name)
}
