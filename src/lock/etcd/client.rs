//! etcd v3 connection over the JSON gateway, with endpoint failover, TLS
//! and username/password.
//!
//! etcd (3.4+) serves its gRPC API as JSON on the client URL too (`POST
//! /v3/kv/range`, `/v3/kv/txn`, `/v3/watch`, ...). We speak that with reqwest
//! instead of gRPC: no protobuf code generation (so no `protoc` at build
//! time) and no tonic/prost in the build, for the same few calls.
//!
//! We walk the endpoint list ourselves: a dead member costs one connect
//! timeout and is skipped until the next failure, and every error names the
//! endpoint it came from.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Certificate, Identity};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::wire::{self, AuthenticateResponse, ErrorBody, LineBuffer};
use crate::lock::config::EtcdConfig;
use crate::lock::LockError;

/// TCP keep-alive probes find a dead member under a long watch (the
/// watch itself is also bounded by `EtcdTuning::recheck`).
const KEEPALIVE_SECS: u64 = 10;
/// Unanswered keep-alive probes before the connection is dropped.
const KEEPALIVE_RETRIES: u32 = 3;

/// gRPC status codes the gateway reports in its error bodies.
mod code {
    pub const INVALID_ARGUMENT: u32 = 3;
    pub const NOT_FOUND: u32 = 5;
    pub const ALREADY_EXISTS: u32 = 6;
    pub const PERMISSION_DENIED: u32 = 7;
    pub const FAILED_PRECONDITION: u32 = 9;
    pub const OUT_OF_RANGE: u32 = 11;
    pub const UNIMPLEMENTED: u32 = 12;
    pub const UNAUTHENTICATED: u32 = 16;
}

/// Timeouts of one etcd request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Giving up on opening a connection to one endpoint.
    pub connect: Duration,
    /// Giving up on one request (then the next endpoint is tried).
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(3),
            request: Duration::from_secs(5),
        }
    }
}

/// Why one request to one endpoint failed, before it is sorted into a
/// [`LockError`] by [`classify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No answer: connect, TLS handshake, timeout, broken stream.
    Transport(String),
    /// etcd answered with an error: its gRPC code (`None` when the body was
    /// not the gateway's JSON), the HTTP status (`None` inside a stream).
    Etcd {
        code: Option<u32>,
        http: Option<u16>,
        message: String,
    },
    /// An answer that is not what the gateway sends.
    BadAnswer(String),
}

/// Connections to the endpoints of one etcd cluster.
pub(crate) struct Connection {
    http: reqwest::Client,
    endpoints: Vec<String>,
    credentials: Option<(String, String)>,
    request_timeout: Duration,
    state: Mutex<State>,
}

struct State {
    /// Index of the endpoint that answered last; tried first.
    current: usize,
    /// Auth token per endpoint, when credentials are configured.
    tokens: Vec<Option<String>>,
}

/// One endpoint, ready for requests (with its auth token, if any).
#[derive(Clone)]
pub(crate) struct Member {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    request_timeout: Duration,
}

