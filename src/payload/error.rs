//! [`ApplyError`]: why a payload was refused or failed to apply, with the
//! update_engine error code the daemon reports to Omaha.

use thiserror::Error;

/// Every way verifying or applying a payload can fail. Callers branch on it
/// (retry a download, drop a checkpoint, report an Omaha error code).
#[derive(Debug, Error)]
pub enum ApplyError {
    /// The stream does not start with the payload magic.
    #[error("not a payload: wrong magic (expected \"ABUPDPL\\0\"); check the file or URL")]
    BadMagic,
    /// A format version this build cannot read.
    #[error(
        "unsupported payload format version {0} (this build reads version 1); upgrade the updater"
    )]
    UnsupportedVersion(u32),
    /// The stream ended before the payload was complete.
    #[error("payload truncated: {0}; download it again")]
    Truncated(String),
    /// More bytes than the manifest declares.
    #[error("payload has trailing bytes: {0}; the file is not the one that was signed")]
    TrailingData(String),
    /// A length in the header or manifest is beyond a hard limit.
    #[error("payload too large: {0}")]
    TooLarge(String),
    /// The manifest does not parse or breaks a structural rule.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// No trusted key signed it, or a signature does not verify.
    #[error("signature check failed: {0}")]
    Signature(String),
    /// Refused by policy: compatible string, downgrade, epoch or expiry.
    #[error("payload refused: {0}")]
    Policy(String),
    /// A delta whose source image is not the one on the source slot.
    #[error("delta source mismatch: {0}; use a full payload or the delta built from the installed version")]
    SourceMismatch(String),
    /// A data blob's sha256 differs from the manifest (checked before writing).
    #[error("operation {index}: data blob sha256 mismatch (expected {expected}, got {actual}); the payload is corrupt")]
    BlobHash {
        /// Operation index.
        index: usize,
        /// Hex sha256 the manifest names.
        expected: String,
        /// Hex sha256 of the bytes received.
        actual: String,
    },
    /// An operation could not be carried out (bad zstd frame, wrong size).
    #[error("operation {index} failed: {reason}")]
    Operation {
        /// Operation index.
        index: usize,
        /// What went wrong.
        reason: String,
    },
    /// Writing, reading or syncing the target or source device failed.
    #[error("I/O error on {what}: {source}")]
    Io {
        /// Which step.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The read-back of the target slot does not hash to the manifest's target sha256.
    #[error("target verification failed: slot hashes to {actual}, manifest says {expected}; the slot is not bootable, retry the update")]
    TargetMismatch {
        /// Hex sha256 from the manifest.
        expected: String,
        /// Hex sha256 read back.
        actual: String,
    },
    /// The checkpoint does not belong to this payload.
    #[error("checkpoint does not match this payload: {0}; discard it and start over")]
    Checkpoint(String),
    /// A previous error already failed this applier.
    #[error("the applier already failed; start a new apply")]
    Poisoned,
}

impl ApplyError {
    /// The update_engine `ErrorCode` value reported in an Omaha `3/0` event.
    pub fn omaha_code(&self) -> u32 {
        match self {
            // kDownloadInvalidMetadataMagicString
            ApplyError::BadMagic => 21,
            // kDownloadManifestParseError (update_engine uses 44 for an
            // unsupported major version, but we use 44 for rollbacks, DESIGN §4)
            ApplyError::UnsupportedVersion(_) | ApplyError::InvalidManifest(_) => 23,
            // kPayloadSizeMismatchError
            ApplyError::Truncated(_) | ApplyError::TrailingData(_) => 11,
            // kDownloadInvalidMetadataSize
            ApplyError::TooLarge(_) => 32,
            // kDownloadPayloadVerificationError
            ApplyError::Signature(_) => 12,
            // kPayloadTimestampError (downgrade, epoch, expiry, board)
            ApplyError::Policy(_) => 51,
            // kDownloadStateInitializationError
            ApplyError::SourceMismatch(_) | ApplyError::Checkpoint(_) => 20,
            // kDownloadOperationHashMismatch
            ApplyError::BlobHash { .. } => 29,
            // kDownloadOperationExecutionError
            ApplyError::Operation { .. } => 28,
            // kDownloadWriteError
            ApplyError::Io { .. } => 14,
            // kNewRootfsVerificationError
            ApplyError::TargetMismatch { .. } => 15,
            // kError
            ApplyError::Poisoned => 1,
        }
    }

    /// Wrap an I/O error with the step it happened in.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        ApplyError::Io {
            what: what.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_update_engine() {
        assert_eq!(ApplyError::BadMagic.omaha_code(), 21);
        assert_eq!(ApplyError::UnsupportedVersion(9).omaha_code(), 23);
        assert_eq!(ApplyError::InvalidManifest("x".into()).omaha_code(), 23);
        assert_eq!(ApplyError::Truncated("x".into()).omaha_code(), 11);
        assert_eq!(ApplyError::TrailingData("x".into()).omaha_code(), 11);
        assert_eq!(ApplyError::TooLarge("x".into()).omaha_code(), 32);
        assert_eq!(ApplyError::Signature("x".into()).omaha_code(), 12);
        assert_eq!(ApplyError::Policy("x".into()).omaha_code(), 51);
        assert_eq!(ApplyError::SourceMismatch("x".into()).omaha_code(), 20);
        assert_eq!(ApplyError::Checkpoint("x".into()).omaha_code(), 20);
        let blob = ApplyError::BlobHash {
            index: 3,
            expected: "aa".into(),
            actual: "bb".into(),
        };
        assert_eq!(blob.omaha_code(), 29);
        assert!(blob.to_string().contains("operation 3"));
        let op = ApplyError::Operation {
            index: 1,
            reason: "r".into(),
        };
        assert_eq!(op.omaha_code(), 28);
        assert_eq!(
            ApplyError::io("w", std::io::Error::other("x")).omaha_code(),
            14
        );
        let tm = ApplyError::TargetMismatch {
            expected: "a".into(),
            actual: "b".into(),
        };
        assert_eq!(tm.omaha_code(), 15);
        assert_eq!(ApplyError::Poisoned.omaha_code(), 1);
    }
}
