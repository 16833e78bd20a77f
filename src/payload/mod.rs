//! Signed update payloads (DESIGN §3, layout in `docs/payload-format.md`):
//! format, keys and signatures, manifest validation, building full and delta
//! payloads, and the streaming applier used by the daemon and `update-payload`.

pub mod apply;
pub mod build;
pub mod error;
pub mod format;
pub mod keys;
mod ops;
pub mod sign;
pub mod validate;
#[cfg(test)]
mod validate_tests;

pub use apply::{apply_from_reader, Applier, Checkpoint, HashError, Readback, VerifiedImage};
pub use build::{build_payload, BuildOptions, BuildSummary, DEFAULT_OP_SIZE};
pub use error::ApplyError;
pub use format::{parse_header_and_manifest, Manifest, OpType, PayloadKind};
pub use keys::{KeyId, TrustedKeys};
pub use validate::ApplyPolicy;
