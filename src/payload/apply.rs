//! The streaming applier: consumes a payload as a byte stream of chunks of any
//! size and writes the target slot, enforcing DESIGN §3's order of trust.
//!
//! header bounds → size-limited manifest → signatures → manifest validation
//! (+ delta source hash) → per operation: blob sha256, then write → sync →
//! read back the whole target image and compare its sha256.
//!
//! The read-back may begin before the end: a caller that syncs the target
//! while the apply goes on (the engine's checkpoints) can read back the
//! [`settled_len`](Applier::settled_len) bytes each sync made final into a
//! [`Readback`] and hand it to [`finish_with`](Applier::finish_with), which
//! syncs and reads back only the rest. Every byte is still flushed before it
//! is read back, and the whole image is read back before it is trusted.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::ApplyError;
use super::format::{Header, Manifest, PayloadKind, HEADER_LEN};
use super::keys::{KeyId, TrustedKeys};
use super::ops::{self, Scratch, CHUNK_BYTES};
use super::sign;
use super::validate::{check_policy, validate_structure, ApplyPolicy};
use crate::io::Device;

/// Where an interrupted apply stands. Persist it only after [`Applier::sync`]
/// (see [`Applier::save_checkpoint`]); resume by feeding the payload's first
/// `prefix_len` bytes followed by the bytes from `offset` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Hex sha256 of header ‖ manifest: identifies the payload.
    pub payload_id: String,
    /// Length of header + manifest + signature block.
    pub prefix_len: u64,
    /// Index of the first operation not yet applied.
    pub next_op: usize,
    /// Payload byte offset of that operation's blob.
    pub offset: u64,
}

impl Checkpoint {
    /// Load a checkpoint saved by [`Applier::save_checkpoint`]; `None` if absent.
    pub fn load(path: &Path) -> anyhow::Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("parsing checkpoint {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading checkpoint {}", path.display())),
        }
    }
}

/// What a successful apply installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedImage {
    /// Target OS version.
    pub version: String,
    /// Hex sha256 of the target image, read back from the slot.
    pub sha256: String,
    /// Size of the target image in bytes.
    pub size: u64,
    /// Full or delta.
    pub kind: PayloadKind,
    /// Keys whose signatures verified.
    pub signed_by: Vec<KeyId>,
}

enum Stage {
    Header,
    Manifest,
    Signature,
    Ops,
    Done,
}

type Hook = Box<dyn FnMut() -> anyhow::Result<()> + Send>;

/// Streaming payload applier writing into `target` (the target slot window),
/// reading deltas' source data from `source` (the active slot window).
pub struct Applier<W, S = W> {
    target: W,
    source: Option<S>,
    keys: TrustedKeys,
    policy: ApplyPolicy,
    resume: Option<Checkpoint>,
    before_first_write: Option<Hook>,
    stage: Stage,
    buf: Vec<u8>,
    header_bytes: Vec<u8>,
    header: Option<Header>,
    manifest: Option<Manifest>,
    payload_id: [u8; 32],
    signed_by: Vec<KeyId>,
    next_op: usize,
    pos: u64,
    writing_started: bool,
    failed: bool,
    scratch: Scratch,
}

impl<W: Device, S: Read + Seek> Applier<W, S> {
    /// Prepare to apply a payload into `target`. Nothing is read or written yet.
    pub fn new(
        target: W,
        source: Option<S>,
        keys: TrustedKeys,
        policy: ApplyPolicy,
        checkpoint: Option<Checkpoint>,
    ) -> Self {
        Self {
            target,
            source,
            keys,
            policy,
            resume: checkpoint,
            before_first_write: None,
            stage: Stage::Header,
            buf: Vec::new(),
            header_bytes: Vec::new(),
            header: None,
            manifest: None,
            payload_id: [0; 32],
            signed_by: Vec::new(),
            next_op: 0,
            pos: 0,
            writing_started: false,
            failed: false,
            scratch: Scratch::default(),
        }
    }

