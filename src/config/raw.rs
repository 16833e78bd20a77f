//! Layer 1: one TOML drop-in as written. Every field is optional; values
//! keep their source file. Parsing reports every unknown key and every
//! wrongly typed value with its dotted key, instead of stopping at the first.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use toml::{Table, Value};

use super::source::{ConfigError, Field, Source, Sourced};

/// A whole fragment (one file, or the legacy file).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawConfig {
    /// `[identity]`
    pub identity: RawIdentity,
    /// `[server]`
    pub server: RawServer,
    /// `[payload]`
    pub payload: RawPayload,
    /// `[health]`
    pub health: RawHealth,
    /// `[reboot]`
    pub reboot: RawReboot,
    /// `[lock.etcd]`
    pub etcd: RawEtcd,
    /// `[lock.fleet_lock]`
    pub fleet_lock: RawFleetLock,
    /// `[control]`
    pub control: RawControl,
    /// `[state]`
    pub state: RawState,
}

/// `[identity]` as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawIdentity {
    /// `group` as written.
    pub group: Field<String>,
    /// `app_id` as written.
    pub app_id: Field<String>,
    /// `board` as written.
    pub board: Field<String>,
    /// `machine_id` as written.
    pub machine_id: Field<String>,
    /// `version` as written.
    pub version: Field<String>,
}

/// `[server]` as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawServer {
    /// `url` as written.
    pub url: Field<String>,
    /// `first_check_delay_seconds` as written.
    pub first_check_delay_seconds: Field<u64>,
    /// `check_interval_seconds` as written.
    pub check_interval_seconds: Field<u64>,
}

/// `[payload]` as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawPayload {
    /// `trusted_key_dirs` as written.
    pub trusted_key_dirs: Field<Vec<PathBuf>>,
    /// `revoked_key_ids` as written.
    pub revoked_key_ids: Field<Vec<String>>,
    /// `allow_downgrade` as written.
    pub allow_downgrade: Field<bool>,
    /// `min_signatures` as written.
    pub min_signatures: Field<u64>,
}

/// `[health]` as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawHealth {
    /// `grace_seconds` as written.
    pub grace_seconds: Field<u64>,
    /// `required_units` as written.
    pub required_units: Field<Vec<String>>,
    /// `commands` as written.
    pub commands: Field<Vec<Vec<String>>>,
    /// `command_timeout_seconds` as written.
    pub command_timeout_seconds: Field<u64>,
}

/// `[reboot]` as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawReboot {
    /// `strategy` as written.
    pub strategy: Field<String>,
    /// `time_zone` as written.
    pub time_zone: Field<String>,
    /// `command` as written.
    pub command: Field<Vec<String>>,
    /// `pre_reboot_hooks` as written.
    pub pre_reboot_hooks: Field<Vec<Vec<String>>>,
    /// `hook_timeout_seconds` as written.
    pub hook_timeout_seconds: Field<u64>,
    /// `grace_seconds` as written.
    pub grace_seconds: Field<u64>,
    /// `wall` as written.
    pub wall: Field<bool>,
    /// `[[reboot.window]]`: the list is replaced as a whole by a later file.
    pub window: Field<Vec<RawWindow>>,
}

/// One `[[reboot.window]]` table: either `days` + `start_time` +
/// `length_minutes`, or the locksmith form `start` + `length`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawWindow {
    /// `days` as written.
    pub days: Option<Vec<String>>,
    /// `start_time` as written.
    pub start_time: Option<String>,
    /// `length_minutes` as written.
    pub length_minutes: Option<u64>,
    /// `start` as written.
    pub start: Option<String>,
    /// `length` as written.
    pub length: Option<String>,
}

/// `[lock.etcd]` as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawEtcd {
    /// `endpoints` as written.
    pub endpoints: Field<Vec<String>>,
    /// `group` as written.
    pub group: Field<String>,
    /// `ca_file` as written.
    pub ca_file: Field<PathBuf>,
    /// `cert_file` as written.
    pub cert_file: Field<PathBuf>,
    /// `key_file` as written.
    pub key_file: Field<PathBuf>,
    /// `username` as written.
    pub username: Field<String>,
    /// `password` as written.
    pub password: Field<String>,
}

/// `[lock.fleet_lock]` as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawFleetLock {
    /// `base_url` as written.
    pub base_url: Field<String>,
    /// `group` as written.
    pub group: Field<String>,
}

