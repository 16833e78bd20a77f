//! Messages of etcd's v3 JSON gateway (grpc-gateway on the client URL,
//! `POST /v3/...`), as etcd 3.4+ sends them: pure decoding, no I/O.
//!
//! The gateway writes protobuf JSON with the proto field names: byte fields
//! are base64, 64-bit integers are JSON strings, and fields holding their
//! zero value (revision 0, `false`, an empty list, the enum value `PUT`) are
//! left out. Every field here therefore defaults when absent, and integers
//! are accepted as strings or numbers.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::de::{self, Deserializer};
use serde::Deserialize;

/// Longest line of a streamed answer we buffer (a watch message). etcd's
/// default request limit is 1.5 MiB, so real messages stay far below it.
pub const MAX_LINE_LEN: usize = 8 << 20;

/// `bytes` as the gateway expects byte fields: standard base64.
pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Header of every answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ResponseHeader {
    /// Store revision when the request was served.
    #[serde(default, deserialize_with = "int")]
    pub revision: i64,
    /// Id of the member that answered.
    #[serde(default, deserialize_with = "int")]
    pub member_id: u64,
}

/// One key and its value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct KeyValue {
    /// The key.
    #[serde(default, deserialize_with = "bytes")]
    pub key: Vec<u8>,
    /// The value (empty for a delete event).
    #[serde(default, deserialize_with = "bytes")]
    pub value: Vec<u8>,
    /// Revision of the write that created the key.
    #[serde(default, deserialize_with = "int")]
    pub create_revision: i64,
    /// Revision of the last write to the key.
    #[serde(default, deserialize_with = "int")]
    pub mod_revision: i64,
    /// Number of writes since it was created (0: it does not exist).
    #[serde(default, deserialize_with = "int")]
    pub version: i64,
}

/// Answer of `/v3/kv/range` (and of a range inside a transaction).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RangeResponse {
    /// Revision the read saw.
    #[serde(default)]
    pub header: ResponseHeader,
    /// The keys found (none when the key is missing).
    #[serde(default)]
    pub kvs: Vec<KeyValue>,
}

/// Answer of `/v3/kv/txn`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct TxnResponse {
    /// Revision after the transaction.
    #[serde(default)]
    pub header: ResponseHeader,
    /// Whether every compare held (the `success` branch ran).
    #[serde(default)]
    pub succeeded: bool,
    /// One answer per request of the branch that ran.
    #[serde(default)]
    pub responses: Vec<ResponseOp>,
}

/// Answer to one request inside a transaction; we only read ranges back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ResponseOp {
    /// Set when the request was a range.
    #[serde(default)]
    pub response_range: Option<RangeResponse>,
}

/// Answer of `/v3/maintenance/status` (the parts we use).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct StatusResponse {
    /// Names the member that answered.
    #[serde(default)]
    pub header: ResponseHeader,
    /// Member id of the leader (0: no leader).
    #[serde(default, deserialize_with = "int")]
    pub leader: u64,
}

/// Answer of `/v3/auth/authenticate`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct AuthenticateResponse {
    /// Sent as the raw `Authorization` header of later requests.
    #[serde(default)]
    pub token: String,
}

/// One line of the `/v3/watch` stream: a result or an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct WatchMessage {
    /// A watch answer.
    #[serde(default)]
    pub result: Option<WatchResponse>,
    /// The stream failed (the gateway lost its gRPC stream).
    #[serde(default)]
    pub error: Option<StreamError>,
}

/// One answer on a watch stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct WatchResponse {
    /// Store revision of the answer.
    #[serde(default)]
    pub header: ResponseHeader,
    /// The first answer: the watch is set up.
    #[serde(default)]
    pub created: bool,
    /// The watch ended (compaction, or refused: see `cancel_reason`).
    #[serde(default)]
    pub canceled: bool,
    /// Set when the start revision was compacted away.
    #[serde(default, deserialize_with = "int")]
    pub compact_revision: i64,
    /// Why etcd canceled the watch.
    #[serde(default)]
    pub cancel_reason: String,
    /// Changes of the key, in revision order.
    #[serde(default)]
    pub events: Vec<Event>,
}

