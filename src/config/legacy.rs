//! The legacy Flatcar `/etc/flatcar/update.conf` (`KEY=VALUE` lines), read
//! as a fallback below every TOML drop-in (DESIGN §7).
//!
//! Mapping: `GROUP` → `identity.group`, `SERVER` → `server.url`,
//! `REBOOT_STRATEGY` → `reboot.strategy` (`reboot` means `immediate`;
//! locksmith's `best-effort` becomes `immediate` with a warning, since we do
//! not guess whether etcd is reachable), `LOCKSMITHD_REBOOT_WINDOW_START` +
//! `LOCKSMITHD_REBOOT_WINDOW_LENGTH` → one `reboot.window`, and locksmith's
//! `LOCKSMITHD_ENDPOINT` (comma-separated), `LOCKSMITHD_ETCD_CAFILE`,
//! `_CERTFILE`, `_KEYFILE`, `LOCKSMITHD_GROUP` → `lock.etcd`. Other keys
//! belong to other tools sharing the file and are reported as warnings.

use std::path::{Path, PathBuf};

use super::raw::{RawConfig, RawWindow};
use super::source::{ConfigError, Field, Source, Sourced};

/// The legacy file parsed into a fragment, plus warnings.
#[derive(Debug, Default)]
pub struct LegacyConfig {
    /// Values found, each sourced to its legacy key.
    pub raw: RawConfig,
    /// Keys this engine does not use.
    pub warnings: Vec<String>,
}

