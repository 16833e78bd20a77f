//! The engine's GPT operations on the disk that holds the slots (a block
//! device on a host, an image file in sandbox mode). Each call opens the
//! disk, validates (and repairs) the GPT and makes one crash-safe change, on
//! a blocking thread so the owner task stays responsive.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::gpt::{open_disk, AbDisk, SlotInfo};
use crate::slot::SlotId;

/// The disk with the A/B slots.
#[derive(Debug, Clone)]
pub struct SlotDisk {
    path: PathBuf,
}

impl SlotDisk {
    /// The disk at `path` (checked on first use).
    pub fn new(path: &Path) -> Self {
        SlotDisk {
            path: path.to_path_buf(),
        }
    }

    /// The disk's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn with<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut AbDisk<std::fs::File>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut disk = open_disk(&path, true)?;
            f(&mut disk).with_context(|| format!("{what} on {}", path.display()))
        })
        .await
        .context("disk task panicked")?
    }

    /// Both slots as they are now.
    pub async fn slots(&self) -> Result<[SlotInfo; 2]> {
        self.with("reading the slots", |d| Ok(d.slots())).await
    }

    /// priority=0: the slot is never chosen by the bootloader.
    pub async fn disable(&self, slot: SlotId) -> Result<()> {
        self.with("marking a slot bad", move |d| d.mark_bad(slot))
            .await
    }

    /// successful=0, tries=1, prioritized above the other slot.
    pub async fn set_install_ready(&self, slot: SlotId) -> Result<()> {
        self.with("flipping the new slot to install-ready", move |d| {
            d.set_install_ready(slot)
        })
        .await
    }

    /// successful=1, tries=0, prioritized.
    pub async fn mark_good(&self, slot: SlotId) -> Result<()> {
        self.with("marking the booted slot good", move |d| d.mark_good(slot))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(dir: &Path) -> PathBuf {
        let path = dir.join("disk.img");
        let spec = crate::gpt::make::DiskSpec::new(4 << 20);
        crate::gpt::make::make_disk(&path, &spec, None, None).unwrap();
        path
    }

    #[tokio::test]
    async fn lifecycle_on_an_image() {
        let dir = tempfile::tempdir().unwrap();
        let disk = SlotDisk::new(&image(dir.path()));
        disk.disable(SlotId::B).await.unwrap();
        assert_eq!(disk.slots().await.unwrap()[1].priority, 0);
        disk.set_install_ready(SlotId::B).await.unwrap();
        let [a, b] = disk.slots().await.unwrap();
        assert!(b.priority > a.priority);
        assert_eq!((b.tries, b.successful), (1, false));
        disk.mark_good(SlotId::B).await.unwrap();
        let b = disk.slots().await.unwrap()[1];
        assert_eq!((b.tries, b.successful), (0, true));
    }

    #[tokio::test]
    async fn a_missing_disk_is_a_clear_error() {
        let disk = SlotDisk::new(Path::new("/nonexistent/disk.img"));
        let err = format!("{:#}", disk.disable(SlotId::B).await.unwrap_err());
        assert!(err.contains("opening disk /nonexistent/disk.img"), "{err}");
    }
}
