//! Replays every committed seed and regression input of the `config_parse`
//! fuzz target through the same entry points, so CI (a fresh clone without
//! fuzz artifacts) keeps them fixed; plus arbitrary text never panics.

use std::path::{Path, PathBuf};

use ab_updater::config::{check_fragment, legacy::parse_legacy};
use proptest::prelude::*;

fn inputs(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join("config_parse");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// Both entry points; every reported problem is one non-empty line.
fn exercise(bytes: &[u8]) {
    if let Err(errors) = check_fragment(bytes) {
        assert!(!errors.0.is_empty());
        for problem in &errors.0 {
            let line = problem.to_string();
            assert!(
                !line.contains('\n') && !problem.problem.is_empty(),
                "{line:?}"
            );
        }
    }
    if let Err(problems) = parse_legacy(&String::from_utf8_lossy(bytes), Path::new("<fuzz>")) {
        assert!(problems.iter().all(|p| !p.to_string().contains('\n')));
    }
}

#[test]
fn seeds_and_regressions_replay() {
    let seeds = inputs("seeds");
    assert!(seeds.len() >= 8, "seeds missing: {seeds:?}");
    for file in seeds.iter().chain(inputs("regressions").iter()) {
        exercise(&std::fs::read(file).unwrap());
    }
    // The server example is a complete configuration on its own.
    let server = std::fs::read(
        seeds
            .iter()
            .find(|f| f.ends_with("10-server.toml"))
            .unwrap(),
    )
    .unwrap();
    check_fragment(&server).unwrap();
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "(\\PC|\n|\\[|\\]|=|\"){0,200}") {
        exercise(text.as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        exercise(&bytes);
    }
}
