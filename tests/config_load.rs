//! The config loader end to end on temporary directories: defaults, merge
//! precedence and provenance, the legacy fallback, and every bad-input case
//! of issue 7 / issue 6 with the exact `file: key: problem` line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ab_updater::config::{load, ConfigSources, Loaded, Source};
use ab_updater::reboot::Strategy;
use chrono::{NaiveTime, Weekday};
use chrono_tz::Tz;

const URL: &str = "[server]\nurl = \"https://updates.example.com/v1/update/\"\n";

struct Dirs {
    _root: tempfile::TempDir,
    vendor: PathBuf,
    run: PathBuf,
    etc: PathBuf,
}

impl Dirs {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let [vendor, run, etc] = ["usr", "run", "etc"].map(|d| {
            let p = root.path().join(d);
            std::fs::create_dir(&p).unwrap();
            p
        });
        Dirs {
            _root: root,
            vendor,
            run,
            etc,
        }
    }

    fn sources(&self) -> ConfigSources {
        ConfigSources::isolated(vec![
            self.vendor.clone(),
            self.run.clone(),
            self.etc.clone(),
        ])
    }

    fn load(&self) -> Result<Loaded, Vec<String>> {
        load(&self.sources()).map_err(|e| e.0.iter().map(|p| p.to_string()).collect())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Load a configuration made of the server URL plus `text` in one file and
/// return the problem lines (the file name is replaced by `F`).
fn problems(text: &str) -> Vec<String> {
    let dirs = Dirs::new();
    let file = write(&dirs.etc, "50-test.toml", &format!("{URL}{text}"));
    let lines = dirs.load().expect_err("config must be refused");
    lines
        .into_iter()
        .map(|l| l.replace(&file.display().to_string(), "F"))
        .collect()
}

#[test]
fn defaults_fill_everything_but_the_server_url() {
    let dirs = Dirs::new();
    let file = write(&dirs.etc, "10-server.toml", URL);
    let loaded = dirs.load().unwrap();
    let s = &loaded.settings;
    assert_eq!(s.identity.group, "stable");
    assert_eq!(s.identity.app_id, "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}");
    assert_eq!(s.identity.board, "amd64-usr");
    assert_eq!(s.identity.machine_id, None);
    assert_eq!(s.identity.version, None);
    assert_eq!(
        s.server.url.as_str(),
        "https://updates.example.com/v1/update/"
    );
    assert_eq!(s.server.first_check_delay, Duration::from_secs(420));
    assert_eq!(s.server.check_interval, Duration::from_secs(2700));
    assert_eq!(
        s.payload.trusted_key_dirs,
        [
            PathBuf::from("/usr/share/update-engine/keys"),
            PathBuf::from("/etc/update-engine/keys")
        ]
    );
    assert!(!s.payload.allow_downgrade);
    assert_eq!(s.payload.min_signatures.get(), 1);
    assert_eq!(s.health.grace, Duration::from_secs(45));
    assert_eq!(s.reboot.strategy, Strategy::Immediate);
    assert!(s.reboot.windows.is_always_open());
    assert_eq!(s.reboot.windows.time_zone(), Tz::UTC);
    assert_eq!(s.reboot.command.argv(), ["systemctl", "reboot"]);
    assert_eq!(s.reboot.grace, Duration::from_secs(60));
    assert!(s.reboot.wall);
    assert_eq!(s.lock.etcd.endpoints[0].as_str(), "http://127.0.0.1:2379/");
    assert_eq!(s.lock.etcd.group, "default");
    assert_eq!(s.lock.fleet_lock, None);
    assert_eq!(
        s.control.socket,
        PathBuf::from("/run/update-engine/control.sock")
    );
    assert_eq!(s.control.write_group, None);
    assert_eq!(s.state.dir, PathBuf::from("/var/lib/update-engine"));
    assert_eq!(
        loaded.provenance.get("server.url"),
        Some(&Source::File(file))
    );
    assert_eq!(
        loaded.provenance.get("identity.group"),
        Some(&Source::Default)
    );
    assert!(loaded.warnings.is_empty());
}

#[test]
fn later_dir_replaces_same_name_and_later_names_override() {
    let dirs = Dirs::new();
    write(
        &dirs.vendor,
        "10-vendor.toml",
        &format!("{URL}[identity]\ngroup = \"vendor\"\nboard = \"arm64-usr\"\n"),
    );
    // Same name in /etc: replaces the vendor file entirely, so `board`
    // returns to its default and `group` comes from /etc.
    let etc_file = write(
        &dirs.etc,
        "10-vendor.toml",
        &format!("{URL}[identity]\ngroup = \"etc\"\n"),
    );
    let run_file = write(&dirs.run, "90-late.toml", "[reboot]\nstrategy = \"off\"\n");
    write(
        &dirs.vendor,
        "95-later.toml",
        "[reboot]\ngrace_seconds = 5\n",
    );
    let loaded = dirs.load().unwrap();
    let s = &loaded.settings;
    assert_eq!(s.identity.group, "etc");
    assert_eq!(s.identity.board, "amd64-usr");
    assert_eq!(s.reboot.strategy, Strategy::Off);
    assert_eq!(s.reboot.grace, Duration::from_secs(5));
    let p = &loaded.provenance;
    assert_eq!(p.get("identity.group"), Some(&Source::File(etc_file)));
    assert_eq!(p.get("identity.board"), Some(&Source::Default));
    assert_eq!(p.get("reboot.strategy"), Some(&Source::File(run_file)));
    assert_eq!(
        p.get("reboot.grace_seconds"),
        Some(&Source::File(dirs.vendor.join("95-later.toml")))
    );
}

#[test]
fn windows_both_forms_and_time_zone() {
    let loaded = {
        let dirs = Dirs::new();
        write(
            &dirs.etc,
            "50-window.toml",
            &format!(
                "{URL}[reboot]\ntime_zone = \"Europe/Berlin\"\n\
                 [[reboot.window]]\ndays = [\"Sat\", \"sunday\"]\nstart_time = \"23:00\"\nlength_minutes = 120\n\
                 [[reboot.window]]\nstart = \"Thu 04:00\"\nlength = \"1h30m\"\n"
            ),
        );
        dirs.load().unwrap()
    };
    let windows = &loaded.settings.reboot.windows;
    assert_eq!(windows.time_zone(), Tz::Europe__Berlin);
    let w = windows.windows();
    assert_eq!(w.len(), 2);
    assert_eq!(w[0].days(), [Weekday::Sat, Weekday::Sun]);
    assert_eq!(w[0].start(), NaiveTime::from_hms_opt(23, 0, 0).unwrap());
    assert_eq!(w[0].length_minutes(), 120);
    assert_eq!(w[1].days(), [Weekday::Thu]);
    assert_eq!(w[1].length_minutes(), 90);
}

#[test]
fn localtime_follows_tz() {
    let dirs = Dirs::new();
    write(
        &dirs.etc,
        "50.toml",
        &format!("{URL}[reboot]\ntime_zone = \"localtime\"\n"),
    );
    let mut sources = dirs.sources();
    sources.tz_env = Some("America/New_York".into());
    let loaded = load(&sources).unwrap();
    assert_eq!(
        loaded.settings.reboot.windows.time_zone(),
        Tz::America__New_York
    );
    sources.tz_env = Some("Not/AZone".into());
    let err = load(&sources).unwrap_err().to_string();
    assert!(
        err.contains("reboot.time_zone: \"localtime\": TZ=\"Not/AZone\""),
        "{err}"
    );
}

#[test]
fn typo_in_a_key() {
    assert_eq!(
        problems("[reboot]\nstrategyy = \"off\"\n"),
        ["F: reboot.strategyy: unknown key: check the spelling against `updatectl config show`"]
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        problems("[reboot]\ngrace_seconds = \"a minute\"\n"),
        ["F: reboot.grace_seconds: wrong type (string): invalid type: string \"a minute\", expected u64"]
    );
}

#[test]
fn window_at_25_00() {
    assert_eq!(
        problems("[[reboot.window]]\ndays = [\"Sat\"]\nstart_time = \"25:00\"\nlength_minutes = 60\n"),
        ["F: reboot.window[0].start_time: \"25:00\" is not a time of day: write HH:MM from 00:00 to 23:59"]
    );
}

#[test]
fn window_of_zero_length_and_too_long() {
    assert_eq!(
        problems("[[reboot.window]]\ndays = [\"Sat\"]\nstart_time = \"01:00\"\nlength_minutes = 0\n[[reboot.window]]\ndays = [\"Sun\"]\nstart_time = \"01:00\"\nlength_minutes = 10081\n"),
        [
            "F: reboot.window[0].length_minutes: 0 is out of range: use 1 to 10080 (one week)",
            "F: reboot.window[1].length_minutes: 10081 is out of range: use 1 to 10080 (one week)",
        ]
    );
    assert_eq!(
        problems("[[reboot.window]]\nstart = \"Thu 04:00\"\nlength = \"0m\"\n"),
        ["F: reboot.window[0].length: \"0m\" is out of range: a window lasts from 1 minute to one week (168h)"]
    );
}

#[test]
fn bad_day_names_and_missing_window_keys() {
    assert_eq!(
        problems("[[reboot.window]]\ndays = [\"Sat\", \"Caturday\"]\nstart_time = \"01:00\"\nlength_minutes = 30\n[[reboot.window]]\ndays = []\n"),
        [
            "F: reboot.window[0].days: \"Caturday\" is not a day name: use Mon, Tue, Wed, Thu, Fri, Sat or Sun",
            "F: reboot.window[1].days: empty list: name at least one of Mon..Sun",
            "F: reboot.window[1].start_time: missing: add start_time = \"23:00\"",
            "F: reboot.window[1].length_minutes: missing: add length_minutes = 120",
        ]
    );
    assert_eq!(
        problems("[[reboot.window]]\ndays = [\"Sat\"]\nstart = \"Thu 04:00\"\n"),
        ["F: reboot.window[0].start: mixes the locksmith form (start, length) with days/start_time/length_minutes: use one form"]
    );
}

#[test]
fn unknown_time_zone() {
    assert_eq!(
        problems("[reboot]\ntime_zone = \"Europe/Atlantis\"\n"),
        ["F: reboot.time_zone: \"Europe/Atlantis\" is not a known time zone: use \"UTC\", an IANA name such as \"Europe/Berlin\", or \"localtime\""]
    );
}

#[test]
fn unknown_strategy() {
    assert_eq!(
        problems("[reboot]\nstrategy = \"sometimes\"\n"),
        ["F: reboot.strategy: unknown strategy \"sometimes\": use \"off\", \"immediate\", \"etcd-lock\" or \"fleet-lock\""]
    );
}

#[test]
fn missing_and_invalid_server_url() {
    let dirs = Dirs::new();
    write(&dirs.etc, "50.toml", "[identity]\ngroup = \"beta\"\n");
    assert_eq!(
        dirs.load().unwrap_err(),
        ["<merged config>: server.url: missing: set url = \"https://…/v1/update/\" under [server] in a drop-in of /etc/update-engine/config.d/"]
    );
    let dirs = Dirs::new();
    let f = write(&dirs.etc, "50.toml", "[server]\nurl = \"ftp://x/\"\n");
    assert_eq!(
        dirs.load().unwrap_err(),
        [format!(
            "{}: server.url: \"ftp://x/\" is not an http:// or https:// URL with a host",
            f.display()
        )]
    );
    let dirs = Dirs::new();
    let f = write(&dirs.etc, "50.toml", "[server]\nurl = \"updates\"\n");
    let lines = dirs.load().unwrap_err();
    assert!(
        lines[0].starts_with(&format!(
            "{}: server.url: \"updates\" is not a URL",
            f.display()
        )),
        "{lines:?}"
    );
}

#[test]
fn file_that_is_not_toml_and_files_that_are_not_toml_files() {
    let dirs = Dirs::new();
    write(&dirs.vendor, "10-server.toml", URL);
    let bad = write(&dirs.etc, "20-bad.toml", "[reboot\nstrategy = off\n");
    write(&dirs.etc, "README.md", "notes");
    let lines = dirs.load().unwrap_err();
    // Only the syntax problem: no follow-up noise about missing keys.
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!(
            "{}: not valid TOML at line 1 column",
            bad.display()
        )),
        "{lines:?}"
    );

    std::fs::remove_file(&bad).unwrap();
    let loaded = dirs.load().unwrap();
    assert_eq!(
        loaded.warnings,
        [format!(
            "{}: ignored: not a .toml file (drop-ins must be named *.toml)",
            dirs.etc.join("README.md").display()
        )]
    );
}

