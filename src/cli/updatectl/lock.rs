//! `updatectl lock status|acquire [ID]|release [ID]|set-max N [--group G]`:
//! operate the etcd reboot semaphore directly, like `locksmithctl`.
//!
//! Each command is one attempt (no waiting for a free slot): an operator
//! wants an answer, not a command that blocks until another node reboots.
//! etcd settings and the machine id come from the engine's configuration
//! (`[lock.etcd]`, `identity.machine_id`); flags override single values.
//! With `--endpoint`, an unloadable configuration is skipped with a warning,
//! so the lock can be administered from a machine that runs no engine.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand};
use url::Url;

use crate::config::settings::{DEFAULT_ETCD_ENDPOINT, DEFAULT_LOCK_GROUP};
use crate::config::{self, ConfigSources};
use crate::lock::config::EtcdConfig;
use crate::lock::etcd::{keys, Attempt, LockStatus};
use crate::lock::EtcdLock;

/// `updatectl lock …`
#[derive(Debug, Args)]
pub struct LockArgs {
    /// What to do with the lock.
    #[command(subcommand)]
    pub action: LockAction,
    /// How to reach etcd.
    #[command(flatten)]
    pub etcd: EtcdFlags,
}

/// Lock operations.
#[derive(Debug, Subcommand)]
pub enum LockAction {
    /// Show free slots, max and the holders with the time they took a slot.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Take a slot for ID (default: this machine's id); fails when none is free.
    Acquire {
        /// Holder id; default: this machine's id.
        id: Option<String>,
    },
    /// Give back the slot of ID (default: this machine), e.g. a node that never came back.
    Release {
        /// Holder id; default: this machine's id.
        id: Option<String>,
    },
    /// Set the number of slots; current holders keep theirs when it shrinks.
    SetMax {
        /// New number of slots (0 stops all coordinated reboots).
        n: u32,
    },
}

/// etcd connection flags: each one given overrides `[lock.etcd]`.
#[derive(Debug, Args)]
pub struct EtcdFlags {
    /// etcd client URL (repeatable, tried in order; replaces lock.etcd.endpoints).
    #[arg(long = "endpoint", global = true, value_name = "URL")]
    pub endpoints: Vec<Url>,
    /// Lock group (default: lock.etcd.group, else `default`, locksmith's key).
    #[arg(long, global = true, value_name = "G")]
    pub group: Option<String>,
    /// CA certificate (PEM) that signed the etcd servers' certificates.
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, global = true, value_name = "FILE")]
    pub cert_file: Option<PathBuf>,
    /// Private key (PEM) of --cert-file.
    #[arg(long, global = true, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// etcd user name.
    #[arg(long, global = true)]
    pub username: Option<String>,
    /// etcd password (prefer the environment variable over the flag).
    #[arg(
        long,
        global = true,
        env = "UPDATECTL_ETCD_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// File holding this machine's id (default: identity.machine_id, else /etc/machine-id).
    #[arg(long, global = true, value_name = "FILE")]
    pub machine_id_file: Option<PathBuf>,
}

impl EtcdFlags {
    /// `base` with every flag that was given applied over it.
    pub fn apply(&self, base: EtcdConfig) -> Result<EtcdConfig> {
        let mut config = base;
        if !self.endpoints.is_empty() {
            config.endpoints = self.endpoints.clone();
        }
        let set = |target: &mut Option<PathBuf>, flag: &Option<PathBuf>| {
            if flag.is_some() {
                target.clone_from(flag);
            }
        };
        set(&mut config.ca_file, &self.ca_file);
        set(&mut config.cert_file, &self.cert_file);
        set(&mut config.key_file, &self.key_file);
        if let Some(group) = &self.group {
            config.group.clone_from(group);
        }
        if let Some(user) = &self.username {
            config.username = Some(user.clone());
        }
        if let Some(password) = &self.password {
            config.password = Some(password.clone());
        }
        keys::validate_group(&config.group).map_err(anyhow::Error::msg)?;
        Ok(config)
    }
}

/// `[lock.etcd]` as the configuration defaults it (local etcd, group `default`).
pub fn default_etcd_config() -> EtcdConfig {
    EtcdConfig::plain(
        vec![Url::parse(DEFAULT_ETCD_ENDPOINT).expect("constant URL")],
        DEFAULT_LOCK_GROUP,
    )
}

/// Run `updatectl lock …` with the configuration from `sources`.
pub fn run(args: &LockArgs, sources: &ConfigSources) -> Result<()> {
    let (base, machine_id) = load_settings(&args.etcd, sources)?;
    let config = args.etcd.apply(base)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args, config, machine_id.as_deref()))
}