/// Parse the text of `update.conf`; `file` names it in messages.
pub fn parse_legacy(text: &str, file: &Path) -> Result<LegacyConfig, Vec<ConfigError>> {
    let mut out = LegacyConfig::default();
    let mut problems = Vec::new();
    let mut window_start: Option<String> = None;
    let mut window_length: Option<String> = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            problems.push(ConfigError {
                file: file.display().to_string(),
                key: format!("line {}", number + 1),
                problem: format!("{line:?} is not KEY=VALUE: fix or remove the line"),
            });
            continue;
        };
        let key = key.trim();
        let value = unquote(value.trim()).to_string();
        let source = Source::Legacy {
            file: file.to_path_buf(),
            key: key.to_string(),
        };
        let raw = &mut out.raw;
        match key {
            "GROUP" => raw.identity.group = field(value, &source),
            "SERVER" => raw.server.url = field(value, &source),
            "REBOOT_STRATEGY" => {
                let strategy = match value.as_str() {
                    "reboot" => "immediate".to_string(),
                    "best-effort" => {
                        out.warnings.push(format!(
                            "{}: REBOOT_STRATEGY: \"best-effort\" is read as \"immediate\"; set [reboot] strategy explicitly",
                            file.display()
                        ));
                        "immediate".to_string()
                    }
                    _ => value,
                };
                raw.reboot.strategy = field(strategy, &source);
            }
            "LOCKSMITHD_REBOOT_WINDOW_START" => window_start = Some(value),
            "LOCKSMITHD_REBOOT_WINDOW_LENGTH" => window_length = Some(value),
            "LOCKSMITHD_ENDPOINT" => {
                let endpoints = value.split(',').map(|s| s.trim().to_string()).collect();
                raw.etcd.endpoints = field(endpoints, &source);
            }
            "LOCKSMITHD_ETCD_CAFILE" => raw.etcd.ca_file = field(PathBuf::from(&value), &source),
            "LOCKSMITHD_ETCD_CERTFILE" => {
                raw.etcd.cert_file = field(PathBuf::from(&value), &source)
            }
            "LOCKSMITHD_ETCD_KEYFILE" => raw.etcd.key_file = field(PathBuf::from(&value), &source),
            "LOCKSMITHD_GROUP" => raw.etcd.group = field(value, &source),
            _ => out.warnings.push(format!(
                "{}: {key}: not used by update-engine (left for other tools)",
                file.display()
            )),
        }
    }
    match (window_start, window_length) {
        (Some(start), Some(length)) => {
            // One window made of two lines: its problems name both.
            let source = Source::Legacy {
                file: file.to_path_buf(),
                key: "LOCKSMITHD_REBOOT_WINDOW_*".to_string(),
            };
            out.raw.reboot.window = Some(Sourced {
                value: vec![RawWindow {
                    start: Some(start),
                    length: Some(length),
                    ..RawWindow::default()
                }],
                source,
            });
        }
        (None, None) => {}
        (Some(_), None) | (None, Some(_)) => problems.push(ConfigError {
            file: file.display().to_string(),
            key: "LOCKSMITHD_REBOOT_WINDOW_START/LENGTH".to_string(),
            problem: "only one of the pair is set: set both (e.g. \"Thu 04:00\" and \"1h30m\") or neither".to_string(),
        }),
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn field<T>(value: T, source: &Source) -> Field<T> {
    Some(Sourced {
        value,
        source: source.clone(),
    })
}

/// Strip one pair of matching shell quotes.
fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> PathBuf {
        PathBuf::from("/etc/flatcar/update.conf")
    }

    #[test]
    fn maps_every_known_key() {
        let text = "# comment\nGROUP=beta\nSERVER=\"https://nebraska.example/v1/update/\"\nREBOOT_STRATEGY=reboot\n\
            LOCKSMITHD_REBOOT_WINDOW_START='Thu 04:00'\nLOCKSMITHD_REBOOT_WINDOW_LENGTH=1h30m\n\
            LOCKSMITHD_ENDPOINT=http://a:2379, http://b:2379\nLOCKSMITHD_ETCD_CAFILE=/etc/ca.pem\n\
            LOCKSMITHD_ETCD_CERTFILE=/etc/c.pem\nLOCKSMITHD_ETCD_KEYFILE=/etc/k.pem\nLOCKSMITHD_GROUP=web\n";
        let legacy = parse_legacy(text, &file()).unwrap();
        assert!(legacy.warnings.is_empty(), "{:?}", legacy.warnings);
        let raw = legacy.raw;
        let group = raw.identity.group.unwrap();
        assert_eq!(group.value, "beta");
        assert_eq!(group.source.to_string(), "/etc/flatcar/update.conf (GROUP)");
        assert_eq!(
            raw.server.url.unwrap().value,
            "https://nebraska.example/v1/update/"
        );
        assert_eq!(raw.reboot.strategy.unwrap().value, "immediate");
        let window = &raw.reboot.window.unwrap().value[0];
        assert_eq!(window.start.as_deref(), Some("Thu 04:00"));
        assert_eq!(window.length.as_deref(), Some("1h30m"));
        assert_eq!(
            raw.etcd.endpoints.unwrap().value,
            ["http://a:2379", "http://b:2379"]
        );
        assert_eq!(
            raw.etcd.ca_file.unwrap().value,
            PathBuf::from("/etc/ca.pem")
        );
        assert!(raw.etcd.cert_file.is_some() && raw.etcd.key_file.is_some());
        assert_eq!(raw.etcd.group.unwrap().value, "web");
    }

    #[test]
    fn best_effort_and_foreign_keys_warn() {
        let legacy =
            parse_legacy("REBOOT_STRATEGY=best-effort\nDOWNLOAD_USER=x\n", &file()).unwrap();
        assert_eq!(legacy.raw.reboot.strategy.unwrap().value, "immediate");
        assert_eq!(legacy.warnings.len(), 2);
        assert!(legacy.warnings[1].contains("DOWNLOAD_USER: not used"));
    }

    #[test]
    fn broken_lines_and_half_windows_are_errors() {
        let problems = parse_legacy(
            "GROUP=a\njust words\nLOCKSMITHD_REBOOT_WINDOW_START=Thu 04:00\n",
            &file(),
        )
        .unwrap_err();
        let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            lines,
            [
                "/etc/flatcar/update.conf: line 2: \"just words\" is not KEY=VALUE: fix or remove the line",
                "/etc/flatcar/update.conf: LOCKSMITHD_REBOOT_WINDOW_START/LENGTH: only one of the pair is set: set both (e.g. \"Thu 04:00\" and \"1h30m\") or neither",
            ]
        );
    }
}
