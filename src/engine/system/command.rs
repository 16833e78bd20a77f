//! Running configured commands (health checks, the reboot command) with a
//! time limit. Never through a shell: the program and its arguments are
//! given as a list. Output goes to the engine's stderr (the journal).

use std::process::Stdio;
use std::time::Duration;

use crate::config::CommandLine;

/// Run `cmd` and wait at most `timeout`; `Err` says what went wrong in one line.
pub async fn run(cmd: &CommandLine, timeout: Duration) -> Result<(), String> {
    let mut child = tokio::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("`{cmd}` could not be started: {e}"))?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("`{cmd}` failed ({status})")),
        Ok(Err(e)) => Err(format!("`{cmd}`: waiting for it failed: {e}")),
        Err(_) => {
            // kill_on_drop would do it too; be explicit and reap it.
            let _ = child.kill().await;
            Err(format!(
                "`{cmd}` did not finish within {} s and was killed",
                timeout.as_secs()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(argv: &[&str]) -> CommandLine {
        CommandLine::from_argv(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[tokio::test]
    async fn success_failure_missing_and_timeout() {
        let long = Duration::from_secs(30);
        assert_eq!(run(&cmd(&["true"]), long).await, Ok(()));
        let err = run(&cmd(&["sh", "-c", "exit 3"]), long).await.unwrap_err();
        assert_eq!(err, "`sh -c exit 3` failed (exit status: 3)");
        let err = run(&cmd(&["/nonexistent/prog"]), long).await.unwrap_err();
        assert!(
            err.starts_with("`/nonexistent/prog` could not be started"),
            "{err}"
        );
        let err = run(&cmd(&["sleep", "30"]), Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(err, "`sleep 30` did not finish within 0 s and was killed");
    }
}
