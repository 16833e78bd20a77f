//! Layer 3: validated settings made of domain types. Every key of DESIGN §8
//! (plus the engine's own) with its documented default.

use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::lock::config::{EtcdConfig, FleetLockConfig};
use crate::reboot::{Strategy, Windows};
use crate::version::OsVersion;

/// Default `identity.group` (the Omaha track).
pub const DEFAULT_GROUP: &str = "stable";
/// Default `identity.app_id` (the Omaha app id of the OS).
pub const DEFAULT_APP_ID: &str = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}";
/// Default `identity.board`, also the payload `compatible` string.
pub const DEFAULT_BOARD: &str = "amd64-usr";
/// Default `server.first_check_delay_seconds`.
pub const DEFAULT_FIRST_CHECK_DELAY_SECS: u64 = 420;
/// Default `server.check_interval_seconds`.
pub const DEFAULT_CHECK_INTERVAL_SECS: u64 = 2700;
/// Default `payload.trusted_key_dirs`.
pub const DEFAULT_TRUSTED_KEY_DIRS: [&str; 2] =
    ["/usr/share/update-engine/keys", "/etc/update-engine/keys"];
/// Default `payload.min_signatures`.
pub const DEFAULT_MIN_SIGNATURES: NonZeroUsize = NonZeroUsize::MIN;
/// Default `health.grace_seconds`.
pub const DEFAULT_HEALTH_GRACE_SECS: u64 = 45;
/// Default `health.command_timeout_seconds`.
pub const DEFAULT_HEALTH_COMMAND_TIMEOUT_SECS: u64 = 60;
/// Default `reboot.command`.
pub const DEFAULT_REBOOT_COMMAND: [&str; 2] = ["systemctl", "reboot"];
/// Default `reboot.hook_timeout_seconds`.
pub const DEFAULT_HOOK_TIMEOUT_SECS: u64 = 300;
/// Default `reboot.grace_seconds` (delay after warning users).
pub const DEFAULT_REBOOT_GRACE_SECS: u64 = 60;
/// Default `lock.etcd.endpoints`.
pub const DEFAULT_ETCD_ENDPOINT: &str = "http://127.0.0.1:2379";
/// Default lock group of both lock back ends.
pub const DEFAULT_LOCK_GROUP: &str = "default";
/// Default `control.socket`.
pub const DEFAULT_SOCKET: &str = "/run/update-engine/control.sock";
/// Default `state.dir`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/update-engine";
/// Default `state.runtime_dir`.
pub const DEFAULT_RUNTIME_DIR: &str = "/run/update-engine";

/// A program and its arguments (never run through a shell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// The program: a path, or a name looked up in `PATH`.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
}

impl CommandLine {
    /// From a `[program, args...]` list; the program must not be empty.
    pub fn from_argv(argv: &[String]) -> Result<Self, String> {
        match argv.split_first() {
            Some((program, args)) if !program.is_empty() => Ok(CommandLine {
                program: program.clone(),
                args: args.to_vec(),
            }),
            _ => Err(
                "empty command: write a list with the program first, e.g. [\"/usr/bin/true\"]"
                    .to_string(),
            ),
        }
    }

    /// `[program, args...]`.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.program.clone())
            .chain(self.args.iter().cloned())
            .collect()
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.argv().join(" "))
    }
}

/// All settings of the engine and its tools.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `[identity]`
    pub identity: Identity,
    /// `[server]`
    pub server: Server,
    /// `[payload]`
    pub payload: Payload,
    /// `[health]`
    pub health: Health,
    /// `[reboot]`
    pub reboot: Reboot,
    /// `[lock.*]`
    pub lock: Lock,
    /// `[control]`
    pub control: Control,
    /// `[state]`
    pub state: State,
}

/// Who this node is to the update server.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// Omaha track (`stable`).
    pub group: String,
    /// Omaha app id (`{e96281a6-…}`).
    pub app_id: String,
    /// Board, also the payload `compatible` string (`amd64-usr`).
    pub board: String,
    /// Machine id: config, else `/etc/machine-id`; `None` when neither has
    /// one (the engine refuses to start then; tools that only read do not care).
    pub machine_id: Option<String>,
    /// Installed OS version: config, else `VERSION_ID` of
    /// `/usr/lib/os-release`; `None` when neither has one.
    pub version: Option<OsVersion>,
}

/// The Omaha server and the check schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// Omaha endpoint (required; http or https).
    pub url: Url,
    /// Delay before the first check after start (default 420 s).
    pub first_check_delay: Duration,
    /// Interval between checks (default 2700 s, never zero).
    pub check_interval: Duration,
}

/// Payload trust.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    /// Directories of trusted public keys, in order.
    pub trusted_key_dirs: Vec<PathBuf>,
    /// Key ids that are never trusted (rotation).
    pub revoked_key_ids: Vec<String>,
    /// Allow installing a lower version (default false).
    pub allow_downgrade: bool,
    /// Valid signatures by distinct trusted keys required (default 1).
    pub min_signatures: NonZeroUsize,
}

/// Health checks of a trial boot before it is marked good.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// Time after boot before checking (default 45 s).
    pub grace: Duration,
    /// systemd units that must be active.
    pub required_units: Vec<String>,
    /// Commands that must exit 0.
    pub commands: Vec<CommandLine>,
    /// Time limit of each command (default 60 s).
    pub command_timeout: Duration,
}

/// How and when to reboot into a staged update.
#[derive(Debug, Clone, PartialEq)]
pub struct Reboot {
    /// Coordination strategy (default `immediate`).
    pub strategy: Strategy,
    /// Maintenance windows with their time zone (default: always open, UTC).
    pub windows: Windows,
    /// The command that reboots (default `systemctl reboot`).
    pub command: CommandLine,
    /// Commands run before rebooting; any failure cancels this reboot.
    pub pre_reboot_hooks: Vec<CommandLine>,
    /// Time limit of each hook (default 300 s).
    pub hook_timeout: Duration,
    /// Delay between warning users and rebooting (default 60 s).
    pub grace: Duration,
    /// Warn logged-in users with `wall` (default true).
    pub wall: bool,
}

/// Cluster lock back ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Lock {
    /// `[lock.etcd]` (always present; defaults to the local etcd).
    pub etcd: EtcdConfig,
    /// `[lock.fleet_lock]`; `None` without a `base_url` (required for
    /// strategy `fleet-lock`).
    pub fleet_lock: Option<FleetLockConfig>,
}

/// The control socket.
#[derive(Debug, Clone, PartialEq)]
pub struct Control {
    /// Socket path (default `/run/update-engine/control.sock`).
    pub socket: PathBuf,
    /// Group whose members may change things besides root (default none).
    pub write_group: Option<String>,
}

/// Where the engine keeps its files.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// Persistent state (default `/var/lib/update-engine`).
    pub dir: PathBuf,
    /// Runtime files: status, socket dir (default `/run/update-engine`).
    pub runtime_dir: PathBuf,
}
