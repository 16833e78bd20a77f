//! etcd v3 connection with endpoint failover, TLS and username/password.
//!
//! We keep one `etcd_client::Client` per endpoint and walk the list
//! ourselves instead of using the crate's load-balanced channel: a dead
//! member then costs one connect timeout and is skipped until the next
//! failure, and every error names the endpoint it came from.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use crate::lock::config::EtcdConfig;
use crate::lock::LockError;

/// HTTP/2 keep-alive ping interval (etcd's minimum is 5 s).
const KEEPALIVE_INTERVAL_SECS: u64 = 10;
/// A ping unanswered this long closes the connection.
const KEEPALIVE_TIMEOUT_SECS: u64 = 5;

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

/// Connections to the endpoints of one etcd cluster.
pub(crate) struct Connection {
    endpoints: Vec<String>,
    options: ConnectOptions,
    state: Mutex<State>,
}

struct State {
    /// Index of the endpoint that answered last; tried first.
    current: usize,
    clients: Vec<Option<Client>>,
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
        let mut options = ConnectOptions::new()
            .with_connect_timeout(timeouts.connect)
            .with_timeout(timeouts.request)
            // HTTP/2 pings find a dead member under a long watch. etcd sends
            // GOAWAY to clients pinging more often than every 5 s.
            .with_keep_alive(
                Duration::from_secs(KEEPALIVE_INTERVAL_SECS),
                Duration::from_secs(KEEPALIVE_TIMEOUT_SECS),
            );
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
            let mut tls =
                TlsOptions::new().ca_certificate(Certificate::from_pem(read(ca_file, "CA file")?));
            if let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) {
                tls = tls.identity(Identity::from_pem(
                    read(cert, "client certificate")?,
                    read(key, "client key")?,
                ));
            }
            options = options.with_tls(tls);
        } else if config.ca_file.is_some() || config.cert_file.is_some() {
            return Err(cfg("lock.etcd ca_file/cert_file are set but the endpoints are http://; use https:// endpoints".into()));
        }
        match (&config.username, &config.password) {
            (Some(user), Some(password)) => options = options.with_user(user, password),
            (None, None) => {}
            _ => {
                return Err(cfg(
                    "lock.etcd username and password must be set together".into()
                ))
            }
        }
        let clients = vec![None; endpoints.len()];
        Ok(Connection {
            endpoints,
            options,
            state: Mutex::new(State {
                current: 0,
                clients,
            }),
        })
    }

    /// Run `op` on the endpoint that answered last, moving on to the next
    /// one on every transient failure; each endpoint is tried at most once
    /// per call (twice after an expired auth token). Permanent errors
    /// (refused credentials) return at once.
    pub(crate) async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, LockError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let count = self.endpoints.len();
        let start = self.lock_state().current;
        let mut failures = Vec::new();
        let mut reauthenticated = false;
        let mut step = 0;
        while step < count {
            let index = (start + step) % count;
            let endpoint = &self.endpoints[index];
            let result = match self.client(index).await {
                Ok(client) => op(client).await,
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
                    self.lock_state().clients[index] = None;
                    reauthenticated = true;
                }
                Err(err) => {
                    step += 1;
                    let err = classify(endpoint, &err);
                    if !err.is_transient() {
                        return Err(err);
                    }
                    // Reconnect next time: the channel may be wedged, or the
                    // auth token expired with the member that issued it.
                    self.lock_state().clients[index] = None;
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

    async fn client(&self, index: usize) -> Result<Client, etcd_client::Error> {
        if let Some(client) = self.lock_state().clients[index].clone() {
            return Ok(client);
        }
        let endpoint = self.endpoints[index].clone();
        let client = Client::connect([endpoint], Some(self.options.clone())).await?;
        self.lock_state().clients[index] = Some(client.clone());
        Ok(client)
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave State inconsistent
        // (it is an index and a cache), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn is_expired_token(err: &etcd_client::Error) -> bool {
    matches!(err, etcd_client::Error::GRpcStatus(status)
        if status.code() == tonic::Code::Unauthenticated
            && status.message().contains("invalid auth token"))
}

/// Sort an etcd client error into transient (try another endpoint, retry
/// later) or permanent, with a message naming the endpoint.
fn classify(endpoint: &str, err: &etcd_client::Error) -> LockError {
    use etcd_client::Error as E;
    use tonic::Code;
    let msg = match err {
        // tonic's Display of a Status dumps metadata; keep code, message, cause.
        E::GRpcStatus(status) => {
            let mut text = format!("{endpoint}: {:?}: {}", status.code(), status.message());
            if let Some(cause) = std::error::Error::source(status) {
                text.push_str(": ");
                text.push_str(&error_chain(cause));
            }
            text
        }
        other => format!("{endpoint}: {}", error_chain(other)),
    };
    match err {
        E::GRpcStatus(status) => match status.code() {
            // An expired token is fixed by reconnecting (new authentication).
            _ if is_expired_token(err) => LockError::Unavailable(msg),
            Code::Unauthenticated
            | Code::PermissionDenied
            | Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::NotFound
            | Code::AlreadyExists => LockError::Refused(msg),
            _ => LockError::Unavailable(msg),
        },
        E::InvalidArgs(_) | E::InvalidUri(_) | E::InvalidHeaderValue(_) => LockError::Config(msg),
        _ => LockError::Unavailable(msg),
    }
}

/// `err` and its sources joined with ": " (tonic hides the cause of a TLS
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
mod tests {
    use super::*;
    use url::Url;

    fn config(endpoints: &[&str]) -> EtcdConfig {
        EtcdConfig {
            endpoints: endpoints.iter().map(|u| Url::parse(u).unwrap()).collect(),
            group: "default".into(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            username: None,
            password: None,
        }
    }

    fn config_error(c: &EtcdConfig) -> String {
        match Connection::new(c, Timeouts::default()) {
            Err(LockError::Config(msg)) => msg,
            Err(other) => panic!("expected a config error, got {other}"),
            Ok(_) => panic!("expected a config error"),
        }
    }

    #[test]
    fn plain_endpoints_are_accepted() {
        assert!(Connection::new(
            &config(&["http://127.0.0.1:2379/", "http://h:1"]),
            Timeouts::default()
        )
        .is_ok());
    }

    #[test]
    fn bad_settings_are_refused_before_any_request() {
        assert!(config_error(&config(&[])).contains("empty"));
        assert!(config_error(&config(&["unix:///run/etcd.sock"])).contains("http"));
        assert!(config_error(&config(&["http://a:1", "https://b:1"])).contains("mix"));
        assert!(config_error(&config(&["https://a:1"])).contains("ca_file"));
        let mut c = config(&["http://a:1"]);
        c.ca_file = Some("/ca.pem".into());
        assert!(config_error(&c).contains("https://"));
        let mut c = config(&["https://a:1"]);
        c.cert_file = Some("/cert.pem".into());
        assert!(config_error(&c).contains("together"));
        let mut c = config(&["https://a:1"]);
        c.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(config_error(&c).contains("/nonexistent/ca.pem"));
        let mut c = config(&["http://a:1"]);
        c.username = Some("root".into());
        assert!(config_error(&c).contains("password"));
    }

    #[test]
    fn errors_are_sorted_into_transient_and_permanent() {
        let status =
            |code, msg: &str| etcd_client::Error::GRpcStatus(tonic::Status::new(code, msg));
        let c = classify("http://e:1", &status(tonic::Code::Unavailable, "no leader"));
        assert!(c.is_transient() && c.to_string().contains("http://e:1"));
        let c = classify(
            "e",
            &status(
                tonic::Code::Unauthenticated,
                "etcdserver: invalid auth token",
            ),
        );
        assert!(c.is_transient());
        let c = classify(
            "e",
            &status(
                tonic::Code::PermissionDenied,
                "etcdserver: permission denied",
            ),
        );
        assert_eq!(c.kind(), "refused");
        let c = classify("e", &etcd_client::Error::InvalidArgs("x".into()));
        assert_eq!(c.kind(), "config");
    }
}
