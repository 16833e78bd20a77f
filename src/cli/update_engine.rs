//! `update-engine`: the update agent daemon (DESIGN §9). Reads the
//! configuration, finds the disk and the booted slot (or takes them from the
//! sandbox flags), then runs `engine::daemon` until SIGTERM.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tracing::{info, warn};

use crate::config::{self, CommandLine, ConfigSources, Settings};
use crate::engine::actor::{EngineSettings, RebootSettings};
use crate::engine::api::AccessPolicy;
use crate::engine::daemon::{self, DaemonOptions};
use crate::engine::schedule::ScheduleSettings;
use crate::engine::store::{Paths, Store};
use crate::engine::system::backend::{SystemBackend, Trust};
use crate::engine::system::disk::SlotDisk;
use crate::engine::system::download::DownloadSettings;
use crate::engine::system::health::HealthChecks;
use crate::engine::system::omaha::{Identity, OmahaClient};
use crate::engine::system::reboot::RebootActions;
use crate::gpt::{emulated, find_host_disk};
use crate::lock::{AnyLock, Backoff, EtcdLock, FleetLockClient};
use crate::reboot::hooks::PreReboot;
use crate::reboot::policy::RebootPolicy;
use crate::reboot::Strategy;
use crate::slot::SlotId;

/// Where the kernel publishes this boot's id.
const BOOT_ID_FILE: &str = "/proc/sys/kernel/random/boot_id";
/// Where `/run/reboot-required` lives on a host.
const HOST_REBOOT_REQUIRED: &str = "/run/reboot-required";

/// Command line of `update-engine`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "update-engine",
    version,
    about = "Atomic A/B OS update agent: checks, downloads, verifies, installs, reboots, marks good"
)]
pub struct Args {
    /// Configuration directory (repeatable; later wins). Default: the standard three.
    #[arg(long = "config-dir", value_name = "DIR")]
    pub config_dir: Vec<PathBuf>,
    /// Legacy Flatcar config read as a fallback on a host (a missing file is skipped).
    #[arg(long = "legacy-config", value_name = "FILE", default_value = config::DEFAULT_LEGACY_FILE)]
    pub legacy_config: PathBuf,
    /// Sandbox mode: a GPT disk image instead of the boot disk. Identity
    /// (machine_id, version) then comes from the configuration only.
    #[arg(long, value_name = "IMG")]
    pub disk: Option<PathBuf>,
    /// Sandbox mode: the booted slot (default: the image's last emulated boot).
    #[arg(long = "booted-slot", value_name = "A|B", requires = "disk")]
    pub booted_slot: Option<SlotId>,
    /// Sandbox mode: this boot's id (default: derived from the image's last emulated boot).
    #[arg(long = "boot-id", value_name = "ID", requires = "disk")]
    pub boot_id: Option<String>,
    /// State directory (default: config `state.dir`, /var/lib/update-engine).
    #[arg(long = "state-dir", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Runtime directory for the status file, reboot-required flag and socket
    /// (default: config `state.runtime_dir`; /run/reboot-required stays on a host).
    #[arg(long = "run-dir", value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Control socket (default: RUN_DIR/control.sock with --run-dir, else config `control.socket`).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Reboot command, split on whitespace, no shell (default: config `reboot.command`).
    #[arg(long = "reboot-command", value_name = "CMD")]
    pub reboot_command: Option<String>,
    /// A download with less than 1 KiB in this many seconds has stalled.
    #[arg(long = "stall-seconds", value_name = "SECS", default_value_t = crate::engine::system::stall::STALL_WINDOW_SECS, hide = true)]
    pub stall_seconds: u64,
    /// Persist a download checkpoint every this many bytes, as well as
    /// once a second (0: only by time).
    #[arg(long = "checkpoint-bytes", value_name = "BYTES", default_value_t = crate::engine::system::download::CHECKPOINT_BYTES, hide = true)]
    pub checkpoint_bytes: u64,
    /// Longest wait between two reboot lock attempts, in milliseconds
    /// (the first waits at most 1 s; tests use short delays).
    #[arg(
        long = "lock-retry-max-ms",
        value_name = "MS",
        default_value_t = 60_000,
        hide = true
    )]
    pub lock_retry_max_ms: u64,
    /// The systemctl program used by health checks.
    #[arg(long, value_name = "PROG", default_value = "systemctl")]
    pub systemctl: String,
}

