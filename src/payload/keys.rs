//! ed25519 signing keys, key ids and the set of trusted (and revoked) public keys.
//!
//! Files: `NAME.key` is the PKCS#8 PEM private key (mode 0600), `NAME.pub` the
//! SPKI PEM public key; both are what `openssl pkey` reads and writes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Identifies a public key: the first 8 bytes of sha256 of its 32 raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    /// The id of `key`.
    pub fn of(key: &VerifyingKey) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for KeyId {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let bytes = hex::decode(s.trim()).with_context(|| format!("key id {s:?} is not hex"))?;
        let id: [u8; 8] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("key id {s:?} must be 16 hex digits"))?;
        Ok(KeyId(id))
    }
}

/// Generate a key pair and write `NAME.key` (0600) and `NAME.pub`; returns the key id.
pub fn generate_keypair(name: &Path) -> Result<KeyId> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    write_keypair(&key, name)?;
    Ok(KeyId::of(&key.verifying_key()))
}

/// Write `key` as `NAME.key` (PKCS#8 PEM, 0600) and `NAME.pub` (SPKI PEM, 0644).
pub fn write_keypair(key: &SigningKey, name: &Path) -> Result<()> {
    let (private, public) = key_paths(name);
    if private.exists() {
        bail!(
            "{} already exists; refusing to overwrite a private key (choose another --out)",
            private.display()
        );
    }
    let pem = key
        .to_pkcs8_pem(Default::default())
        .context("encoding private key")?;
    crate::fsutil::write_atomic(&private, pem.as_bytes(), 0o600)?;
    let pub_pem = key
        .verifying_key()
        .to_public_key_pem(Default::default())
        .context("encoding public key")?;
    crate::fsutil::write_atomic(&public, pub_pem.as_bytes(), 0o644)
}

/// `NAME.key` and `NAME.pub` for a key name.
pub fn key_paths(name: &Path) -> (PathBuf, PathBuf) {
    let with = |ext: &str| {
        let mut s = name.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    (with(".key"), with(".pub"))
}

/// Read a PKCS#8 PEM private key.
pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("reading private key {}", path.display()))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        anyhow::anyhow!(
            "{} is not an ed25519 PKCS#8 PEM private key ({e}); make one with `update-payload keygen`",
            path.display()
        )
    })
}

/// Read an SPKI PEM public key.
pub fn load_public_key(path: &Path) -> Result<VerifyingKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("reading public key {}", path.display()))?;
    VerifyingKey::from_public_key_pem(&pem).map_err(|e| {
        anyhow::anyhow!(
            "{} is not an ed25519 PEM public key ({e}); pass the NAME.pub file from keygen",
            path.display()
        )
    })
}

/// The public keys a payload may be signed with, minus revoked ones.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<KeyId, VerifyingKey>,
    revoked: BTreeSet<KeyId>,
}

impl TrustedKeys {
    /// An empty set (trusts nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Trust `key`; returns its id.
    pub fn add(&mut self, key: VerifyingKey) -> KeyId {
        let id = KeyId::of(&key);
        self.keys.insert(id, key);
        id
    }

    /// Never accept a signature by `id`, even if the key is present.
    pub fn revoke(&mut self, id: KeyId) {
        self.revoked.insert(id);
    }

    /// Trust every public key file given.
    pub fn from_files(paths: &[PathBuf]) -> Result<Self> {
        let mut keys = Self::new();
        for p in paths {
            keys.add(load_public_key(p)?);
        }
        Ok(keys)
    }

    /// Trust every `*.pub` in `dirs` (missing directories are skipped, as the
    /// /etc override directory usually does not exist).
    pub fn load_dirs(dirs: &[PathBuf]) -> Result<Self> {
        let mut keys = Self::new();
        for dir in dirs {
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("listing key directory {}", dir.display()))
                }
            };
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "pub"))
                .collect();
            paths.sort();
            for p in paths {
                keys.add(load_public_key(&p)?);
            }
        }
        Ok(keys)
    }

    /// The key with `id` if it is trusted and not revoked.
    pub fn get(&self, id: &KeyId) -> Option<&VerifyingKey> {
        if self.revoked.contains(id) {
            return None;
        }
        self.keys.get(id)
    }

    /// Whether `id` is revoked.
    pub fn is_revoked(&self, id: &KeyId) -> bool {
        self.revoked.contains(id)
    }

    /// Ids of the usable (non-revoked) keys.
    pub fn usable_ids(&self) -> Vec<KeyId> {
        self.keys
            .keys()
            .filter(|id| !self.revoked.contains(id))
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keygen_writes_loadable_pair_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let name = dir.path().join("k");
        let id = generate_keypair(&name).unwrap();
        let (private, public) = key_paths(&name);
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let sk = load_signing_key(&private).unwrap();
        let pk = load_public_key(&public).unwrap();
        assert_eq!(sk.verifying_key(), pk);
        assert_eq!(KeyId::of(&pk), id);
        assert_eq!(id.to_string().len(), 16);
        assert_eq!(id.to_string().parse::<KeyId>().unwrap(), id);
        let err = generate_keypair(&name).unwrap_err();
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    }

    #[test]
    fn bad_key_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pub");
        std::fs::write(&p, "nonsense").unwrap();
        let err = load_public_key(&p).unwrap_err();
        assert!(err.to_string().contains("not an ed25519 PEM public key"));
        let err = load_signing_key(&p).unwrap_err();
        assert!(err.to_string().contains("not an ed25519 PKCS#8"));
        assert!(load_public_key(&dir.path().join("missing")).is_err());
        assert!("zz".parse::<KeyId>().is_err());
        assert!("00".parse::<KeyId>().is_err());
    }

    #[test]
    fn trusted_keys_from_dirs_and_revocation() {
        let dir = tempfile::tempdir().unwrap();
        let a = generate_keypair(&dir.path().join("a")).unwrap();
        let b = generate_keypair(&dir.path().join("b")).unwrap();
        let mut keys =
            TrustedKeys::load_dirs(&[dir.path().to_path_buf(), dir.path().join("does-not-exist")])
                .unwrap();
        assert_eq!(keys.usable_ids().len(), 2);
        keys.revoke(a);
        assert!(keys.get(&a).is_none());
        assert!(keys.is_revoked(&a));
        assert!(keys.get(&b).is_some());
        assert_eq!(keys.usable_ids(), vec![b]);
        let file = dir.path().join("a.pub");
        assert!(TrustedKeys::load_dirs(&[file]).is_err());
    }
}
