//! Block-device I/O helpers: a bounded window over a device and durable syncs.

mod region;

pub use region::Region;

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, Write};

/// A device the updater writes to: readable, writable, seekable and able to
/// make its writes durable. Implemented for files, in-memory buffers (tests)
/// and [`Region`] windows over either.
pub trait Device: Read + Write + Seek {
    /// Make every write issued so far durable (fsync of the data for files).
    fn sync(&mut self) -> io::Result<()>;

    /// A second handle on the same file whose `sync_data` makes this
    /// device's writes durable from another thread while writing goes on
    /// (`None`: only [`sync`](Self::sync) can). Writes issued before such a
    /// sync starts are durable when it returns.
    fn sync_handle(&self) -> Option<File> {
        None
    }
}

impl Device for File {
    fn sync(&mut self) -> io::Result<()> {
        // Data only: the file size and timestamps of an image file or a block
        // device do not matter for a slot's bytes.
        self.sync_data()
    }

    fn sync_handle(&self) -> Option<File> {
        // A dup'd descriptor shares the open file: fsync on it covers every
        // write made through this one.
        self.try_clone().ok()
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

    fn sync_handle(&self) -> Option<File> {
        (**self).sync_handle()
    }
}
