//! Replays every committed seed and regression input of the `omaha_parse`
//! fuzz target through the same entry point, under plain `cargo test`.

use std::path::Path;

#[test]
fn omaha_parse_seeds_and_regressions_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for dir in ["seeds/omaha_parse", "regressions/omaha_parse"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            ab_updater::omaha::fuzz_one(&data);
            replayed += 1;
        }
    }
    // The golden fixtures are seeds; losing them would make this test vacuous.
    assert!(replayed >= 4, "only {replayed} inputs replayed");
}
