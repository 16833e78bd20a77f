//! `update-server`: an Omaha v3 update server and payload host with fault
//! injection, run in-process by tests, benchmarks and the demo, or as
//! `update-server serve`. See docs/update-server.md.
//!
//! Routes: `POST /v1/update/` (also `/v1/update` and `/service/update2`) answers
//! Omaha requests; `GET`/`HEAD /payloads/NAME` serves the payload files named
//! in the releases file. Offered URLs are `http://HOST/payloads/` + file name,
//! HOST being the request's `Host` header (or the listen address).

pub mod events;
pub mod faults;
mod payload;
pub mod range;
pub mod releases;
pub mod update;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use events::{EventRecord, RecordKind};
pub use faults::{FaultKind, FaultSpec, Scope, Target};
pub use payload::READ_CHUNK_BYTES;
pub use releases::{PayloadFile, Release, Releases};

/// Largest request body accepted on the Omaha endpoint (same as the parser's limit).
pub const MAX_REQUEST_BYTES: usize = crate::omaha::MAX_DOCUMENT_BYTES;

/// Everything a server needs to run.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// The releases to offer and payloads to host.
    pub releases: Releases,
    /// Faults to inject.
    pub faults: Vec<FaultSpec>,
    /// Append every client report as a JSON line to this file.
    pub events_log: Option<PathBuf>,
}

/// State shared by all request handlers.
#[derive(Debug)]
pub(crate) struct AppState {
    releases: Releases,
    faults: faults::Faults,
    events: events::EventLog,
    local_addr: SocketAddr,
    cancel: CancellationToken,
}

/// Entry point: bind and run a server on the current tokio runtime.
#[derive(Debug)]
pub struct Server;

/// A running server: read its events, stop it.
#[derive(Debug)]
pub struct ServerHandle {
    state: Arc<AppState>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Bind `addr` (e.g. `127.0.0.1:0`) and start serving in a background task.
    /// Returns the bound address and the handle that stops the server.
    pub async fn bind(
        config: ServerConfig,
        addr: &str,
    ) -> anyhow::Result<(SocketAddr, ServerHandle)> {
        let events = match &config.events_log {
            Some(path) => events::EventLog::with_file(path)?,
            None => events::EventLog::default(),
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}: pick a free address or port"))?;
        let local_addr = listener.local_addr().context("reading the bound address")?;
        let cancel = CancellationToken::new();
        let state = Arc::new(AppState {
            releases: config.releases,
            faults: faults::Faults::new(config.faults),
            events,
            local_addr,
            cancel: cancel.clone(),
        });
        let app = router(state.clone());
        let listener = listener.tap_io(|tcp| {
            // Small Omaha answers should leave at once, not wait for Nagle.
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(cancel.cancelled_owned())
                .await
        });
        tracing::info!(addr = %local_addr, "update-server listening");
        Ok((local_addr, ServerHandle { state, task }))
    }
}

impl ServerHandle {
    /// Everything clients reported so far, in arrival order.
    pub fn events(&self) -> Vec<EventRecord> {
        self.state.events.snapshot()
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.state.local_addr
    }

    /// A token that stops the server when cancelled (for signal handlers).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.cancel.clone()
    }

    /// Stop accepting, end stalled and streaming responses, wait for
    /// in-flight requests to finish.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.state.cancel.cancel();
        self.wait().await
    }

    /// Wait until the server stops (after its shutdown token was cancelled).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task
            .await
            .context("server task panicked")?
            .context("serving HTTP")
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/update/", post(update::handle))
        .route("/v1/update", post(update::handle))
        .route("/service/update2", post(update::handle))
        .route("/payloads/{name}", get(payload::handle))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state)
}

/// The codebase offered to clients: `http://HOST/payloads/`.
fn codebase(state: &AppState, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        // Only host[:port] characters; anything else falls back to our address.
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| state.local_addr.to_string());
    format!("http://{host}/payloads/")
}

/// 307 to the very same URL (method and body kept): a redirect loop.
fn redirect_to_self(uri: &Uri) -> Response {
    let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, target.to_owned())],
    )
        .into_response()
}

/// Sleep for every `stall` among `faults` unless the server shuts down
/// first; true if the full time passed.
async fn stall(state: &AppState, faults: &[FaultKind]) -> bool {
    let total: Duration = faults
        .iter()
        .map(|f| match f {
            FaultKind::Stall(d) => *d,
            _ => Duration::ZERO,
        })
        .sum();
    if total.is_zero() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(total) => true,
        _ = state.cancel.cancelled() => false,
    }
}

/// The faults every endpoint answers the same way, before its own: stalls
/// first (whatever their order; shutdown during a stall gives up on the
/// request), then the first `http-500` or `redirect-loop`. `None` means the
/// endpoint goes on with its own faults.
async fn common_fault_answer(
    state: &AppState,
    faults: &[FaultKind],
    uri: &Uri,
) -> Option<Response> {
    if !stall(state, faults).await {
        return Some(StatusCode::SERVICE_UNAVAILABLE.into_response());
    }
    faults.iter().find_map(|fault| match fault {
        FaultKind::Http500 => Some(
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "injected fault: http-500\n",
            )
                .into_response(),
        ),
        FaultKind::RedirectLoop => Some(redirect_to_self(uri)),
        _ => None,
    })
}
