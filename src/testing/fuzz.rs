//! Fuzz harnesses, shared by the cargo-fuzz targets and the seed replay
//! tests so both check exactly the same properties.

use std::io::Cursor;

use crate::gpt::{AbDisk, Gpt};
use crate::slot::SlotId;

/// `gpt_parse`: parsing any bytes must not panic; and every disk we accept,
/// after a full update cycle of changes, must read back as an intact GPT
/// whose boot selection matches what we computed. Returns whether `data`
/// was accepted as an A/B disk.
pub fn gpt_parse(data: &[u8]) -> bool {
    if Gpt::parse(data).is_err() {
        return false;
    }
    let mut disk = AbDisk::open(Cursor::new(data.to_vec())).expect("parse succeeded, so open must");
    let target = disk.next_boot().map(SlotId::other).unwrap_or(SlotId::B);
    disk.set_install_ready(target).expect("in-memory write");
    assert_eq!(
        disk.next_boot().ok(),
        Some(target),
        "an install-ready slot boots next"
    );
    disk.boot().expect("the install-ready slot is bootable");
    disk.mark_good(target).expect("in-memory write");
    let expected = disk.slots();
    let bytes = disk.into_inner().into_inner();
    let reread = Gpt::parse(&bytes).expect("what we wrote must parse");
    assert!(
        !reread.needs_repair(),
        "what we wrote must be intact: {:?}",
        reread.problems
    );
    let again = AbDisk::open(Cursor::new(bytes)).expect("what we wrote must open");
    assert_eq!(again.slots(), expected, "what we wrote reads back");
    true
}
