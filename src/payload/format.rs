//! Byte layout of a payload file (see `docs/payload-format.md`): a fixed
//! header, a canonical-JSON manifest, a signature block, then the data blobs.
//!
//! The decoders here are total: they never panic and never allocate more than
//! the input they were given, whatever the bytes say.

use serde::{Deserialize, Serialize};

use super::error::ApplyError;

/// First 8 bytes of every payload file.
pub const MAGIC: [u8; 8] = *b"ABUPDPL\0";
/// The only format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the fixed header in bytes.
pub const HEADER_LEN: usize = 32;
/// Destination/source extents are counted in blocks of this many bytes.
pub const BLOCK_SIZE: u64 = 4096;
/// Hard limit on the manifest size: it is buffered whole before its signature is checked.
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;
/// Hard limit on the signature block (a few hundred signatures).
pub const MAX_SIGNATURE_BLOCK_BYTES: u64 = 64 << 10;
/// Largest data blob of one operation: the applier buffers one blob to check
/// its sha256 before writing, so this bounds its memory.
pub const MAX_BLOB_BYTES: u64 = 8 << 20;
/// Largest destination of a REPLACE/REPLACE_ZSTD/ZSTD_PATCH operation.
pub const MAX_OP_DST_BYTES: u64 = 8 << 20;
/// Largest source reference of a ZSTD_PATCH operation (held in memory while decoding).
pub const MAX_PATCH_SRC_BYTES: u64 = 8 << 20;
/// Largest zstd window (log2) the applier accepts, bounding decoder memory.
pub const MAX_ZSTD_WINDOW_LOG: u32 = 24;

/// The fixed-size header at the start of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version (big-endian u32 at offset 8).
    pub version: u32,
    /// Manifest length in bytes (big-endian u64 at offset 16).
    pub manifest_len: u64,
    /// Signature block length in bytes (big-endian u64 at offset 24).
    pub signature_len: u64,
}

impl Header {
    /// Encode as the 32 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&self.version.to_be_bytes());
        // Bytes 12..16 are reserved flags: written as zero, required to be zero.
        out[16..24].copy_from_slice(&self.manifest_len.to_be_bytes());
        out[24..32].copy_from_slice(&self.signature_len.to_be_bytes());
        out
    }

    /// Decode and bounds-check a header (the first step of the trust order).
    pub fn parse(bytes: &[u8]) -> Result<Self, ApplyError> {
        if bytes.len() < HEADER_LEN {
            return Err(ApplyError::Truncated(format!(
                "header is {} bytes, expected {HEADER_LEN}",
                bytes.len()
            )));
        }
        if bytes[..8] != MAGIC {
            return Err(ApplyError::BadMagic);
        }
        let u32_at = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap_or([0; 4]));
        let u64_at = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().unwrap_or([0; 8]));
        let version = u32_at(8);
        if version != FORMAT_VERSION {
            return Err(ApplyError::UnsupportedVersion(version));
        }
        if u32_at(12) != 0 {
            return Err(ApplyError::InvalidManifest(
                "reserved header flags are not zero".into(),
            ));
        }
        let header = Header {
            version,
            manifest_len: u64_at(16),
            signature_len: u64_at(24),
        };
        if header.manifest_len == 0 || header.manifest_len > MAX_MANIFEST_BYTES {
            return Err(ApplyError::TooLarge(format!(
                "manifest length {} is outside 1..={MAX_MANIFEST_BYTES}",
                header.manifest_len
            )));
        }
        if header.signature_len == 0 || header.signature_len > MAX_SIGNATURE_BLOCK_BYTES {
            return Err(ApplyError::TooLarge(format!(
                "signature block length {} is outside 1..={MAX_SIGNATURE_BLOCK_BYTES}",
                header.signature_len
            )));
        }
        Ok(header)
    }

    /// Offset of the first data byte: header + manifest + signature block.
    pub fn data_start(&self) -> u64 {
        HEADER_LEN as u64 + self.manifest_len + self.signature_len
    }
}

/// Full image or delta against a known source image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadKind {
    /// Every block comes from the payload.
    Full,
    /// Blocks may be copied from, or patched against, the source image.
    Delta,
}

/// Operation types (names as in update_engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OpType {
    /// The blob is the destination bytes.
    Replace,
    /// The blob is one zstd frame of the destination bytes.
    ReplaceZstd,
    /// The destination is zero-filled; no blob.
    Zero,
    /// The destination is a copy of the source extents; no blob.
    SourceCopy,
    /// The blob is a zstd frame made with the source extents' bytes as
    /// reference prefix (`zstd --patch-from`).
    ZstdPatch,
}

/// A run of `count` blocks starting at block `start`; serialized as `[start, count]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extent(pub u64, pub u64);

impl Extent {
    /// First block.
    pub fn start(&self) -> u64 {
        self.0
    }
    /// Number of blocks.
    pub fn count(&self) -> u64 {
        self.1
    }
    /// One past the last block, `None` on overflow.
    pub fn end(&self) -> Option<u64> {
        self.0.checked_add(self.1)
    }
}

/// One operation of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    /// What to do.
    #[serde(rename = "type")]
    pub op: OpType,
    /// Destination extents in the target slot.
    pub dst: Vec<Extent>,
    /// Source extents in the source (active) slot; deltas only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub src: Vec<Extent>,
    /// Offset of the blob from the start of the data section.
    pub data_offset: u64,
    /// Length of the blob in bytes (0 for ZERO and SOURCE_COPY).
    pub data_len: u64,
    /// Hex sha256 of the blob (of the empty string when there is none).
    pub data_sha256: String,
}

/// The source image a delta applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceInfo {
    /// OS version of the source image, when the builder knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Size of the source image in bytes.
    pub size: u64,
    /// Hex sha256 of the whole source image.
    pub sha256: String,
}

