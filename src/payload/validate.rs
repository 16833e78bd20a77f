//! Pure manifest checks, run after the signature verified and before any write:
//! structure (extents, overlaps, data ranges, limits) and policy (compatible,
//! downgrade, epoch, expiry).

use std::time::SystemTime;

use crate::version::OsVersion;

use super::error::ApplyError;
use super::format::{
    Extent, Header, Manifest, OpType, PayloadKind, BLOCK_SIZE, MAX_BLOB_BYTES, MAX_OP_DST_BYTES,
    MAX_PATCH_SRC_BYTES,
};

/// What the caller says about the installed system, and how strict to be.
#[derive(Debug, Clone)]
pub struct ApplyPolicy {
    /// The board/product string the payload must name.
    pub compatible: String,
    /// The OS version installed now (on the active slot).
    pub installed_version: OsVersion,
    /// The security epoch installed now (0 when unknown).
    pub installed_epoch: u64,
    /// Accept a lower version or epoch.
    pub allow_downgrade: bool,
    /// Wall-clock time for the expiry check.
    pub now: SystemTime,
    /// Number of distinct trusted keys that must have signed (at least 1).
    pub min_signatures: usize,
}

/// The sha256 hex of the empty string: what ops without a blob carry.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn invalid(msg: String) -> ApplyError {
    ApplyError::InvalidManifest(msg)
}

fn check_hex_sha256(what: &str, s: &str) -> Result<(), ApplyError> {
    if s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what} {s:?} is not 64 lowercase hex digits"
        )))
    }
}

fn extent_bytes(extents: &[Extent]) -> Option<u64> {
    extents.iter().try_fold(0u64, |acc, e| {
        acc.checked_add(e.count().checked_mul(BLOCK_SIZE)?)
    })
}

fn check_extents(
    index: usize,
    what: &str,
    extents: &[Extent],
    limit_blocks: u64,
    limit_name: &str,
) -> Result<(), ApplyError> {
    for e in extents {
        match e.end() {
            Some(end) if e.count() > 0 && end <= limit_blocks => {}
            _ => {
                return Err(invalid(format!(
                    "operation {index}: {what} extent [{}, +{}] is outside the {limit_name} ({limit_blocks} blocks)",
                    e.start(),
                    e.count()
                )))
            }
        }
    }
    Ok(())
}