/// Run the daemon until SIGTERM or SIGINT.
pub fn run(args: Args) -> Result<()> {
    tune_malloc();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // Two workers are plenty: the engine is I/O bound and small.
        .worker_threads(2)
        // Named so `top -H` and profiles tell the daemon's threads apart.
        .thread_name("update-engine")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_until(args, shutdown_signal()))
}

/// Tune glibc malloc for streaming payloads: at most 2 arenas. Payload
/// chunks are allocated on the network threads and freed on the applier
/// thread, and per-thread arenas would hold tens of MiB of freed memory (RSS
/// target 32 MiB). (Raising the mmap and trim thresholds to spare receive
/// buffers their page faults was measured: no faster, 2-4 MiB more kept.)
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any other
    // thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = int.recv() => info!("SIGINT received"),
    }
}

/// Run the daemon until `stop` completes (tests and benchmarks use this).
pub async fn run_until(
    args: Args,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let sources = config_sources(&args);
    let loaded = config::load(&sources).map_err(|e| anyhow::anyhow!("{e}"))?;
    for warning in &loaded.warnings {
        warn!("{warning}");
    }
    let setup = Setup::new(&args, loaded.settings)?;
    info!(
        disk = %setup.backend.disk.path().display(),
        booted = %setup.backend.booted,
        version = %setup.backend.current_version,
        "starting update-engine"
    );
    let store = Store::open(setup.paths)?;
    daemon::run(setup.backend, setup.engine, store, setup.options, stop).await
}

fn config_sources(args: &Args) -> ConfigSources {
    let mut sources = if args.disk.is_some() {
        // A sandbox must not pick up the host's identity or settings.
        ConfigSources::isolated(args.config_dir.clone())
    } else {
        let mut s = ConfigSources::system();
        s.legacy_file = Some(args.legacy_config.clone());
        s
    };
    if !args.config_dir.is_empty() {
        sources.dirs = args.config_dir.clone();
    }
    sources
}

/// Everything the daemon needs, derived from flags and settings.
struct Setup {
    backend: SystemBackend,
    engine: EngineSettings,
    paths: Paths,
    options: DaemonOptions,
}

