//! A client of the control API (used by `updatectl`): HTTP/1.1 over the
//! unix socket with hyper, one connection per request.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use crate::engine::status::StatusReport;
use crate::engine::store::Attempt;

/// Largest response body read (history, metrics): far above any real one.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Longest line of the event stream.
const MAX_EVENT_LINE_BYTES: usize = 1024 * 1024;

/// A client of the engine's control socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client of the socket at `socket`.
    pub fn new(socket: &Path) -> Self {
        Client {
            socket: socket.to_path_buf(),
        }
    }

    async fn send(&self, method: Method, path: &str) -> Result<Response<Incoming>> {
        let stream = UnixStream::connect(&self.socket).await.with_context(|| {
            format!(
                "connecting to {}: is update-engine running? (use --socket to choose another socket)",
                self.socket.display()
            )
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("starting HTTP on the control socket")?;
        tokio::spawn(conn);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "localhost")
            .body(Empty::<Bytes>::new())
            .context("building the request")?;
        sender
            .send_request(request)
            .await
            .with_context(|| format!("requesting {path} from update-engine"))
    }

    async fn call<T: DeserializeOwned>(&self, method: Method, path: &str) -> Result<T> {
        let body = self.call_raw(method, path).await?;
        serde_json::from_slice(&body)
            .with_context(|| format!("update-engine sent an unreadable answer to {path}"))
    }

    async fn call_raw(&self, method: Method, path: &str) -> Result<Bytes> {
        let response = self.send(method, path).await?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer to {path}: {e}"))?
            .to_bytes();
        if !status.is_success() {
            anyhow::bail!(
                "update-engine refused: {} (HTTP {status})",
                error_text(&body)
            );
        }
        Ok(body)
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<StatusReport> {
        self.call(Method::GET, "/v1/status").await
    }

    /// `POST /v1/check`: start a check now.
    pub async fn check(&self) -> Result<StatusReport> {
        self.call(Method::POST, "/v1/check").await
    }

    /// `GET /v1/history`.
    pub async fn history(&self) -> Result<Vec<Attempt>> {
        self.call(Method::GET, "/v1/history").await
    }

    /// `GET /metrics` (Prometheus text).
    pub async fn metrics(&self) -> Result<String> {
        let body = self.call_raw(Method::GET, "/metrics").await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// `GET /v1/events`: the current status, then every change.
    pub async fn events(&self) -> Result<Events> {
        let response = self.send(Method::GET, "/v1/events").await?;
        if response.status() != StatusCode::OK {
            let status = response.status();
            anyhow::bail!("update-engine refused the event stream (HTTP {status})");
        }
        Ok(Events {
            body: response.into_body(),
            buf: BytesMut::new(),
        })
    }
}

fn error_text(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string())
}

/// The stream of status changes.
#[derive(Debug)]
pub struct Events {
    body: Incoming,
    buf: BytesMut,
}

impl Events {
    /// The next status change; `None` when the engine closed the stream.
    pub async fn next(&mut self) -> Result<Option<StatusReport>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(pos + 1);
                let report = serde_json::from_slice(&line[..pos])
                    .context("update-engine sent an unreadable event")?;
                return Ok(Some(report));
            }
            anyhow::ensure!(
                self.buf.len() <= MAX_EVENT_LINE_BYTES,
                "update-engine sent an event line longer than {MAX_EVENT_LINE_BYTES} bytes"
            );
            match self.body.frame().await {
                None => return Ok(None),
                Some(frame) => {
                    let frame = frame.context("reading the event stream")?;
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buf.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
            }
        }
    }
}
