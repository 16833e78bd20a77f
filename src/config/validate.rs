//! Layer 3: from the merged raw fragment to [`Settings`]. Each value is
//! checked where it was written, so problems name that file; every
//! problem is collected and any problem fails the whole load.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use url::Url;

use super::raw::{RawConfig, RawWindow};
use super::settings::*;
use super::source::{ConfigError, Field, Provenance, Source, NO_FILE};
use crate::lock::config::{EtcdConfig, FleetLockConfig};
use crate::reboot::parse::{
    parse_day, parse_locksmith_length, parse_locksmith_start, parse_time_of_day, parse_time_zone,
    MAX_LENGTH_MINUTES,
};
use crate::reboot::{Strategy, Window, Windows};

/// Facts read from the system for defaults, gathered before validation.
#[derive(Debug, Clone)]
pub struct SystemFacts {
    /// Contents of `/etc/machine-id`, if readable.
    pub machine_id: Field<String>,
    /// `VERSION_ID` of os-release, if present.
    pub version: Field<String>,
    /// What `time_zone = "localtime"` resolves to.
    pub localtime: Result<Tz, String>,
}

impl SystemFacts {
    /// No system facts: no machine id, no version, localtime = UTC.
    pub fn none() -> Self {
        SystemFacts {
            machine_id: None,
            version: None,
            localtime: Ok(Tz::UTC),
        }
    }
}

/// Longest identifier accepted for machine ids and lock groups.
const MAX_ID_LEN: usize = 128;

struct Validator {
    problems: Vec<ConfigError>,
    provenance: Provenance,
}

impl Validator {
    /// The value of `key`: parsed from `field`, or `default` when unset
    /// (and, after recording the problem, when invalid).
    fn get<R, T>(
        &mut self,
        key: &str,
        field: &Field<R>,
        default: T,
        parse: impl FnOnce(&R) -> Result<T, String>,
    ) -> T {
        self.optional(key, field, parse).unwrap_or(default)
    }

    /// The value of `key`, `None` when unset or invalid.
    fn optional<R, T>(
        &mut self,
        key: &str,
        field: &Field<R>,
        parse: impl FnOnce(&R) -> Result<T, String>,
    ) -> Option<T> {
        let Some(sourced) = field else {
            self.provenance.insert(key, Source::Default);
            return None;
        };
        self.provenance.insert(key, sourced.source.clone());
        match parse(&sourced.value) {
            Ok(value) => Some(value),
            Err(problem) => {
                self.problems
                    .push(ConfigError::new(&sourced.source, key, problem));
                None
            }
        }
    }

    fn missing(&mut self, key: &str, problem: &str) {
        self.problems.push(ConfigError {
            file: NO_FILE.to_string(),
            key: key.to_string(),
            problem: problem.to_string(),
        });
    }
}

