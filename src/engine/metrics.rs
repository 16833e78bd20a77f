//! Counters of the engine and their Prometheus text rendering (`GET /metrics`).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::state::State;

/// Counters kept by the owner task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Update checks started.
    pub checks_total: u64,
    /// Failed checks and installs by kind (`failure::kind_of`).
    pub errors_total: BTreeMap<&'static str, u64>,
    /// Payload bytes received over the network.
    pub bytes_downloaded_total: u64,
    /// Updates installed (staged for reboot).
    pub updates_installed_total: u64,
    /// Unix time of the last answered check.
    pub last_check_timestamp_seconds: Option<i64>,
    /// Duration of the last successful install, from offer to GPT flip.
    pub last_update_duration_seconds: Option<f64>,
    /// Failed reboot lock calls by error kind (FleetLock `kind`, `unavailable`, ...).
    pub lock_errors_total: BTreeMap<String, u64>,
    /// Whether this node holds a reboot lock slot it took.
    pub lock_held: bool,
}

/// The reboot coordination phases, each a series of `update_engine_reboot_phase`.
const REBOOT_PHASES: [&str; 5] = [
    "updated-need-reboot",
    "waiting-for-window",
    "waiting-for-lock",
    "running-pre-reboot-hooks",
    "rebooting",
];

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

impl Metrics {
    /// Count one failure of `kind`.
    pub fn error(&mut self, kind: &'static str) {
        *self.errors_total.entry(kind).or_default() += 1;
    }

    /// Count one failed reboot lock call of `kind`.
    pub fn lock_error(&mut self, kind: &str) {
        *self.lock_errors_total.entry(kind.to_string()).or_default() += 1;
    }

    /// The Prometheus text exposition (version 0.0.4) of the counters and
    /// of the current state.
    pub fn render(&self, state: &State) -> String {
        let mut out = String::new();
        header(
            &mut out,
            "update_engine_checks_total",
            "counter",
            "Update checks started.",
        );
        let _ = writeln!(out, "update_engine_checks_total {}", self.checks_total);
        header(
            &mut out,
            "update_engine_errors_total",
            "counter",
            "Failed checks and installs by kind.",
        );
        for (kind, n) in &self.errors_total {
            let _ = writeln!(out, "update_engine_errors_total{{kind=\"{kind}\"}} {n}");
        }
        header(
            &mut out,
            "update_engine_bytes_downloaded_total",
            "counter",
            "Payload bytes received over the network.",
        );
        let _ = writeln!(
            out,
            "update_engine_bytes_downloaded_total {}",
            self.bytes_downloaded_total
        );
        header(
            &mut out,
            "update_engine_updates_installed_total",
            "counter",
            "Updates written, verified and staged for reboot.",
        );
        let _ = writeln!(
            out,
            "update_engine_updates_installed_total {}",
            self.updates_installed_total
        );
        if let Some(t) = self.last_check_timestamp_seconds {
            header(
                &mut out,
                "update_engine_last_check_timestamp_seconds",
                "gauge",
                "Unix time of the last answered update check.",
            );
            let _ = writeln!(out, "update_engine_last_check_timestamp_seconds {t}");
        }
        if let Some(d) = self.last_update_duration_seconds {
            header(
                &mut out,
                "update_engine_update_duration_seconds",
                "gauge",
                "Duration of the last successful install (check answer to GPT flip).",
            );
            let _ = writeln!(out, "update_engine_update_duration_seconds {d:.3}");
        }
        header(
            &mut out,
            "update_engine_state",
            "gauge",
            "The current state (always 1; see the labels).",
        );
        let _ = writeln!(
            out,
            "update_engine_state{{status=\"{}\",phase=\"{}\"}} 1",
            state.status(),
            state.phase()
        );
        header(
            &mut out,
            "update_engine_reboot_phase",
            "gauge",
            "1 for the current reboot coordination phase, 0 for the others.",
        );
        for phase in REBOOT_PHASES {
            let on = u8::from(state.phase() == phase);
            let _ = writeln!(out, "update_engine_reboot_phase{{phase=\"{phase}\"}} {on}");
        }
        header(
            &mut out,
            "update_engine_lock_errors_total",
            "counter",
            "Failed reboot lock calls by error kind.",
        );
        for (kind, n) in &self.lock_errors_total {
            let kind = kind.replace(['\\', '"', '\n'], "_");
            let _ = writeln!(
                out,
                "update_engine_lock_errors_total{{kind=\"{kind}\"}} {n}"
            );
        }
        header(
            &mut out,
            "update_engine_reboot_lock_held",
            "gauge",
            "1 while this node holds a reboot lock slot it took.",
        );
        let _ = writeln!(
            out,
            "update_engine_reboot_lock_held {}",
            u8::from(self.lock_held)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let mut m = Metrics {
            checks_total: 3,
            bytes_downloaded_total: 1024,
            last_check_timestamp_seconds: Some(1_800_000_000),
            last_update_duration_seconds: Some(12.5),
            ..Metrics::default()
        };
        m.error("http");
        m.error("http");
        m.error("write");
        m.lock_error("lock_held");
        m.lock_error("lock_held");
        m.lock_error("bad\"kind");
        let text = m.render(&State::Idle);
        for line in [
            "# TYPE update_engine_checks_total counter",
            "update_engine_checks_total 3",
            "update_engine_errors_total{kind=\"http\"} 2",
            "update_engine_errors_total{kind=\"write\"} 1",
            "update_engine_bytes_downloaded_total 1024",
            "update_engine_updates_installed_total 0",
            "update_engine_last_check_timestamp_seconds 1800000000",
            "update_engine_update_duration_seconds 12.500",
            "update_engine_state{status=\"UPDATE_STATUS_IDLE\",phase=\"idle\"} 1",
            "update_engine_reboot_phase{phase=\"waiting-for-lock\"} 0",
            "update_engine_lock_errors_total{kind=\"lock_held\"} 2",
            "update_engine_lock_errors_total{kind=\"bad_kind\"} 1",
            "update_engine_reboot_lock_held 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample has HELP and TYPE lines before it.
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        assert_eq!((helps, types), (10, 10));
    }

    #[test]
    fn optional_gauges_are_absent_until_known() {
        let text = Metrics::default().render(&State::Idle);
        assert!(!text.contains("last_check_timestamp"));
        assert!(!text.contains("update_duration"));
    }
}
