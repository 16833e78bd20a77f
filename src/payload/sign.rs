//! The signature block: ed25519 signatures over sha256(header ‖ manifest).
//!
//! Layout: big-endian u32 count, then per signature 8 bytes key id and 64
//! bytes signature. Its length is fixed by the count, so the header (which
//! records that length) can be signed before the signatures exist.

use ed25519_dalek::{Signature, Signer, SigningKey};
use sha2::{Digest, Sha256};

use super::error::ApplyError;
use super::keys::{KeyId, TrustedKeys};

const ENTRY_LEN: usize = 8 + 64;

/// Length in bytes of a signature block holding `count` signatures.
pub fn block_len(count: usize) -> u64 {
    4 + (count * ENTRY_LEN) as u64
}

/// The digest every signature covers: sha256 of the header and manifest bytes.
pub fn signed_digest(header: &[u8], manifest: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(header);
    h.update(manifest);
    h.finalize().into()
}

/// Sign `digest` with every key; returns the encoded signature block.
pub fn sign_block(digest: &[u8; 32], keys: &[SigningKey]) -> Vec<u8> {
    let mut out = (keys.len() as u32).to_be_bytes().to_vec();
    for key in keys {
        out.extend_from_slice(&KeyId::of(&key.verifying_key()).0);
        out.extend_from_slice(&key.sign(digest).to_bytes());
    }
    out
}

/// Parse a signature block into (key id, signature) pairs. Total.
pub fn parse_block(bytes: &[u8]) -> Result<Vec<(KeyId, Signature)>, ApplyError> {
    let bad = |what: String| ApplyError::Signature(format!("malformed signature block: {what}"));
    if bytes.len() < 4 {
        return Err(bad(format!("{} bytes", bytes.len())));
    }
    let count = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as u64;
    if count == 0 || block_len(0) + count * ENTRY_LEN as u64 != bytes.len() as u64 {
        return Err(bad(format!(
            "{count} signatures do not fill {} bytes",
            bytes.len()
        )));
    }
    Ok(bytes[4..]
        .chunks_exact(ENTRY_LEN)
        .map(|c| {
            let mut id = [0u8; 8];
            id.copy_from_slice(&c[..8]);
            let mut sig = [0u8; 64];
            sig.copy_from_slice(&c[8..]);
            (KeyId(id), Signature::from_bytes(&sig))
        })
        .collect())
}

/// Check the signatures: at least `min_signatures` (and at least one) distinct
/// trusted, non-revoked keys must have signed `digest`. Returns their ids.
///
/// A signature by a trusted key that does not verify fails the whole payload,
/// even if another signature is good: it means header or manifest changed.
pub fn verify_block(
    digest: &[u8; 32],
    block: &[u8],
    keys: &TrustedKeys,
    min_signatures: usize,
) -> Result<Vec<KeyId>, ApplyError> {
    let mut good = Vec::new();
    let mut skipped = Vec::new();
    for (id, sig) in parse_block(block)? {
        if keys.is_revoked(&id) {
            skipped.push(format!("{id} (revoked)"));
            continue;
        }
        let Some(key) = keys.get(&id) else {
            skipped.push(format!("{id} (unknown)"));
            continue;
        };
        // verify_strict rejects malleable signatures and weak keys.
        key.verify_strict(digest, &sig).map_err(|_| {
            ApplyError::Signature(format!(
                "signature by key {id} does not match the header and manifest (altered or corrupt payload)"
            ))
        })?;
        if !good.contains(&id) {
            good.push(id);
        }
    }
    let needed = min_signatures.max(1);
    if good.len() < needed {
        let trusted: Vec<String> = keys.usable_ids().iter().map(|k| k.to_string()).collect();
        return Err(ApplyError::Signature(format!(
            "{} valid signature(s) by trusted keys, {needed} required; signed by [{}], trusted keys are [{}]; add the signer's .pub to the trusted keys if it is legitimate",
            good.len(),
            skipped.join(", "),
            trusted.join(", ")
        )));
    }
    Ok(good)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn sign_then_verify_with_rotation_and_minimum() {
        let d = signed_digest(b"h", b"m");
        let block = sign_block(&d, &[key(1), key(2)]);
        assert_eq!(block.len() as u64, block_len(2));
        let mut trusted = TrustedKeys::new();
        let id2 = trusted.add(key(2).verifying_key());
        assert_eq!(verify_block(&d, &block, &trusted, 1).unwrap(), vec![id2]);
        let err = verify_block(&d, &block, &trusted, 2).unwrap_err();
        assert!(err.to_string().contains("1 valid signature(s)"), "{err}");
        trusted.add(key(1).verifying_key());
        assert_eq!(verify_block(&d, &block, &trusted, 2).unwrap().len(), 2);
    }

    #[test]
    fn unknown_revoked_and_wrong_digest_are_refused() {
        let d = signed_digest(b"h", b"m");
        let block = sign_block(&d, &[key(1)]);
        let mut trusted = TrustedKeys::new();
        trusted.add(key(9).verifying_key());
        let err = verify_block(&d, &block, &trusted, 1).unwrap_err();
        assert!(err.to_string().contains("(unknown)"), "{err}");
        let id1 = trusted.add(key(1).verifying_key());
        trusted.revoke(id1);
        let err = verify_block(&d, &block, &trusted, 1).unwrap_err();
        assert!(err.to_string().contains("(revoked)"), "{err}");
        let mut trusted = TrustedKeys::new();
        trusted.add(key(1).verifying_key());
        let other = signed_digest(b"h", b"other manifest");
        let err = verify_block(&other, &block, &trusted, 1).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn malformed_blocks_are_refused() {
        assert!(parse_block(&[0, 0]).is_err());
        assert!(parse_block(&[0, 0, 0, 0]).is_err());
        assert!(parse_block(&[0, 0, 0, 1, 1, 2]).is_err());
        let err = parse_block(&[0xff, 0xff, 0xff, 0xff]).unwrap_err();
        assert!(err.to_string().contains("malformed signature block"));
    }
}
