//! Routes of the control API. Every handler asks the owner task through its
//! handle; none touches engine state itself.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::auth::{AccessPolicy, Peer};
use crate::engine::actor::{EngineGone, Handle};

#[derive(Clone)]
struct Api {
    handle: Handle,
    policy: AccessPolicy,
    stop: CancellationToken,
}

pub(super) fn router(handle: Handle, policy: AccessPolicy, stop: CancellationToken) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/check", post(check))
        .route("/v1/events", get(events))
        .route("/v1/history", get(history))
        .route("/metrics", get(metrics))
        .with_state(Api {
            handle,
            policy,
            stop,
        })
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

impl IntoResponse for EngineGone {
    fn into_response(self) -> Response {
        error(StatusCode::SERVICE_UNAVAILABLE, self.to_string())
    }
}

async fn status(State(api): State<Api>) -> Result<Response, EngineGone> {
    Ok(Json(api.handle.status().await?).into_response())
}

async fn check(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<Peer>,
) -> Result<Response, EngineGone> {
    if !api.policy.allows(&peer) {
        return Ok(error(
            StatusCode::FORBIDDEN,
            format!(
                "uid {} may not start a check: run as root or as a member of the update admin group",
                peer.uid
            ),
        ));
    }
    info!(
        uid = peer.uid,
        pid = peer.pid,
        "update check requested over the control API"
    );
    Ok(match api.handle.check().await? {
        Ok(report) => (StatusCode::ACCEPTED, Json(report)).into_response(),
        Err(busy) => error(StatusCode::CONFLICT, busy.to_string()),
    })
}

async fn history(State(api): State<Api>) -> Result<Response, EngineGone> {
    Ok(match api.handle.history().await? {
        Ok(history) => Json(history).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    })
}

async fn metrics(State(api): State<Api>) -> Result<Response, EngineGone> {
    let text = api.handle.metrics().await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// Newline-delimited JSON: the current status, then every change. A slow
/// reader that falls behind skips to the newest changes.
async fn events(State(api): State<Api>) -> Result<Response, EngineGone> {
    // Subscribe before reading the status so no change falls in between.
    let rx = api.handle.subscribe();
    let first = api.handle.status().await?;
    let first_line = json_line(&first);
    let stop = api.stop.clone();
    let rest = futures_util::stream::unfold((rx, stop), |(mut rx, stop)| async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return None,
                next = rx.recv() => match next {
                    Ok(report) => {
                        let line = json_line(&report);
                        return Some((Ok::<Bytes, Infallible>(line), (rx, stop)));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    });
    let stream = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok::<Bytes, Infallible>(first_line) }),
        rest,
    );
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

fn json_line<T: serde::Serialize>(value: &T) -> Bytes {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}
