//! Fresh A/B test disks laid out like a newly installed Flatcar disk.
//!
//! Layout (partition numbers as on Flatcar; the gaps are empty entries):
//!
//! | # | label      | type                         | size          | attributes        |
//! |---|------------|------------------------------|---------------|-------------------|
//! | 1 | EFI-SYSTEM | EFI system partition         | `efi_size`    | 0                 |
//! | 3 | USR-A      | CoreOS USR 5dfbf5f4-…        | `slot_size`   | priority 1, tries 0, successful 1 |
//! | 4 | USR-B      | CoreOS USR                   | `slot_size`   | all zero          |
//! | 9 | ROOT       | CoreOS resize 3884dd41-…     | `root_size`   | 0                 |
//!
//! Every partition starts on a 1 MiB boundary; 1 MiB is left after the last
//! one for the backup entry array and header. 128 entries of 128 bytes. All
//! GUIDs (disk and partitions) are random. The file is sparse: only the GPT
//! and the non-zero blocks of the copied slot images are written.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use uuid::Uuid;

use super::attrs::SlotAttrs;
use super::entries::{encode_name, USR_TYPE};
use super::header::{Header, HEADER_SIZE, REVISION_1_0};
use super::table::Gpt;

/// EFI system partition type.
pub const EFI_TYPE: Uuid = uuid::uuid!("c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
/// Flatcar's ROOT type ("coreos-resize": grown to fill the disk on first boot).
pub const ROOT_TYPE: Uuid = uuid::uuid!("3884dd41-8582-4404-b9a8-e9b84f2df50e");
/// Partition alignment.
pub const ALIGN_BYTES: u64 = 1 << 20;
/// Default EFI-SYSTEM size.
pub const DEFAULT_EFI_BYTES: u64 = 16 << 20;
/// Default ROOT size.
pub const DEFAULT_ROOT_BYTES: u64 = 16 << 20;
/// Entries in the partition arrays we create.
pub const NUM_ENTRIES: u32 = 128;
/// Size of one entry we create.
pub const ENTRY_SIZE: u32 = 128;

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    /// Logical sector size: 512 or 4096.
    pub sector_size: u64,
    /// Size of each USR slot in bytes.
    pub slot_size: u64,
    /// Size of EFI-SYSTEM in bytes.
    pub efi_size: u64,
    /// Size of ROOT in bytes.
    pub root_size: u64,
}

impl DiskSpec {
    /// 512-byte sectors and default EFI/ROOT sizes around slots of `slot_size` bytes.
    pub fn new(slot_size: u64) -> DiskSpec {
        DiskSpec {
            sector_size: 512,
            slot_size,
            efi_size: DEFAULT_EFI_BYTES,
            root_size: DEFAULT_ROOT_BYTES,
        }
    }
}

/// One partition of the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// 1-based partition number.
    pub number: u32,
    /// Partition label.
    pub label: &'static str,
    /// Type GUID.
    pub type_guid: Uuid,
    /// First LBA.
    pub first_lba: u64,
    /// Last LBA (inclusive).
    pub last_lba: u64,
    /// A/B attributes.
    pub attrs: SlotAttrs,
}

/// The partition layout and disk size (in sectors) for `spec`. Pure.
pub fn plan(spec: &DiskSpec) -> Result<(Vec<Planned>, u64)> {
    let ss = spec.sector_size;
    ensure!(
        ss == 512 || ss == 4096,
        "sector size must be 512 or 4096, not {ss}"
    );
    for (what, size) in [
        ("slot", spec.slot_size),
        ("EFI-SYSTEM", spec.efi_size),
        ("ROOT", spec.root_size),
    ] {
        ensure!(
            size >= ss && size % ss == 0,
            "{what} size {size} must be a non-zero multiple of the {ss}-byte sector size"
        );
        ensure!(
            size <= 1 << 50,
            "{what} size {size} is absurdly large (more than 1 PiB)"
        );
    }
    let align = ALIGN_BYTES / ss;
    let good = SlotAttrs {
        priority: 1,
        tries: 0,
        successful: true,
    };
    let parts = [
        (
            1,
            "EFI-SYSTEM",
            EFI_TYPE,
            spec.efi_size,
            SlotAttrs::default(),
        ),
        (3, "USR-A", USR_TYPE, spec.slot_size, good),
        (4, "USR-B", USR_TYPE, spec.slot_size, SlotAttrs::default()),
        (9, "ROOT", ROOT_TYPE, spec.root_size, SlotAttrs::default()),
    ];
    let mut next = align;
    let mut out = Vec::new();
    for (number, label, type_guid, size, attrs) in parts {
        let first_lba = next;
        let last_lba = first_lba + size / ss - 1;
        next = (last_lba + 1).div_ceil(align) * align;
        out.push(Planned {
            number,
            label,
            type_guid,
            first_lba,
            last_lba,
            attrs,
        });
    }
    // One aligned MiB after the last partition holds the backup GPT.
    Ok((out, next + align))
}