/// `[control]` as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawControl {
    /// `socket` as written.
    pub socket: Field<PathBuf>,
    /// `write_group` as written.
    pub write_group: Field<String>,
}

/// `[state]` as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawState {
    /// `dir` as written.
    pub dir: Field<PathBuf>,
    /// `runtime_dir` as written.
    pub runtime_dir: Field<PathBuf>,
}

/// Largest drop-in accepted, in bytes; config files are small.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// Parse one drop-in's bytes. Total: never panics; returns every problem.
pub fn parse_fragment(bytes: &[u8], source: &Source) -> Result<RawConfig, Vec<ConfigError>> {
    match parse_partial(bytes, source) {
        (Some(config), problems) if problems.is_empty() => Ok(config),
        (_, problems) => Err(problems),
    }
}

/// Like [`parse_fragment`], but keeps the values that were fine next to the
/// problems, so that one typo does not hide the file's other settings from
/// validation. `None` when the file is not TOML at all.
pub fn parse_partial(bytes: &[u8], source: &Source) -> (Option<RawConfig>, Vec<ConfigError>) {
    let whole_file = |problem: String| (None, vec![ConfigError::new(source, "", problem)]);
    if bytes.len() > MAX_FILE_BYTES {
        return whole_file(format!(
            "file is larger than {MAX_FILE_BYTES} bytes: config drop-ins are small TOML files"
        ));
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return whole_file("not UTF-8 text: write the drop-in as UTF-8 TOML".to_string());
    };
    let table: Table = match toml::from_str(text) {
        Ok(table) => table,
        Err(e) => return whole_file(toml_problem(text, &e)),
    };
    let mut walker = Walker {
        source,
        problems: Vec::new(),
    };
    let config = walker.fragment(table);
    (Some(config), walker.problems)
}

/// `not TOML at line L column C: message`, on one line.
fn toml_problem(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', " ");
    match error.span() {
        Some(span) => {
            let mut end = span.start.min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let before = &text[..end];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("not valid TOML at line {line} column {column}: {message}")
        }
        None => format!("not valid TOML: {message}"),
    }
}

/// A table being taken apart; whatever is left at the end is unknown.
struct Section {
    path: String,
    table: Table,
}

impl Section {
    fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

struct Walker<'a> {
    source: &'a Source,
    problems: Vec<ConfigError>,
}

