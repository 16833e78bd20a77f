//! Fuzz the payload header + manifest decoder, the signature block parser and
//! the manifest validator: all must be total on arbitrary bytes.
#![no_main]

#[path = "cap_alloc.rs"]
mod cap_alloc;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ab_updater::payload::format::fuzz_entry(data);
});
