//! Layer 2: finding the drop-ins and merging fragments (DESIGN §7).
//!
//! Directories are given lowest priority first. A file name present in
//! several directories is taken only from the last one (so
//! `/etc/update-engine/config.d/10-x.toml` replaces the vendor's
//! `/usr/lib/.../10-x.toml` entirely); the surviving files are then applied
//! in file-name order, each value overriding earlier ones. Lists (such as
//! `[[reboot.window]]`) are replaced as a whole, never appended.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::raw::RawConfig;
use super::source::{ConfigError, Field, Source};

/// The drop-ins to read, in merge order, and the warnings about entries
/// that are not drop-ins.
#[derive(Debug, Default)]
pub struct DropIns {
    /// `*.toml` files, in the order they apply.
    pub files: Vec<PathBuf>,
    /// Non-`.toml` entries found in the directories.
    pub warnings: Vec<String>,
}

/// List the drop-ins of `dirs` (lowest priority first). A missing
/// directory is normal and skipped; an unreadable one is an error.
pub fn find_drop_ins(dirs: &[PathBuf]) -> Result<DropIns, Vec<ConfigError>> {
    let mut by_name: BTreeMap<OsString, PathBuf> = BTreeMap::new();
    let mut out = DropIns::default();
    let mut problems = Vec::new();
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                problems.push(dir_problem(dir, &e));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    problems.push(dir_problem(dir, &e));
                    continue;
                }
            };
            let path = entry.path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                by_name.insert(entry.file_name(), path);
            } else {
                out.warnings.push(format!(
                    "{}: ignored: not a .toml file (drop-ins must be named *.toml)",
                    path.display()
                ));
            }
        }
    }
    out.warnings.sort();
    out.files = by_name.into_values().collect();
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn dir_problem(dir: &Path, error: &std::io::Error) -> ConfigError {
    ConfigError::new(
        &Source::File(dir.to_path_buf()),
        "",
        format!("cannot read the config directory: {error}"),
    )
}

/// Values set in `later` override those in `earlier`.
fn over<T>(earlier: &mut Field<T>, later: Field<T>) {
    if later.is_some() {
        *earlier = later;
    }
}

/// Merge `later` on top of `base`, field by field.
pub fn merge(base: &mut RawConfig, later: RawConfig) {
    let RawConfig {
        identity,
        server,
        payload,
        health,
        reboot,
        etcd,
        fleet_lock,
        control,
        state,
    } = later;
    over(&mut base.identity.group, identity.group);
    over(&mut base.identity.app_id, identity.app_id);
    over(&mut base.identity.board, identity.board);
    over(&mut base.identity.machine_id, identity.machine_id);
    over(&mut base.identity.version, identity.version);
    over(&mut base.server.url, server.url);
    over(
        &mut base.server.first_check_delay_seconds,
        server.first_check_delay_seconds,
    );
    over(
        &mut base.server.check_interval_seconds,
        server.check_interval_seconds,
    );
    over(&mut base.payload.trusted_key_dirs, payload.trusted_key_dirs);
    over(&mut base.payload.revoked_key_ids, payload.revoked_key_ids);
    over(&mut base.payload.allow_downgrade, payload.allow_downgrade);
    over(&mut base.payload.min_signatures, payload.min_signatures);
    over(&mut base.health.grace_seconds, health.grace_seconds);
    over(&mut base.health.required_units, health.required_units);
    over(&mut base.health.commands, health.commands);
    over(
        &mut base.health.command_timeout_seconds,
        health.command_timeout_seconds,
    );
    over(&mut base.reboot.strategy, reboot.strategy);
    over(&mut base.reboot.time_zone, reboot.time_zone);
    over(&mut base.reboot.command, reboot.command);
    over(&mut base.reboot.pre_reboot_hooks, reboot.pre_reboot_hooks);
    over(
        &mut base.reboot.hook_timeout_seconds,
        reboot.hook_timeout_seconds,
    );
    over(&mut base.reboot.grace_seconds, reboot.grace_seconds);
    over(&mut base.reboot.wall, reboot.wall);
    over(&mut base.reboot.window, reboot.window);
    over(&mut base.etcd.endpoints, etcd.endpoints);
    over(&mut base.etcd.group, etcd.group);
    over(&mut base.etcd.ca_file, etcd.ca_file);
    over(&mut base.etcd.cert_file, etcd.cert_file);
    over(&mut base.etcd.key_file, etcd.key_file);
    over(&mut base.etcd.username, etcd.username);
    over(&mut base.etcd.password, etcd.password);
    over(&mut base.fleet_lock.base_url, fleet_lock.base_url);
    over(&mut base.fleet_lock.group, fleet_lock.group);
    over(&mut base.control.socket, control.socket);
    over(&mut base.control.write_group, control.write_group);
    over(&mut base.state.dir, state.dir);
    over(&mut base.state.runtime_dir, state.runtime_dir);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::parse_fragment;

    #[test]
    fn later_dir_wins_by_name_and_files_apply_in_name_order() {
        let root = tempfile::tempdir().unwrap();
        let vendor = root.path().join("usr");
        let run = root.path().join("run");
        let etc = root.path().join("etc");
        for d in [&vendor, &run, &etc] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(vendor.join("10-a.toml"), "").unwrap();
        std::fs::write(vendor.join("30-c.toml"), "").unwrap();
        std::fs::write(run.join("20-b.toml"), "").unwrap();
        std::fs::write(etc.join("10-a.toml"), "").unwrap();
        std::fs::write(etc.join("README"), "").unwrap();
        std::fs::write(run.join("x.toml.bak"), "").unwrap();
        let missing = root.path().join("missing");
        let found = find_drop_ins(&[vendor.clone(), missing, run.clone(), etc.clone()]).unwrap();
        assert_eq!(
            found.files,
            [
                etc.join("10-a.toml"),
                run.join("20-b.toml"),
                vendor.join("30-c.toml")
            ]
        );
        assert_eq!(found.warnings.len(), 2);
        assert!(found.warnings[0]
            .ends_with("README: ignored: not a .toml file (drop-ins must be named *.toml)"));
        assert!(found.warnings[1].contains("x.toml.bak: ignored"));
    }

    #[test]
    fn unreadable_dir_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("not-a-dir");
        std::fs::write(&file, "").unwrap();
        let problems = find_drop_ins(&[file]).unwrap_err();
        assert!(problems[0]
            .to_string()
            .contains("cannot read the config directory"));
    }

    #[test]
    fn later_values_override_and_keep_their_file() {
        let a = Source::File("a.toml".into());
        let b = Source::File("b.toml".into());
        let mut base = parse_fragment(
            b"[server]\nurl = \"http://a/\"\ncheck_interval_seconds = 60\n[[reboot.window]]\ndays = [\"Mon\"]\n[[reboot.window]]\ndays = [\"Tue\"]\n",
            &a,
        )
        .unwrap();
        let later = parse_fragment(
            b"[server]\nurl = \"http://b/\"\n[[reboot.window]]\ndays = [\"Sun\"]\n",
            &b,
        )
        .unwrap();
        merge(&mut base, later);
        let url = base.server.url.unwrap();
        assert_eq!((url.value.as_str(), &url.source), ("http://b/", &b));
        let interval = base.server.check_interval_seconds.unwrap();
        assert_eq!((interval.value, &interval.source), (60, &a));
        // Lists are replaced, not appended.
        let windows = base.reboot.window.unwrap();
        assert_eq!(windows.value.len(), 1);
        assert_eq!(windows.source, b);
    }
}
