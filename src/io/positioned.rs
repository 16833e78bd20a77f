//! [`PositionedFile`]: a file handle that keeps its own position.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use super::Device;

/// A file read and written only at explicit offsets (pread/pwrite), with a
/// position of its own.
///
/// A descriptor made with `dup` (`File::try_clone`) shares the file offset
/// with the original: a seek through one moves the other. Two threads that
/// each seek and then read or write would race on that one offset and land
/// at each other's positions. This wrapper never uses the shared offset, so
/// a second handle can read a slot while the applier writes it through the
/// first.
#[derive(Debug)]
pub struct PositionedFile {
    file: File,
    pos: u64,
}

impl PositionedFile {
    /// Wrap `file`; the position starts at 0 whatever the file offset is.
    pub fn new(file: File) -> Self {
        PositionedFile { file, pos: 0 }
    }
}

impl Read for PositionedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for PositionedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for PositionedFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => {
                // A block device's metadata says 0 bytes, and asking the
                // kernel with lseek would move the offset this type exists
                // not to touch. Wrap devices in a Region, which knows its end.
                let meta = self.file.metadata()?;
                if !meta.is_file() {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "a positioned handle on a device cannot seek from its end; use a Region",
                    ));
                }
                meta.len().checked_add_signed(d)
            }
        };
        let Some(pos) = target else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            ));
        };
        self.pos = pos;
        Ok(pos)
    }
}

impl Device for PositionedFile {
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dup_keeps_its_own_position_and_leaves_the_shared_offset_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let mut first = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut second = PositionedFile::new(first.try_clone().unwrap());
        first.seek(SeekFrom::Start(7)).unwrap();
        second.seek(SeekFrom::Start(2)).unwrap();
        let mut buf = [0u8; 3];
        second.read_exact(&mut buf).unwrap();
        assert_eq!(
            &buf, b"234",
            "read at its own position, not the shared offset"
        );
        // The first handle's offset did not move: its write lands at 7.
        first.write_all(b"x").unwrap();
        second.write_all(b"y").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"01234y6x89");
        assert_eq!(second.seek(SeekFrom::End(-1)).unwrap(), 9);
        assert_eq!(second.seek(SeekFrom::Current(-9)).unwrap(), 0);
        assert!(second.seek(SeekFrom::Current(-1)).is_err());
        second.sync().unwrap();
    }

    #[test]
    fn seeking_from_the_end_of_a_device_is_refused() {
        let mut dev = PositionedFile::new(File::open("/dev/null").unwrap());
        let err = dev.seek(SeekFrom::End(0)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
        assert_eq!(dev.seek(SeekFrom::Start(5)).unwrap(), 5);
    }
}