/// `[lock.etcd]` and the machine id from the configuration. A configuration
/// that does not load is an error, unless `--endpoint` says where etcd is.
fn load_settings(
    flags: &EtcdFlags,
    sources: &ConfigSources,
) -> Result<(EtcdConfig, Option<String>)> {
    match config::load(sources) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            let settings = loaded.settings;
            Ok((settings.lock.etcd, settings.identity.machine_id))
        }
        Err(errors) if !flags.endpoints.is_empty() => {
            eprintln!(
                "warning: not using the configuration ({} problem(s), see `updatectl config check`); using the command-line flags",
                errors.0.len()
            );
            Ok((default_etcd_config(), None))
        }
        Err(errors) => {
            for problem in &errors.0 {
                eprintln!("{problem}");
            }
            bail!(
                "configuration is invalid: {} problem(s) listed above; fix them (`updatectl config check`) or give --endpoint to use flags only",
                errors.0.len()
            )
        }
    }
}

async fn run_async(args: &LockArgs, config: EtcdConfig, machine_id: Option<&str>) -> Result<()> {
    let holder_for = |id: &Option<String>| -> Result<String> {
        if let Some(id) = id {
            return Ok(id.clone());
        }
        match (&args.etcd.machine_id_file, machine_id) {
            (Some(file), _) => read_machine_id(file),
            (None, Some(id)) => Ok(id.to_string()),
            (None, None) => read_machine_id(Path::new(config::MACHINE_ID_FILE)),
        }
    };
    let group = config.group.clone();
    match &args.action {
        LockAction::Status { json } => {
            // Status names no holder; any valid id will do.
            let lock = EtcdLock::new(&config, "updatectl")?;
            let status = lock.status().await?;
            if *json {
                println!("{}", status_json(&status, &group));
            } else {
                print!("{}", format_status(&status, &group, Utc::now()));
            }
        }
        LockAction::Acquire { id } => {
            let id = holder_for(id)?;
            let lock = EtcdLock::new(&config, &id)?;
            match lock.try_acquire().await? {
                Attempt::Taken => println!("{id} took a reboot slot in group {group}"),
                Attempt::AlreadyHeld => {
                    println!("{id} already holds a reboot slot in group {group}")
                }
                Attempt::Full { semaphore, .. } => {
                    let holders: Vec<&str> =
                        semaphore.holders().iter().map(|h| h.id.as_str()).collect();
                    bail!(
                        "no free reboot slot in group {group} (max {}, held by {}); release a stale holder with `updatectl lock release ID` or raise the limit with `updatectl lock set-max N`",
                        semaphore.max(),
                        holders.join(", ")
                    );
                }
            }
        }
        LockAction::Release { id } => {
            let id = holder_for(id)?;
            let lock = EtcdLock::new(&config, &id)?;
            if lock.release_once().await? {
                println!("released the reboot slot of {id} in group {group}");
            } else {
                println!("{id} holds no reboot slot in group {group}; nothing to do");
            }
        }
        LockAction::SetMax { n } => {
            let lock = EtcdLock::new(&config, "updatectl")?;
            let old = lock.set_max(*n).await?;
            println!("max of group {group}: {old} -> {n}");
            let holders = lock.status().await?.semaphore.holders().len();
            if holders > *n as usize {
                println!(
                    "{holders} nodes hold slots; nobody new gets one until fewer than {n} hold"
                );
            }
        }
    }
    Ok(())
}

/// This machine's id: the first line of `path`, trimmed.
pub fn read_machine_id(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the machine id from {} (or pass ID)",
            path.display()
        )
    })?;
    let id = text.lines().next().unwrap_or("").trim();
    if id.is_empty() {
        bail!("{} is empty; pass the holder ID explicitly", path.display());
    }
    Ok(id.to_string())
}

/// Human-readable status, like locksmithctl's.
pub fn format_status(status: &LockStatus, group: &str, now: DateTime<Utc>) -> String {
    let sem = &status.semaphore;
    let mut out = format!("Group: {group}\nKey: {}", status.key);
    if !status.exists {
        out.push_str(" (not created yet; the first acquire or set-max creates it with max 1)");
    }
    out.push_str(&format!(
        "\nAvailable: {}\nMax: {}\nHolders: {}\n",
        sem.available(),
        sem.max(),
        sem.holders().len()
    ));
    for holder in sem.holders() {
        let since = match holder.since {
            Some(t) => format!(
                "since {} ({} ago)",
                t.to_rfc3339_opts(SecondsFormat::Secs, true),
                human_age(now.signed_duration_since(t))
            ),
            None => "since unknown (entry written by another tool)".to_string(),
        };
        out.push_str(&format!("  {}  {since}\n", holder.id));
    }
    out
}

