//! A bounded single-producer, single-consumer byte ring of length-prefixed
//! records: what one loop of a [`Server`](crate::Server) sends another.
//!
//! Fixed size, allocated once: no allocation per message. The producer
//! writes records with plain stores and makes them visible once per batch
//! ([`Ring::publish`], one release store); the consumer takes them and
//! hands the space back with one release store per record. Neither side
//! makes an atomic read-modify-write.
//!
//! A record is a 16-byte header (`len: u32`, `kind: u32`, `word: u64`) and
//! `len` payload bytes, padded to 8. A record never wraps: when it does not
//! fit before the end, a pad marker fills the rest and it starts at 0.
//!
//! **Waking the consumer once per batch, and only when needed.** After
//! publishing, the producer looks at the consumer's position: if the
//! consumer had not yet taken everything published before, it is still
//! awake and will look again, so no wake is needed. The consumer, after
//! handing space back, looks at the producer's position again before it
//! sleeps. A sequentially consistent fence on each side between its store
//! and its load (Dekker's pattern) means at least one of the two sees the
//! other's store: either the producer wakes the consumer, or the consumer
//! sees the new records.

use std::sync::atomic::{AtomicUsize, Ordering, fence};

/// Bytes of a record header.
pub(crate) const HEADER: usize = 16;
/// The pad marker's kind: skip to the start of the buffer.
const PAD: u32 = 0;

/// A record as the consumer sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) kind: u32,
    pub(crate) word: u64,
}

/// A position, alone on its cache line: the producer's and the consumer's
/// stores do not make each other's line bounce.
#[repr(align(64))]
struct Pos(AtomicUsize);

pub(crate) struct Ring {
    /// `cap / 8` words (8-byte alignment for the headers), owned, freed on drop.
    base: *mut u64,
    cap: usize,
    /// The consumer's position: bytes taken, ever (wraps with `usize`).
    head: Pos,
    /// The producer's published position: bytes made visible, ever.
    tail: Pos,
}

// SAFETY: the buffer is reached only through `Writer` (one producer) and
// `Reader` (one consumer), each owned by one loop; the producer writes only
// bytes in `[tail, head + cap)`, which the consumer does not read, and the
// consumer reads only bytes in `[head, tail)`, published with a release
// store it acquires. A `Ring` itself holds no reference to either side.
unsafe impl Send for Ring {}
// SAFETY: as above; every shared access is one of the two atomic positions.
unsafe impl Sync for Ring {}

/// The producer's private state for one ring.
#[derive(Default)]
pub(crate) struct Writer {
    /// Where the next record goes (may be ahead of `published`).
    tail: usize,
    /// The consumer's position, as last read.
    head: usize,
    /// What the consumer may see.
    published: usize,
    /// The last record written and not yet published: it may still grow.
    open: Option<usize>,
}

impl Writer {
    /// Records written but not yet published.
    pub(crate) fn pending(&self) -> bool {
        self.tail != self.published
    }
}

/// The consumer's private state for one ring.
#[derive(Default)]
pub(crate) struct Reader {
    head: usize,
}

impl Ring {
    /// A ring of at least `capacity` bytes (a power of two, at least 64).
    pub(crate) fn new(capacity: usize) -> Ring {
        let cap = capacity.max(64).next_power_of_two();
        // Zeroed: the kernel hands out pages as they are first touched.
        let words = vec![0u64; cap / 8].into_boxed_slice();
        Ring {
            base: Box::into_raw(words).cast(),
            cap,
            head: Pos(AtomicUsize::new(0)),
            tail: Pos(AtomicUsize::new(0)),
        }
    }

    /// The largest payload one record may carry: half the ring, so that a
    /// record always fits once the consumer has caught up.
    pub(crate) fn max_payload(&self) -> usize {
        self.cap / 2 - HEADER
    }

    #[inline]
    fn at(&self, pos: usize) -> *mut u8 {
        // SAFETY: `pos & (cap - 1)` is inside the buffer.
        unsafe { self.base.cast::<u8>().add(pos & (self.cap - 1)) }
    }

    /// Whether `need` more bytes fit, reading the consumer's position only
    /// when the cached one says no.
    #[inline]
    fn room(&self, w: &mut Writer, need: usize) -> bool {
        if w.tail.wrapping_sub(w.head) + need <= self.cap {
            return true;
        }
        w.head = self.head.0.load(Ordering::Acquire);
        w.tail.wrapping_sub(w.head) + need <= self.cap
    }