/// One change of a watched key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Event {
    /// A put or a delete (absent means put: it is the enum's zero value).
    #[serde(default, rename = "type")]
    pub kind: EventType,
    /// The key after the change (only key and revision for a delete).
    #[serde(default)]
    pub kv: Option<KeyValue>,
}

/// Kind of a watch event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum EventType {
    /// The key was written.
    #[default]
    #[serde(rename = "PUT")]
    Put,
    /// The key was deleted.
    #[serde(rename = "DELETE")]
    Delete,
}

/// An error line inside a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct StreamError {
    /// gRPC status code.
    #[serde(default)]
    pub grpc_code: u32,
    /// The error text.
    #[serde(default)]
    pub message: String,
}

/// Body of a failed (non-2xx) unary answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ErrorBody {
    /// gRPC status code (e.g. 16 unauthenticated, 7 permission denied).
    #[serde(default)]
    pub code: u32,
    /// The error text, e.g. `etcdserver: invalid auth token`.
    #[serde(default)]
    pub message: String,
    /// Older gateways put the text here only.
    #[serde(default)]
    pub error: String,
}

impl ErrorBody {
    /// Decode an error body; `None` when it is not the gateway's JSON.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
        (parsed.code != 0 || !parsed.message.is_empty() || !parsed.error.is_empty())
            .then_some(parsed)
    }

    /// The error text, whichever field carries it.
    pub fn text(&self) -> &str {
        if self.message.is_empty() {
            &self.error
        } else {
            &self.message
        }
    }
}

/// The gRPC code and text in a watch `cancel_reason` such as
/// `rpc error: code = PermissionDenied desc = etcdserver: permission denied`;
/// code 2 (unknown) when the reason has another form.
pub fn parse_cancel_reason(reason: &str) -> (u32, &str) {
    let Some(rest) = reason.strip_prefix("rpc error: code = ") else {
        return (2, reason);
    };
    let Some((name, desc)) = rest.split_once(" desc = ") else {
        return (2, reason);
    };
    let code = match name {
        "Canceled" => 1,
        "InvalidArgument" => 3,
        "DeadlineExceeded" => 4,
        "NotFound" => 5,
        "AlreadyExists" => 6,
        "PermissionDenied" => 7,
        "ResourceExhausted" => 8,
        "FailedPrecondition" => 9,
        "Aborted" => 10,
        "OutOfRange" => 11,
        "Unimplemented" => 12,
        "Internal" => 13,
        "Unavailable" => 14,
        "DataLoss" => 15,
        "Unauthenticated" => 16,
        _ => 2,
    };
    (code, desc)
}

/// Splits a streamed answer into its newline-separated JSON messages,
/// whatever the chunk boundaries; a line may not exceed [`MAX_LINE_LEN`].
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
}

impl LineBuffer {
    /// Append a received chunk.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete non-blank line, or `Ok(None)` until more arrives;
    /// an error when the unfinished line is already longer than the limit.
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>, String> {
        loop {
            let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() > MAX_LINE_LEN {
                    return Err(format!(
                        "a streamed message is longer than {MAX_LINE_LEN} bytes"
                    ));
                }
                return Ok(None);
            };
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let line = line.trim_ascii();
            if !line.is_empty() {
                return Ok(Some(line.to_vec()));
            }
        }
    }
}

/// A protobuf JSON integer: a string (64-bit fields) or a number.
fn int<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr + TryFrom<i64> + TryFrom<u64>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Signed(i64),
        Unsigned(u64),
    }
    let out_of_range = || de::Error::custom("integer out of range");
    match Raw::deserialize(deserializer)? {
        Raw::Text(text) => text
            .parse()
            .map_err(|_| de::Error::custom(format!("{text:?} is not an integer"))),
        Raw::Signed(n) => T::try_from(n).map_err(|_| out_of_range()),
        Raw::Unsigned(n) => T::try_from(n).map_err(|_| out_of_range()),
    }
}

/// A protobuf JSON bytes field: standard base64.
fn bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(deserializer)?;
    STANDARD
        .decode(text.as_bytes())
        .map_err(|e| de::Error::custom(format!("bad base64: {e}")))
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
