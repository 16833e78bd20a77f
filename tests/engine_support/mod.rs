//! A sandbox for engine integration tests: a GPT disk image, a signed
//! payload of a new image, the in-process update server (with faults), a
//! config directory, and the engine run in-process on real sockets.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use ab_updater::cli::update_engine::{run_until, Args};
use ab_updater::engine::api::client::Client;
use ab_updater::engine::status::StatusReport;
use ab_updater::gpt::{emulated, make, open_disk};
use ab_updater::payload::{build_payload, keys::load_signing_key, BuildOptions, DEFAULT_OP_SIZE};
use ab_updater::server::{
    EventRecord, FaultSpec, RecordKind, Releases, Server, ServerConfig, ServerHandle,
};
use ab_updater::slot::SlotId;
use clap::Parser;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const APP_ID: &str = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}";
pub const MACHINE_ID: &str = "0123456789abcdef0123456789abcdef";

/// Deterministic pseudo-random bytes (incompressible, like a real image).
pub fn image_bytes(seed: u64, len: usize) -> Vec<u8> {
    ab_updater::demo::images::noise(seed, len)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub disk: PathBuf,
    pub new_image: Vec<u8>,
    pub payload: PathBuf,
    pub payload_len: u64,
    pub server: Option<ServerHandle>,
    pub url: String,
    pub config_dir: PathBuf,
    /// Checkpoint every MiB (so kill tests find one); the benchmark keeps the default.
    pub small_checkpoints: bool,
}