impl Setup {
    fn new(args: &Args, settings: Settings) -> Result<Self> {
        let version = settings.identity.version.clone().context(
            "the running OS version is unknown: set identity.version or VERSION_ID in /usr/lib/os-release",
        )?;
        let machine_id = settings.identity.machine_id.clone().context(
            "the machine id is unknown: set identity.machine_id or create /etc/machine-id",
        )?;
        let (disk, booted, boot_id) = match &args.disk {
            Some(disk) => sandbox_disk(disk, args.booted_slot, args.boot_id.clone())?,
            None => {
                let (disk, booted) = find_host_disk()?;
                (disk, booted, read_boot_id(Path::new(BOOT_ID_FILE))?)
            }
        };
        let run_dir = args
            .run_dir
            .clone()
            .unwrap_or_else(|| settings.state.runtime_dir.clone());
        let paths = Paths {
            state_dir: args
                .state_dir
                .clone()
                .unwrap_or_else(|| settings.state.dir.clone()),
            status_file: run_dir.join("status"),
            reboot_required: if args.run_dir.is_some() {
                run_dir.join("reboot-required")
            } else {
                PathBuf::from(HOST_REBOOT_REQUIRED)
            },
        };
        let socket = match (&args.socket, &args.run_dir) {
            (Some(socket), _) => socket.clone(),
            (None, Some(run_dir)) => run_dir.join("control.sock"),
            (None, None) => settings.control.socket.clone(),
        };
        let admin_group = match &settings.control.write_group {
            Some(name) => Some(
                nix::unistd::Group::from_name(name)
                    .with_context(|| format!("looking up group {name}"))?
                    .with_context(|| format!("control.write_group {name:?} does not exist; create it or remove the setting"))?
                    .gid
                    .as_raw(),
            ),
            None => None,
        };
        let mut pre_reboot = PreReboot::from_settings(&settings.reboot);
        if args.disk.is_some() {
            // A sandbox reboot is emulated: the host's users are not warned.
            pre_reboot.wall = None;
        }
        let coordination = RebootActions {
            lock: reboot_lock(&settings, &machine_id)?,
            pre_reboot,
        };
        let retry_max = std::time::Duration::from_millis(args.lock_retry_max_ms.max(1));
        let reboot = RebootSettings {
            policy: RebootPolicy {
                strategy: settings.reboot.strategy,
                windows: settings.reboot.windows.clone(),
            },
            lock_backoff: Backoff {
                initial: retry_max.min(std::time::Duration::from_secs(1)),
                max: retry_max,
            },
            ..RebootSettings::new(settings.reboot.strategy)
        };
        let reboot_command = match &args.reboot_command {
            Some(text) => {
                let argv: Vec<String> = text.split_whitespace().map(str::to_string).collect();
                CommandLine::from_argv(&argv)
                    .map_err(|e| anyhow::anyhow!("--reboot-command: {e}"))?
            }
            None => settings.reboot.command.clone(),
        };
        let identity = Identity {
            app_id: settings.identity.app_id.clone(),
            track: settings.identity.group.clone(),
            board: settings.identity.board.clone(),
            machine_id,
            boot_id: boot_id.clone(),
            version: version.to_string(),
        };
        let backend = SystemBackend {
            disk: SlotDisk::new(&disk),
            booted,
            boot_id,
            current_version: version.clone(),
            omaha: OmahaClient::new(settings.server.url.clone(), identity)?,
            trust: Trust {
                key_dirs: settings.payload.trusted_key_dirs.clone(),
                revoked: settings.payload.revoked_key_ids.clone(),
                min_signatures: settings.payload.min_signatures.get(),
                compatible: settings.identity.board.clone(),
                allow_downgrade: settings.payload.allow_downgrade,
            },
            download: DownloadSettings {
                stall_window: std::time::Duration::from_secs(args.stall_seconds.max(1)),
                checkpoint_bytes: (args.checkpoint_bytes > 0)
                    .then(|| args.checkpoint_bytes.max(1 << 20)),
                ..DownloadSettings::default()
            },
            health: HealthChecks {
                required_units: settings.health.required_units.clone(),
                commands: settings.health.commands.clone(),
                command_timeout: settings.health.command_timeout,
                systemctl: args.systemctl.clone(),
            },
            reboot_command,
            coordination,
        };
        let engine = EngineSettings {
            current_version: version.to_string(),
            schedule: ScheduleSettings {
                first_check_delay: settings.server.first_check_delay,
                interval: settings.server.check_interval,
                ..ScheduleSettings::default()
            },
            allow_downgrade: settings.payload.allow_downgrade,
            reboot,
            health_grace: settings.health.grace,
        };
        Ok(Setup {
            backend,
            engine,
            paths,
            options: DaemonOptions {
                socket,
                policy: AccessPolicy { admin_group },
            },
        })
    }
}

