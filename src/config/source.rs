//! Where a setting came from (provenance) and the `file: key: problem`
//! error lines of the loader.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// The origin of one setting's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// A TOML drop-in.
    File(PathBuf),
    /// A `KEY=VALUE` line of the legacy `/etc/flatcar/update.conf`.
    Legacy {
        /// The legacy file.
        file: PathBuf,
        /// The legacy key, e.g. `GROUP`.
        key: String,
    },
    /// A system file read for a default (`/etc/machine-id`, `os-release`).
    System(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) | Source::System(path) => write!(f, "{}", path.display()),
            Source::Legacy { file, key } => write!(f, "{} ({key})", file.display()),
        }
    }
}

/// A raw value with the place it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    /// The value as written.
    pub value: T,
    /// Where it was written.
    pub source: Source,
}

/// A raw setting: absent, or a value with its origin.
pub type Field<T> = Option<Sourced<T>>;

/// Which source each setting's final value came from, keyed by dotted
/// path (`reboot.strategy`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance(BTreeMap<String, Source>);

impl Provenance {
    /// Record the origin of `key`.
    pub fn insert(&mut self, key: &str, source: Source) {
        self.0.insert(key.to_string(), source);
    }

    /// The origin of `key`, if it is a known setting.
    pub fn get(&self, key: &str) -> Option<&Source> {
        self.0.get(key)
    }

    /// All settings and their origins, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Source)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// Label used for problems that no single file caused (a required setting
/// that nobody set).
pub const NO_FILE: &str = "<merged config>";

/// One configuration problem: `file: key: problem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file at fault (or [`NO_FILE`]).
    pub file: String,
    /// Dotted key, empty for whole-file problems.
    pub key: String,
    /// What is wrong and what to do.
    pub problem: String,
}

impl ConfigError {
    /// A problem with `key` of the value from `source`.
    pub fn new(source: &Source, key: &str, problem: impl Into<String>) -> Self {
        // A legacy value is named by file and legacy key (`update.conf
        // (GROUP)`), since the dotted key is not what the admin wrote there.
        let file = match source {
            Source::Default => NO_FILE.to_string(),
            other => other.to_string(),
        };
        ConfigError {
            file,
            key: key.to_string(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.problem)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.problem)
        }
    }
}

/// Every problem found while loading; loading fails if there is any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(|e| e.to_string()).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}