#[test]
fn all_problems_of_all_files_are_reported() {
    let dirs = Dirs::new();
    let a = write(
        &dirs.vendor,
        "10-a.toml",
        "[reboot]\nstrategy = \"maybe\"\ncolour = 1\n",
    );
    let b = write(
        &dirs.etc,
        "20-b.toml",
        "[server]\ncheck_interval_seconds = 0\n",
    );
    let lines = dirs.load().unwrap_err();
    let a = a.display();
    let b = b.display();
    assert_eq!(
        lines,
        [
            format!("{a}: reboot.colour: unknown key: check the spelling against `updatectl config show`"),
            "<merged config>: server.url: missing: set url = \"https://…/v1/update/\" under [server] in a drop-in of /etc/update-engine/config.d/".to_string(),
            format!("{b}: server.check_interval_seconds: must be at least 1 second"),
            format!("{a}: reboot.strategy: unknown strategy \"maybe\": use \"off\", \"immediate\", \"etcd-lock\" or \"fleet-lock\""),
        ]
    );
}

#[test]
fn lock_settings_and_their_pairs() {
    assert_eq!(
        problems("[reboot]\nstrategy = \"fleet-lock\"\n"),
        ["F: reboot.strategy: \"fleet-lock\" needs a FleetLock server: set base_url under [lock.fleet_lock]"]
    );
    assert_eq!(
        problems("[lock.etcd]\ncert_file = \"/c.pem\"\npassword = \"p\"\ngroup = \"a/b\"\nendpoints = []\n"),
        [
            "F: lock.etcd.endpoints: empty list: give at least one http(s) endpoint",
            "F: lock.etcd.group: \"a/b\" contains '/': lock group names are one etcd key segment",
            "F: lock.etcd.cert_file: set without key_file: give both or neither",
            "F: lock.etcd.password: set without username: give both or neither",
        ]
    );
    let dirs = Dirs::new();
    write(
        &dirs.etc,
        "50.toml",
        &format!("{URL}[reboot]\nstrategy = \"fleet-lock\"\n[lock.fleet_lock]\nbase_url = \"http://fl.example:3333/base\"\ngroup = \"workers\"\n[lock.etcd]\nendpoints = [\"https://e1:2379\", \"https://e2:2379\"]\nca_file = \"/ca.pem\"\ncert_file = \"/c.pem\"\nkey_file = \"/k.pem\"\nusername = \"u\"\npassword = \"p\"\n"),
    );
    let lock = dirs.load().unwrap().settings.lock;
    let fleet = lock.fleet_lock.unwrap();
    // A trailing slash is added so that joining `v1/pre-reboot` keeps `base`.
    assert_eq!(fleet.base_url.as_str(), "http://fl.example:3333/base/");
    assert_eq!(fleet.group, "workers");
    assert_eq!(lock.etcd.endpoints.len(), 2);
    assert_eq!(lock.etcd.username.as_deref(), Some("u"));
}

