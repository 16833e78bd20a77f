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

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
    /// A poor man's fuzzer in CI: random byte changes in the GPT areas of
    /// the seeds (MBR, primary header/array, backup array/header).
    #[test]
    fn gpt_parse_survives_damaged_seeds(
        seed in 0usize..4,
        edits in proptest::collection::vec((0usize..5 * 512, proptest::prelude::any::<u8>()), 1..8),
    ) {
        let mut paths = inputs("fuzz/seeds/gpt_parse");
        paths.sort();
        let mut data = std::fs::read(&paths[seed % paths.len()]).unwrap();
        let len = data.len();
        for (at, value) in edits {
            // First three sectors or the last two 512-byte sectors.
            let offset = if at < 3 * 512 { at } else { len - 5 * 512 + at };
            data[offset] = value;
        }
        ab_updater::testing::fuzz::gpt_parse(&data);
        // Again with both header CRCs made valid, so the field checks behind
        // the CRC are reached too (512-byte seeds; harmless on the 4096 one).
        for header in [512, len - 512] {
            let size = u32::from_le_bytes(data[header + 12..header + 16].try_into().unwrap()).clamp(92, 512) as usize;
            let mut covered = data[header..header + size].to_vec();
            covered[16..20].fill(0);
            let crc = crc32fast::hash(&covered);
            data[header + 16..header + 20].copy_from_slice(&crc.to_le_bytes());
        }
        ab_updater::testing::fuzz::gpt_parse(&data);
    }
}
