//! The control API (DESIGN §7): HTTP/1.1 + JSON on a unix socket, so
//! `curl --unix-socket /run/update-engine/control.sock http://x/v1/status`
//! works. Reads are open to every local user; changes need root or the
//! admin group (see `auth`).

pub mod auth;
pub mod client;
mod routes;

use std::fs;
use std::future::Future;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

pub use auth::{AccessPolicy, Peer};

use super::actor::Handle;

/// Default socket path.
pub const DEFAULT_SOCKET: &str = "/run/update-engine/control.sock";

/// Bind the control socket at `path`: create its directory, replace a stale
/// socket left by a previous run (never another kind of file), and let every
/// local user connect (authorization happens per request).
pub fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            fs::remove_file(path)
                .with_context(|| format!("removing stale socket {}", path.display()))?;
        }
        Ok(_) => anyhow::bail!(
            "{} exists and is not a socket; remove it or choose another --socket",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("inspecting {}", path.display())),
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o666))
        .with_context(|| format!("setting permissions of {}", path.display()))?;
    Ok(listener)
}

/// Serve the API until `shutdown` completes; open event streams end then too.
pub async fn serve(
    listener: UnixListener,
    handle: Handle,
    policy: AccessPolicy,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let stop = CancellationToken::new();
    let app = routes::router(handle, policy, stop.clone());
    let stopping = stop.clone();
    axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopping.cancel();
        })
        .await
        .context("serving the control API")
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