/// Status as JSON (`updatectl lock status --json`).
pub fn status_json(status: &LockStatus, group: &str) -> serde_json::Value {
    let sem = &status.semaphore;
    let holders: Vec<serde_json::Value> = sem
        .holders()
        .iter()
        .map(|h| {
            serde_json::json!({
                "id": h.id,
                "since": h.since.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            })
        })
        .collect();
    serde_json::json!({
        "group": group,
        "key": status.key,
        "exists": status.exists,
        "semaphore": sem.available(),
        "max": sem.max(),
        "holders": holders,
    })
}

fn human_age(age: chrono::Duration) -> String {
    let secs = age.num_seconds().max(0);
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{}s", secs / 60, secs % 60),
        3600..=86399 => format!("{}h{}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{}h", secs / 86400, secs % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::etcd::Semaphore;
    use chrono::TimeZone;

    #[test]
    fn status_text_lists_holders_with_their_age() {
        let taken = Utc.with_ymd_and_hms(2026, 11, 29, 14, 0, 0).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 17, 5, 9).unwrap();
        let mut sem =
            Semaphore::parse(br#"{"semaphore":2,"max":3,"holders":["old-tool"]}"#).unwrap();
        sem.acquire("stale-node", taken);
        let status = LockStatus {
            key: "k/semaphore".into(),
            exists: true,
            semaphore: sem,
        };
        assert_eq!(
            format_status(&status, "default", now),
            "Group: default\nKey: k/semaphore\nAvailable: 1\nMax: 3\nHolders: 2\n  old-tool  since unknown (entry written by another tool)\n  stale-node  since 2026-11-29T14:00:00Z (3h5m ago)\n"
        );
        let json = status_json(&status, "default");
        assert_eq!(json["holders"][1]["since"], "2026-11-29T14:00:00Z");
        assert_eq!(json["holders"][0]["since"], serde_json::Value::Null);
        assert_eq!(json["semaphore"], 1);
    }

    #[test]
    fn missing_key_is_explained() {
        let status = LockStatus {
            key: "k".into(),
            exists: false,
            semaphore: Semaphore::new(1),
        };
        assert!(format_status(&status, "g", Utc::now()).contains("not created yet"));
    }

    #[test]
    fn ages_are_short() {
        let d = chrono::Duration::seconds;
        assert_eq!(human_age(d(-5)), "0s");
        assert_eq!(human_age(d(59)), "59s");
        assert_eq!(human_age(d(61)), "1m1s");
        assert_eq!(human_age(d(90_061)), "1d1h");
    }

    #[test]
    fn machine_id_is_read_trimmed_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("machine-id");
        std::fs::write(&path, "0123abcd\n").unwrap();
        assert_eq!(read_machine_id(&path).unwrap(), "0123abcd");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_machine_id(&path)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        let err = read_machine_id(&dir.path().join("none")).unwrap_err();
        assert!(format!("{err:#}").contains("pass ID"));
    }

    #[test]
    fn flags_override_only_what_they_name() {
        let none = EtcdFlags {
            endpoints: vec![],
            group: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            username: None,
            password: None,
            machine_id_file: None,
        };
        let mut base = default_etcd_config();
        base.group = "workers".into();
        base.ca_file = Some("/etc/ca.pem".into());
        assert_eq!(none.apply(base.clone()).unwrap(), base);
        assert_eq!(
            default_etcd_config().endpoints[0].as_str(),
            "http://127.0.0.1:2379/"
        );

        let some = EtcdFlags {
            endpoints: vec![Url::parse("https://e:2379").unwrap()],
            group: Some("edge".into()),
            username: Some("root".into()),
            password: Some("pw".into()),
            ..none
        };
        let cfg = some.apply(base).unwrap();
        assert_eq!(cfg.endpoints[0].as_str(), "https://e:2379/");
        assert_eq!(cfg.group, "edge");
        assert_eq!(cfg.ca_file.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert_eq!(
            (cfg.username.as_deref(), cfg.password.as_deref()),
            (Some("root"), Some("pw"))
        );
        let bad = EtcdFlags {
            group: Some("a/b".into()),
            ..some
        };
        let err = bad.apply(default_etcd_config()).unwrap_err();
        assert!(err.to_string().contains("not valid"));
    }
}
