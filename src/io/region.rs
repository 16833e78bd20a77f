//! [`Region`]: a Read + Write + Seek window of `[offset, offset + len)` on a device.

use std::io::{self, Read, Seek, SeekFrom, Write};

use super::Device;

/// A window of `[offset, offset + len)` bytes of a device, addressed from 0.
///
/// Reads stop at the end of the window; writes that would cross it fail with
/// an error and write nothing. This is how the payload applier is confined to
/// the target slot: whatever a manifest says, it cannot reach another slot or
/// the partition table.
#[derive(Debug)]
pub struct Region<D> {
    dev: D,
    offset: u64,
    len: u64,
    pos: u64,
}

impl<D: Seek> Region<D> {
    /// Wrap `dev`, exposing `len` bytes starting at absolute byte `offset`.
    pub fn new(dev: D, offset: u64, len: u64) -> io::Result<Self> {
        if offset.checked_add(len).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("region at {offset} of {len} bytes overflows u64"),
            ));
        }
        Ok(Self {
            dev,
            offset,
            len,
            pos: 0,
        })
    }
}

impl<D> Region<D> {
    /// Length of the window in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Absolute offset of the window's first byte on the device.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Give back the underlying device.
    pub fn into_inner(self) -> D {
        self.dev
    }

    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }
}

impl<D: Read + Seek> Read for Region<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.remaining()) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.dev.seek(SeekFrom::Start(self.offset + self.pos))?;
        let got = self.dev.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl<D: Write + Seek> Write for Region<D> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if buf.len() as u64 > self.remaining() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!(
                    "write of {} bytes at {} crosses the end of the {}-byte region",
                    buf.len(),
                    self.pos,
                    self.len
                ),
            ));
        }
        self.dev.seek(SeekFrom::Start(self.offset + self.pos))?;
        let n = self.dev.write(buf)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.dev.flush()
    }
}

impl<D> Seek for Region<D> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the region",
            )),
        }
    }
}

impl<D: Device> Device for Region<D> {
    fn sync(&mut self) -> io::Result<()> {
        self.dev.flush()?;
        self.dev.sync()
    }

    fn second_handle(&self) -> Option<Region<super::PositionedFile>> {
        let whole = self.dev.second_handle()?;
        let offset = whole.offset.checked_add(self.offset)?;
        Region::new(whole.dev, offset, self.len).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn dev() -> Cursor<Vec<u8>> {
        Cursor::new(vec![0xAA; 64])
    }

    #[test]
    fn writes_land_inside_the_window_only() {
        let mut r = Region::new(dev(), 16, 16).unwrap();
        r.write_all(&[1; 16]).unwrap();
        let d = r.into_inner().into_inner();
        assert_eq!(&d[..16], &[0xAA; 16]);
        assert_eq!(&d[16..32], &[1; 16]);
        assert_eq!(&d[32..], &[0xAA; 32]);
    }

    #[test]
    fn write_past_the_end_is_refused_and_writes_nothing() {
        let mut r = Region::new(dev(), 16, 16).unwrap();
        r.seek(SeekFrom::Start(10)).unwrap();
        let err = r.write(&[1; 7]).unwrap_err();
        assert!(err.to_string().contains("crosses the end"), "{err}");
        assert_eq!(r.into_inner().into_inner(), vec![0xAA; 64]);
    }

    #[test]
    fn reads_stop_at_the_end() {
        let mut r = Region::new(dev(), 60, 4).unwrap();
        let mut buf = Vec::new();
        r.read_to_end(&mut buf).unwrap();
        assert_eq!(buf, vec![0xAA; 4]);
        assert_eq!(r.seek(SeekFrom::End(-1)).unwrap(), 3);
        assert_eq!(r.len(), 4);
        assert!(!r.is_empty());
        assert_eq!(r.offset(), 60);
    }

    #[test]
    fn seek_before_start_and_overflowing_region_are_errors() {
        let mut r = Region::new(dev(), 0, 4).unwrap();
        assert!(r.seek(SeekFrom::Current(-1)).is_err());
        assert!(Region::new(dev(), u64::MAX, 2).is_err());
    }

    #[test]
    fn sync_flushes_the_device() {
        let mut r = Region::new(dev(), 0, 4).unwrap();
        r.sync().unwrap();
        assert!(r.second_handle().is_none(), "memory has no second handle");
    }

    #[test]
    fn a_file_region_has_a_second_handle_on_the_same_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::write(&path, [0u8; 64]).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut r = Region::new(file, 16, 16).unwrap();
        r.write_all(&[7; 16]).unwrap();
        let mut second = r.second_handle().expect("a file has a second handle");
        assert_eq!((second.offset(), second.len()), (16, 16));
        second.sync().unwrap();
        // It reads the same window, whatever the first handle's position.
        r.seek(SeekFrom::Start(3)).unwrap();
        second.seek(SeekFrom::Start(8)).unwrap();
        let mut got = Vec::new();
        second.read_to_end(&mut got).unwrap();
        assert_eq!(got, [7; 8]);
        assert_eq!(&std::fs::read(&path).unwrap()[16..32], &[7; 16]);
    }
}