/// Validate the merged configuration.
pub fn validate(
    raw: &RawConfig,
    facts: &SystemFacts,
) -> Result<(Settings, Provenance), Vec<ConfigError>> {
    let mut v = Validator {
        problems: Vec::new(),
        provenance: Provenance::default(),
    };
    let ok = |s: &String| Ok(s.clone());
    let secs = |n: &u64| Ok(Duration::from_secs(*n));
    let paths = |p: &Vec<PathBuf>| Ok(p.clone());

    let i = &raw.identity;
    let machine_id_field = if i.machine_id.is_some() {
        &i.machine_id
    } else {
        &facts.machine_id
    };
    let version_field = if i.version.is_some() {
        &i.version
    } else {
        &facts.version
    };
    let identity = Identity {
        group: v.get("identity.group", &i.group, DEFAULT_GROUP.into(), token),
        app_id: v.get("identity.app_id", &i.app_id, DEFAULT_APP_ID.into(), token),
        board: v.get("identity.board", &i.board, DEFAULT_BOARD.into(), token),
        machine_id: v.optional("identity.machine_id", machine_id_field, token),
        version: v.optional("identity.version", version_field, |s| {
            s.parse().map_err(|e| format!("{e:#}"))
        }),
    };

    let s = &raw.server;
    let url = v.optional("server.url", &s.url, |u| http_url(u));
    if s.url.is_none() {
        v.missing(
            "server.url",
            "missing: set url = \"https://…/v1/update/\" under [server] in a drop-in of /etc/update-engine/config.d/",
        );
    }
    let first_check_delay = v.get(
        "server.first_check_delay_seconds",
        &s.first_check_delay_seconds,
        Duration::from_secs(DEFAULT_FIRST_CHECK_DELAY_SECS),
        secs,
    );
    let check_interval = v.get(
        "server.check_interval_seconds",
        &s.check_interval_seconds,
        Duration::from_secs(DEFAULT_CHECK_INTERVAL_SECS),
        non_zero_secs,
    );

    let p = &raw.payload;
    let payload = Payload {
        trusted_key_dirs: v.get(
            "payload.trusted_key_dirs",
            &p.trusted_key_dirs,
            DEFAULT_TRUSTED_KEY_DIRS.iter().map(PathBuf::from).collect(),
            paths,
        ),
        revoked_key_ids: v.get(
            "payload.revoked_key_ids",
            &p.revoked_key_ids,
            Vec::new(),
            |ids| ids.iter().map(token).collect(),
        ),
        allow_downgrade: v.get("payload.allow_downgrade", &p.allow_downgrade, false, |b| {
            Ok(*b)
        }),
        min_signatures: v.get(
            "payload.min_signatures",
            &p.min_signatures,
            DEFAULT_MIN_SIGNATURES,
            |n| {
                usize::try_from(*n)
                    .ok()
                    .and_then(NonZeroUsize::new)
                    .ok_or_else(|| "must be at least 1".to_string())
            },
        ),
    };

    let h = &raw.health;
    let health = Health {
        grace: v.get(
            "health.grace_seconds",
            &h.grace_seconds,
            Duration::from_secs(DEFAULT_HEALTH_GRACE_SECS),
            secs,
        ),
        required_units: v.get(
            "health.required_units",
            &h.required_units,
            Vec::new(),
            |u| u.iter().map(token).collect(),
        ),
        commands: v.get("health.commands", &h.commands, Vec::new(), |c| commands(c)),
        command_timeout: v.get(
            "health.command_timeout_seconds",
            &h.command_timeout_seconds,
            Duration::from_secs(DEFAULT_HEALTH_COMMAND_TIMEOUT_SECS),
            non_zero_secs,
        ),
    };

    let r = &raw.reboot;
    let strategy = v.get("reboot.strategy", &r.strategy, Strategy::Immediate, |s| {
        s.parse()
    });
    let tz = v.get("reboot.time_zone", &r.time_zone, Tz::UTC, |name| {
        if name == "localtime" {
            facts.localtime.clone()
        } else {
            parse_time_zone(name)
        }
    });
    let windows = windows(&mut v, &r.window);
    let reboot = Reboot {
        strategy,
        windows: Windows::new(tz, windows),
        command: v.get(
            "reboot.command",
            &r.command,
            default_reboot_command(),
            |argv| CommandLine::from_argv(argv),
        ),
        pre_reboot_hooks: v.get(
            "reboot.pre_reboot_hooks",
            &r.pre_reboot_hooks,
            Vec::new(),
            |c| commands(c),
        ),
        hook_timeout: v.get(
            "reboot.hook_timeout_seconds",
            &r.hook_timeout_seconds,
            Duration::from_secs(DEFAULT_HOOK_TIMEOUT_SECS),
            non_zero_secs,
        ),
        grace: v.get(
            "reboot.grace_seconds",
            &r.grace_seconds,
            Duration::from_secs(DEFAULT_REBOOT_GRACE_SECS),
            secs,
        ),
        wall: v.get("reboot.wall", &r.wall, true, |b| Ok(*b)),
    };

    let e = &raw.etcd;
    let etcd = EtcdConfig {
        endpoints: v.get(
            "lock.etcd.endpoints",
            &e.endpoints,
            vec![Url::parse(DEFAULT_ETCD_ENDPOINT).expect("default endpoint is a valid URL")],
            |list| {
                if list.is_empty() {
                    return Err("empty list: give at least one http(s) endpoint".to_string());
                }
                list.iter().map(|u| http_url(u)).collect()
            },
        ),
        group: v.get(
            "lock.etcd.group",
            &e.group,
            DEFAULT_LOCK_GROUP.into(),
            lock_group,
        ),
        ca_file: v.optional("lock.etcd.ca_file", &e.ca_file, |p| Ok(p.clone())),
        cert_file: v.optional("lock.etcd.cert_file", &e.cert_file, |p| Ok(p.clone())),
        key_file: v.optional("lock.etcd.key_file", &e.key_file, |p| Ok(p.clone())),
        username: v.optional("lock.etcd.username", &e.username, ok),
        password: v.optional("lock.etcd.password", &e.password, ok),
    };
    pair(
        &mut v,
        ("lock.etcd.cert_file", &e.cert_file),
        ("lock.etcd.key_file", &e.key_file),
    );
    pair(
        &mut v,
        ("lock.etcd.username", &e.username),
        ("lock.etcd.password", &e.password),
    );

    let f = &raw.fleet_lock;
    let base_url = v.optional("lock.fleet_lock.base_url", &f.base_url, |u| {
        http_url(u).map(with_trailing_slash)
    });
    let fleet_group = v.get(
        "lock.fleet_lock.group",
        &f.group,
        DEFAULT_LOCK_GROUP.into(),
        lock_group,
    );
    if strategy == Strategy::FleetLock && f.base_url.is_none() {
        let source = r
            .strategy
            .as_ref()
            .map_or(Source::Default, |s| s.source.clone());
        v.problems.push(ConfigError::new(
            &source,
            "reboot.strategy",
            "\"fleet-lock\" needs a FleetLock server: set base_url under [lock.fleet_lock]",
        ));
    }
    let fleet_lock = base_url.map(|base_url| FleetLockConfig {
        base_url,
        group: fleet_group,
    });

    let c = &raw.control;
    let control = Control {
        socket: v.get("control.socket", &c.socket, DEFAULT_SOCKET.into(), |p| {
            path(p)
        }),
        write_group: v.optional("control.write_group", &c.write_group, token),
    };
    let st = &raw.state;
    let state = State {
        dir: v.get("state.dir", &st.dir, DEFAULT_STATE_DIR.into(), |p| path(p)),
        runtime_dir: v.get(
            "state.runtime_dir",
            &st.runtime_dir,
            DEFAULT_RUNTIME_DIR.into(),
            |p| path(p),
        ),
    };

    let Some(url) = url.filter(|_| v.problems.is_empty()) else {
        return Err(v.problems);
    };
    let settings = Settings {
        identity,
        server: Server {
            url,
            first_check_delay,
            check_interval,
        },
        payload,
        health,
        reboot,
        lock: Lock { etcd, fleet_lock },
        control,
        state,
    };
    Ok((settings, v.provenance))
}

