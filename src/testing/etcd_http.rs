//! A bare etcd v3 JSON-gateway client for tests and benchmarks: put foreign
//! values, read keys back, watch every revision, set up auth, ask who leads.
//! No failover and no retries: a test wants to see every failure.

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::lock::etcd::wire::{
    b64, LineBuffer, RangeResponse, StatusResponse, WatchMessage, WatchResponse,
};

/// Requests to one etcd member's JSON gateway.
#[derive(Clone)]
pub struct EtcdHttp {
    http: reqwest::Client,
    endpoint: String,
}

impl EtcdHttp {
    /// A client of `endpoint` (`http://127.0.0.1:PORT`); sends nothing yet.
    pub fn new(endpoint: &str) -> Self {
        EtcdHttp {
            // Never through a proxy from the environment: the servers are local.
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_default(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
        }
    }

    async fn post<R: DeserializeOwned>(&self, path: &str, body: serde_json::Value) -> Result<R> {
        let url = format!("{}{path}", self.endpoint);
        let response = self
            .http
            .post(&url)
            .json(&body)
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("POST {url}"))?;
        if !status.is_success() {
            bail!(
                "POST {url}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        serde_json::from_slice(&bytes).with_context(|| format!("POST {url}: decoding the answer"))
    }

    /// Write `value` to `key`.
    pub async fn put(&self, key: &str, value: impl AsRef<[u8]>) -> Result<()> {
        let body = json!({ "key": b64(key.as_bytes()), "value": b64(value.as_ref()) });
        self.post::<serde_json::Value>("/v3/kv/put", body).await?;
        Ok(())
    }

    /// Read `key` (no key-value when it is missing).
    pub async fn get(&self, key: &str) -> Result<RangeResponse> {
        self.post("/v3/kv/range", json!({ "key": b64(key.as_bytes()) }))
            .await
    }

    /// The value of `key`, `None` when it is missing.
    pub async fn value(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .get(key)
            .await?
            .kvs
            .into_iter()
            .next()
            .map(|kv| kv.value))
    }

    /// The member's status (its id and the leader's id).
    pub async fn status(&self) -> Result<StatusResponse> {
        self.post("/v3/maintenance/status", json!({})).await
    }

    /// Create user `name` (auth must still be off, or use a root token).
    pub async fn user_add(&self, name: &str, password: &str) -> Result<()> {
        let body = json!({ "name": name, "password": password });
        self.post::<serde_json::Value>("/v3/auth/user/add", body)
            .await?;
        Ok(())
    }

    /// Give `user` the role `role` (`root` always exists).
    pub async fn user_grant_role(&self, user: &str, role: &str) -> Result<()> {
        let body = json!({ "user": user, "role": role });
        self.post::<serde_json::Value>("/v3/auth/user/grant", body)
            .await?;
        Ok(())
    }

    /// Turn authentication on (needs user `root` with role `root`).
    pub async fn auth_enable(&self) -> Result<()> {
        self.post::<serde_json::Value>("/v3/auth/enable", json!({}))
            .await?;
        Ok(())
    }

    /// Watch `key` from `start_revision` on; the first answer (`created`)
    /// has been read when this returns.
    pub async fn watch(&self, key: &str, start_revision: i64) -> Result<Watch> {
        let url = format!("{}/v3/watch", self.endpoint);
        let body = json!({ "create_request": {
            "key": b64(key.as_bytes()),
            "start_revision": start_revision.to_string(),
        }});
        let response = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        if !response.status().is_success() {
            bail!("POST {url}: HTTP {}", response.status());
        }
        let mut watch = Watch {
            response,
            lines: LineBuffer::default(),
        };
        match watch.next().await? {
            Some(first) if first.created && !first.canceled => Ok(watch),
            other => bail!("watch of {key} not created: {other:?}"),
        }
    }
}

/// An open watch stream.
pub struct Watch {
    response: reqwest::Response,
    lines: LineBuffer,
}

impl Watch {
    /// The next answer; `None` when the stream ended; an error for an error line.
    pub async fn next(&mut self) -> Result<Option<WatchResponse>> {
        loop {
            if let Some(line) = self.lines.next_line().map_err(anyhow::Error::msg)? {
                let message: WatchMessage =
                    serde_json::from_slice(&line).context("decoding a watch message")?;
                if let Some(error) = message.error {
                    bail!(
                        "watch failed: {} (gRPC code {})",
                        error.message,
                        error.grpc_code
                    );
                }
                if let Some(result) = message.result {
                    return Ok(Some(result));
                }
                continue;
            }
            match self.response.chunk().await.context("reading the watch")? {
                Some(chunk) => self.lines.push(&chunk),
                None => return Ok(None),
            }
        }
    }
}