impl Connection {
    /// Check `config` and load its certificate files; no request is sent.
    pub(crate) fn new(config: &EtcdConfig, timeouts: Timeouts) -> Result<Self, LockError> {
        let cfg = |msg: String| LockError::Config(msg);
        if config.endpoints.is_empty() {
            return Err(cfg(
                "lock.etcd.endpoints is empty: list at least one etcd client URL".into(),
            ));
        }
        let mut endpoints = Vec::new();
        for url in &config.endpoints {
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(cfg(format!(
                    "etcd endpoint {url} must be an http:// or https:// URL with a host"
                )));
            }
            endpoints.push(url.as_str().trim_end_matches('/').to_string());
        }
        let https = config
            .endpoints
            .iter()
            .filter(|u| u.scheme() == "https")
            .count();
        // No proxy from the environment: nothing may sit between a node and
        // its lock (the earlier gRPC client never used one either).
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(timeouts.connect)
            .tcp_keepalive(Duration::from_secs(KEEPALIVE_SECS))
            .tcp_keepalive_interval(Duration::from_secs(KEEPALIVE_SECS))
            .tcp_keepalive_retries(KEEPALIVE_RETRIES);
        if https > 0 && https < endpoints.len() {
            return Err(cfg(
                "etcd endpoints mix http:// and https://; use one scheme".into(),
            ));
        }
        match (&config.cert_file, &config.key_file) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(cfg(
                    "lock.etcd cert_file and key_file must be set together".into()
                ))
            }
            _ => {}
        }
        if https > 0 {
            let Some(ca_file) = &config.ca_file else {
                return Err(cfg("https etcd endpoints need lock.etcd.ca_file (the CA that signed the servers' certificates)".into()));
            };
            let read = |path: &std::path::Path, what: &str| {
                std::fs::read(path)
                    .map_err(|e| cfg(format!("reading etcd {what} {}: {e}", path.display())))
            };
            let cas = Certificate::from_pem_bundle(&read(ca_file, "CA file")?)
                .ok()
                .filter(|cas| !cas.is_empty())
                .ok_or_else(|| {
                    cfg(format!(
                        "etcd CA file {} holds no PEM certificate; give the CA that signed the servers' certificates",
                        ca_file.display()
                    ))
                })?;
            // Trust only the configured CA, never the built-in web roots: a
            // public certificate must not be able to pose as our etcd.
            builder = builder.use_rustls_tls().tls_built_in_root_certs(false);
            for ca in cas {
                builder = builder.add_root_certificate(ca);
            }
            if let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) {
                let mut pem = read(cert, "client certificate")?;
                pem.push(b'\n');
                pem.extend(read(key, "client key")?);
                let identity = Identity::from_pem(&pem).map_err(|e| {
                    cfg(format!(
                        "etcd client certificate {} / key {}: {}; give PEM files of one certificate and its private key",
                        cert.display(),
                        key.display(),
                        error_chain(&e)
                    ))
                })?;
                builder = builder.identity(identity);
            }
        } else if config.ca_file.is_some() || config.cert_file.is_some() {
            return Err(cfg("lock.etcd ca_file/cert_file are set but the endpoints are http://; use https:// endpoints".into()));
        }
        let credentials = match (&config.username, &config.password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            (None, None) => None,
            _ => {
                return Err(cfg(
                    "lock.etcd username and password must be set together".into()
                ))
            }
        };
        let http = builder
            .build()
            .map_err(|e| cfg(format!("etcd TLS settings: {}", error_chain(&e))))?;
        let tokens = vec![None; endpoints.len()];
        Ok(Connection {
            http,
            endpoints,
            credentials,
            request_timeout: timeouts.request,
            state: Mutex::new(State { current: 0, tokens }),
        })
    }

    /// One unary call (`path` like `/v3/kv/range`) with failover.
    pub(crate) async fn call<R: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<R, LockError> {
        self.run(|member| async move { member.call(path, body).await })
            .await
    }

    /// Run `op` on the endpoint that answered last, moving on to the next
    /// one on every transient failure; each endpoint is tried at most once
    /// per call (twice after an expired auth token). Permanent errors
    /// (refused credentials) return at once.
    pub(crate) async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, LockError>
    where
        F: FnMut(Member) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let count = self.endpoints.len();
        let start = self.lock_state().current;
        let mut failures = Vec::new();
        let mut reauthenticated = false;
        let mut step = 0;
        while step < count {
            let index = (start + step) % count;
            let endpoint = &self.endpoints[index];
            let result = match self.member(index).await {
                Ok(member) => op(member).await,
                Err(err) => Err(err),
            };
            match result {
                Ok(value) => {
                    self.lock_state().current = index;
                    return Ok(value);
                }
                Err(err) if is_expired_token(&err) && !reauthenticated => {
                    // etcd drops a simple token after it sat idle for
                    // --auth-token-ttl; log in again on the same member.
                    tracing::debug!(%endpoint, "etcd auth token expired; re-authenticating");
                    self.lock_state().tokens[index] = None;
                    reauthenticated = true;
                }
                Err(err) => {
                    step += 1;
                    let err = classify(endpoint, &err);
                    if !err.is_transient() {
                        return Err(err);
                    }
                    // Log in again next time: the token may have gone with
                    // the member that issued it.
                    self.lock_state().tokens[index] = None;
                    tracing::debug!(%endpoint, error = %err, "etcd endpoint failed");
                    failures.push(match err {
                        LockError::Unavailable(msg) => msg,
                        other => other.to_string(),
                    });
                }
            }
        }
        Err(LockError::Unavailable(failures.join("; ")))
    }

    /// Endpoint `index` with a valid-looking token (authenticating first
    /// when credentials are set and we hold no token for it).
    async fn member(&self, index: usize) -> Result<Member, Failure> {
        let mut member = Member {
            http: self.http.clone(),
            base: self.endpoints[index].clone(),
            token: None,
            request_timeout: self.request_timeout,
        };
        let Some((name, password)) = &self.credentials else {
            return Ok(member);
        };
        if let Some(token) = self.lock_state().tokens[index].clone() {
            member.token = Some(token);
            return Ok(member);
        }
        let body = json!({ "name": name, "password": password });
        let auth: AuthenticateResponse = member.call("/v3/auth/authenticate", &body).await?;
        if auth.token.is_empty() {
            return Err(Failure::BadAnswer(
                "etcd answered the login without a token (is auth enabled on the cluster?)".into(),
            ));
        }
        self.lock_state().tokens[index] = Some(auth.token.clone());
        member.token = Some(auth.token);
        Ok(member)
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave State inconsistent
        // (it is an index and a cache), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Member {
    fn post(&self, path: &str, body: &serde_json::Value) -> reqwest::RequestBuilder {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        match &self.token {
            // The gateway passes `Authorization` on as the gRPC token.
            Some(token) => request.header(reqwest::header::AUTHORIZATION, token),
            None => request,
        }
    }

    /// One unary call, bounded by the request timeout.
    pub(crate) async fn call<R: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<R, Failure> {
        let response = self
            .post(path, body)
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(error_answer(status.as_u16(), &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| bad_answer(path, &e))
    }

    /// Open a streaming call (a watch). Only the wait for the answer's head
    /// and first message is bounded; the caller bounds how long it reads on.
    pub(crate) async fn stream(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Lines, Failure> {
        let timeout = self.request_timeout;
        let response = tokio::time::timeout(timeout, self.post(path, body).send())
            .await
            .map_err(|_| Failure::Transport(format!("no answer within {timeout:?}")))?
            .map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            let bytes = tokio::time::timeout(timeout, response.bytes())
                .await
                .map_err(|_| Failure::Transport(format!("no answer within {timeout:?}")))?
                .map_err(transport)?;
            return Err(error_answer(status.as_u16(), &bytes));
        }
        Ok(Lines {
            response,
            buffer: LineBuffer::default(),
            path: path.to_string(),
            endpoint: self.base.clone(),
            first_timeout: Some(timeout),
        })
    }
}

/// The messages of a streamed answer, one JSON object per line.
pub(crate) struct Lines {
    response: reqwest::Response,
    buffer: LineBuffer,
    path: String,
    endpoint: String,
    /// Bound on the first message (a watch's `created`), like a request:
    /// a member that takes the request but never answers is skipped.
    first_timeout: Option<Duration>,
}

impl Lines {
    /// The endpoint the stream comes from.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The next message; `None` when the server ended the stream.
    pub(crate) async fn next<R: DeserializeOwned>(&mut self) -> Result<Option<R>, Failure> {
        match self.first_timeout.take() {
            Some(limit) => tokio::time::timeout(limit, self.read_message())
                .await
                .map_err(|_| Failure::Transport(format!("no answer within {limit:?}")))?,
            None => self.read_message().await,
        }
    }

    async fn read_message<R: DeserializeOwned>(&mut self) -> Result<Option<R>, Failure> {
        loop {
            if let Some(line) = self.buffer.next_line().map_err(Failure::BadAnswer)? {
                return serde_json::from_slice(&line)
                    .map(Some)
                    .map_err(|e| bad_answer(&self.path, &e));
            }
            match self.response.chunk().await.map_err(transport)? {
                Some(chunk) => self.buffer.push(&chunk),
                None => return Ok(None),
            }
        }
    }
}

fn transport(err: reqwest::Error) -> Failure {
    Failure::Transport(error_chain(&err))
}

fn bad_answer(path: &str, err: &serde_json::Error) -> Failure {
    Failure::BadAnswer(format!(
        "{path} answered something that is not etcd's JSON gateway ({err})"
    ))
}

/// A non-2xx answer: the gateway's JSON error, or whatever else answered.
fn error_answer(status: u16, body: &[u8]) -> Failure {
    match ErrorBody::parse(body) {
        Some(error) => Failure::Etcd {
            code: Some(error.code),
            http: Some(status),
            message: error.text().to_string(),
        },
        None => {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
            let hint = if status == 404 {
                " (is this the client URL of etcd 3.4 or later, with its JSON gateway enabled?)"
            } else {
                ""
            };
            Failure::Etcd {
                code: None,
                http: Some(status),
                message: format!("{}{hint}", text.trim()),
            }
        }
    }
}

/// The error a watch stream ended with: a gateway error line, or a watch
/// canceled for a reason other than compaction (auth, permissions).
pub(crate) fn stream_failure(code: u32, message: &str) -> Failure {
    Failure::Etcd {
        code: Some(code),
        http: None,
        message: message.to_string(),
    }
}

/// A watch canceled for `reason` (not compaction), with the reason's gRPC code.
pub(crate) fn canceled(reason: &str) -> Failure {
    let (code, text) = wire::parse_cancel_reason(reason);
    stream_failure(code, &format!("watch canceled: {text}"))
}

fn is_expired_token(err: &Failure) -> bool {
    matches!(err, Failure::Etcd { code: Some(code::UNAUTHENTICATED), message, .. }
        if message.contains("invalid auth token"))
}

/// Sort a failed request into transient (try another endpoint, retry
/// later) or permanent, with a message naming the endpoint.
pub(crate) fn classify(endpoint: &str, err: &Failure) -> LockError {
    match err {
        Failure::Transport(msg) | Failure::BadAnswer(msg) => {
            LockError::Unavailable(format!("{endpoint}: {msg}"))
        }
        Failure::Etcd {
            code,
            http,
            message,
        } => {
            let mut msg = format!("{endpoint}: {message}");
            match (code, http) {
                (Some(code), Some(http)) => {
                    msg.push_str(&format!(" (gRPC code {code}, HTTP {http})"))
                }
                (Some(code), None) => msg.push_str(&format!(" (gRPC code {code})")),
                (None, Some(http)) => msg.push_str(&format!(" (HTTP {http})")),
                (None, None) => {}
            }
            let permanent = match code {
                // An expired token is fixed by logging in again.
                _ if is_expired_token(err) => false,
                Some(
                    code::UNAUTHENTICATED
                    | code::PERMISSION_DENIED
                    | code::INVALID_ARGUMENT
                    | code::FAILED_PRECONDITION
                    | code::OUT_OF_RANGE
                    | code::UNIMPLEMENTED
                    | code::NOT_FOUND
                    | code::ALREADY_EXISTS,
                ) => true,
                Some(_) => false,
                // Not etcd's JSON: a client error (not timeout or rate
                // limit) will not go away by retrying; 5xx may.
                None => http.is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429),
            };
            if permanent {
                LockError::Refused(msg)
            } else {
                LockError::Unavailable(msg)
            }
        }
    }
}

/// `err` and its sources joined with ": " (reqwest hides the cause of a TLS
/// or connect failure in the source chain).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
