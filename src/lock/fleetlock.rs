//! FleetLock client (DESIGN §6), the protocol of Airlock and poseidon/fleetlock.
//!
//! `POST {base}/v1/pre-reboot` takes a slot, `POST {base}/v1/steady-state`
//! gives it back; both send header `fleet-lock-protocol: true` and body
//! `{"client_params":{"id":…,"group":…}}`. Only HTTP 200 means success; any
//! other answer carries `{"kind":…,"value":…}`, whose `kind` labels metrics.
//! Servers treat both calls as idempotent, so we retry them until 200.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use url::Url;

use super::config::FleetLockConfig;
use super::{retry_until, Backoff, Holding, LockError, RebootLock};

/// Header every FleetLock request must carry.
pub const PROTOCOL_HEADER: &str = "fleet-lock-protocol";

/// Longest error body we read; anything past it is ignored.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Per-request timeout; a hung server counts as a transient failure.
const REQUEST_TIMEOUT_SECS: u64 = 30;

/// A FleetLock client bound to one node id and group.
#[derive(Debug, Clone)]
pub struct FleetLockClient {
    http: reqwest::Client,
    pre_reboot_url: Url,
    steady_state_url: Url,
    body: Vec<u8>,
    backoff: Backoff,
}

#[derive(Serialize)]
struct Body<'a> {
    client_params: ClientParams<'a>,
}

#[derive(Serialize)]
struct ClientParams<'a> {
    id: &'a str,
    group: &'a str,
}

#[derive(Deserialize)]
struct ErrorBody {
    kind: String,
    #[serde(default)]
    value: String,
}

impl FleetLockClient {
    /// A client for node `id` (normally the machine id).
    pub fn new(config: &FleetLockConfig, id: &str) -> Result<Self, LockError> {
        if !matches!(config.base_url.scheme(), "http" | "https") {
            return Err(LockError::Config(format!(
                "lock.fleet_lock.base_url {} must be an http:// or https:// URL",
                config.base_url
            )));
        }
        if id.is_empty() || config.group.is_empty() {
            return Err(LockError::Config(
                "FleetLock needs a non-empty node id and group".into(),
            ));
        }
        // Join relative to the base as a directory, so a base of
        // `https://h/fleet` does not lose its last segment.
        let mut base = config.base_url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let join = |path: &str| {
            base.join(path)
                .map_err(|e| LockError::Config(format!("joining {path} to {base}: {e}")))
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS))
            .build()
            .map_err(|e| LockError::Config(format!("building the HTTP client: {e}")))?;
        let body = serde_json::to_vec(&Body {
            client_params: ClientParams {
                id,
                group: &config.group,
            },
        })
        .map_err(|e| LockError::Config(format!("encoding the request body: {e}")))?;
        Ok(FleetLockClient {
            http,
            pre_reboot_url: join("v1/pre-reboot")?,
            steady_state_url: join("v1/steady-state")?,
            body,
            backoff: Backoff::default(),
        })
    }

    /// Replace the retry schedule (tests and benchmarks use short delays).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// One `pre-reboot` request: Ok when the server granted a slot.
    pub async fn pre_reboot_once(&self) -> Result<(), LockError> {
        self.post(&self.pre_reboot_url).await
    }

    /// One `steady-state` request: Ok when the server released our slot.
    pub async fn steady_state_once(&self) -> Result<(), LockError> {
        self.post(&self.steady_state_url).await
    }

    /// `pre-reboot` with retries until 200, or the last error once
    /// `deadline` would pass.
    pub async fn pre_reboot_until(&self, deadline: Option<Instant>) -> Result<(), LockError> {
        retry_until(&self.backoff, deadline, || self.pre_reboot_once()).await
    }

    /// `steady-state` with retries until 200, or the last error once
    /// `deadline` would pass.
    pub async fn steady_state_until(&self, deadline: Option<Instant>) -> Result<(), LockError> {
        retry_until(&self.backoff, deadline, || self.steady_state_once()).await
    }

    async fn post(&self, url: &Url) -> Result<(), LockError> {
        let unavailable =
            |e: reqwest::Error| LockError::Unavailable(format!("{url}: {}", chain(&e)));
        let mut resp = self
            .http
            .post(url.clone())
            .header(PROTOCOL_HEADER, "true")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(self.body.clone())
            .send()
            .await
            .map_err(unavailable)?;
        let status = resp.status().as_u16();
        if status == 200 {
            return Ok(());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(unavailable)? {
            let room = MAX_ERROR_BODY_BYTES - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() == MAX_ERROR_BODY_BYTES {
                break;
            }
        }
        Err(server_error(status, &body))
    }
}

/// The error for a non-200 answer: its `kind`/`value` when the body is a
/// FleetLock error, else kind `unknown` and the start of the body.
pub fn server_error(status: u16, body: &[u8]) -> LockError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(err) if !err.kind.is_empty() => LockError::Server {
            status,
            kind: err.kind,
            value: err.value,
        },
        _ => LockError::Server {
            status,
            kind: "unknown".into(),
            value: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        },
    }
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl RebootLock for FleetLockClient {
    async fn acquire(&self) -> Result<(), LockError> {
        self.pre_reboot_until(None).await
    }

    async fn release(&self) -> Result<(), LockError> {
        self.steady_state_until(None).await
    }

    async fn holding(&self) -> Result<Holding, LockError> {
        Ok(Holding::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base: &str) -> FleetLockConfig {
        FleetLockConfig {
            base_url: Url::parse(base).unwrap(),
            group: "workers".into(),
        }
    }

    #[test]
    fn urls_are_joined_below_the_base() {
        for base in ["http://h:1/fleet", "http://h:1/fleet/"] {
            let c = FleetLockClient::new(&config(base), "m1").unwrap();
            assert_eq!(c.pre_reboot_url.as_str(), "http://h:1/fleet/v1/pre-reboot");
            assert_eq!(
                c.steady_state_url.as_str(),
                "http://h:1/fleet/v1/steady-state"
            );
        }
        let c = FleetLockClient::new(&config("http://h:1"), "m1").unwrap();
        assert_eq!(c.pre_reboot_url.as_str(), "http://h:1/v1/pre-reboot");
    }

    #[test]
    fn body_carries_id_and_group() {
        let c = FleetLockClient::new(&config("http://h/"), "m\"1").unwrap();
        assert_eq!(
            String::from_utf8(c.body).unwrap(),
            r#"{"client_params":{"id":"m\"1","group":"workers"}}"#
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        assert_eq!(
            FleetLockClient::new(&config("ftp://h/"), "m")
                .unwrap_err()
                .kind(),
            "config"
        );
        assert_eq!(
            FleetLockClient::new(&config("http://h/"), "")
                .unwrap_err()
                .kind(),
            "config"
        );
    }

    #[test]
    fn error_bodies_give_the_kind() {
        let e = server_error(423, br#"{"kind":"lock_held","value":"held by m2"}"#);
        assert_eq!(e.kind(), "lock_held");
        assert!(e.to_string().contains("423") && e.to_string().contains("held by m2"));
        assert!(e.is_transient());
        let e = server_error(500, b"<html>oops</html>");
        assert_eq!(e.kind(), "unknown");
        assert!(e.to_string().contains("<html>oops"));
        assert_eq!(server_error(502, br#"{"kind":""}"#).kind(), "unknown");
        assert_eq!(server_error(502, &[0xff; 1000]).kind(), "unknown");
    }
}
