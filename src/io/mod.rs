//! Block-device I/O helpers: a bounded window over a device and durable syncs.

mod positioned;
mod region;

pub use positioned::PositionedFile;
pub use region::Region;

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, Write};

/// A device the updater writes to: readable, writable, seekable and able to
/// make its writes durable. Implemented for files, in-memory buffers (tests)
/// and [`Region`] windows over either.
pub trait Device: Read + Write + Seek {
    /// Make every write issued so far durable (fsync of the data for files).
    fn sync(&mut self) -> io::Result<()>;

    /// A second handle on the same bytes, for another thread: its
    /// [`sync`](Device::sync) makes this device's writes durable while
    /// writing goes on (writes issued before such a sync starts are durable
    /// when it returns), and it reads what was written. `None`: memory
    /// devices and test doubles, which only this handle can reach.
    fn second_handle(&self) -> Option<Region<PositionedFile>> {
        None
    }
}

impl Device for File {
    fn sync(&mut self) -> io::Result<()> {
        // Data only: the file size and timestamps of an image file or a block
        // device do not matter for a slot's bytes.
        self.sync_data()
    }

    fn second_handle(&self) -> Option<Region<PositionedFile>> {
        // A dup'd descriptor shares the open file: fsync on it covers every
        // write made through this one. It also shares the file offset, which
        // this handle's seek + write keeps moving: the second handle must
        // only ever use positioned I/O (pread/pwrite), never the offset.
        Region::new(PositionedFile::new(self.try_clone().ok()?), 0, u64::MAX).ok()
    }
}

impl Device for Cursor<Vec<u8>> {
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Device for Cursor<&mut [u8]> {
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<D: Device + ?Sized> Device for &mut D {
    fn sync(&mut self) -> io::Result<()> {
        (**self).sync()
    }

    fn second_handle(&self) -> Option<Region<PositionedFile>> {
        (**self).second_handle()
    }
}