fn default_reboot_command() -> CommandLine {
    CommandLine {
        program: DEFAULT_REBOOT_COMMAND[0].to_string(),
        args: DEFAULT_REBOOT_COMMAND[1..]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }
}

/// A non-empty name without whitespace or control characters.
fn token(s: &String) -> Result<String, String> {
    if s.is_empty() {
        return Err("empty: give a value or remove the key to use the default".to_string());
    }
    if s.len() > MAX_ID_LEN || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{s:?} is not a valid name: use at most {MAX_ID_LEN} characters without spaces"
        ));
    }
    Ok(s.clone())
}

/// A lock group: also a key segment in etcd, so no `/`.
fn lock_group(s: &String) -> Result<String, String> {
    let name = token(s)?;
    if name.contains('/') {
        return Err(format!(
            "{s:?} contains '/': lock group names are one etcd key segment"
        ));
    }
    Ok(name)
}

fn path(p: &Path) -> Result<PathBuf, String> {
    if p.as_os_str().is_empty() {
        return Err("empty path: give a path or remove the key to use the default".to_string());
    }
    Ok(p.to_path_buf())
}

fn non_zero_secs(n: &u64) -> Result<Duration, String> {
    if *n == 0 {
        return Err("must be at least 1 second".to_string());
    }
    Ok(Duration::from_secs(*n))
}

fn http_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text)
        .map_err(|e| format!("{text:?} is not a URL ({e}): write e.g. \"https://host/path\""))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(format!(
            "{text:?} is not an http:// or https:// URL with a host"
        ));
    }
    Ok(url)
}

