//! Rendering the merged settings for `updatectl config show`: TOML text
//! with `# from FILE` after each value (the text is itself a valid config
//! drop-in), or JSON. Secrets are masked.

use toml::Value;

use super::settings::{CommandLine, Settings};
use super::source::{Provenance, Source};
use crate::reboot::Window;

/// What a masked secret is shown as.
pub const MASK: &str = "********";

/// One setting as shown: section, key, value (`None` = unset).
pub struct Entry {
    /// Section path, e.g. `lock.etcd`.
    pub section: &'static str,
    /// Key inside the section.
    pub key: &'static str,
    /// The value; `None` when unset (optional settings).
    pub value: Option<Value>,
}

fn s(text: impl Into<String>) -> Value {
    Value::String(text.into())
}

fn strings<I: IntoIterator<Item = String>>(items: I) -> Value {
    Value::Array(items.into_iter().map(Value::String).collect())
}

fn secs(d: std::time::Duration) -> Value {
    Value::Integer(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn command(c: &CommandLine) -> Value {
    strings(c.argv())
}

fn path(p: &std::path::Path) -> Value {
    s(p.display().to_string())
}

fn window(w: &Window) -> Value {
    let mut t = toml::Table::new();
    t.insert(
        "days".into(),
        strings(w.days().iter().map(|d| d.to_string())),
    );
    t.insert(
        "start_time".into(),
        s(w.start().format("%H:%M").to_string()),
    );
    t.insert(
        "length_minutes".into(),
        Value::Integer(i64::from(w.length_minutes())),
    );
    Value::Table(t)
}

/// Every setting in display order.
pub fn entries(settings: &Settings) -> Vec<Entry> {
    let e = |section, key, value: Value| Entry {
        section,
        key,
        value: Some(value),
    };
    let opt = |section, key, value: Option<Value>| Entry {
        section,
        key,
        value,
    };
    let Settings {
        identity: i,
        server: sv,
        payload: p,
        health: h,
        reboot: r,
        lock,
        control: c,
        state: st,
    } = settings;
    let etcd = &lock.etcd;
    vec![
        e("identity", "group", s(&i.group)),
        e("identity", "app_id", s(&i.app_id)),
        e("identity", "board", s(&i.board)),
        opt("identity", "machine_id", i.machine_id.as_ref().map(s)),
        opt(
            "identity",
            "version",
            i.version.as_ref().map(|v| s(v.as_str())),
        ),
        e("server", "url", s(sv.url.as_str())),
        e(
            "server",
            "first_check_delay_seconds",
            secs(sv.first_check_delay),
        ),
        e("server", "check_interval_seconds", secs(sv.check_interval)),
        e(
            "payload",
            "trusted_key_dirs",
            strings(p.trusted_key_dirs.iter().map(|d| d.display().to_string())),
        ),
        e(
            "payload",
            "revoked_key_ids",
            strings(p.revoked_key_ids.clone()),
        ),
        e(
            "payload",
            "allow_downgrade",
            Value::Boolean(p.allow_downgrade),
        ),
        e(
            "payload",
            "min_signatures",
            Value::Integer(i64::try_from(p.min_signatures.get()).unwrap_or(i64::MAX)),
        ),
        e("health", "grace_seconds", secs(h.grace)),
        e(
            "health",
            "required_units",
            strings(h.required_units.clone()),
        ),
        e(
            "health",
            "commands",
            Value::Array(h.commands.iter().map(command).collect()),
        ),
        e("health", "command_timeout_seconds", secs(h.command_timeout)),
        e("reboot", "strategy", s(r.strategy.as_str())),
        e("reboot", "time_zone", s(r.windows.time_zone().name())),
        e("reboot", "command", command(&r.command)),
        e(
            "reboot",
            "pre_reboot_hooks",
            Value::Array(r.pre_reboot_hooks.iter().map(command).collect()),
        ),
        e("reboot", "hook_timeout_seconds", secs(r.hook_timeout)),
        e("reboot", "grace_seconds", secs(r.grace)),
        e("reboot", "wall", Value::Boolean(r.wall)),
        e(
            "reboot",
            "window",
            Value::Array(r.windows.windows().iter().map(window).collect()),
        ),
        e(
            "lock.etcd",
            "endpoints",
            strings(etcd.endpoints.iter().map(|u| u.to_string())),
        ),
        e("lock.etcd", "group", s(&etcd.group)),
        opt("lock.etcd", "ca_file", etcd.ca_file.as_deref().map(path)),
        opt(
            "lock.etcd",
            "cert_file",
            etcd.cert_file.as_deref().map(path),
        ),
        opt("lock.etcd", "key_file", etcd.key_file.as_deref().map(path)),
        opt("lock.etcd", "username", etcd.username.as_ref().map(s)),
        opt(
            "lock.etcd",
            "password",
            etcd.password.as_ref().map(|_| s(MASK)),
        ),
        opt(
            "lock.fleet_lock",
            "base_url",
            lock.fleet_lock.as_ref().map(|f| s(f.base_url.as_str())),
        ),
        opt(
            "lock.fleet_lock",
            "group",
            lock.fleet_lock.as_ref().map(|f| s(&f.group)),
        ),
        e("control", "socket", path(&c.socket)),
        opt("control", "write_group", c.write_group.as_ref().map(s)),
        e("state", "dir", path(&st.dir)),
        e("state", "runtime_dir", path(&st.runtime_dir)),
    ]
}

fn origin(provenance: &Provenance, section: &str, key: &str) -> String {
    match provenance.get(&format!("{section}.{key}")) {
        Some(Source::Default) | None => "default".to_string(),
        Some(source) => format!("from {source}"),
    }
}

/// The settings as TOML with `# from FILE` / `# default` comments; unset
/// optional settings appear commented out.
pub fn to_text(settings: &Settings, provenance: &Provenance) -> String {
    let mut out = String::new();
    let mut section = "";
    for entry in entries(settings) {
        if entry.section != section {
            if !section.is_empty() {
                out.push('\n');
            }
            section = entry.section;
            out.push_str(&format!("[{section}]\n"));
        }
        let origin = origin(provenance, entry.section, entry.key);
        match &entry.value {
            Some(value) => out.push_str(&format!("{} = {value}  # {origin}\n", entry.key)),
            None => out.push_str(&format!("# {} is not set  # {origin}\n", entry.key)),
        }
    }
    out
}

/// The settings as JSON: `{"settings": {section: {key: value}},
/// "provenance": {"section.key": "default" | "FILE"}}`; unset = `null`.
pub fn to_json(settings: &Settings, provenance: &Provenance) -> serde_json::Value {
    let mut root = serde_json::Map::new();
    let mut origins = serde_json::Map::new();
    for entry in entries(settings) {
        let mut node = &mut root;
        for part in entry.section.split('.') {
            node = node
                .entry(part)
                .or_insert_with(|| serde_json::Value::Object(Default::default()))
                .as_object_mut()
                .expect("section nodes are objects");
        }
        let value = entry
            .value
            .as_ref()
            .and_then(|v| serde_json::to_value(v).ok())
            .unwrap_or(serde_json::Value::Null);
        node.insert(entry.key.to_string(), value);
        let source = provenance
            .get(&format!("{}.{}", entry.section, entry.key))
            .unwrap_or(&Source::Default);
        origins.insert(
            format!("{}.{}", entry.section, entry.key),
            serde_json::Value::String(source.to_string()),
        );
    }
    serde_json::json!({ "settings": root, "provenance": origins })
}
