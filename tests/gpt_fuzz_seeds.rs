//! Replays every committed seed and regression input of the `gpt_parse`
//! fuzz target through the same harness, so CI (a fresh clone without
//! fuzzer artifacts) keeps checking them.

use std::path::Path;

fn inputs(dir: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    match std::fs::read_dir(&dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn gpt_parse_seeds_and_regressions_replay() {
    let seeds = inputs("fuzz/seeds/gpt_parse");
    assert!(
        seeds.len() >= 4,
        "seeds missing: run fuzz/make-gpt-seeds.sh"
    );
    let mut accepted = 0;
    for path in seeds.iter().chain(&inputs("fuzz/regressions/gpt_parse")) {
        let data = std::fs::read(path).unwrap();
        if ab_updater::testing::fuzz::gpt_parse(&data) {
            accepted += 1;
        }
    }
    // The seeds are valid (or repairable) A/B disks: all of them must be accepted.
    assert!(
        accepted >= seeds.len(),
        "only {accepted} of {} seeds accepted",
        seeds.len()
    );
}

#[test]
fn gpt_parse_survives_every_truncation_of_a_seed() {
    let seed = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/gpt_parse/ab-512.img"),
    )
    .unwrap();
    let mut accepted = 0;
    for len in (0..=seed.len()).step_by(509) {
        accepted += usize::from(ab_updater::testing::fuzz::gpt_parse(&seed[..len]));
    }
    assert_eq!(accepted, 0, "no truncated disk is accepted");
    assert!(ab_updater::testing::fuzz::gpt_parse(&seed));
}
