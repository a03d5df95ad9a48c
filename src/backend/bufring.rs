//! The provided buffer ring of the io_uring backend
//! (`IORING_REGISTER_PBUF_RING`): the buffers the kernel receives into,
//! picking one when data arrives, and the ring of their ids it takes from.

use io_uring::types;
use std::io;

/// The loop's one buffer group.
pub(super) const BGID: u16 = 0;

/// The provided buffer ring: `entries` buffers of `size` bytes, the ring
/// of their ids the kernel takes from, and the tail only we move.
pub(super) struct BufRing {
    pub(super) ring: *mut types::BufRingEntry,
    pub(super) entries: u16,
    tail: u16,
    data: *mut u8,
    pub(super) size: usize,
}

/// An anonymous private mapping of `len` bytes, page-aligned and zeroed.
fn map(len: usize) -> io::Result<*mut u8> {
    // SAFETY: a fresh anonymous mapping; nothing else refers to it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

impl BufRing {
    pub(super) fn new(count: usize, size: usize) -> io::Result<BufRing> {
        let entries = count.clamp(1, 32768).next_power_of_two() as u16;
        let size = size.max(64);
        let ring = map(usize::from(entries) * std::mem::size_of::<types::BufRingEntry>())?;
        let data = match map(usize::from(entries) * size) {
            Ok(d) => d,
            Err(e) => {
                // SAFETY: `ring` was just mapped with this length.
                unsafe { libc::munmap(ring.cast(), usize::from(entries) * 16) };
                return Err(e);
            }
        };
        let mut b = BufRing {
            ring: ring.cast(),
            entries,
            tail: 0,
            data,
            size,
        };
        for bid in 0..entries {
            b.give(bid);
        }
        Ok(b)
    }

    pub(super) fn at(&self, bid: u16) -> *const u8 {
        // SAFETY: `bid` < entries, so the offset stays inside the mapping.
        unsafe { self.data.add(usize::from(bid) * self.size) }
    }

    /// Puts buffer `bid` at the ring's tail and publishes the tail.
    pub(super) fn give(&mut self, bid: u16) {
        let mask = self.entries - 1;
        // SAFETY: the index is masked into the ring; only we write entries
        // past the kernel's head, and the tail store below publishes it.
        unsafe {
            let e = &mut *self.ring.add(usize::from(self.tail & mask));
            e.set_addr(self.at(bid) as u64);
            e.set_len(self.size as u32);
            e.set_bid(bid);
            self.tail = self.tail.wrapping_add(1);
            let tail = types::BufRingEntry::tail(self.ring) as *const std::sync::atomic::AtomicU16;
            (*tail).store(self.tail, std::sync::atomic::Ordering::Release);
        }
    }

    /// Forgets the mappings instead of unmapping them (the kernel may still use them).
    pub(super) fn leak(&mut self) {
        self.ring = std::ptr::null_mut();
        self.data = std::ptr::null_mut();
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        let entries = usize::from(self.entries);
        if !self.ring.is_null() {
            // SAFETY: mapped in `new` with this length; unregistered or leaked by now.
            unsafe { libc::munmap(self.ring.cast(), entries * 16) };
        }
        if !self.data.is_null() {
            // SAFETY: as above.
            unsafe { libc::munmap(self.data.cast(), entries * self.size) };
        }
    }
}

// SAFETY: the raw pointers are mappings owned by the BufRing alone.
unsafe impl Send for BufRing {}