/// The signed description of a payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Same as the header's format version.
    pub format_version: u32,
    /// Full or delta.
    pub kind: PayloadKind,
    /// Target OS version (dotted numeric).
    pub version: String,
    /// Board/product string the payload is for.
    pub compatible: String,
    /// Security epoch: never installed over a higher installed epoch.
    #[serde(default)]
    pub epoch: u64,
    /// RFC 3339 time after which the payload is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Size of the target image in bytes (a multiple of [`BLOCK_SIZE`]).
    pub target_size: u64,
    /// Hex sha256 of the whole target image.
    pub target_sha256: String,
    /// The source image of a delta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceInfo>,
    /// Total length of the data section in bytes.
    pub data_len: u64,
    /// Operations, applied in order; their blobs are laid out in the same order.
    pub operations: Vec<Operation>,
}

impl Manifest {
    /// Canonical serialization: compact JSON with fields in declaration order.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain structs of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decode a manifest; total and size-limited (serde_json caps nesting at 128).
    pub fn parse(bytes: &[u8]) -> Result<Self, ApplyError> {
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(ApplyError::TooLarge(format!(
                "manifest of {} bytes exceeds {MAX_MANIFEST_BYTES}",
                bytes.len()
            )));
        }
        serde_json::from_slice(bytes)
            .map_err(|e| ApplyError::InvalidManifest(format!("manifest does not parse: {e}")))
    }

    /// Total payload size implied by the manifest, given the header.
    pub fn payload_len(&self, header: &Header) -> Option<u64> {
        header.data_start().checked_add(self.data_len)
    }
}

/// Parse the header and manifest at the start of `bytes` (the fuzz entry point).
/// Never panics; returns the header and manifest or the first problem found.
pub fn parse_header_and_manifest(bytes: &[u8]) -> Result<(Header, Manifest), ApplyError> {
    let header = Header::parse(bytes)?;
    let end = HEADER_LEN as u64 + header.manifest_len;
    if (bytes.len() as u64) < end {
        return Err(ApplyError::Truncated(format!(
            "manifest needs {} bytes, only {} present",
            header.manifest_len,
            bytes.len().saturating_sub(HEADER_LEN)
        )));
    }
    let manifest = Manifest::parse(&bytes[HEADER_LEN..end as usize])?;
    Ok((header, manifest))
}

/// Fuzzing entry point: decode header and manifest, the signature block that
/// follows, and run the structural validator on whatever parsed. Total.
pub fn fuzz_entry(bytes: &[u8]) {
    if let Ok((header, manifest)) = parse_header_and_manifest(bytes) {
        let start = (HEADER_LEN as u64 + header.manifest_len) as usize;
        let end = header.data_start().min(bytes.len() as u64) as usize;
        let _ = super::sign::parse_block(bytes.get(start..end).unwrap_or_default());
        let _ = super::validate::validate_structure(&manifest, &header, 1 << 40);
        let _ = manifest.payload_len(&header);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            version: FORMAT_VERSION,
            manifest_len: 10,
            signature_len: 76,
        }
    }

    #[test]
    fn header_round_trips() {
        let h = header();
        let bytes = h.encode();
        assert_eq!(&bytes[..8], b"ABUPDPL\0");
        assert_eq!(Header::parse(&bytes).unwrap(), h);
        assert_eq!(h.data_start(), 32 + 10 + 76);
    }

    #[test]
    fn header_rejects_each_bad_field() {
        let good = header().encode();
        let mut b = good;
        b[0] ^= 1;
        assert!(matches!(Header::parse(&b), Err(ApplyError::BadMagic)));
        let mut b = good;
        b[11] = 2;
        assert!(matches!(
            Header::parse(&b),
            Err(ApplyError::UnsupportedVersion(2))
        ));
        let mut b = good;
        b[13] = 1;
        assert!(Header::parse(&b)
            .unwrap_err()
            .to_string()
            .contains("reserved"));
        let big = Header {
            manifest_len: MAX_MANIFEST_BYTES + 1,
            ..header()
        };
        assert!(matches!(
            Header::parse(&big.encode()),
            Err(ApplyError::TooLarge(_))
        ));
        let nosig = Header {
            signature_len: 0,
            ..header()
        };
        assert!(matches!(
            Header::parse(&nosig.encode()),
            Err(ApplyError::TooLarge(_))
        ));
        assert!(matches!(
            Header::parse(&good[..31]),
            Err(ApplyError::Truncated(_))
        ));
    }

    #[test]
    fn extents_serialize_as_pairs() {
        let op = Operation {
            op: OpType::SourceCopy,
            dst: vec![Extent(1, 2)],
            src: vec![Extent(3, 2)],
            data_offset: 0,
            data_len: 0,
            data_sha256: String::new(),
        };
        let json = serde_json::to_string(&op).unwrap();
        assert_eq!(
            json,
            r#"{"type":"SOURCE_COPY","dst":[[1,2]],"src":[[3,2]],"data_offset":0,"data_len":0,"data_sha256":""}"#
        );
        assert_eq!(Extent(5, 3).end(), Some(8));
        assert_eq!(Extent(u64::MAX, 1).end(), None);
    }

    #[test]
    fn manifest_parse_rejects_garbage_and_unknown_fields() {
        assert!(matches!(
            Manifest::parse(b"{"),
            Err(ApplyError::InvalidManifest(_))
        ));
        let err = Manifest::parse(br#"{"surprise":1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn parse_header_and_manifest_reports_short_manifest() {
        let mut bytes = header().encode().to_vec();
        bytes.extend_from_slice(b"{}");
        assert!(matches!(
            parse_header_and_manifest(&bytes),
            Err(ApplyError::Truncated(_))
        ));
    }
}
