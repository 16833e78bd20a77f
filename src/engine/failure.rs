//! Failures of a check or an install, with update_engine's error codes (sent
//! in the `3/0` event) and a metric label.

/// Generic error (update_engine `kError`).
pub const ERROR: u32 = 1;
/// The Omaha request failed (network, DNS, TLS).
pub const OMAHA_REQUEST_ERROR: u32 = 2;
/// The payload transfer failed for good (every URL used up its budget).
pub const DOWNLOAD_TRANSFER: u32 = 9;
/// sha256 of the payload file differs from the Omaha response.
pub const PAYLOAD_HASH_MISMATCH: u32 = 10;
/// Size of the payload file differs from the Omaha response.
pub const PAYLOAD_SIZE_MISMATCH: u32 = 11;
/// Payload signature or manifest verification failed.
pub const PAYLOAD_VERIFICATION: u32 = 12;
/// Writing the target slot failed.
pub const WRITE_ERROR: u32 = 14;
/// The slot read back does not match the manifest.
pub const NEW_ROOTFS_VERIFICATION: u32 = 15;
/// An operation's data blob failed its hash check.
pub const OPERATION_HASH_VERIFICATION: u32 = 27;
/// An operation's hash is wrong.
pub const OPERATION_HASH_MISMATCH: u32 = 29;
/// The Omaha response is not well-formed XML.
pub const OMAHA_XML_PARSE: u32 = 31;
/// The Omaha response lacks something required or is inconsistent.
pub const OMAHA_RESPONSE_INVALID: u32 = 34;
/// The installed update was rolled back (the old slot booted again).
pub const ROLLBACK: u32 = 44;
/// HTTP error status `s` of the Omaha server is reported as `2000 + s`.
pub const HTTP_RESPONSE_BASE: u32 = 2000;

/// A check or install that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (error code {code})")]
pub struct Failure {
    /// update_engine error code.
    pub code: u32,
    /// What went wrong and, where useful, what to do.
    pub message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// The server answered with HTTP status `status`.
    pub fn http(status: u16, message: impl Into<String>) -> Self {
        Failure::new(HTTP_RESPONSE_BASE + u32::from(status), message)
    }

    /// Metric label of this failure (`errors_total{kind=...}`).
    pub fn kind(&self) -> &'static str {
        kind_of(self.code)
    }
}

/// Metric label of an error code.
pub fn kind_of(code: u32) -> &'static str {
    match code {
        OMAHA_REQUEST_ERROR => "network",
        OMAHA_XML_PARSE | OMAHA_RESPONSE_INVALID => "response",
        c if c >= HTTP_RESPONSE_BASE => "http",
        DOWNLOAD_TRANSFER => "download",
        PAYLOAD_HASH_MISMATCH | PAYLOAD_SIZE_MISMATCH => "payload-hash",
        PAYLOAD_VERIFICATION
        | OPERATION_HASH_VERIFICATION
        | OPERATION_HASH_MISMATCH
        | NEW_ROOTFS_VERIFICATION => "verification",
        WRITE_ERROR => "write",
        ROLLBACK => "rollback",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds() {
        assert_eq!(Failure::http(500, "x").code, 2500);
        assert_eq!(Failure::http(500, "x").kind(), "http");
        assert_eq!(kind_of(PAYLOAD_HASH_MISMATCH), "payload-hash");
        assert_eq!(kind_of(OPERATION_HASH_MISMATCH), "verification");
        assert_eq!(kind_of(WRITE_ERROR), "write");
        assert_eq!(kind_of(ROLLBACK), "rollback");
        assert_eq!(kind_of(OMAHA_XML_PARSE), "response");
        assert_eq!(kind_of(OMAHA_REQUEST_ERROR), "network");
        assert_eq!(kind_of(DOWNLOAD_TRANSFER), "download");
        assert_eq!(kind_of(ERROR), "other");
        assert_eq!(
            Failure::new(10, "payload hash mismatch").to_string(),
            "payload hash mismatch (error code 10)"
        );
    }
}