    /// Run `hook` once, right before the first byte is written to the target
    /// (after every check that can be done without writing passed). The CLI
    /// and the daemon use it to set the target slot's priority to 0 first,
    /// so a crash mid-write can never leave a half-written bootable slot.
    pub fn before_first_write(
        mut self,
        hook: impl FnMut() -> anyhow::Result<()> + Send + 'static,
    ) -> Self {
        self.before_first_write = Some(Box::new(hook));
        self
    }

    /// Whether anything was written to the target yet.
    pub fn writing_started(&self) -> bool {
        self.writing_started
    }

    /// The verified manifest, once the signature and checks passed.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// Payload offset the next byte passed to [`write`](Self::write) stands for.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Push the next bytes of the payload stream.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), ApplyError> {
        if self.failed {
            return Err(ApplyError::Poisoned);
        }
        let result = self.consume(bytes);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn take(&mut self, bytes: &mut &[u8], want: u64) -> bool {
        let missing = want - self.buf.len() as u64;
        let n = missing.min(bytes.len() as u64) as usize;
        self.buf.extend_from_slice(&bytes[..n]);
        *bytes = &bytes[n..];
        self.pos += n as u64;
        self.buf.len() as u64 == want
    }

    fn consume(&mut self, mut bytes: &[u8]) -> Result<(), ApplyError> {
        while !bytes.is_empty() {
            match self.stage {
                Stage::Header => {
                    if self.take(&mut bytes, HEADER_LEN as u64) {
                        self.header = Some(Header::parse(&self.buf)?);
                        self.header_bytes = std::mem::take(&mut self.buf);
                        self.stage = Stage::Manifest;
                    }
                }
                Stage::Manifest => {
                    let h = self.header.expect("header parsed");
                    if self.take(&mut bytes, h.manifest_len) {
                        self.payload_id = sign::signed_digest(&self.header_bytes, &self.buf);
                        self.header_bytes.append(&mut self.buf);
                        self.stage = Stage::Signature;
                    }
                }
                Stage::Signature => {
                    let h = self.header.expect("header parsed");
                    if self.take(&mut bytes, h.signature_len) {
                        self.verify_prefix()?;
                        self.run_blobless_ops()?;
                    }
                }
                Stage::Ops => {
                    let idx = self.next_op;
                    let want = self.manifest.as_ref().expect("verified").operations[idx].data_len;
                    if self.take(&mut bytes, want) {
                        self.apply_blob_op()?;
                        self.run_blobless_ops()?;
                    }
                }
                Stage::Done => {
                    return Err(ApplyError::TrailingData(format!(
                        "{} more bytes after the end at {}",
                        bytes.len(),
                        self.pos
                    )))
                }
            }
        }
        Ok(())
    }

