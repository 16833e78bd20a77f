//! Building full and delta payloads from image files.
//!
//! Pass 1 reads the target once (hashing it and classifying each 4 KiB block
//! as zero, present in the source, or new); pass 2 groups blocks into
//! operations and compresses the data ones in parallel, a bounded batch at a
//! time, appending blobs to a temporary data file; the header, manifest and
//! signatures are written last, in front of the data.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use ed25519_dalek::SigningKey;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::format::{
    Extent, Header, Manifest, OpType, Operation, PayloadKind, SourceInfo, BLOCK_SIZE,
    FORMAT_VERSION, MAX_OP_DST_BYTES, MAX_PATCH_SRC_BYTES,
};
use super::sign;
use super::validate::EMPTY_SHA256;

/// Default size of one operation's destination (the resume granularity).
pub const DEFAULT_OP_SIZE: u64 = 2 << 20;
/// zstd level of full-payload blobs.
pub const FULL_LEVEL: i32 = 9;
/// zstd level of delta blobs (small, so worth the effort).
pub const DELTA_LEVEL: i32 = 19;
/// Source bytes added on each side of a changed region as patch reference:
/// twice the region, within these bounds. Level-19 compression indexes the
/// whole reference, so a wider one costs build time for little gain: the old
/// version of a changed block sits at (or next to) the aligned position.
const MIN_PATCH_MARGIN_BYTES: u64 = 64 << 10;
const MAX_PATCH_MARGIN_BYTES: u64 = 1 << 20;
/// Data operations compressed per parallel batch (bounds builder memory).
const BATCH_OPS: usize = 8;
/// Longest run of zero blocks merged into one ZERO operation.
const MAX_ZERO_OP_BYTES: u64 = 64 << 20;

/// Everything about a payload that is not the images themselves.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Target OS version.
    pub version: String,
    /// Board/product string.
    pub compatible: String,
    /// Security epoch.
    pub epoch: u64,
    /// RFC 3339 expiry.
    pub expires: Option<String>,
    /// Largest destination of one data operation, in bytes (multiple of 4096).
    pub op_size: u64,
    /// Version of the source image, recorded in delta manifests.
    pub source_version: Option<String>,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildSummary {
    /// The manifest written.
    pub manifest: Manifest,
    /// Size of the payload file in bytes.
    pub payload_len: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Zero,
    Copy(u64),
    New,
}