impl Walker<'_> {
    fn problem(&mut self, key: &str, problem: impl Into<String>) {
        self.problems
            .push(ConfigError::new(self.source, key, problem));
    }

    /// Take `key` out of `section` and deserialize it as `T`.
    fn take<T: DeserializeOwned>(&mut self, section: &mut Section, key: &str) -> Field<T> {
        let value = section.table.remove(key)?;
        let kind = value.type_str();
        match T::deserialize(value) {
            Ok(value) => Some(Sourced {
                value,
                source: self.source.clone(),
            }),
            Err(e) => {
                let full = section.key(key);
                self.problem(
                    &full,
                    format!("wrong type ({kind}): {}", e.message().trim()),
                );
                None
            }
        }
    }

    /// Take the sub-table `key` out of `section` (empty if absent).
    fn section(&mut self, parent: &mut Section, key: &str) -> Section {
        let path = parent.key(key);
        let table = match parent.table.remove(key) {
            Some(Value::Table(table)) => table,
            Some(other) => {
                let kind = other.type_str();
                self.problem(
                    &path,
                    format!("wrong type ({kind}): expected a table [{path}]"),
                );
                Table::new()
            }
            None => Table::new(),
        };
        Section { path, table }
    }

    /// Report whatever `section` still holds as unknown keys.
    fn finish(&mut self, section: Section) {
        for key in section.table.keys() {
            let full = section.key(key);
            self.problem(
                &full,
                "unknown key: check the spelling against `updatectl config show`",
            );
        }
    }

    fn fragment(&mut self, table: Table) -> RawConfig {
        let mut root = Section {
            path: String::new(),
            table,
        };
        let mut s = self.section(&mut root, "identity");
        let identity = RawIdentity {
            group: self.take(&mut s, "group"),
            app_id: self.take(&mut s, "app_id"),
            board: self.take(&mut s, "board"),
            machine_id: self.take(&mut s, "machine_id"),
            version: self.take(&mut s, "version"),
        };
        self.finish(s);
        let mut s = self.section(&mut root, "server");
        let server = RawServer {
            url: self.take(&mut s, "url"),
            first_check_delay_seconds: self.take(&mut s, "first_check_delay_seconds"),
            check_interval_seconds: self.take(&mut s, "check_interval_seconds"),
        };
        self.finish(s);
        let mut s = self.section(&mut root, "payload");
        let payload = RawPayload {
            trusted_key_dirs: self.take(&mut s, "trusted_key_dirs"),
            revoked_key_ids: self.take(&mut s, "revoked_key_ids"),
            allow_downgrade: self.take(&mut s, "allow_downgrade"),
            min_signatures: self.take(&mut s, "min_signatures"),
        };
        self.finish(s);
        let mut s = self.section(&mut root, "health");
        let health = RawHealth {
            grace_seconds: self.take(&mut s, "grace_seconds"),
            required_units: self.take(&mut s, "required_units"),
            commands: self.take(&mut s, "commands"),
            command_timeout_seconds: self.take(&mut s, "command_timeout_seconds"),
        };
        self.finish(s);
        let mut s = self.section(&mut root, "reboot");
        let reboot = RawReboot {
            strategy: self.take(&mut s, "strategy"),
            time_zone: self.take(&mut s, "time_zone"),
            command: self.take(&mut s, "command"),
            pre_reboot_hooks: self.take(&mut s, "pre_reboot_hooks"),
            hook_timeout_seconds: self.take(&mut s, "hook_timeout_seconds"),
            grace_seconds: self.take(&mut s, "grace_seconds"),
            wall: self.take(&mut s, "wall"),
            window: self.windows(&mut s),
        };
        self.finish(s);
        let mut lock = self.section(&mut root, "lock");
        let mut s = self.section(&mut lock, "etcd");
        let etcd = RawEtcd {
            endpoints: self.take(&mut s, "endpoints"),
            group: self.take(&mut s, "group"),
            ca_file: self.take(&mut s, "ca_file"),
            cert_file: self.take(&mut s, "cert_file"),
            key_file: self.take(&mut s, "key_file"),
            username: self.take(&mut s, "username"),
            password: self.take(&mut s, "password"),
        };
        self.finish(s);
        let mut s = self.section(&mut lock, "fleet_lock");
        let fleet_lock = RawFleetLock {
            base_url: self.take(&mut s, "base_url"),
            group: self.take(&mut s, "group"),
        };
        self.finish(s);
        self.finish(lock);
        let mut s = self.section(&mut root, "control");
        let control = RawControl {
            socket: self.take(&mut s, "socket"),
            write_group: self.take(&mut s, "write_group"),
        };
        self.finish(s);
        let mut s = self.section(&mut root, "state");
        let state = RawState {
            dir: self.take(&mut s, "dir"),
            runtime_dir: self.take(&mut s, "runtime_dir"),
        };
        self.finish(s);
        self.finish(root);
        RawConfig {
            identity,
            server,
            payload,
            health,
            reboot,
            etcd,
            fleet_lock,
            control,
            state,
        }
    }

    /// `[[reboot.window]]`: each table walked on its own so that every bad
    /// key is reported as `reboot.window[N].key`.
    fn windows(&mut self, reboot: &mut Section) -> Field<Vec<RawWindow>> {
        let path = reboot.key("window");
        let tables = match reboot.table.remove("window")? {
            Value::Array(items) => items,
            other => {
                let kind = other.type_str();
                self.problem(
                    &path,
                    format!("wrong type ({kind}): expected [[reboot.window]] tables"),
                );
                return None;
            }
        };
        let mut windows = Vec::new();
        for (index, item) in tables.into_iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            let Value::Table(table) = item else {
                self.problem(&item_path, "wrong type: expected a table");
                continue;
            };
            let mut s = Section {
                path: item_path,
                table,
            };
            let window = RawWindow {
                days: self.take(&mut s, "days").map(|f| f.value),
                start_time: self.take(&mut s, "start_time").map(|f| f.value),
                length_minutes: self.take(&mut s, "length_minutes").map(|f| f.value),
                start: self.take(&mut s, "start").map(|f| f.value),
                length: self.take(&mut s, "length").map(|f| f.value),
            };
            self.finish(s);
            windows.push(window);
        }
        Some(Sourced {
            value: windows,
            source: self.source.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> Source {
        Source::File("/etc/update-engine/config.d/50-test.toml".into())
    }

    fn problems(text: &str) -> Vec<String> {
        parse_fragment(text.as_bytes(), &src())
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn reads_values_with_their_file() {
        let raw = parse_fragment(
            b"[reboot]\nstrategy = \"etcd-lock\"\n[[reboot.window]]\ndays = [\"Sat\"]\nstart_time = \"23:00\"\nlength_minutes = 120\n[lock.etcd]\nendpoints = [\"http://10.0.0.1:2379\"]\n",
            &src(),
        )
        .unwrap();
        let strategy = raw.reboot.strategy.unwrap();
        assert_eq!(strategy.value, "etcd-lock");
        assert_eq!(strategy.source, src());
        assert_eq!(raw.reboot.window.unwrap().value.len(), 1);
        assert_eq!(raw.etcd.endpoints.unwrap().value, ["http://10.0.0.1:2379"]);
        assert_eq!(raw.server, RawServer::default());
    }

    #[test]
    fn every_unknown_key_is_reported() {
        let got = problems(
            "[reboot]\nstrategi = \"off\"\nwindow_start = 1\n[rebot]\nx = 1\n[lock.etcd]\nendpoint = []\n[lock.zk]\n[[reboot.window]]\ndays = [\"Sat\"]\nstart_tme = \"01:00\"\n",
        );
        let f = "/etc/update-engine/config.d/50-test.toml";
        let want = [
            format!("{f}: reboot.window[0].start_tme: unknown key: check the spelling against `updatectl config show`"),
            format!("{f}: reboot.strategi: unknown key: check the spelling against `updatectl config show`"),
            format!("{f}: reboot.window_start: unknown key: check the spelling against `updatectl config show`"),
            format!("{f}: lock.etcd.endpoint: unknown key: check the spelling against `updatectl config show`"),
            format!("{f}: lock.zk: unknown key: check the spelling against `updatectl config show`"),
            format!("{f}: rebot: unknown key: check the spelling against `updatectl config show`"),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn every_wrong_type_is_reported() {
        let got = problems(
            "[server]\ncheck_interval_seconds = \"often\"\nfirst_check_delay_seconds = -5\n[reboot]\ncommand = \"systemctl reboot\"\nwindow = 3\n[payload]\nallow_downgrade = \"yes\"\n",
        );
        assert_eq!(got.len(), 5, "{got:#?}");
        assert!(got[0].ends_with(
            "server.first_check_delay_seconds: wrong type (integer): invalid value: integer `-5`, expected u64"
        ), "{}", got[0]);
        assert!(got[1].contains("server.check_interval_seconds: wrong type (string)"));
        assert!(got[2].contains("payload.allow_downgrade: wrong type (string)"));
        assert!(got[3].contains("reboot.command: wrong type (string)"));
        assert!(got[4].contains("reboot.window: wrong type (integer)"));
    }

    #[test]
    fn section_of_wrong_type_and_window_item_not_a_table() {
        let got = problems("reboot = 5\n[lock]\netcd = \"x\"\n");
        assert!(got[0].contains("reboot: wrong type (integer): expected a table [reboot]"));
        assert!(got[1].contains("lock.etcd: wrong type (string)"));
        let got = problems("[reboot]\nwindow = [1]\n");
        assert!(got[0].contains("reboot.window[0]: wrong type: expected a table"));
    }

    #[test]
    fn not_toml_names_line_and_column() {
        let got = problems("[server]\nurl = https://x\n");
        assert_eq!(got.len(), 1);
        assert!(
            got[0].starts_with(
                "/etc/update-engine/config.d/50-test.toml: not valid TOML at line 2 column 7: "
            ),
            "{}",
            got[0]
        );
        assert!(!got[0].contains('\n'));
    }

    #[test]
    fn not_utf8_and_too_large() {
        let got = parse_fragment(&[0xff, 0xfe, b'='], &src()).unwrap_err();
        assert!(got[0].problem.starts_with("not UTF-8"));
        let big = vec![b'#'; MAX_FILE_BYTES + 1];
        let got = parse_fragment(&big, &src()).unwrap_err();
        assert!(got[0].problem.contains("larger than"));
    }

    #[test]
    fn empty_file_is_an_empty_fragment() {
        assert_eq!(parse_fragment(b"", &src()).unwrap(), RawConfig::default());
    }
}
