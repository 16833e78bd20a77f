//! Test support shared by unit tests, integration tests and benchmarks:
//! fault-injecting devices, real etcd processes and a bare client for them. Public (not `cfg(test)`)
//! so `tests/` and benches can use it; nothing in the product depends on it.

pub mod etcd;
pub mod etcd_http;
pub mod fuzz;
mod power_cut;

pub use power_cut::{CutMode, PowerCut};

use crate::payload::{ApplyPolicy, TrustedKeys};

/// What tests apply payloads with: trust in `fixtures/keys/insecure-test.pub`
/// and a policy for `amd64-usr` with version 1.0.0 installed, epoch 0, no
/// downgrades, one signature required.
pub fn insecure_test_trust() -> (TrustedKeys, ApplyPolicy) {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let keys = TrustedKeys::from_files(&[repo.join("fixtures/keys/insecure-test.pub")])
        .expect("the test key in fixtures/keys loads");
    let policy = ApplyPolicy {
        compatible: "amd64-usr".into(),
        installed_version: "1.0.0".parse().expect("a valid version"),
        installed_epoch: 0,
        allow_downgrade: false,
        now: std::time::SystemTime::now(),
        min_signatures: 1,
    };
    (keys, policy)
}
