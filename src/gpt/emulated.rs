//! Sandbox mode's record of the last emulated boot: `update-server boot`
//! writes which slot it booted next to the image (`IMG.last-boot`), so the
//! engine run against that image knows its booted slot without
//! `--booted-slot` (DESIGN §1 "read from the image's last emulated boot").

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::slot::SlotId;

/// What the emulated bootloader booted last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastBoot {
    /// The booted slot.
    pub slot: SlotId,
    /// Its PARTUUID (what the kernel command line would name).
    pub partuuid: Uuid,
}

/// Where the record for `image` lives: `IMAGE.last-boot` beside it.
pub fn record_path(image: &Path) -> PathBuf {
    let mut name = image.as_os_str().to_owned();
    name.push(".last-boot");
    PathBuf::from(name)
}

/// Atomically record an emulated boot of `image`.
pub fn record(image: &Path, boot: LastBoot) -> Result<()> {
    let json = serde_json::to_vec(&boot).context("encoding the last-boot record")?;
    crate::fsutil::write_atomic(&record_path(image), &json, 0o644)
}

/// The last emulated boot of `image`, or `None` if it was never booted.
pub fn last(image: &Path) -> Result<Option<LastBoot>> {
    let path = record_path(image);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
            format!(
                "parsing {} (delete it and boot the image again)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        assert_eq!(last(&img).unwrap(), None);
        let boot = LastBoot {
            slot: SlotId::B,
            partuuid: Uuid::new_v4(),
        };
        record(&img, boot).unwrap();
        assert_eq!(record_path(&img), dir.path().join("disk.img.last-boot"));
        assert_eq!(last(&img).unwrap(), Some(boot));
        std::fs::write(record_path(&img), b"{").unwrap();
        assert!(
            format!("{:#}", last(&img).unwrap_err()).contains("delete it and boot the image again")
        );
        let as_dir = dir.path().join("d");
        std::fs::create_dir_all(record_path(&as_dir)).unwrap();
        assert!(format!("{:#}", last(&as_dir).unwrap_err()).contains("reading"));
    }
}