    /// Writes a record of `kind` and `word` whose payload is `parts` one
    /// after the other; `false` if it does not fit now (or ever: more
    /// than [`max_payload`](Ring::max_payload)).
    pub(crate) fn push(&self, w: &mut Writer, kind: u32, word: u64, parts: &[&[u8]]) -> bool {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > self.max_payload() {
            return false;
        }
        let size = HEADER + len.next_multiple_of(8);
        let to_end = self.cap - (w.tail & (self.cap - 1));
        let pad = if size > to_end { to_end } else { 0 };
        if !self.room(w, pad + size) {
            return false;
        }
        if pad > 0 {
            // SAFETY: 8 bytes at an 8-aligned position in `[tail, head + cap)`.
            unsafe { self.at(w.tail).cast::<u32>().add(1).write(PAD) };
            w.tail = w.tail.wrapping_add(pad);
        }
        let at = self.at(w.tail);
        // SAFETY: `size` bytes from `at` are in `[tail, head + cap)` and do
        // not cross the end (checked above); `at` is 8-aligned.
        unsafe {
            at.cast::<u32>().write(len as u32);
            at.cast::<u32>().add(1).write(kind);
            at.add(8).cast::<u64>().write(word);
            let mut dst = at.add(HEADER);
            for p in parts {
                std::ptr::copy_nonoverlapping(p.as_ptr(), dst, p.len());
                dst = dst.add(p.len());
            }
        }
        w.open = Some(w.tail);
        w.tail = w.tail.wrapping_add(size);
        true
    }

    /// Appends `parts` to the payload of the last record written, if it is
    /// not published yet and the bytes fit behind it; `false` otherwise
    /// (then a new record is the way).
    pub(crate) fn extend(&self, w: &mut Writer, parts: &[&[u8]]) -> bool {
        let Some(start) = w.open else {
            return false;
        };
        let at = self.at(start);
        // SAFETY: the open record is the producer's own, unpublished.
        let len = unsafe { at.cast::<u32>().read() } as usize;
        let more: usize = parts.iter().map(|p| p.len()).sum();
        let new_len = len + more;
        let new_size = HEADER + new_len.next_multiple_of(8);
        let old_size = HEADER + len.next_multiple_of(8);
        let fits_before_end = (start & (self.cap - 1)) + new_size <= self.cap;
        if new_len > self.max_payload() || !fits_before_end || !self.room(w, new_size - old_size) {
            return false;
        }
        // SAFETY: the record and the bytes after it up to `new_size` are
        // unpublished, inside `[published, head + cap)`, before the end.
        unsafe {
            let mut dst = at.add(HEADER + len);
            for p in parts {
                std::ptr::copy_nonoverlapping(p.as_ptr(), dst, p.len());
                dst = dst.add(p.len());
            }
            at.cast::<u32>().write(new_len as u32);
        }
        w.tail = start.wrapping_add(new_size);
        true
    }

    /// Makes what was written visible to the consumer. Returns whether the
    /// consumer must be woken: it had taken everything published before,
    /// so it may be asleep (see the module's doc).
    pub(crate) fn publish(&self, w: &mut Writer) -> bool {
        if !w.pending() {
            return false;
        }
        let before = w.published;
        self.tail.0.store(w.tail, Ordering::Release);
        fence(Ordering::SeqCst);
        w.head = self.head.0.load(Ordering::Relaxed);
        w.published = w.tail;
        w.open = None;
        w.head == before
    }

    /// Hands `f` each published record, oldest first, until none is left
    /// or `budget` payload bytes were taken; each record's space goes back
    /// to the producer as soon as `f` returns. Returns whether records
    /// may be left (the budget ran out): the caller comes back for them
    /// without waiting for a wake-up.
    pub(crate) fn drain(
        &self,
        r: &mut Reader,
        mut budget: usize,
        mut f: impl FnMut(Header, &[u8]),
    ) -> bool {
        loop {
            let tail = self.tail.0.load(Ordering::Acquire);
            if r.head == tail {
                return false;
            }
            while r.head != tail {
                let at = self.at(r.head);
                // SAFETY: `[head, tail)` was published (acquired above) and
                // the producer does not write there until `head` moves past.
                let (len, kind) = unsafe {
                    (
                        at.cast::<u32>().read() as usize,
                        at.cast::<u32>().add(1).read(),
                    )
                };
                if kind == PAD {
                    let to_end = self.cap - (r.head & (self.cap - 1));
                    r.head = r.head.wrapping_add(to_end);
                    continue;
                }
                // SAFETY: as above; a record never crosses the end.
                let (word, payload) = unsafe {
                    (
                        at.add(8).cast::<u64>().read(),
                        std::slice::from_raw_parts(at.add(HEADER), len),
                    )
                };
                f(Header { kind, word }, payload);
                r.head = r.head.wrapping_add(HEADER + len.next_multiple_of(8));
                self.head.0.store(r.head, Ordering::Release);
                budget = budget.saturating_sub(len.max(1));
                if budget == 0 {
                    return true;
                }
            }
            // Look again before sleeping (the module's doc says why).
            fence(Ordering::SeqCst);
        }
    }

    /// Whether everything published has been taken.
    pub(crate) fn is_empty(&self) -> bool {
        self.head.0.load(Ordering::Acquire) == self.tail.0.load(Ordering::Acquire)
    }