/// `Url::join("v1/pre-reboot")` replaces the last path segment unless the
/// base ends in `/`, so a FleetLock base always gets one.
fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

fn commands(list: &[Vec<String>]) -> Result<Vec<CommandLine>, String> {
    list.iter()
        .enumerate()
        .map(|(i, argv)| CommandLine::from_argv(argv).map_err(|e| format!("entry {i}: {e}")))
        .collect()
}

/// Two keys that only make sense together.
fn pair<A, B>(v: &mut Validator, (ka, a): (&str, &Field<A>), (kb, b): (&str, &Field<B>)) {
    let (present, key, other) = match (a, b) {
        (Some(a), None) => (&a.source, ka, kb),
        (None, Some(b)) => (&b.source, kb, ka),
        _ => return,
    };
    let other = other.rsplit('.').next().unwrap_or(other);
    v.problems.push(ConfigError::new(
        present,
        key,
        format!("set without {other}: give both or neither"),
    ));
}

/// `[[reboot.window]]`: each problem keyed `reboot.window[N].key`.
fn windows(v: &mut Validator, field: &Field<Vec<RawWindow>>) -> Vec<Window> {
    let key = "reboot.window";
    let Some(sourced) = field else {
        v.provenance.insert(key, Source::Default);
        return Vec::new();
    };
    v.provenance.insert(key, sourced.source.clone());
    let mut out = Vec::new();
    for (index, raw) in sourced.value.iter().enumerate() {
        let mut problems = Vec::new();
        let mut report = |k: &str, p: String| problems.push((format!("{key}[{index}].{k}"), p));
        if let Some(window) = window(raw, &mut report) {
            out.push(window);
        }
        for (k, p) in problems {
            v.problems.push(ConfigError::new(&sourced.source, &k, p));
        }
    }
    out
}

fn window(raw: &RawWindow, report: &mut impl FnMut(&str, String)) -> Option<Window> {
    let locksmith = raw.start.is_some() || raw.length.is_some();
    let weekly = raw.days.is_some() || raw.start_time.is_some() || raw.length_minutes.is_some();
    if locksmith && weekly {
        report(
            "start",
            "mixes the locksmith form (start, length) with days/start_time/length_minutes: use one form".into(),
        );
        return None;
    }
    if locksmith {
        let start = need(raw.start.as_ref(), "start", "\"Thu 04:00\"", report).and_then(|s| {
            parse_locksmith_start(s)
                .map_err(|e| report("start", e))
                .ok()
        });
        let length = need(raw.length.as_ref(), "length", "\"1h30m\"", report).and_then(|s| {
            parse_locksmith_length(s)
                .map_err(|e| report("length", e))
                .ok()
        });
        let ((days, start), length) = (start?, length?);
        return Window::new(days, start, length)
            .map_err(|e| report("length", e))
            .ok();
    }
    let days = need(raw.days.as_ref(), "days", "[\"Sat\", \"Sun\"]", report).and_then(|days| {
        if days.is_empty() {
            report("days", "empty list: name at least one of Mon..Sun".into());
            return None;
        }
        let parsed: Result<Vec<_>, String> = days.iter().map(|d| parse_day(d)).collect();
        parsed.map_err(|e| report("days", e)).ok()
    });
    let start = need(raw.start_time.as_ref(), "start_time", "\"23:00\"", report).and_then(|s| {
        parse_time_of_day(s)
            .map_err(|e| report("start_time", e))
            .ok()
    });
    let length = need(raw.length_minutes.as_ref(), "length_minutes", "120", report).and_then(|n| {
        u32::try_from(*n)
            .ok()
            .filter(|n| (1..=MAX_LENGTH_MINUTES).contains(n))
            .or_else(|| {
                report(
                    "length_minutes",
                    format!("{n} is out of range: use 1 to {MAX_LENGTH_MINUTES} (one week)"),
                );
                None
            })
    });
    let (days, start, length) = (days?, start?, length?);
    Window::new(days, start, length)
        .map_err(|e| report("length_minutes", e))
        .ok()
}

fn need<'a, T>(
    value: Option<&'a T>,
    key: &str,
    example: &str,
    report: &mut impl FnMut(&str, String),
) -> Option<&'a T> {
    if value.is_none() {
        report(key, format!("missing: add {key} = {example}"));
    }
    value
}