impl Sandbox {
    /// Disk with slots of `slot_mib`, v1 booted from A; a v2 payload of
    /// `image_mib`; the server offering it with `faults`.
    pub async fn new(image_mib: usize, slot_mib: u64, faults: &[&str]) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("v1.img"), image_bytes(1, image_mib << 20)).unwrap();
        let new_image = image_bytes(2, image_mib << 20);
        std::fs::write(root.join("v2.img"), &new_image).unwrap();
        let disk = root.join("disk.img");
        make::make_disk(
            &disk,
            &make::DiskSpec::new(slot_mib << 20),
            Some(&root.join("v1.img")),
            None,
        )
        .unwrap();
        let key = load_signing_key(&repo().join("fixtures/keys/insecure-test.key")).unwrap();
        let payload = root.join("v2.payload");
        let opts = BuildOptions {
            version: "2.0.0".into(),
            compatible: "amd64-usr".into(),
            epoch: 0,
            expires: None,
            op_size: DEFAULT_OP_SIZE,
            source_version: None,
        };
        build_payload(&root.join("v2.img"), None, &[key], &opts, &payload).unwrap();
        let payload_len = std::fs::metadata(&payload).unwrap().len();
        let mut sandbox = Sandbox {
            config_dir: root.join("config.d"),
            dir,
            disk,
            new_image,
            payload,
            payload_len,
            server: None,
            url: String::new(),
            small_checkpoints: true,
        };
        sandbox.serve(faults).await;
        sandbox.boot();
        sandbox.write_config("1.0.0", "");
        sandbox
    }

    /// (Re)start the update server with `faults`.
    pub async fn serve(&mut self, faults: &[&str]) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.unwrap();
        }
        let releases = Releases::from_toml(
            &format!(
                "[[release]]\napp_id = \"{APP_ID}\"\ntrack = \"stable\"\nversion = \"2.0.0\"\npayload = \"v2.payload\"\n"
            ),
            self.dir.path(),
        )
        .unwrap();
        let config = ServerConfig {
            releases,
            faults: faults
                .iter()
                .map(|f| f.parse::<FaultSpec>().unwrap())
                .collect(),
            events_log: None,
        };
        let (addr, server) = Server::bind(config, "127.0.0.1:0").await.unwrap();
        self.url = format!("http://{addr}/v1/update/");
        self.server = Some(server);
    }

    /// Write the engine's config: identity `version`, plus `extra` TOML.
    pub fn write_config(&self, version: &str, extra: &str) {
        std::fs::create_dir_all(&self.config_dir).unwrap();
        let text = format!(
            r#"[identity]
machine_id = "{MACHINE_ID}"
version = "{version}"
[server]
url = "{url}"
first_check_delay_seconds = 3600
[payload]
trusted_key_dirs = ["{keys}"]
[health]
grace_seconds = 0
[reboot]
strategy = "immediate"
command = ["true"]
grace_seconds = 0
"#,
            url = self.url,
            keys = repo().join("fixtures/keys").display(),
        );
        std::fs::write(self.config_dir.join("10-test.toml"), text).unwrap();
        // Later files override earlier ones key by key.
        std::fs::write(self.config_dir.join("20-extra.toml"), extra).unwrap();
    }

    /// Emulate the bootloader: pick a slot, use a try, record the boot.
    pub fn boot(&self) -> SlotId {
        let mut disk = open_disk(&self.disk, true).unwrap();
        let id = disk.boot().unwrap();
        let partuuid = disk.slot(id).partuuid;
        emulated::record(&self.disk, emulated::LastBoot { slot: id, partuuid }).unwrap();
        id
    }

    pub fn slots(&self) -> [ab_updater::gpt::SlotInfo; 2] {
        open_disk(&self.disk, false).unwrap().slots()
    }

    /// The first `len` bytes of `slot`.
    pub fn slot_bytes(&self, slot: SlotId, len: usize) -> Vec<u8> {
        use std::io::{Read, Seek, SeekFrom};
        let info = self.slots().into_iter().find(|s| s.id == slot).unwrap();
        let mut f = std::fs::File::open(&self.disk).unwrap();
        f.seek(SeekFrom::Start(info.offset_bytes)).unwrap();
        let mut buf = vec![0; len];
        f.read_exact(&mut buf).unwrap();
        buf
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run/control.sock")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The engine's command line (without the program name).
    pub fn arg_list(&self) -> Vec<std::ffi::OsString> {
        let run = self.dir.path().join("run");
        let base: Vec<std::ffi::OsString> = vec![
            "--config-dir".into(),
            self.config_dir.clone().into(),
            "--disk".into(),
            self.disk.clone().into(),
            "--state-dir".into(),
            self.state_dir().into(),
            "--run-dir".into(),
            run.into(),
            "--systemctl".into(),
            "true".into(),
        ];
        base.into_iter()
            .chain(
                self.small_checkpoints
                    .then(|| ["--checkpoint-bytes".into(), "1048576".into()])
                    .into_iter()
                    .flatten(),
            )
            .collect()
    }

    pub fn args(&self) -> Args {
        Args::parse_from(
            std::iter::once("update-engine".into())
                .chain(self.arg_list())
                .collect::<Vec<std::ffi::OsString>>(),
        )
    }

    /// Start the engine binary as a separate process.
    pub async fn spawn_process(&self) -> (std::process::Child, Client) {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_update-engine"))
            .args(self.arg_list())
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        let client = Client::new(&self.socket());
        for _ in 0..1000 {
            if client.status().await.is_ok() {
                return (child, client);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("engine process did not start");
    }

    pub async fn start(&self) -> Engine {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run_until(self.args(), async move {
            let _ = stopped.await;
        }));
        let client = Client::new(&self.socket());
        for _ in 0..500 {
            if task.is_finished() {
                panic!("engine exited at start: {:?}", task.await);
            }
            if client.status().await.is_ok() {
                return Engine { client, stop, task };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("engine did not start");
    }

    /// The Omaha events the server received: (type, result, errorcode, previousversion).
    pub fn events(&self) -> Vec<(u32, u32, Option<i64>, Option<String>)> {
        self.server
            .as_ref()
            .unwrap()
            .events()
            .into_iter()
            .filter(|e: &EventRecord| e.kind == RecordKind::Event)
            .map(|e| {
                (
                    e.event_type.unwrap(),
                    e.event_result.unwrap(),
                    e.error_code,
                    e.previous_version,
                )
            })
            .collect()
    }

    pub fn update_checks(&self) -> usize {
        self.server
            .as_ref()
            .unwrap()
            .events()
            .iter()
            .filter(|e| e.kind == RecordKind::UpdateCheck)
            .count()
    }
}

pub struct Engine {
    pub client: Client,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Engine {
    /// Stop like SIGTERM does and wait for the exit.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }

    /// Kill without a clean shutdown (the task is aborted mid-flight).
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Start a check and follow it until a phase in `until`; returns every report seen.
    pub async fn check_until(&self, until: &[&str]) -> Vec<StatusReport> {
        let mut events = self.client.events().await.unwrap();
        let started = self.client.check().await.unwrap();
        follow(&mut events, started.seq, until).await
    }

    /// Follow the current event stream until a phase in `until`.
    pub async fn wait_for(&self, until: &[&str]) -> Vec<StatusReport> {
        let mut events = self.client.events().await.unwrap();
        follow(&mut events, 0, until).await
    }
}

async fn follow(
    events: &mut ab_updater::engine::api::client::Events,
    since: u64,
    until: &[&str],
) -> Vec<StatusReport> {
    let mut seen = Vec::new();
    let deadline = Duration::from_secs(120);
    tokio::time::timeout(deadline, async {
        while let Some(r) = events.next().await.unwrap() {
            let done = r.seq >= since && until.contains(&r.phase.as_str());
            seen.push(r);
            if done {
                return;
            }
        }
        panic!("event stream ended");
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "never reached {until:?}; saw {:?}",
            seen.iter().map(|r| &r.phase).collect::<Vec<_>>()
        )
    });
    seen
}
