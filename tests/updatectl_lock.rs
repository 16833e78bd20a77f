//! `updatectl lock …` end to end: the real binary against a real etcd,
//! configured through a config directory (as on a node) or flags.

use std::path::Path;
use std::process::{Command, Output};

use ab_updater::testing::etcd::{free_port, EtcdProcess};

/// A configuration directory whose `[lock.etcd]` points at `endpoint`.
fn config_dir(endpoint: &str, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[server]\nurl = \"http://127.0.0.1:9/v1/update/\"\n\n[lock.etcd]\nendpoints = [\"{endpoint}\"]\n{extra}"
    );
    std::fs::write(dir.path().join("50-lock.toml"), toml).unwrap();
    dir
}

fn updatectl(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_updatectl"))
        .arg("--config-dir")
        .arg(dir)
        .arg("--legacy-config")
        .arg(dir.join("no-legacy.conf"))
        .arg("lock")
        .args(args)
        .env_remove("UPDATECTL_ETCD_PASSWORD")
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = updatectl(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    assert_eq!(stderr, "", "{args:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn fails(dir: &Path, args: &[&str]) -> String {
    let out = updatectl(dir, args);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("updatectl: "), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn a_stale_holder_is_visible_and_releasable() {
    let etcd = EtcdProcess::start_single().unwrap();
    let dir = config_dir(etcd.endpoint(), "");
    let ep = dir.path();
    assert!(ok(ep, &["status"]).contains("not created yet"));

    // A node took the slot and never came back.
    assert_eq!(
        ok(ep, &["acquire", "stale-node"]),
        "stale-node took a reboot slot in group default\n"
    );
    assert!(ok(ep, &["acquire", "stale-node"]).contains("already holds"));
    let status = ok(ep, &["status"]);
    assert!(
        status.contains("Available: 0\nMax: 1\nHolders: 1\n"),
        "{status}"
    );
    assert!(status.contains("  stale-node  since 20"), "{status}");
    let json: serde_json::Value = serde_json::from_str(&ok(ep, &["status", "--json"])).unwrap();
    assert_eq!(json["holders"][0]["id"], "stale-node");
    assert!(json["holders"][0]["since"].as_str().unwrap().ends_with('Z'));

    // Everyone else is blocked until an operator releases it.
    let err = fails(ep, &["acquire", "healthy-node"]);
    assert!(
        err.contains("no free reboot slot") && err.contains("stale-node"),
        "{err}"
    );
    assert!(ok(ep, &["release", "stale-node"]).contains("released the reboot slot of stale-node"));
    assert!(ok(ep, &["release", "stale-node"]).contains("nothing to do"));
    assert!(ok(ep, &["status"]).contains("Holders: 0\n"));
    ok(ep, &["acquire", "healthy-node"]);
}

#[test]
fn set_max_per_group_and_machine_id_default() {
    let etcd = EtcdProcess::start_single().unwrap();
    let dir = config_dir(
        etcd.endpoint(),
        "\n[identity]\nmachine_id = \"0badc0de0badc0de0badc0de0badc0de\"\n",
    );
    let ep = dir.path();
    assert_eq!(
        ok(ep, &["set-max", "3", "--group", "workers"]),
        "max of group workers: 1 -> 3\n"
    );
    let status = ok(ep, &["status", "--group", "workers"]);
    assert!(status.contains("Key: coreos.com/updateengine/rebootlock/groups/workers/semaphore\n"));
    assert!(status.contains("Max: 3"), "{status}");
    // The default group is untouched.
    assert!(ok(ep, &["status"]).contains("not created yet"));

    let id_dir = tempfile::tempdir().unwrap();
    let id_file = id_dir.path().join("machine-id");
    std::fs::write(&id_file, "4f1e0c2d9b8a4e5f8c7d6e5f4a3b2c1d\n").unwrap();
    let id_flag = id_file.to_str().unwrap();
    let out = ok(
        ep,
        &[
            "acquire",
            "--group",
            "workers",
            "--machine-id-file",
            id_flag,
        ],
    );
    assert!(
        out.starts_with("4f1e0c2d9b8a4e5f8c7d6e5f4a3b2c1d took"),
        "{out}"
    );
    ok(ep, &["acquire", "n2", "--group", "workers"]);
    let out = ok(ep, &["set-max", "1", "--group", "workers"]);
    assert!(
        out.contains("3 -> 1") && out.contains("2 nodes hold slots"),
        "{out}"
    );
    assert!(ok(ep, &["status", "--group", "workers"]).contains("Available: -1\n"));
    let err = fails(
        ep,
        &["release", "--machine-id-file", "/nonexistent/machine-id"],
    );
    assert!(err.contains("/nonexistent/machine-id"), "{err}");
    // Without ID or --machine-id-file: identity.machine_id of the config.
    let out = ok(ep, &["release", "--group", "workers"]);
    assert!(
        out.contains("0badc0de0badc0de0badc0de0badc0de holds no reboot slot"),
        "{out}"
    );
    // The group can come from the config too.
    let dir = config_dir(etcd.endpoint(), "group = \"workers\"\n");
    assert!(ok(dir.path(), &["status"]).contains("Group: workers\n"));
}

#[test]
fn bad_input_fails_with_one_clear_line_and_changes_nothing() {
    let etcd = EtcdProcess::start_single().unwrap();
    let dir = config_dir(etcd.endpoint(), "");
    let ep = dir.path();
    let key = "coreos.com/updateengine/rebootlock/semaphore";
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = ab_updater::testing::etcd_http::EtcdHttp::new(etcd.endpoint());
        c.put(key, "locked-by-someone-else").await.unwrap();
    });
    for args in [
        &["status"][..],
        &["acquire", "n1"],
        &["release", "n1"],
        &["set-max", "4"],
    ] {
        let err = fails(ep, args);
        assert!(err.contains(key) && err.contains("not JSON"), "{err}");
    }
    let value = rt.block_on(async {
        let c = ab_updater::testing::etcd_http::EtcdHttp::new(etcd.endpoint());
        c.value(key).await.unwrap().unwrap()
    });
    assert_eq!(value, b"locked-by-someone-else");

    let err = fails(ep, &["status", "--group", "../other"]);
    assert!(err.contains("not valid"), "{err}");
    // --endpoint overrides the configured endpoints.
    let dead = format!("http://127.0.0.1:{}", free_port().unwrap());
    let err = fails(ep, &["status", "--endpoint", &dead]);
    assert!(err.contains("cannot reach") && err.contains(&dead), "{err}");
    let err = fails(ep, &["status", "--ca-file", "/etc/ca.pem"]);
    assert!(err.contains("https://"), "{err}");
}

#[test]
fn an_invalid_configuration_is_an_error_unless_endpoint_is_given() {
    let etcd = EtcdProcess::start_single().unwrap();
    let dir = config_dir(etcd.endpoint(), "bogus_key = 1\n");
    let out = updatectl(dir.path(), &["status"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("bogus_key"), "{stderr}");
    assert!(
        stderr
            .trim_end()
            .ends_with("or give --endpoint to use flags only"),
        "{stderr}"
    );

    let out = updatectl(dir.path(), &["status", "--endpoint", etcd.endpoint()]);
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("warning: not using the configuration"),
        "{stderr}"
    );
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("Group: default\n"));
}