/// The cluster lock of the configured strategy, held by the machine id.
fn reboot_lock(settings: &Settings, machine_id: &str) -> Result<Option<Arc<AnyLock>>> {
    let lock = match settings.reboot.strategy {
        Strategy::Off | Strategy::Immediate => return Ok(None),
        Strategy::EtcdLock => AnyLock::Etcd(Box::new(
            EtcdLock::new(&settings.lock.etcd, machine_id)
                .context("setting up the etcd reboot lock")?,
        )),
        Strategy::FleetLock => {
            let config =
                settings.lock.fleet_lock.as_ref().context(
                    "reboot.strategy is fleet-lock but lock.fleet_lock.base_url is not set",
                )?;
            AnyLock::FleetLock(Box::new(
                FleetLockClient::new(config, machine_id)
                    .context("setting up the FleetLock client")?,
            ))
        }
    };
    Ok(Some(Arc::new(lock)))
}

/// Sandbox: the image, its booted slot and a boot id. Each emulated boot
/// rewrites the image's last-boot record, so its inode and mtime identify
/// the boot the way `/proc/sys/kernel/random/boot_id` does on a host.
fn sandbox_disk(
    disk: &Path,
    booted: Option<SlotId>,
    boot_id: Option<String>,
) -> Result<(PathBuf, SlotId, String)> {
    let record = emulated::last(disk)?;
    let booted = match (booted, record) {
        (Some(slot), _) => slot,
        (None, Some(last)) => last.slot,
        (None, None) => bail!(
            "{} was never booted: run `update-server boot --disk {}` or pass --booted-slot",
            disk.display(),
            disk.display()
        ),
    };
    let boot_id = match boot_id {
        Some(id) => id,
        None => match std::fs::metadata(emulated::record_path(disk)) {
            Ok(meta) => format!(
                "emulated-{}-{}-{}",
                meta.ino(),
                meta.mtime(),
                meta.mtime_nsec()
            ),
            Err(_) => read_boot_id(Path::new(BOOT_ID_FILE))?,
        },
    };
    Ok((disk.to_path_buf(), booted, boot_id))
}

fn read_boot_id(path: &Path) -> Result<String> {
    let id =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let id = id.trim();
    if id.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn sandbox_flags_need_a_disk() {
        let err = Args::try_parse_from(["update-engine", "--booted-slot", "A"]).unwrap_err();
        assert!(err.to_string().contains("--disk"), "{err}");
        let args = Args::try_parse_from([
            "update-engine",
            "--disk",
            "x.img",
            "--booted-slot",
            "b",
            "--config-dir",
            "/a",
            "--config-dir",
            "/b",
        ])
        .unwrap();
        assert_eq!(args.booted_slot, Some(SlotId::B));
        let sources = config_sources(&args);
        assert_eq!(sources.dirs, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(
            sources.machine_id_file, None,
            "sandboxes ignore the host identity"
        );
    }

    #[test]
    fn sandbox_boot_id_follows_the_emulated_boot() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("d.img");
        let err = sandbox_disk(&img, None, None).unwrap_err();
        assert!(format!("{err:#}").contains("was never booted"), "{err:#}");
        let (_, slot, id) = sandbox_disk(&img, Some(SlotId::A), Some("b1".into())).unwrap();
        assert_eq!((slot, id.as_str()), (SlotId::A, "b1"));
        let boot = emulated::LastBoot {
            slot: SlotId::B,
            partuuid: uuid::Uuid::nil(),
        };
        emulated::record(&img, boot).unwrap();
        let (_, slot, first) = sandbox_disk(&img, None, None).unwrap();
        assert_eq!(slot, SlotId::B);
        std::thread::sleep(std::time::Duration::from_millis(5));
        emulated::record(&img, boot).unwrap();
        let (_, _, second) = sandbox_disk(&img, None, None).unwrap();
        assert_ne!(first, second, "every emulated boot has its own id");
    }

    #[test]
    fn boot_id_file_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("boot_id");
        std::fs::write(&empty, "\n").unwrap();
        assert!(format!("{:#}", read_boot_id(&empty).unwrap_err()).contains("is empty"));
        assert!(read_boot_id(&dir.path().join("missing")).is_err());
    }
}