/// Structural checks of a manifest against its header and the target slot size.
pub fn validate_structure(
    manifest: &Manifest,
    header: &Header,
    slot_size: u64,
) -> Result<(), ApplyError> {
    if manifest.format_version != header.version {
        return Err(invalid(format!(
            "manifest format version {} differs from header version {}",
            manifest.format_version, header.version
        )));
    }
    if manifest.target_size == 0 || manifest.target_size % BLOCK_SIZE != 0 {
        return Err(invalid(format!(
            "target size {} is not a positive multiple of {BLOCK_SIZE}",
            manifest.target_size
        )));
    }
    if manifest.target_size > slot_size {
        return Err(ApplyError::TooLarge(format!(
            "target image of {} bytes does not fit the {slot_size}-byte slot; use a bigger slot or a smaller image",
            manifest.target_size
        )));
    }
    check_hex_sha256("target sha256", &manifest.target_sha256)?;
    let source_blocks = match (&manifest.kind, &manifest.source) {
        (PayloadKind::Full, None) => 0,
        (PayloadKind::Delta, Some(src)) => {
            check_hex_sha256("source sha256", &src.sha256)?;
            if src.size % BLOCK_SIZE != 0 {
                return Err(invalid(format!(
                    "source size {} is not a multiple of {BLOCK_SIZE}",
                    src.size
                )));
            }
            src.size / BLOCK_SIZE
        }
        (PayloadKind::Full, Some(_)) => {
            return Err(invalid("a full payload names a source".into()))
        }
        (PayloadKind::Delta, None) => {
            return Err(invalid("a delta payload does not name its source".into()))
        }
    };
    let target_blocks = manifest.target_size / BLOCK_SIZE;
    let mut all_dst: Vec<(u64, u64, usize)> = Vec::new();
    let mut next_data = 0u64;
    for (i, op) in manifest.operations.iter().enumerate() {
        if op.dst.is_empty() {
            return Err(invalid(format!("operation {i} has no destination")));
        }
        check_extents(i, "destination", &op.dst, target_blocks, "target image")?;
        check_extents(i, "source", &op.src, source_blocks, "source image")?;
        check_hex_sha256(&format!("operation {i} data sha256"), &op.data_sha256)?;
        let dst_bytes = extent_bytes(&op.dst)
            .ok_or_else(|| invalid(format!("operation {i}: destination size overflows")))?;
        let src_bytes = extent_bytes(&op.src)
            .ok_or_else(|| invalid(format!("operation {i}: source size overflows")))?;
        // Data blobs are laid out in operation order with no gaps, so a stream
        // reader never has to skip or go back.
        if op.data_offset != next_data {
            return Err(invalid(format!(
                "operation {i}: data range starts at {} but the previous one ended at {next_data}",
                op.data_offset
            )));
        }
        next_data = match op.data_offset.checked_add(op.data_len) {
            Some(end) if end <= manifest.data_len => end,
            _ => {
                return Err(invalid(format!(
                    "operation {i}: data range [{}, +{}] lies outside the {}-byte data section",
                    op.data_offset, op.data_len, manifest.data_len
                )))
            }
        };
        if op.data_len > MAX_BLOB_BYTES {
            return Err(ApplyError::TooLarge(format!(
                "operation {i}: blob of {} bytes exceeds {MAX_BLOB_BYTES}",
                op.data_len
            )));
        }
        let has_blob = matches!(
            op.op,
            OpType::Replace | OpType::ReplaceZstd | OpType::ZstdPatch
        );
        if has_blob && dst_bytes > MAX_OP_DST_BYTES {
            return Err(ApplyError::TooLarge(format!(
                "operation {i}: destination of {dst_bytes} bytes exceeds {MAX_OP_DST_BYTES}"
            )));
        }
        if !has_blob && (op.data_len != 0 || op.data_sha256 != EMPTY_SHA256) {
            return Err(invalid(format!(
                "operation {i}: {:?} must carry no data",
                op.op
            )));
        }
        if has_blob && op.data_len == 0 {
            return Err(invalid(format!("operation {i}: {:?} has no data", op.op)));
        }
        let uses_source = matches!(op.op, OpType::SourceCopy | OpType::ZstdPatch);
        if uses_source == op.src.is_empty() {
            return Err(invalid(format!(
                "operation {i}: {:?} {} source extents",
                op.op,
                if uses_source {
                    "needs"
                } else {
                    "must not have"
                }
            )));
        }
        match op.op {
            OpType::Replace if op.data_len != dst_bytes => {
                return Err(invalid(format!(
                    "operation {i}: REPLACE of {} bytes into {dst_bytes} destination bytes",
                    op.data_len
                )))
            }
            OpType::SourceCopy if src_bytes != dst_bytes => {
                return Err(invalid(format!(
                    "operation {i}: SOURCE_COPY of {src_bytes} bytes into {dst_bytes} destination bytes"
                )))
            }
            OpType::ZstdPatch if src_bytes > MAX_PATCH_SRC_BYTES => {
                return Err(ApplyError::TooLarge(format!(
                    "operation {i}: patch reference of {src_bytes} bytes exceeds {MAX_PATCH_SRC_BYTES}"
                )))
            }
            _ => {}
        }
        all_dst.extend(op.dst.iter().map(|e| (e.start(), e.count(), i)));
    }
    if next_data != manifest.data_len {
        return Err(invalid(format!(
            "operations use {next_data} data bytes but the data section is {} bytes",
            manifest.data_len
        )));
    }
    check_no_overlap(&mut all_dst)
}

fn check_no_overlap(extents: &mut [(u64, u64, usize)]) -> Result<(), ApplyError> {
    extents.sort_unstable();
    for w in extents.windows(2) {
        let (a, b) = (w[0], w[1]);
        // Extents were bounds-checked, so start + count cannot overflow.
        if a.0 + a.1 > b.0 {
            return Err(invalid(format!(
                "destinations overlap: operation {} writes blocks [{}, +{}] and operation {} writes [{}, +{}]",
                a.2, a.0, a.1, b.2, b.0, b.1
            )));
        }
    }
    Ok(())
}

/// Policy checks: board, downgrade, epoch, expiry.
pub fn check_policy(manifest: &Manifest, policy: &ApplyPolicy) -> Result<(), ApplyError> {
    if manifest.compatible != policy.compatible {
        return Err(ApplyError::Policy(format!(
            "payload is for {:?}, this system is {:?}",
            manifest.compatible, policy.compatible
        )));
    }
    let target: OsVersion = manifest
        .version
        .parse()
        .map_err(|e| invalid(format!("target version: {e}")))?;
    if !policy.allow_downgrade {
        if target < policy.installed_version {
            return Err(ApplyError::Policy(format!(
                "version {target} is older than the installed {}; downgrades need --allow-downgrade",
                policy.installed_version
            )));
        }
        if manifest.epoch < policy.installed_epoch {
            return Err(ApplyError::Policy(format!(
                "security epoch {} is lower than the installed {}; downgrades need --allow-downgrade",
                manifest.epoch, policy.installed_epoch
            )));
        }
    }
    if let Some(expires) = &manifest.expires {
        let at = chrono::DateTime::parse_from_rfc3339(expires)
            .map_err(|e| invalid(format!("expiry {expires:?} is not RFC 3339: {e}")))?;
        let now: chrono::DateTime<chrono::Utc> = policy.now.into();
        if now > at {
            return Err(ApplyError::Policy(format!(
                "payload expired at {expires}; ask for a current payload"
            )));
        }
    }
    Ok(())
}
