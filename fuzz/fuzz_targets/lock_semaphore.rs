//! Fuzz the parser of the etcd reboot semaphore value (bytes any process
//! with write access to the etcd key can put there). It may not panic, and
//! whatever it accepts must re-encode to an equal value.

#![no_main]

#[path = "cap_alloc.rs"]
mod cap_alloc;

use ab_updater::lock::etcd::Semaphore;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sem) = Semaphore::parse(data) {
        let again = Semaphore::parse(&sem.to_json()).expect("re-parse of our own encoding");
        assert_eq!(again, sem);
    }
});
