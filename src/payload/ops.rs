//! Carrying out one verified operation on the target slot.
//!
//! Called only after the operation's blob matched its sha256. Writes go
//! through the target window in chunks of at most [`CHUNK_BYTES`].

use std::io::{self, Read, Seek, SeekFrom, Write};

use super::error::ApplyError;
use super::format::{Extent, OpType, Operation, BLOCK_SIZE, MAX_ZSTD_WINDOW_LOG};

/// I/O granularity of the applier.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Writes a byte stream across a list of destination extents, in order.
struct ExtentWriter<'a, W> {
    target: &'a mut W,
    extents: &'a [Extent],
    index: usize,
    /// Bytes already written into `extents[index]`.
    within: u64,
    written: u64,
}

impl<'a, W: Write + Seek> ExtentWriter<'a, W> {
    fn new(target: &'a mut W, extents: &'a [Extent]) -> Self {
        Self {
            target,
            extents,
            index: 0,
            within: 0,
            written: 0,
        }
    }

    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let Some(e) = self.extents.get(self.index) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "operation produced more bytes than its destination extents hold",
                ));
            };
            let len = e.count() * BLOCK_SIZE;
            if self.within == 0 {
                self.target.seek(SeekFrom::Start(e.start() * BLOCK_SIZE))?;
            }
            let n = (len - self.within).min(buf.len() as u64) as usize;
            self.target.write_all(&buf[..n])?;
            buf = &buf[n..];
            self.within += n as u64;
            self.written += n as u64;
            if self.within == len {
                self.index += 1;
                self.within = 0;
            }
        }
        Ok(())
    }
}

fn total_bytes(extents: &[Extent]) -> u64 {
    extents.iter().map(|e| e.count() * BLOCK_SIZE).sum()
}

/// Read `len` bytes or up to the end of `r` into `buf`; returns how many.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Read all bytes of `extents` from `source`, in order, into `out`.
pub fn read_extents<S: Read + Seek>(
    source: &mut S,
    extents: &[Extent],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    out.clear();
    for e in extents {
        source.seek(SeekFrom::Start(e.start() * BLOCK_SIZE))?;
        let len = (e.count() * BLOCK_SIZE) as usize;
        let start = out.len();
        out.resize(start + len, 0);
        source.read_exact(&mut out[start..])?;
    }
    Ok(())
}

/// Scratch buffers reused across operations (bounded by the per-op limits).
#[derive(Default)]
pub struct Scratch {
    chunk: Vec<u8>,
    reference: Vec<u8>,
}

/// Carry out `op` with its verified `blob`.
pub fn execute<W, S>(
    index: usize,
    op: &Operation,
    blob: &[u8],
    target: &mut W,
    source: Option<&mut S>,
    scratch: &mut Scratch,
) -> Result<(), ApplyError>
where
    W: Write + Seek,
    S: Read + Seek,
{
    let fail = |reason: String| ApplyError::Operation { index, reason };
    let write_err = |e: io::Error| {
        if e.kind() == io::ErrorKind::InvalidData {
            fail(e.to_string())
        } else {
            ApplyError::io(format!("writing operation {index} to the target slot"), e)
        }
    };
    if scratch.chunk.len() != CHUNK_BYTES {
        scratch.chunk = vec![0u8; CHUNK_BYTES];
    }
    let expected = total_bytes(&op.dst);
    let mut out = ExtentWriter::new(target, &op.dst);
    match op.op {
        OpType::Replace => out.write_all(blob).map_err(write_err)?,
        OpType::Zero => {
            scratch.chunk.fill(0);
            let mut left = expected;
            while left > 0 {
                let n = left.min(CHUNK_BYTES as u64) as usize;
                out.write_all(&scratch.chunk[..n]).map_err(write_err)?;
                left -= n as u64;
            }
        }
        OpType::SourceCopy => {
            let src = source.ok_or_else(|| fail("SOURCE_COPY without a source slot".into()))?;
            for e in &op.src {
                src.seek(SeekFrom::Start(e.start() * BLOCK_SIZE))
                    .map_err(|e| ApplyError::io("seeking the source slot", e))?;
                let mut left = e.count() * BLOCK_SIZE;
                while left > 0 {
                    let n = left.min(CHUNK_BYTES as u64) as usize;
                    src.read_exact(&mut scratch.chunk[..n])
                        .map_err(|e| ApplyError::io("reading the source slot", e))?;
                    out.write_all(&scratch.chunk[..n]).map_err(write_err)?;
                    left -= n as u64;
                }
            }
        }
        OpType::ReplaceZstd => {
            let mut dec = zstd::stream::read::Decoder::with_buffer(blob)
                .map_err(|e| fail(format!("zstd decoder: {e}")))?;
            dec.window_log_max(MAX_ZSTD_WINDOW_LOG)
                .map_err(|e| fail(format!("zstd decoder: {e}")))?;
            decode_into(dec, &mut out, &mut scratch.chunk, index)?;
        }
        OpType::ZstdPatch => {
            let src = source.ok_or_else(|| fail("ZSTD_PATCH without a source slot".into()))?;
            read_extents(src, &op.src, &mut scratch.reference).map_err(|e| {
                ApplyError::io("reading the patch reference from the source slot", e)
            })?;
            let mut dec = zstd::stream::read::Decoder::with_ref_prefix(blob, &scratch.reference)
                .map_err(|e| fail(format!("zstd decoder: {e}")))?;
            dec.window_log_max(MAX_ZSTD_WINDOW_LOG)
                .map_err(|e| fail(format!("zstd decoder: {e}")))?;
            decode_into(dec, &mut out, &mut scratch.chunk, index)?;
        }
    }
    if out.written != expected {
        return Err(fail(format!(
            "produced {} bytes for {expected} destination bytes",
            out.written
        )));
    }
    Ok(())
}

fn decode_into<R: Read, W: Write + Seek>(
    mut dec: R,
    out: &mut ExtentWriter<'_, W>,
    chunk: &mut [u8],
    index: usize,
) -> Result<(), ApplyError> {
    loop {
        let n = read_full(&mut dec, chunk).map_err(|e| ApplyError::Operation {
            index,
            reason: format!("zstd data does not decode: {e}"),
        })?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&chunk[..n]).map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                ApplyError::Operation {
                    index,
                    reason: e.to_string(),
                }
            } else {
                ApplyError::io(format!("writing operation {index} to the target slot"), e)
            }
        })?;
    }
}
