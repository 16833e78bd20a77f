//! Fuzz the parser of the etcd reboot semaphore value (bytes any process
//! with write access to the etcd key can put there).
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};

use libfuzzer_sys::fuzz_target;

/// Abort on any single allocation above 64 MiB: without ASan an
/// "untrusted length -> with_capacity" bug would otherwise go unnoticed.
struct CappedAlloc;

const MAX_ALLOC_BYTES: usize = 64 << 20;

unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOC_BYTES {
            std::process::abort();
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

fuzz_target!(|data: &[u8]| {
    if let Ok(sem) = ab_updater::lock::etcd::Semaphore::parse(data) {
        // Whatever parses must re-encode to an equal value.
        let again = ab_updater::lock::etcd::Semaphore::parse(&sem.to_json()).expect("re-parse");
        assert_eq!(again, sem);
    }
});