#[test]
fn commands_must_name_a_program() {
    assert_eq!(
        problems("[reboot]\npre_reboot_hooks = [[\"/bin/true\"], []]\ncommand = [\"\"]\n"),
        [
            "F: reboot.command: empty command: write a list with the program first, e.g. [\"/usr/bin/true\"]",
            "F: reboot.pre_reboot_hooks: entry 1: empty command: write a list with the program first, e.g. [\"/usr/bin/true\"]",
        ]
    );
}

#[test]
fn legacy_file_is_a_fallback_below_drop_ins() {
    let dirs = Dirs::new();
    let legacy = write(
        &dirs.etc,
        "update.conf",
        "GROUP=beta\nSERVER=https://nebraska.example/v1/update/\nREBOOT_STRATEGY=etcd-lock\n\
         LOCKSMITHD_REBOOT_WINDOW_START=Thu 04:00\nLOCKSMITHD_REBOOT_WINDOW_LENGTH=1h30m\nPCR_POLICY_SERVER=x\n",
    );
    let mut sources = ConfigSources::isolated(vec![dirs.vendor.clone(), dirs.run.clone()]);
    sources.legacy_file = Some(legacy.clone());
    let loaded = load(&sources).unwrap();
    let s = &loaded.settings;
    assert_eq!(s.identity.group, "beta");
    assert_eq!(s.server.url.as_str(), "https://nebraska.example/v1/update/");
    assert_eq!(s.reboot.strategy, Strategy::EtcdLock);
    assert_eq!(s.reboot.windows.windows()[0].days(), [Weekday::Thu]);
    assert_eq!(
        loaded.provenance.get("identity.group").unwrap().to_string(),
        format!("{} (GROUP)", legacy.display())
    );
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].contains("PCR_POLICY_SERVER"));

    // A drop-in overrides the legacy value; untouched legacy values stay.
    write(&dirs.run, "50.toml", "[identity]\ngroup = \"alpha\"\n");
    let loaded = load(&sources).unwrap();
    assert_eq!(loaded.settings.identity.group, "alpha");
    assert_eq!(loaded.settings.reboot.strategy, Strategy::EtcdLock);

    // A missing legacy file is normal.
    sources.legacy_file = Some(dirs.etc.join("absent.conf"));
    let lines: Vec<String> = load(&sources)
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains("server.url: missing"));

    // Legacy values are validated like any other, naming the legacy file.
    write(
        &dirs.etc,
        "bad.conf",
        "SERVER=https://x/\nREBOOT_STRATEGY=sometimes\n",
    );
    sources.legacy_file = Some(dirs.etc.join("bad.conf"));
    let lines: Vec<String> = load(&sources)
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        lines,
        [format!("{} (REBOOT_STRATEGY): reboot.strategy: unknown strategy \"sometimes\": use \"off\", \"immediate\", \"etcd-lock\" or \"fleet-lock\"", dirs.etc.join("bad.conf").display())]
    );
    write(
        &dirs.etc,
        "bad.conf",
        "SERVER=https://x/\nLOCKSMITHD_REBOOT_WINDOW_START=Thx 04:00\nLOCKSMITHD_REBOOT_WINDOW_LENGTH=25h0\n",
    );
    let lines: Vec<String> = load(&sources)
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect();
    let f = format!(
        "{} (LOCKSMITHD_REBOOT_WINDOW_*)",
        dirs.etc.join("bad.conf").display()
    );
    assert_eq!(
        lines,
        [
            format!("{f}: reboot.window[0].start: \"Thx\" is not a day name: use Mon, Tue, Wed, Thu, Fri, Sat or Sun"),
            format!("{f}: reboot.window[0].length: \"25h0\" is not a window length: write hours and minutes like \"1h30m\", \"90m\" or \"2h\""),
        ]
    );
}

