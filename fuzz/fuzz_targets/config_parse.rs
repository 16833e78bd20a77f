//! Fuzz the config parsers: one TOML drop-in through parse + validation
//! (`config::check_fragment`) and the same bytes as a legacy update.conf.
//! Neither may panic, whatever the input.

#![no_main]

#[path = "cap_alloc.rs"]
mod cap_alloc;

use std::path::Path;

use ab_updater::config::{check_fragment, legacy::parse_legacy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = check_fragment(data);
    let _ = parse_legacy(&String::from_utf8_lossy(data), Path::new("<fuzz>"));
});
