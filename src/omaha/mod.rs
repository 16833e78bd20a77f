//! Omaha v3 protocol documents as update_engine and Nebraska exchange them
//! (DESIGN §4): the client's [`Request`] and the server's [`Response`].
//!
//! Both sides build documents with `to_xml()` and read untrusted bytes with a
//! total `parse(&[u8])`: size-limited, DTDs refused, entities never expanded
//! beyond the predefined five, unknown elements and attributes ignored, and a
//! missing required element or attribute reported by its path
//! (`response/app/updatecheck@status`).

mod dom;
mod request;
mod response;

pub use dom::{MAX_ATTRIBUTES, MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_ELEMENTS};
pub use request::{AppRequest, EventRequest, Os, Ping, Request, UpdateCheckRequest};
pub use response::{
    Action, AppResponse, DayStart, Manifest, Package, Response, UpdateCheckResponse, UpdateStatus,
};

/// The protocol version every document carries in its `protocol` attribute.
pub const PROTOCOL_VERSION: &str = "3.0";

/// Event types the engine reports (`<event eventtype=...>`).
pub mod event_type {
    /// Update complete: with result 1 "installed", 2 "booted into it", 0 failure.
    pub const UPDATE_COMPLETE: u32 = 3;
    /// Update download started.
    pub const DOWNLOAD_STARTED: u32 = 13;
    /// Update download finished.
    pub const DOWNLOAD_FINISHED: u32 = 14;
}

/// Event results (`<event eventresult=...>`).
pub mod event_result {
    /// The step failed; `errorcode` says why.
    pub const ERROR: u32 = 0;
    /// The step succeeded.
    pub const SUCCESS: u32 = 1;
    /// The step succeeded and the machine rebooted into the new version.
    pub const SUCCESS_REBOOT: u32 = 2;
}

/// Why an Omaha document was refused. Callers map any of these to
/// update_engine's "Omaha response invalid"; the text names the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The document is bigger than [`MAX_DOCUMENT_BYTES`].
    #[error("Omaha document is {len} bytes, more than the {max}-byte limit")]
    TooLarge {
        /// Size of the refused document.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The document declares a DTD, which could define entities.
    #[error("Omaha document contains a <!DOCTYPE> declaration; DTDs and entities are not allowed")]
    Dtd,
    /// The bytes are not well-formed XML.
    #[error("Omaha document is not well-formed XML (near byte {position}): {message}")]
    Xml {
        /// Byte offset where the reader noticed the problem (0 if unknown).
        position: u64,
        /// What the reader said.
        message: String,
    },
    /// A structural limit (depth, element or attribute count) was exceeded.
    #[error("Omaha document exceeds a limit: {what}")]
    Limit {
        /// Which limit.
        what: String,
    },
    /// A required element or attribute is absent.
    #[error("Omaha document lacks required {what}")]
    Missing {
        /// Path of the missing item, e.g. `request/app@appid`.
        what: String,
    },
    /// An element or attribute has a value outside its domain.
    #[error("Omaha document has invalid {what} = {value:?}: expected {expected}")]
    Invalid {
        /// Path of the item, e.g. `response/app/updatecheck/manifest/packages/package@size`.
        what: String,
        /// The value found (truncated to 64 characters).
        value: String,
        /// What would have been valid.
        expected: &'static str,
    },
}

impl ParseError {
    fn invalid(what: impl Into<String>, value: &str, expected: &'static str) -> ParseError {
        ParseError::Invalid {
            what: what.into(),
            value: value.chars().take(64).collect(),
            expected,
        }
    }
}

/// Parse an unsigned decimal attribute value at `what`.
fn parse_u64(what: &str, value: &str) -> Result<u64, ParseError> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| ParseError::invalid(what, value, "an unsigned decimal number"))
}

/// Parse a boolean attribute the way update_engine and Nebraska write them
/// (`true`/`false`, any case, or `1`/`0`).
fn parse_bool(what: &str, value: &str) -> Result<bool, ParseError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        _ => Err(ParseError::invalid(what, value, "true or false")),
    }
}

/// Check the root element's name and `protocol` attribute.
fn check_root(root: &dom::Element, name: &'static str) -> Result<(), ParseError> {
    if root.name != name {
        return Err(ParseError::invalid(
            "root element",
            &root.name,
            if name == "request" {
                "<request>"
            } else {
                "<response>"
            },
        ));
    }
    let protocol = root.required(name, "protocol")?;
    if !protocol.starts_with("3.") {
        return Err(ParseError::invalid(
            format!("{name}@protocol"),
            protocol,
            "3.0",
        ));
    }
    Ok(())
}

/// One fuzzing step, shared by the `omaha_parse` fuzz target and the seed
/// replay test: parse `data` as a request and as a response (never panics),
/// and whatever parses must come back unchanged through `to_xml`.
pub fn fuzz_one(data: &[u8]) {
    if let Ok(request) = Request::parse(data) {
        let again = Request::parse(request.to_xml().as_bytes());
        assert_eq!(again.as_ref(), Ok(&request), "request round trip");
    }
    if let Ok(response) = Response::parse(data) {
        let again = Response::parse(response.to_xml().as_bytes());
        assert_eq!(again.as_ref(), Ok(&response), "response round trip");
    }
}