#[test]
fn machine_id_and_version_from_system_files() {
    let dirs = Dirs::new();
    write(&dirs.etc, "10.toml", URL);
    let machine_id = write(
        &dirs.vendor,
        "machine-id",
        "0123456789abcdef0123456789abcdef\n",
    );
    let os_release = write(
        &dirs.vendor,
        "os-release",
        "NAME=\"Flatcar\"\nVERSION_ID=\"3815.2.0\"\n",
    );
    let mut sources = dirs.sources();
    sources.machine_id_file = Some(machine_id.clone());
    sources.os_release_file = Some(os_release);
    let loaded = load(&sources).unwrap();
    let id = &loaded.settings.identity;
    assert_eq!(
        id.machine_id.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(id.version.as_ref().unwrap().as_str(), "3815.2.0");
    assert_eq!(
        loaded.provenance.get("identity.machine_id"),
        Some(&Source::System(machine_id))
    );
    // Config wins over the system files.
    write(
        &dirs.etc,
        "20.toml",
        "[identity]\nmachine_id = \"node-7\"\nversion = \"1.0.0\"\n",
    );
    let loaded = load(&sources).unwrap();
    assert_eq!(
        loaded.settings.identity.machine_id.as_deref(),
        Some("node-7")
    );
    assert_eq!(loaded.settings.identity.version.unwrap().as_str(), "1.0.0");
    write(
        &dirs.etc,
        "30.toml",
        "[identity]\nversion = \"one\"\nmachine_id = \"has space\"\n",
    );
    let err = load(&sources).unwrap_err().to_string();
    assert!(
        err.contains("identity.machine_id: \"has space\" is not a valid name"),
        "{err}"
    );
    assert!(
        err.contains("identity.version: invalid version \"one\""),
        "{err}"
    );
}

#[test]
fn other_value_checks() {
    assert_eq!(
        problems(
            "[payload]\nmin_signatures = 0\nrevoked_key_ids = [\"\"]\n[health]\nrequired_units = [\"a b\"]\ncommand_timeout_seconds = 0\ncommands = [[]]\n[reboot]\nhook_timeout_seconds = 0\n[lock.etcd]\nkey_file = \"/k.pem\"\nusername = \"u\"\n[lock.fleet_lock]\nbase_url = \"fleetlock\"\ngroup = \"a/b\"\n[control]\nsocket = \"\"\nwrite_group = \"\"\n[state]\ndir = \"\"\n"
        ),
        [
            "F: payload.revoked_key_ids: empty: give a value or remove the key to use the default",
            "F: payload.min_signatures: must be at least 1",
            "F: health.required_units: \"a b\" is not a valid name: use at most 128 characters without spaces",
            "F: health.commands: entry 0: empty command: write a list with the program first, e.g. [\"/usr/bin/true\"]",
            "F: health.command_timeout_seconds: must be at least 1 second",
            "F: reboot.hook_timeout_seconds: must be at least 1 second",
            "F: lock.etcd.key_file: set without cert_file: give both or neither",
            "F: lock.etcd.username: set without password: give both or neither",
            "F: lock.fleet_lock.base_url: \"fleetlock\" is not a URL (relative URL without a base): write e.g. \"https://host/path\"",
            "F: lock.fleet_lock.group: \"a/b\" contains '/': lock group names are one etcd key segment",
            "F: control.socket: empty path: give a path or remove the key to use the default",
            "F: control.write_group: empty: give a value or remove the key to use the default",
            "F: state.dir: empty path: give a path or remove the key to use the default",
        ]
    );
}

#[test]
fn unreadable_files_are_reported() {
    let dirs = Dirs::new();
    write(&dirs.vendor, "10.toml", URL);
    // A directory where a drop-in or the legacy file should be.
    std::fs::create_dir(dirs.etc.join("20-dir.toml")).unwrap();
    let mut sources = dirs.sources();
    sources.legacy_file = Some(dirs.run.clone());
    let lines: Vec<String> = load(&sources)
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("{}: cannot read: ", dirs.run.display())),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{}: cannot read: ",
            dirs.etc.join("20-dir.toml").display()
        )),
        "{lines:?}"
    );
}