fn block_key(block: &[u8]) -> [u8; 16] {
    let d = Sha256::digest(block);
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

fn image_size(file: &File, path: &Path) -> Result<u64> {
    let size = file
        .metadata()
        .with_context(|| format!("reading size of {}", path.display()))?
        .len();
    ensure!(
        size > 0 && size % BLOCK_SIZE == 0,
        "{} is {size} bytes, not a positive multiple of {BLOCK_SIZE}; pad the image to whole 4 KiB blocks",
        path.display()
    );
    Ok(size)
}

/// Read `path` in 1 MiB chunks, calling `each(block_index, block)` for every
/// 4 KiB block (in parallel within a chunk); returns sha256 of the file.
fn scan<T: Send>(
    path: &Path,
    each: impl Fn(u64, &[u8]) -> T + Sync,
    mut sink: impl FnMut(u64, T),
) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut block = 0u64;
    loop {
        let mut got = 0;
        while got < buf.len() {
            let n = file
                .read(&mut buf[got..])
                .with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        if got == 0 {
            break;
        }
        hasher.update(&buf[..got]);
        let results: Vec<T> = buf[..got]
            .par_chunks(BLOCK_SIZE as usize)
            .enumerate()
            .map(|(i, b)| each(block + i as u64, b))
            .collect();
        for (i, r) in results.into_iter().enumerate() {
            sink(block + i as u64, r);
        }
        block += (got as u64).div_ceil(BLOCK_SIZE);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn is_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// A planned operation before its data is encoded.
enum Unit {
    Zero(Extent),
    Copy(Extent, Vec<Extent>),
    /// New data, with the source extents to patch against (deltas).
    Data(Extent, Option<Extent>),
}

fn plan(classes: &[Class], op_blocks: u64, source_blocks: u64) -> Vec<Unit> {
    let mut units: Vec<Unit> = Vec::new();
    let zero_cap = MAX_ZERO_OP_BYTES / BLOCK_SIZE;
    let mut i = 0usize;
    while i < classes.len() {
        let start = i as u64;
        match classes[i] {
            Class::Zero => {
                let mut n = 0;
                while i < classes.len() && classes[i] == Class::Zero && n < zero_cap {
                    i += 1;
                    n += 1;
                }
                units.push(Unit::Zero(Extent(start, n)));
            }
            Class::Copy(_) => {
                let mut src: Vec<Extent> = Vec::new();
                let mut n = 0;
                while i < classes.len() && n < op_blocks {
                    let Class::Copy(s) = classes[i] else { break };
                    match src.last_mut() {
                        Some(e) if e.0 + e.1 == s => e.1 += 1,
                        _ => src.push(Extent(s, 1)),
                    }
                    i += 1;
                    n += 1;
                }
                units.push(Unit::Copy(Extent(start, n), src));
            }
            Class::New => {
                let mut n = 0;
                while i < classes.len() && classes[i] == Class::New && n < op_blocks {
                    i += 1;
                    n += 1;
                }
                let reference =
                    (source_blocks > 0).then(|| patch_reference(classes, start, n, source_blocks));
                units.push(Unit::Data(Extent(start, n), reference));
            }
        }
    }
    units
}

/// The source region a changed run most likely came from: aligned with the
/// copied block just before (or after) it when there is one, else the same
/// offsets; widened by a margin, clipped to the source and the size limit.
fn patch_reference(classes: &[Class], start: u64, count: u64, source_blocks: u64) -> Extent {
    let before = start
        .checked_sub(1)
        .and_then(|b| match classes[b as usize] {
            Class::Copy(s) => Some(s as i128 + 1),
            _ => None,
        });
    let after = classes.get((start + count) as usize).and_then(|c| match c {
        Class::Copy(s) => Some(*s as i128 - count as i128),
        _ => None,
    });
    let anchor = before.or(after).unwrap_or(start as i128);
    let margin = (count * 2).clamp(
        MIN_PATCH_MARGIN_BYTES / BLOCK_SIZE,
        MAX_PATCH_MARGIN_BYTES / BLOCK_SIZE,
    ) as i128;
    let max_blocks = (MAX_PATCH_SRC_BYTES / BLOCK_SIZE) as i128;
    let lo = (anchor - margin).clamp(0, source_blocks as i128);
    let hi = (anchor + count as i128 + margin)
        .clamp(lo, source_blocks as i128)
        .min(lo + max_blocks);
    Extent(lo as u64, (hi - lo) as u64)
}

struct Encoded {
    op: OpType,
    src: Vec<Extent>,
    blob: Vec<u8>,
}

fn encode(data: &[u8], reference: Option<(Extent, &[u8])>) -> Result<Encoded> {
    let level = if reference.is_some() {
        DELTA_LEVEL
    } else {
        FULL_LEVEL
    };
    let mut best = Encoded {
        op: OpType::ReplaceZstd,
        src: Vec::new(),
        blob: zstd::bulk::compress(data, level).context("zstd compression")?,
    };
    if let Some((ext, bytes)) = reference.filter(|(e, _)| e.1 > 0) {
        let mut enc = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), level, bytes)
            .context("zstd patch encoder")?;
        // The window must reach back over the whole reference, like
        // `zstd --patch-from` sets it.
        let window = (bytes.len() + data.len())
            .next_power_of_two()
            .trailing_zeros();
        enc.window_log(window.clamp(20, super::format::MAX_ZSTD_WINDOW_LOG))
            .context("zstd window")?;
        enc.set_pledged_src_size(Some(data.len() as u64))
            .context("zstd pledged size")?;
        enc.include_contentsize(true).context("zstd content size")?;
        enc.write_all(data).context("zstd patch compression")?;
        let patch = enc.finish().context("zstd patch compression")?;
        if patch.len() < best.blob.len() {
            best = Encoded {
                op: OpType::ZstdPatch,
                src: vec![ext],
                blob: patch,
            };
        }
    }
    if best.blob.len() >= data.len() {
        best = Encoded {
            op: OpType::Replace,
            src: Vec::new(),
            blob: data.to_vec(),
        };
    }
    Ok(best)
}

fn read_at(file: &File, ext: Extent) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; (ext.1 * BLOCK_SIZE) as usize];
    file.read_exact_at(&mut buf, ext.0 * BLOCK_SIZE)
        .context("reading image blocks")?;
    Ok(buf)
}

