//! Configuration (DESIGN §7, §8) in three layers (STYLE 5):
//! [`raw`] TOML fragments with every field optional, [`merge`] of the
//! drop-in directories over the legacy `/etc/flatcar/update.conf`, and
//! [`validate`] into [`Settings`] of domain types. Nothing downstream sees a
//! raw string. Every value remembers the file it came from ([`Provenance`]),
//! and every problem is reported as a `file: key: problem` line; any
//! problem fails the load, the engine never guesses.

pub mod legacy;
pub mod merge;
pub mod raw;
pub mod settings;
pub mod show;
pub mod source;
pub mod validate;

use std::path::{Path, PathBuf};

pub use settings::{CommandLine, Settings};
pub use source::{ConfigError, ConfigErrors, Provenance, Source};

use raw::RawConfig;
use validate::SystemFacts;

/// Default drop-in directories, lowest priority first.
pub const DEFAULT_DIRS: [&str; 3] = [
    "/usr/lib/update-engine/config.d",
    "/run/update-engine/config.d",
    "/etc/update-engine/config.d",
];
/// Default legacy Flatcar config file.
pub const DEFAULT_LEGACY_FILE: &str = "/etc/flatcar/update.conf";
/// Where the default machine id is read from.
pub const MACHINE_ID_FILE: &str = "/etc/machine-id";
/// Where the default OS version (`VERSION_ID`) is read from.
pub const OS_RELEASE_FILE: &str = "/usr/lib/os-release";
/// The symlink `time_zone = "localtime"` follows when `TZ` is unset.
pub const LOCALTIME_LINK: &str = "/etc/localtime";

/// Everything the loader reads; overridable for tests and sandbox mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSources {
    /// Drop-in directories, lowest priority first.
    pub dirs: Vec<PathBuf>,
    /// Legacy `update.conf`; `None` = do not read one.
    pub legacy_file: Option<PathBuf>,
    /// Default for `identity.machine_id`; `None` = no default.
    pub machine_id_file: Option<PathBuf>,
    /// Default for `identity.version`; `None` = no default.
    pub os_release_file: Option<PathBuf>,
    /// The `TZ` value `localtime` honours first.
    pub tz_env: Option<String>,
    /// The `/etc/localtime` symlink `localtime` falls back to.
    pub localtime_link: PathBuf,
}

impl ConfigSources {
    /// A real host: the default directories, legacy file and system files.
    pub fn system() -> Self {
        ConfigSources {
            dirs: DEFAULT_DIRS.iter().map(PathBuf::from).collect(),
            legacy_file: Some(DEFAULT_LEGACY_FILE.into()),
            machine_id_file: Some(MACHINE_ID_FILE.into()),
            os_release_file: Some(OS_RELEASE_FILE.into()),
            tz_env: std::env::var("TZ").ok(),
            localtime_link: LOCALTIME_LINK.into(),
        }
    }

    /// Only `dirs`: no legacy file, no system defaults, `localtime` = UTC.
    /// For tests and sandboxes that must not depend on the host.
    pub fn isolated(dirs: Vec<PathBuf>) -> Self {
        ConfigSources {
            dirs,
            legacy_file: None,
            machine_id_file: None,
            os_release_file: None,
            tz_env: None,
            localtime_link: PathBuf::new(),
        }
    }
}

/// A successfully loaded configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The validated settings.
    pub settings: Settings,
    /// Where each setting came from.
    pub provenance: Provenance,
    /// Things worth telling the operator that do not stop loading
    /// (non-`.toml` files, legacy keys this engine does not use).
    pub warnings: Vec<String>,
}