    /// Signature, manifest checks, source check, checkpoint check.
    fn verify_prefix(&mut self) -> Result<(), ApplyError> {
        let header = self.header.expect("header parsed");
        // Trust order: signatures first, over the exact header and manifest
        // bytes, before the manifest is even parsed.
        self.signed_by = sign::verify_block(
            &self.payload_id,
            &self.buf,
            &self.keys,
            self.policy.min_signatures,
        )?;
        self.buf.clear();
        let manifest = Manifest::parse(&self.header_bytes[HEADER_LEN..])?;
        self.header_bytes.truncate(HEADER_LEN);
        let slot_size = self
            .target
            .seek(SeekFrom::End(0))
            .map_err(|e| ApplyError::io("measuring the target slot", e))?;
        validate_structure(&manifest, &header, slot_size)?;
        check_policy(&manifest, &self.policy)?;
        if let Some(src) = &manifest.source {
            self.check_source(&src.sha256, src.size)?;
        }
        let data_start = header.data_start();
        if let Some(cp) = self.resume.take() {
            let id = hex::encode(self.payload_id);
            if cp.payload_id != id || cp.prefix_len != data_start {
                return Err(ApplyError::Checkpoint(format!(
                    "it is for payload {}, this is {id}",
                    cp.payload_id
                )));
            }
            let expected = match manifest.operations.get(cp.next_op) {
                Some(op) => data_start + op.data_offset,
                None if cp.next_op == manifest.operations.len() => data_start + manifest.data_len,
                None => {
                    return Err(ApplyError::Checkpoint(format!(
                        "operation {} does not exist",
                        cp.next_op
                    )))
                }
            };
            if cp.offset != expected {
                return Err(ApplyError::Checkpoint(format!(
                    "offset {} is not where operation {} starts ({expected})",
                    cp.offset, cp.next_op
                )));
            }
            tracing::info!(
                next_op = cp.next_op,
                offset = cp.offset,
                "resuming payload apply"
            );
            self.next_op = cp.next_op;
            self.pos = cp.offset;
        }
        let reserve = manifest
            .operations
            .iter()
            .map(|o| o.data_len)
            .max()
            .unwrap_or(0);
        // Bounded: validate_structure capped every blob at MAX_BLOB_BYTES.
        self.buf.reserve(reserve as usize);
        self.manifest = Some(manifest);
        self.stage = Stage::Ops;
        Ok(())
    }

    fn check_source(&mut self, expected: &str, size: u64) -> Result<(), ApplyError> {
        let Some(src) = self.source.as_mut() else {
            return Err(ApplyError::SourceMismatch(
                "this is a delta payload but no source slot was given".into(),
            ));
        };
        let actual = hash_prefix(src, size).map_err(|e| match e {
            HashError::Short(got) => ApplyError::SourceMismatch(format!(
                "source slot holds {got} bytes, the delta's source image is {size}"
            )),
            HashError::Io(e) => ApplyError::io("reading the source slot", e),
        })?;
        if actual != expected {
            return Err(ApplyError::SourceMismatch(format!(
                "source slot hashes to {actual}, the delta was built against {expected}"
            )));
        }
        Ok(())
    }

    fn start_writing(&mut self) -> Result<(), ApplyError> {
        if !self.writing_started {
            if let Some(hook) = self.before_first_write.as_mut() {
                hook().map_err(|e| {
                    ApplyError::io(
                        "preparing the target slot",
                        std::io::Error::other(format!("{e:#}")),
                    )
                })?;
            }
            self.writing_started = true;
        }
        Ok(())
    }

    fn apply_blob_op(&mut self) -> Result<(), ApplyError> {
        let idx = self.next_op;
        let manifest = self.manifest.as_ref().expect("verified");
        let op = &manifest.operations[idx];
        // The blob's hash is checked before a single byte of it is written.
        let actual = hex::encode(Sha256::digest(&self.buf));
        if actual != op.data_sha256 {
            return Err(ApplyError::BlobHash {
                index: idx,
                expected: op.data_sha256.clone(),
                actual,
            });
        }
        self.start_writing()?;
        let manifest = self.manifest.as_ref().expect("verified");
        let op = &manifest.operations[idx];
        ops::execute(
            idx,
            op,
            &self.buf,
            &mut self.target,
            self.source.as_mut(),
            &mut self.scratch,
        )?;
        self.buf.clear();
        self.next_op += 1;
        Ok(())
    }

    fn run_blobless_ops(&mut self) -> Result<(), ApplyError> {
        loop {
            let manifest = self.manifest.as_ref().expect("verified");
            let Some(op) = manifest.operations.get(self.next_op) else {
                self.stage = Stage::Done;
                return Ok(());
            };
            if op.data_len != 0 {
                return Ok(());
            }
            self.start_writing()?;
            let manifest = self.manifest.as_ref().expect("verified");
            ops::execute(
                self.next_op,
                &manifest.operations[self.next_op],
                &[],
                &mut self.target,
                self.source.as_mut(),
                &mut self.scratch,
            )?;
            self.next_op += 1;
        }
    }