    /// A reader at the consumer's current position, for taking what is left
    /// once the consumer is gone (to close the descriptors in it).
    pub(crate) fn leftover_reader(&self) -> Reader {
        Reader {
            head: self.head.0.load(Ordering::Acquire),
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let words = std::ptr::slice_from_raw_parts_mut(self.base, self.cap / 8);
        // SAFETY: `base` came from `Box::into_raw` of exactly this slice.
        drop(unsafe { Box::from_raw(words) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(ring: &Ring, r: &mut Reader) -> Vec<(u32, u64, Vec<u8>)> {
        let mut got = Vec::new();
        ring.drain(r, usize::MAX, |h, p| got.push((h.kind, h.word, p.to_vec())));
        got
    }

    #[test]
    fn records_come_out_in_order_across_the_wrap() {
        let ring = Ring::new(256);
        let (mut w, mut r) = (Writer::default(), Reader::default());
        let mut expect = Vec::new();
        for i in 0..1000u64 {
            let body = vec![i as u8; (i % 37) as usize];
            assert!(ring.push(&mut w, 1 + (i % 3) as u32, i, &[&body]));
            expect.push((1 + (i % 3) as u32, i, body));
            ring.publish(&mut w);
            if i % 3 == 2 {
                assert_eq!(take(&ring, &mut r), std::mem::take(&mut expect));
            }
        }
        assert_eq!(take(&ring, &mut r), expect);
        assert!(ring.is_empty());
    }

    #[test]
    fn a_full_ring_refuses_and_takes_again_once_read() {
        let ring = Ring::new(128);
        let (mut w, mut r) = (Writer::default(), Reader::default());
        let body = [7u8; 24];
        let mut n = 0;
        while ring.push(&mut w, 1, n, &[&body]) {
            n += 1;
        }
        assert_eq!(n, 128 / (HEADER + 24) as u64);
        assert!(!ring.push(&mut w, 1, 99, &[&body]), "a full ring took more");
        ring.publish(&mut w);
        assert_eq!(take(&ring, &mut r).len(), n as usize);
        assert!(ring.push(&mut w, 1, 99, &[&body]));
        assert!(!ring.push(&mut w, 1, 0, &[&[0u8; 64]]), "over max_payload");
    }

    #[test]
    fn an_open_record_grows_until_published() {
        let ring = Ring::new(256);
        let (mut w, mut r) = (Writer::default(), Reader::default());
        assert!(ring.push(&mut w, 1, 5, &[b"ab"]));
        assert!(ring.extend(&mut w, &[b"cd", b"e"]));
        ring.publish(&mut w);
        assert!(!ring.extend(&mut w, &[b"f"]), "a published record grew");
        assert_eq!(take(&ring, &mut r), vec![(1, 5, b"abcde".to_vec())]);
    }

    #[test]
    fn the_producer_wakes_only_a_consumer_that_had_caught_up() {
        let ring = Ring::new(256);
        let (mut w, mut r) = (Writer::default(), Reader::default());
        ring.push(&mut w, 1, 1, &[]);
        assert!(ring.publish(&mut w), "the first batch must wake");
        ring.push(&mut w, 1, 2, &[]);
        assert!(!ring.publish(&mut w), "the consumer has not taken batch 1");
        take(&ring, &mut r);
        ring.push(&mut w, 1, 3, &[]);
        assert!(ring.publish(&mut w), "the consumer caught up: wake it");
    }

    #[test]
    fn two_threads_pass_a_million_records_without_loss_or_reordering() {
        let ring = std::sync::Arc::new(Ring::new(4096));
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let producer = {
            let ring = ring.clone();
            std::thread::spawn(move || {
                let mut w = Writer::default();
                for i in 0..1_000_000u64 {
                    while !ring.push(&mut w, 1, i, &[&i.to_le_bytes()[..(i % 9) as usize]]) {
                        if ring.publish(&mut w) {
                            let _ = tx.try_send(());
                        }
                        std::thread::yield_now();
                    }
                    if i % 64 == 0 && ring.publish(&mut w) {
                        let _ = tx.try_send(());
                    }
                }
                if ring.publish(&mut w) {
                    let _ = tx.try_send(());
                }
            })
        };
        let mut r = Reader::default();
        let mut next = 0u64;
        while next < 1_000_000 {
            ring.drain(&mut r, usize::MAX, |h, p| {
                assert_eq!(h.word, next);
                assert_eq!(p, &next.to_le_bytes()[..(next % 9) as usize]);
                next += 1;
            });
            if next < 1_000_000 {
                // A lost wake-up would hang here: bounded, and fails.
                rx.recv_timeout(std::time::Duration::from_secs(10))
                    .expect("the producer published without waking the consumer");
            }
        }
        producer.join().unwrap();
    }
}