/// Read, merge and validate the configuration. Every problem of every file
/// is collected; any problem fails the load.
pub fn load(sources: &ConfigSources) -> Result<Loaded, ConfigErrors> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut merged = RawConfig::default();
    // Set when a file could not be read as TOML at all: then "missing key"
    // problems are probably that file's values and would only mislead.
    let mut unreadable_file = false;

    if let Some(legacy_file) = &sources.legacy_file {
        match read_optional(legacy_file) {
            Ok(None) => {}
            Ok(Some(bytes)) => {
                let text = String::from_utf8_lossy(&bytes);
                match legacy::parse_legacy(&text, legacy_file) {
                    Ok(found) => {
                        warnings.extend(found.warnings);
                        merge::merge(&mut merged, found.raw);
                    }
                    Err(found) => problems.extend(found),
                }
            }
            Err(problem) => {
                unreadable_file = true;
                problems.push(problem);
            }
        }
    }

    match merge::find_drop_ins(&sources.dirs) {
        Ok(drop_ins) => {
            warnings.extend(drop_ins.warnings);
            for file in drop_ins.files {
                let source = Source::File(file.clone());
                let bytes = match std::fs::read(&file) {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        unreadable_file = true;
                        problems.push(ConfigError::new(&source, "", format!("cannot read: {e}")));
                        continue;
                    }
                };
                let (fragment, found) = raw::parse_partial(&bytes, &source);
                problems.extend(found);
                match fragment {
                    Some(fragment) => merge::merge(&mut merged, fragment),
                    None => unreadable_file = true,
                }
            }
        }
        Err(found) => {
            unreadable_file = true;
            problems.extend(found);
        }
    }

    let facts = system_facts(sources, &mut warnings);
    match validate::validate(&merged, &facts) {
        Ok((settings, provenance)) if problems.is_empty() => Ok(Loaded {
            settings,
            provenance,
            warnings,
        }),
        Ok(_) => Err(ConfigErrors(problems)),
        Err(found) => {
            problems.extend(
                found
                    .into_iter()
                    .filter(|p| !(unreadable_file && p.file == source::NO_FILE)),
            );
            Err(ConfigErrors(problems))
        }
    }
}

/// Parse and validate one drop-in on its own, with no system facts: the
/// entry point of `fuzz/fuzz_targets/config_parse.rs`. Total: never panics.
pub fn check_fragment(bytes: &[u8]) -> Result<Settings, ConfigErrors> {
    let source = Source::File(PathBuf::from("<fragment>"));
    let raw = raw::parse_fragment(bytes, &source).map_err(ConfigErrors)?;
    validate::validate(&raw, &SystemFacts::none())
        .map(|(settings, _)| settings)
        .map_err(ConfigErrors)
}

/// The file's bytes; `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, ConfigError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError::new(
            &Source::File(path.to_path_buf()),
            "",
            format!("cannot read: {e}"),
        )),
    }
}

/// Read the system defaults. Missing or unusable files give no default
/// (with a warning when unusable): they describe the host, not the
/// configuration, so they never fail the load.
fn system_facts(sources: &ConfigSources, warnings: &mut Vec<String>) -> SystemFacts {
    let read = |path: &Option<PathBuf>| {
        let path = path.as_ref()?;
        let text = std::fs::read_to_string(path).ok()?;
        Some((path.clone(), text))
    };
    let mut usable = |path: PathBuf, what: &str, value: String, ok: bool| {
        if ok {
            Some(source::Sourced {
                value,
                source: Source::System(path),
            })
        } else {
            warnings.push(format!(
                "{}: {value:?} is not a usable {what}; set it in [identity]",
                path.display()
            ));
            None
        }
    };
    let machine_id = read(&sources.machine_id_file).and_then(|(path, text)| {
        let id = text.trim().to_string();
        let ok = !id.is_empty() && !id.chars().any(|c| c.is_whitespace() || c.is_control());
        usable(path, "machine id", id, ok)
    });
    let version = read(&sources.os_release_file).and_then(|(path, text)| {
        let value = os_release_value(&text, "VERSION_ID")?;
        let ok = value.parse::<crate::version::OsVersion>().is_ok();
        usable(path, "version", value, ok)
    });
    SystemFacts {
        machine_id,
        version,
        localtime: crate::reboot::parse::resolve_localtime(
            sources.tz_env.as_deref(),
            &sources.localtime_link,
        ),
    }
}

/// The value of `key` in an os-release file (quotes removed).
fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.trim().split_once('=')?;
        (k == key).then(|| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
    })
}