    /// Make every write so far durable.
    pub fn sync(&mut self) -> Result<(), ApplyError> {
        self.target
            .sync()
            .map_err(|e| ApplyError::io("syncing the target slot", e))
    }

    /// Where the apply stands; `None` until the payload's prefix verified.
    /// Only valid for resuming once [`sync`](Self::sync) returned after it.
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        let manifest = self.manifest.as_ref()?;
        let header = self.header?;
        let offset = match manifest.operations.get(self.next_op) {
            Some(op) => op.data_offset,
            None => manifest.data_len,
        };
        Some(Checkpoint {
            payload_id: hex::encode(self.payload_id),
            prefix_len: header.data_start(),
            next_op: self.next_op,
            offset: header.data_start() + offset,
        })
    }

    /// A second handle on the target for another thread (see
    /// [`Device::second_handle`]): with it a caller can sync and persist
    /// [`checkpoint`](Self::checkpoint)s, and read back settled bytes,
    /// without pausing the apply.
    pub fn second_handle(&self) -> Option<crate::io::Region<crate::io::PositionedFile>> {
        self.target.second_handle()
    }

    /// How many bytes at the start of the target image no remaining
    /// operation writes: once a sync issued after this call returns, they
    /// hold their final content and may be read back. `None` until the
    /// manifest verified.
    ///
    /// Sound because validation refused overlapping destinations: every
    /// block is written by at most one operation, so a block below the
    /// lowest destination of the operations still to come is either done
    /// or never written at all.
    pub fn settled_len(&self) -> Option<u64> {
        let manifest = self.manifest.as_ref()?;
        let lowest_pending = manifest.operations[self.next_op..]
            .iter()
            .flat_map(|op| op.dst.iter())
            .map(|e| e.start().saturating_mul(super::format::BLOCK_SIZE))
            .min();
        Some(lowest_pending.map_or(manifest.target_size, |b| b.min(manifest.target_size)))
    }

    /// Sync the target, then persist the checkpoint atomically at `path`.
    /// Returns whether one was written (none before the prefix verified).
    pub fn save_checkpoint(&mut self, path: &Path) -> anyhow::Result<bool> {
        let Some(cp) = self.checkpoint() else {
            return Ok(false);
        };
        self.sync()?;
        let json = serde_json::to_vec(&cp).context("encoding checkpoint")?;
        crate::fsutil::write_atomic(path, &json, 0o644)?;
        Ok(true)
    }

    /// End of stream: sync, read back the target image and compare its sha256.
    pub fn finish(self) -> Result<VerifiedImage, ApplyError> {
        self.finish_with(None)
    }

    /// [`finish`](Self::finish), continuing `readback`: bytes of the target
    /// it already read back (after a sync, and no more than
    /// [`settled_len`](Self::settled_len) at that sync) are not read again.
    pub fn finish_with(mut self, readback: Option<Readback>) -> Result<VerifiedImage, ApplyError> {
        if self.failed {
            return Err(ApplyError::Poisoned);
        }
        let where_ = match self.stage {
            Stage::Done => None,
            Stage::Header => Some("in the header".to_string()),
            Stage::Manifest => Some("in the manifest".to_string()),
            Stage::Signature => Some("in the signature block".to_string()),
            Stage::Ops => Some(format!(
                "in the data of operation {} of {}",
                self.next_op,
                self.manifest.as_ref().map_or(0, |m| m.operations.len())
            )),
        };
        if let Some(where_) = where_ {
            return Err(ApplyError::Truncated(format!(
                "stream ended at byte {} {where_}",
                self.pos
            )));
        }
        self.sync()?;
        let manifest = self.manifest.take().expect("done implies verified");
        let mut readback = readback
            .filter(|r| r.len() <= manifest.target_size)
            .unwrap_or_default();
        readback
            .advance(&mut self.target, manifest.target_size)
            .map_err(|e| match e {
                HashError::Short(got) => ApplyError::io(
                    "reading back the target slot",
                    std::io::Error::other(format!("only {got} bytes readable")),
                ),
                HashError::Io(e) => ApplyError::io("reading back the target slot", e),
            })?;
        let actual = readback.hex();
        if actual != manifest.target_sha256 {
            return Err(ApplyError::TargetMismatch {
                expected: manifest.target_sha256,
                actual,
            });
        }
        tracing::info!(version = %manifest.version, sha256 = %actual, "target slot verified");
        Ok(VerifiedImage {
            version: manifest.version,
            sha256: actual,
            size: manifest.target_size,
            kind: manifest.kind,
            signed_by: self.signed_by,
        })
    }
}