/// The in-memory GPT for `spec` with fresh random GUIDs.
pub fn build(spec: &DiskSpec) -> Result<Gpt> {
    let (parts, disk_sectors) = plan(spec)?;
    let ss = spec.sector_size;
    let mut entries = vec![0u8; (NUM_ENTRIES * ENTRY_SIZE) as usize];
    for p in &parts {
        let e =
            &mut entries[((p.number - 1) * ENTRY_SIZE) as usize..(p.number * ENTRY_SIZE) as usize];
        e[0..16].copy_from_slice(&p.type_guid.to_bytes_le());
        e[16..32].copy_from_slice(&Uuid::new_v4().to_bytes_le());
        e[32..40].copy_from_slice(&p.first_lba.to_le_bytes());
        e[40..48].copy_from_slice(&p.last_lba.to_le_bytes());
        e[48..56].copy_from_slice(&p.attrs.apply(0).to_le_bytes());
        e[56..128].copy_from_slice(&encode_name(p.label));
    }
    let n = u64::from(NUM_ENTRIES * ENTRY_SIZE).div_ceil(ss);
    let header = Header {
        revision: REVISION_1_0,
        header_size: HEADER_SIZE,
        my_lba: 1,
        alternate_lba: disk_sectors - 1,
        first_usable_lba: 2 + n,
        last_usable_lba: disk_sectors - 2 - n,
        disk_guid: Uuid::new_v4(),
        entries_lba: 2,
        num_entries: NUM_ENTRIES,
        entry_size: ENTRY_SIZE,
        entries_crc32: crc32fast::hash(&entries),
        extra: Vec::new(),
    };
    Ok(Gpt {
        sector_size: ss,
        disk_sectors,
        header,
        backup_entries_lba: disk_sectors - 1 - n,
        entries,
        slots: [2, 3],
        mbr_ok: true,
        primary_ok: true,
        backup_ok: true,
        problems: Vec::new(),
    })
}

/// Create the sparse disk image `out` for `spec`, copying the optional slot
/// images into USR-A / USR-B. Nothing is created when an input is invalid.
pub fn make_disk(
    out: &Path,
    spec: &DiskSpec,
    usr_a: Option<&Path>,
    usr_b: Option<&Path>,
) -> Result<()> {
    let gpt = build(spec)?;
    let images = [(usr_a, "USR-A"), (usr_b, "USR-B")];
    let mut sources = Vec::new();
    for (path, label) in images {
        let Some(path) = path else { continue };
        let file = File::open(path)
            .with_context(|| format!("opening the {label} image {}", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("reading the size of {}", path.display()))?
            .len();
        if len > spec.slot_size {
            bail!(
                "the {label} image {} is {len} bytes, larger than the {}-byte slot; pass a larger --slot-size",
                path.display(),
                spec.slot_size
            );
        }
        sources.push((file, label));
    }
    if let Ok(meta) = std::fs::metadata(out) {
        // Never clobber a block device or directory with a test image.
        ensure!(
            meta.is_file(),
            "{} exists and is not a regular file; refusing to overwrite it",
            out.display()
        );
    }
    let mut dev = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(out)
        .with_context(|| format!("creating {}", out.display()))?;
    let len = gpt.disk_sectors * gpt.sector_size;
    dev.set_len(len)
        .with_context(|| format!("sizing {} to {len} bytes", out.display()))?;
    super::disk::write_fresh(&mut dev, &gpt)
        .with_context(|| format!("writing the GPT of {}", out.display()))?;
    for (mut src, label) in sources {
        let index = gpt.slots[if label == "USR-A" { 0 } else { 1 }];
        let offset = gpt.entry(index).first_lba() * gpt.sector_size;
        copy_sparse(&mut src, &mut dev, offset)
            .with_context(|| format!("copying the {label} image"))?;
    }
    dev.sync_all()
        .with_context(|| format!("syncing {}", out.display()))
}

/// Copy `src` to `dst` at `offset`, skipping all-zero blocks (the target is
/// freshly created and reads as zeros there, so the file stays sparse).
fn copy_sparse<R: Read, W: Write + Seek>(src: &mut R, dst: &mut W, offset: u64) -> Result<()> {
    const BLOCK: usize = 1 << 20;
    let mut buf = vec![0u8; BLOCK];
    let mut pos = offset;
    loop {
        let mut filled = 0;
        while filled < BLOCK {
            match src.read(&mut buf[filled..]).context("reading the image")? {
                0 => break,
                k => filled += k,
            }
        }
        if filled == 0 {
            return Ok(());
        }
        if buf[..filled].iter().any(|&b| b != 0) {
            dst.seek(SeekFrom::Start(pos))
                .context("seeking in the disk")?;
            dst.write_all(&buf[..filled])
                .context("writing to the disk")?;
        }
        pos += filled as u64;
    }
}

/// Parse a size such as `64M`, `1G`, `512K`, `4MiB` or `1048576` (binary units).
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let value: u64 = number
        .parse()
        .with_context(|| format!("invalid size {text:?}: expected e.g. 64M or 1G"))?;
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => bail!("invalid size {text:?}: unknown unit {unit:?} (use K, M, G or T)"),
    };
    value
        .checked_mul(1 << shift)
        .with_context(|| format!("size {text:?} is too large"))
}

#[cfg(test)]
#[path = "make_tests.rs"]
mod tests;
