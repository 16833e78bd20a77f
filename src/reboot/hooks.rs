//! The steps just before a reboot (DESIGN §6): pre-reboot hook commands
//! with a timeout, a `wall` message to logged-in users, and a grace delay.
//!
//! Order (documented decision): hooks first, then the warning, then the
//! grace delay. A failing hook cancels the reboot, so warning users before
//! the hooks passed would announce a reboot that may not happen.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::config::settings::Reboot;
use crate::config::CommandLine;

/// Bytes of a failed hook's stderr kept for the error message.
pub const STDERR_TAIL_BYTES: usize = 2048;
/// Time limit of the `wall` command itself.
pub const WALL_TIMEOUT: Duration = Duration::from_secs(10);
/// After a hook exits, how long to wait for its stderr to reach EOF (a
/// background child may keep the pipe open).
const STDERR_DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the reboot was cancelled. The caller releases the reboot lock and
/// tries again later; the staged update stays staged.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The hook could not be started.
    #[error("pre-reboot hook `{hook}` could not be started: {source}; check the program path in [reboot] pre_reboot_hooks")]
    Spawn {
        /// The hook's command line.
        hook: String,
        /// Why spawning failed.
        source: std::io::Error,
    },
    /// The hook ran and did not exit 0.
    #[error("pre-reboot hook `{hook}` failed ({status}){}; reboot cancelled, will retry later", stderr_note(.stderr_tail))]
    Failed {
        /// The hook's command line.
        hook: String,
        /// Exit status, e.g. `exit status: 3`.
        status: String,
        /// The end of what it wrote to stderr.
        stderr_tail: String,
    },
    /// The hook ran past its timeout and was killed (with its process group).
    #[error("pre-reboot hook `{hook}` did not finish within {}s and was killed; reboot cancelled, will retry later", .timeout.as_secs_f64())]
    TimedOut {
        /// The hook's command line.
        hook: String,
        /// The limit it exceeded.
        timeout: Duration,
    },
}

fn stderr_note(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(": stderr: {tail}")
    }
}

/// Run each hook in order; stop at the first that fails.
pub async fn run_pre_reboot_hooks(
    hooks: &[CommandLine],
    timeout: Duration,
) -> Result<(), HookError> {
    for hook in hooks {
        run_hook(hook, timeout).await?;
        tracing::info!(hook = %hook, "pre-reboot hook succeeded");
    }
    Ok(())
}

/// Run one hook: stdin closed, stdout inherited (the journal), stderr kept
/// for the error. On timeout its whole process group is killed, so a shell
/// script's children do not outlive it.
pub async fn run_hook(hook: &CommandLine, timeout: Duration) -> Result<(), HookError> {
    let name = hook.to_string();
    let mut child = Command::new(&hook.program)
        .args(&hook.args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0)
        .spawn()
        .map_err(|source| HookError::Spawn {
            hook: name.clone(),
            source,
        })?;
    let pid = child.id();
    let stderr = child.stderr.take();
    let tail = tokio::spawn(async move {
        match stderr {
            Some(mut stderr) => read_tail(&mut stderr, STDERR_TAIL_BYTES).await,
            None => String::new(),
        }
    });
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(source)) => {
            tail.abort();
            return Err(HookError::Spawn { hook: name, source });
        }
        Err(_) => {
            kill_group(pid);
            let _ = child.kill().await;
            tail.abort();
            return Err(HookError::TimedOut {
                hook: name,
                timeout,
            });
        }
    };
    if status.success() {
        tail.abort();
        return Ok(());
    }
    let stderr_tail = match tokio::time::timeout(STDERR_DRAIN_TIMEOUT, tail).await {
        Ok(Ok(text)) => text,
        _ => String::new(),
    };
    Err(HookError::Failed {
        hook: name,
        status: status.to_string(),
        stderr_tail,
    })
}

fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    // The hook was started as leader of its own group (pgid = pid).
    let group = nix::unistd::Pid::from_raw(pid);
    if let Err(e) = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL) {
        tracing::debug!(pid, error = %e, "killing the hook's process group");
    }
}

