//! Replays every seed and regression input of the `payload_parse` fuzz target
//! through the same entry point, so CI (a fresh clone) re-checks them.

use std::path::Path;

use ab_updater::payload::format::{fuzz_entry, parse_header_and_manifest};

fn inputs(dir: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn seeds_and_regressions_replay_without_panicking() {
    let seeds = inputs("fuzz/seeds/payload_parse");
    assert!(seeds.len() >= 3, "the seed corpus is missing");
    for input in seeds
        .iter()
        .chain(inputs("fuzz/regressions/payload_parse").iter())
    {
        fuzz_entry(input);
        // Every prefix, too: truncation must never panic.
        for cut in (0..input.len()).step_by(97) {
            fuzz_entry(&input[..cut]);
        }
    }
    // The full seeds really parse (the corpus is meaningful).
    assert!(seeds.iter().any(|s| parse_header_and_manifest(s).is_ok()));
}