/// Why a read-back stopped.
pub enum HashError {
    /// The device ended after this many bytes.
    Short(u64),
    /// Reading failed.
    Io(std::io::Error),
}

impl std::fmt::Display for HashError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HashError::Short(got) => write!(f, "only {got} bytes readable"),
            HashError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// A sha256 of the target's first bytes, read back from the device and
/// extended in order, possibly across threads and calls.
#[derive(Clone, Default)]
pub struct Readback {
    hasher: Sha256,
    len: u64,
}

impl Readback {
    /// Bytes hashed so far (from the start of the target).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Read `dev` from byte `len()` up to `upto` and hash it (nothing when
    /// `upto` is not past `len()`).
    pub fn advance<D: Read + Seek>(&mut self, dev: &mut D, upto: u64) -> Result<(), HashError> {
        if upto <= self.len {
            return Ok(());
        }
        dev.seek(SeekFrom::Start(self.len)).map_err(HashError::Io)?;
        let mut buf = vec![0u8; CHUNK_BYTES];
        while self.len < upto {
            let want = (upto - self.len).min(CHUNK_BYTES as u64) as usize;
            let n = match dev.read(&mut buf[..want]) {
                Ok(0) => return Err(HashError::Short(self.len)),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(HashError::Io(e)),
            };
            self.hasher.update(&buf[..n]);
            self.len += n as u64;
        }
        Ok(())
    }

    fn hex(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

/// sha256 of the first `len` bytes of `dev`.
fn hash_prefix<D: Read + Seek>(dev: &mut D, len: u64) -> Result<String, HashError> {
    let mut readback = Readback::default();
    readback.advance(dev, len)?;
    Ok(readback.hex())
}

/// Feed a whole payload from a seekable reader into `applier` (resuming at
/// the checkpoint's offset if it was created with one) and finish it.
pub fn apply_from_reader<W: Device, S: Read + Seek, R: Read + Seek>(
    mut applier: Applier<W, S>,
    payload: &mut R,
    resume_from: Option<&Checkpoint>,
) -> Result<VerifiedImage, ApplyError> {
    let read_err = |e| ApplyError::io("reading the payload", e);
    payload.seek(SeekFrom::Start(0)).map_err(read_err)?;
    let mut buf = vec![0u8; 256 << 10];
    if let Some(cp) = resume_from {
        // The prefix (header, manifest, signatures) is always re-read and
        // re-verified; only the data before the checkpoint is skipped.
        let mut prefix = payload.by_ref().take(cp.prefix_len);
        pump(&mut applier, &mut prefix, &mut buf)?;
        payload.seek(SeekFrom::Start(cp.offset)).map_err(read_err)?;
    }
    pump(&mut applier, payload, &mut buf)?;
    applier.finish()
}

fn pump<W: Device, S: Read + Seek>(
    applier: &mut Applier<W, S>,
    input: &mut impl Read,
    buf: &mut [u8],
) -> Result<(), ApplyError> {
    loop {
        let n = match input.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ApplyError::io("reading the payload", e)),
        };
        applier.write(&buf[..n])?;
    }
}
