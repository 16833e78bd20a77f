//! Fuzz the GPT reader (`Gpt::parse`) and, for accepted disks, a full
//! update cycle of writes (see `ab_updater::testing::fuzz::gpt_parse`).
#![no_main]

#[path = "cap_alloc.rs"]
mod cap_alloc;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ab_updater::testing::fuzz::gpt_parse(data);
});
