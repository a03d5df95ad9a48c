//! A counting allocator that counts only the threads that ask for it (a
//! loop thread sets [`count_this_thread`]): live bytes and allocations.
//! A test binary installs it with
//! `#[global_allocator] static A: counting::Counting = counting::Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

pub struct Counting;

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}
pub static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
pub static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Counts (or stops counting) the calling thread's allocations.
pub fn count_this_thread(on: bool) {
    COUNTED.with(|c| c.set(on));
}

fn counted() -> bool {
    COUNTED.try_with(|c| c.get()).unwrap_or(false)
}

// SAFETY: forwards to the system allocator; only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if counted() {
            LIVE_BYTES.fetch_add(l.size() as i64, Relaxed);
            ALLOCATIONS.fetch_add(1, Relaxed);
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if counted() {
            LIVE_BYTES.fetch_sub(l.size() as i64, Relaxed);
        }
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if counted() {
            LIVE_BYTES.fetch_add(new as i64 - l.size() as i64, Relaxed);
            ALLOCATIONS.fetch_add(1, Relaxed);
        }
        unsafe { System.realloc(p, l, new) }
    }
}
