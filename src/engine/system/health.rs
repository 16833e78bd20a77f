//! Health checks of a trial boot: required systemd units must be active
//! (`systemctl is-active --quiet UNIT`) and configured commands must exit 0.

use std::time::Duration;

use super::command;
use crate::config::CommandLine;

/// What a trial boot must pass before its slot is marked good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthChecks {
    /// systemd units that must be active.
    pub required_units: Vec<String>,
    /// Commands that must exit 0.
    pub commands: Vec<CommandLine>,
    /// Time limit of each command.
    pub command_timeout: Duration,
    /// The `systemctl` program (replaceable in sandboxes without systemd).
    pub systemctl: String,
}

impl HealthChecks {
    /// Run every check in order; the first failure is the answer.
    pub async fn run(&self) -> Result<(), String> {
        for unit in &self.required_units {
            let check = CommandLine {
                program: self.systemctl.clone(),
                args: vec!["is-active".into(), "--quiet".into(), unit.clone()],
            };
            command::run(&check, self.command_timeout)
                .await
                .map_err(|e| format!("required unit {unit} is not active: {e}"))?;
        }
        for cmd in &self.commands {
            command::run(cmd, self.command_timeout)
                .await
                .map_err(|e| format!("health check {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(systemctl: &str, units: &[&str], commands: &[&[&str]]) -> HealthChecks {
        HealthChecks {
            required_units: units.iter().map(|u| u.to_string()).collect(),
            commands: commands
                .iter()
                .map(|c| {
                    CommandLine::from_argv(&c.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                        .unwrap()
                })
                .collect(),
            command_timeout: Duration::from_secs(30),
            systemctl: systemctl.into(),
        }
    }

    #[tokio::test]
    async fn all_pass_or_the_first_failure_is_named() {
        assert_eq!(
            checks("true", &["sshd.service"], &[&["true"]]).run().await,
            Ok(())
        );
        assert_eq!(checks("true", &[], &[]).run().await, Ok(()));
        let err = checks("false", &["sshd.service"], &[])
            .run()
            .await
            .unwrap_err();
        assert!(
            err.starts_with("required unit sshd.service is not active"),
            "{err}"
        );
        let err = checks(
            "true",
            &["a.service"],
            &[&["true"], &["sh", "-c", "exit 2"]],
        )
        .run()
        .await
        .unwrap_err();
        assert_eq!(err, "health check `sh -c exit 2` failed (exit status: 2)");
    }
}