/// Build a payload for `target` (full, or delta against `source`), signed by
/// every key in `keys`, into `out`.
pub fn build_payload(
    target: &Path,
    source: Option<&Path>,
    keys: &[SigningKey],
    opts: &BuildOptions,
    out: &Path,
) -> Result<BuildSummary> {
    ensure!(!keys.is_empty(), "at least one signing key is needed");
    ensure!(
        opts.op_size >= BLOCK_SIZE
            && opts.op_size % BLOCK_SIZE == 0
            && opts.op_size <= MAX_OP_DST_BYTES,
        "--op-size {} must be a multiple of {BLOCK_SIZE} between {BLOCK_SIZE} and {MAX_OP_DST_BYTES}",
        opts.op_size
    );
    opts.version
        .parse::<crate::version::OsVersion>()
        .context("--version")?;
    if let Some(e) = &opts.expires {
        chrono::DateTime::parse_from_rfc3339(e)
            .with_context(|| format!("--expires {e:?} is not an RFC 3339 time"))?;
    }
    let target_file =
        File::open(target).with_context(|| format!("opening target image {}", target.display()))?;
    let target_size = image_size(&target_file, target)?;

    // Index of the source's blocks by content, for unchanged and moved blocks.
    let (source_info, source_file, index) = match source {
        Some(path) => {
            let file = File::open(path)
                .with_context(|| format!("opening source image {}", path.display()))?;
            let size = image_size(&file, path)?;
            let mut index: HashMap<[u8; 16], u64> = HashMap::new();
            let sha = scan(
                path,
                |_, b| (!is_zero(b)).then(|| block_key(b)),
                |i, k| {
                    if let Some(k) = k {
                        index.entry(k).or_insert(i);
                    }
                },
            )?;
            let info = SourceInfo {
                version: opts.source_version.clone(),
                size,
                sha256: sha,
            };
            (Some(info), Some(file), index)
        }
        None => (None, None, HashMap::new()),
    };

    let mut classes = Vec::new();
    let target_sha = scan(
        target,
        |_, b| {
            if is_zero(b) {
                Class::Zero
            } else if index.is_empty() {
                Class::New
            } else {
                index
                    .get(&block_key(b))
                    .map_or(Class::New, |&s| Class::Copy(s))
            }
        },
        |_, c| classes.push(c),
    )?;
    let source_blocks = source_info.as_ref().map_or(0, |s| s.size / BLOCK_SIZE);
    let units = plan(&classes, opts.op_size / BLOCK_SIZE, source_blocks);
    drop(classes);

    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut data = tempfile::tempfile_in(dir)
        .with_context(|| format!("creating a temporary data file in {}", dir.display()))?;
    let mut data_w = BufWriter::new(&mut data);
    let mut operations = Vec::with_capacity(units.len());
    let mut data_len = 0u64;
    for batch in units.chunks(BATCH_OPS) {
        // Read sequentially, compress in parallel, append in order.
        let inputs = batch
            .iter()
            .map(|u| match u {
                Unit::Data(dst, reference) => {
                    let bytes = read_at(&target_file, *dst)?;
                    let reference = match (reference, &source_file) {
                        (Some(r), Some(f)) => Some((*r, read_at(f, *r)?)),
                        _ => None,
                    };
                    Ok(Some((bytes, reference)))
                }
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        let encoded = inputs
            .par_iter()
            .map(|input| match input {
                Some((bytes, reference)) => {
                    encode(bytes, reference.as_ref().map(|(e, b)| (*e, b.as_slice()))).map(Some)
                }
                None => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        for (unit, enc) in batch.iter().zip(encoded) {
            let op = match (unit, enc) {
                (Unit::Zero(dst), _) => blobless(OpType::Zero, *dst, Vec::new(), data_len),
                (Unit::Copy(dst, src), _) => {
                    blobless(OpType::SourceCopy, *dst, src.clone(), data_len)
                }
                (Unit::Data(dst, _), Some(enc)) => {
                    data_w
                        .write_all(&enc.blob)
                        .context("writing payload data")?;
                    let op = Operation {
                        op: enc.op,
                        dst: vec![*dst],
                        src: enc.src,
                        data_offset: data_len,
                        data_len: enc.blob.len() as u64,
                        data_sha256: hex::encode(Sha256::digest(&enc.blob)),
                    };
                    data_len += enc.blob.len() as u64;
                    op
                }
                (Unit::Data(..), None) => bail!("internal error: data unit without encoding"),
            };
            operations.push(op);
        }
    }
    data_w.flush().context("writing payload data")?;
    drop(data_w);

    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        kind: if source_info.is_some() {
            PayloadKind::Delta
        } else {
            PayloadKind::Full
        },
        version: opts.version.clone(),
        compatible: opts.compatible.clone(),
        epoch: opts.epoch,
        expires: opts.expires.clone(),
        target_size,
        target_sha256: target_sha,
        source: source_info,
        data_len,
        operations,
    };
    let payload_len = write_payload(&manifest, keys, &mut data, out)?;
    Ok(BuildSummary {
        manifest,
        payload_len,
    })
}

fn blobless(op: OpType, dst: Extent, src: Vec<Extent>, data_offset: u64) -> Operation {
    Operation {
        op,
        dst: vec![dst],
        src,
        data_offset,
        data_len: 0,
        data_sha256: EMPTY_SHA256.to_string(),
    }
}

/// Write header, manifest, signature block and the data from `data` to
/// `out` (through a temporary file renamed into place). Returns the size.
pub fn write_payload(
    manifest: &Manifest,
    keys: &[SigningKey],
    data: &mut File,
    out: &Path,
) -> Result<u64> {
    let manifest_bytes = manifest.encode();
    let header = Header {
        version: FORMAT_VERSION,
        manifest_len: manifest_bytes.len() as u64,
        signature_len: sign::block_len(keys.len()),
    };
    let header_bytes = header.encode();
    let digest = sign::signed_digest(&header_bytes, &manifest_bytes);
    let signatures = sign::sign_block(&digest, keys);
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let mut w = BufWriter::new(tmp);
    w.write_all(&header_bytes)
        .and_then(|_| w.write_all(&manifest_bytes))
        .and_then(|_| w.write_all(&signatures))
        .context("writing payload header")?;
    data.seek(SeekFrom::Start(0))
        .context("rewinding payload data")?;
    std::io::copy(data, &mut w).context("copying payload data")?;
    let tmp = w
        .into_inner()
        .map_err(|e| e.into_error())
        .context("writing payload")?;
    tmp.as_file().sync_all().context("syncing payload")?;
    let len = tmp.as_file().metadata().context("payload size")?.len();
    tmp.persist(out)
        .with_context(|| format!("moving the payload into place at {}", out.display()))?;
    Ok(len)
}

/// Default output-independent helper: `NAME.key` paths given on the command line.
pub fn key_files(paths: &[PathBuf]) -> Result<Vec<SigningKey>> {
    paths
        .iter()
        .map(|p| super::keys::load_signing_key(p))
        .collect()
}
