//! A global allocator for fuzz targets that aborts on any single allocation
//! above a cap: without ASan, "untrusted length → with_capacity" bugs would
//! otherwise go unnoticed (see shared FUZZING-NOTES). Included with `#[path]`.

use std::alloc::{GlobalAlloc, Layout, System};

/// Largest single allocation a parser may make while fuzzing.
const MAX_ALLOC_BYTES: usize = 64 << 20;

struct CappedAlloc;

unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOC_BYTES {
            eprintln!("fuzz: allocation of {} bytes exceeds the cap", layout.size());
            std::process::abort();
        }
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOC_BYTES {
            eprintln!("fuzz: reallocation to {new_size} bytes exceeds the cap");
            std::process::abort();
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: CappedAlloc = CappedAlloc;
