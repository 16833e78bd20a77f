//! Fuzz the Omaha request and response parsers (`ab_updater::omaha`):
//! never panic, bounded allocation, and whatever parses survives its own writer.
#![no_main]

#[path = "cap_alloc.rs"]
mod cap_alloc;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ab_updater::omaha::fuzz_one(data);
});
