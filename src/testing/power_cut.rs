//! `PowerCut`: a `Read + Write + Seek` wrapper that loses power at the k-th
//! write, to prove that every prefix of a write sequence leaves a usable disk.
//!
//! Writes are counted per `write` call (what `write_all` issues for one
//! buffer on a file or `Cursor`). Reads and seeks keep working after the cut
//! so the caller can inspect the device; writes and flushes fail (or, in
//! [`CutMode::Drop`], silently vanish like data in a lost volatile cache).

use std::io::{self, Read, Seek, SeekFrom, Write};

/// What happens at the cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    /// The k-th write completes, every later write and flush fails.
    Stop,
    /// The k-th write completes, later writes report success but are dropped.
    Drop,
    /// The k-th write is torn: everything before its last sector is written,
    /// plus only the first half of that last sector; later writes fail.
    Tear {
        /// Sector size in bytes used to find "the last sector".
        sector: usize,
    },
}

/// A device that loses power after `cut_after` writes.
#[derive(Debug)]
pub struct PowerCut<D> {
    inner: D,
    cut_after: u64,
    mode: CutMode,
    writes: u64,
    pos: u64,
}

impl<D> PowerCut<D> {
    /// Wrap `inner`; the `cut_after`-th write (1-based) is the last (partly)
    /// performed one. `u64::MAX` never cuts (for counting writes).
    pub fn new(inner: D, cut_after: u64, mode: CutMode) -> Self {
        PowerCut {
            inner,
            cut_after,
            mode,
            writes: 0,
            pos: 0,
        }
    }

    /// Wrap `inner` without ever cutting, only counting writes.
    pub fn counting(inner: D) -> Self {
        Self::new(inner, u64::MAX, CutMode::Stop)
    }

    /// Number of write calls seen so far (including the failed ones).
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Whether the power is off.
    pub fn is_cut(&self) -> bool {
        self.writes >= self.cut_after
    }

    /// The wrapped device.
    pub fn into_inner(self) -> D {
        self.inner
    }

    /// The wrapped device, by reference.
    pub fn get_ref(&self) -> &D {
        &self.inner
    }
}

fn power_off() -> io::Error {
    io::Error::other("power cut (fault injection)")
}

impl<D: Write + Seek> Write for PowerCut<D> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let already_cut = self.is_cut();
        self.writes += 1;
        if already_cut {
            return match self.mode {
                CutMode::Drop => {
                    self.pos += buf.len() as u64;
                    Ok(buf.len())
                }
                CutMode::Stop | CutMode::Tear { .. } => Err(power_off()),
            };
        }
        if self.writes < self.cut_after {
            let n = self.inner.write(buf)?;
            self.pos += n as u64;
            return Ok(n);
        }
        // This is the k-th write: perform it fully or tear it.
        match self.mode {
            CutMode::Stop | CutMode::Drop => {
                self.inner.write_all(buf)?;
                self.pos += buf.len() as u64;
                Ok(buf.len())
            }
            CutMode::Tear { sector } => {
                let sector = sector.max(1);
                let last_start = buf.len().saturating_sub(1) / sector * sector;
                let keep = last_start + (buf.len() - last_start) / 2;
                self.inner.write_all(&buf[..keep])?;
                self.pos += keep as u64;
                Err(power_off())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match (self.is_cut(), self.mode) {
            (false, _) | (true, CutMode::Drop) => self.inner.flush(),
            (true, _) => Err(power_off()),
        }
    }
}

impl<D: Read> Read for PowerCut<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<D: Seek> Seek for PowerCut<D> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        // In Drop mode the inner position lags behind dropped writes; resync
        // relative seeks through our own idea of the position.
        let to = match to {
            SeekFrom::Current(d) => {
                SeekFrom::Start(self.pos.checked_add_signed(d).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "seek before the start")
                })?)
            }
            other => other,
        };
        self.pos = self.inner.seek(to)?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn run(mode: CutMode, cut_after: u64) -> (Vec<u8>, Vec<io::Result<()>>) {
        let mut dev = PowerCut::new(Cursor::new(vec![0u8; 16]), cut_after, mode);
        let mut results = Vec::new();
        for i in 0..4u8 {
            results.push(dev.seek(SeekFrom::Start(4 * u64::from(i))).map(|_| ()));
            let r = dev.write_all(&[i + 1; 4]);
            results.push(r.and_then(|_| dev.flush()));
        }
        (dev.into_inner().into_inner(), results)
    }

    #[test]
    fn stop_performs_k_writes_then_fails() {
        let (bytes, results) = run(CutMode::Stop, 2);
        assert_eq!(bytes, [1, 1, 1, 1, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(results[1].is_ok());
        assert!(results[3].is_err(), "flush after the cut fails");
        assert!(results[5]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("power cut"));
    }

    #[test]
    fn drop_pretends_success() {
        let (bytes, results) = run(CutMode::Drop, 1);
        assert_eq!(bytes, [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(results.iter().all(|r| r.is_ok()));
    }

    #[test]
    fn tear_writes_half_of_the_last_sector() {
        let mut dev = PowerCut::new(Cursor::new(vec![0u8; 12]), 1, CutMode::Tear { sector: 4 });
        assert!(dev.write_all(&[9; 12]).is_err());
        assert_eq!(
            dev.get_ref().get_ref(),
            &[9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 0, 0]
        );
        assert!(dev.is_cut());
        assert_eq!(dev.writes(), 1);
    }

    #[test]
    fn counting_never_cuts_and_reads_pass_through() {
        let mut dev = PowerCut::counting(Cursor::new(vec![5u8; 8]));
        dev.write_all(&[1, 2]).unwrap();
        dev.seek(SeekFrom::Current(2)).unwrap();
        let mut rest = Vec::new();
        dev.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, [5, 5, 5, 5]);
        assert_eq!(dev.writes(), 1);
        assert!(dev.seek(SeekFrom::Current(-100)).is_err());
    }
}