/// Read to EOF keeping only the last `limit` bytes, as trimmed one-line text.
async fn read_tail<R: AsyncRead + Unpin>(reader: &mut R, limit: usize) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > 2 * limit {
                    kept.drain(..kept.len() - limit);
                }
            }
        }
    }
    let start = kept.len().saturating_sub(limit);
    String::from_utf8_lossy(&kept[start..])
        .trim()
        .replace('\n', " | ")
}

/// How the `wall` warning went; it never blocks a reboot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WallOutcome {
    /// The message was handed to the command.
    Sent,
    /// The command is not installed; nobody was warned.
    Skipped,
    /// The command failed; the text says how.
    Failed(String),
}

/// The command that broadcasts a message (read from its stdin) to
/// logged-in users; `wall` by default, injectable for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wall {
    command: CommandLine,
}

impl Wall {
    /// The system's `wall`.
    pub fn system() -> Self {
        Wall::new(CommandLine {
            program: "wall".to_string(),
            args: Vec::new(),
        })
    }

    /// Any command that reads the message on stdin.
    pub fn new(command: CommandLine) -> Self {
        Wall { command }
    }

    /// Send `message`; logs and reports, never fails.
    pub async fn send(&self, message: &str) -> WallOutcome {
        if !program_exists(&self.command.program) {
            tracing::debug!(program = %self.command.program, "no wall command; not warning users");
            return WallOutcome::Skipped;
        }
        let outcome = match tokio::time::timeout(WALL_TIMEOUT, self.run(message)).await {
            Ok(Ok(())) => WallOutcome::Sent,
            Ok(Err(e)) => WallOutcome::Failed(e),
            Err(_) => WallOutcome::Failed(format!(
                "`{}` did not finish within {}s",
                self.command,
                WALL_TIMEOUT.as_secs()
            )),
        };
        if let WallOutcome::Failed(why) = &outcome {
            tracing::warn!(reason = %why, "could not warn logged-in users of the reboot");
        }
        outcome
    }

    async fn run(&self, message: &str) -> Result<(), String> {
        let mut child = Command::new(&self.command.program)
            .args(&self.command.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting `{}`: {e}", self.command))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(message.as_bytes())
                .await
                .map_err(|e| format!("writing to `{}`: {e}", self.command))?;
        }
        let status = child
            .wait()
            .await
            .map_err(|e| format!("waiting for `{}`: {e}", self.command))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{}` failed ({status})", self.command))
        }
    }
}

/// Whether `program` can be run: a path that exists, or a name found in `PATH`.
fn program_exists(program: &str) -> bool {
    if program.contains('/') {
        return std::path::Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The text sent to logged-in users.
pub fn reboot_message(version: Option<&str>, grace: Duration) -> String {
    let what = match version {
        Some(v) => format!("to finish installing OS version {v}"),
        None => "to finish an OS update".to_string(),
    };
    format!(
        "update-engine: this system reboots in {} seconds {what}. Save your work.\n",
        grace.as_secs()
    )
}

/// Everything done between "reboot now" and running the reboot command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreReboot {
    /// Hooks, run in order.
    pub hooks: Vec<CommandLine>,
    /// Time limit of each hook.
    pub hook_timeout: Duration,
    /// How to warn users; `None` = do not warn.
    pub wall: Option<Wall>,
    /// Delay after the warning.
    pub grace: Duration,
}

impl PreReboot {
    /// From the `[reboot]` settings, warning with the system's `wall`.
    pub fn from_settings(reboot: &Reboot) -> Self {
        PreReboot {
            hooks: reboot.pre_reboot_hooks.clone(),
            hook_timeout: reboot.hook_timeout,
            wall: reboot.wall.then(Wall::system),
            grace: reboot.grace,
        }
    }

    /// Run the hooks, warn users, wait the grace delay. `Err` = the reboot
    /// is cancelled (the caller releases the lock and retries later).
    /// Dropping the future (e.g. on shutdown) stops at once.
    pub async fn run(&self, version: Option<&str>) -> Result<(), HookError> {
        run_pre_reboot_hooks(&self.hooks, self.hook_timeout).await?;
        if let Some(wall) = &self.wall {
            wall.send(&reboot_message(version, self.grace)).await;
        }
        if !self.grace.is_zero() {
            tracing::info!(
                grace_seconds = self.grace.as_secs(),
                "waiting before reboot"
            );
            tokio::time::sleep(self.grace).await;
        }
        Ok(())
    }
}
