//! Timers in milliseconds since the loop started, in one binary heap with
//! removal: memory is bounded by the timers that are live.
//!
//! Each timer is a slab entry that knows its place in the heap, so
//! [`Timers::cancel`] takes it out at once (O(log n)) instead of leaving it
//! to surface later. A handler that sets a 30 s request timeout per message
//! and cancels it on the reply keeps one entry, not one per message.
//! Connection deadlines (idle, flush, linger) live in the same heap, one per
//! connection, moved in place when they change.

use crate::token::ConnId;
use slab::Slab;
use std::num::NonZeroU32;
use std::time::Duration;

/// Names a timer set with [`Ctx::set_timer`](crate::Ctx::set_timer), to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    key: u32,
    generation: NonZeroU32,
}

/// Milliseconds, rounded up so a timer never fires early.
pub(crate) fn ms_ceil(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000).min(u64::MAX as u128) as u64
}

/// What a due timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// A handler's timer: its connection (or none) and tag.
    User(Option<ConnId>, u64),
    /// A connection's deadline for its current state.
    Deadline(ConnId),
}

struct Entry {
    at: u64,
    due: Due,
    generation: NonZeroU32,
    /// Index of this entry in `heap`.
    pos: u32,
}

#[derive(Default)]
pub(crate) struct Timers {
    entries: Slab<Entry>,
    /// Slab keys, a min-heap on `at` (ties in insertion order do not matter).
    heap: Vec<u32>,
    generation: u32,
}

impl Timers {
    fn next_generation(&mut self) -> NonZeroU32 {
        self.generation = self.generation.wrapping_add(1).max(1);
        NonZeroU32::new(self.generation).unwrap_or(NonZeroU32::MIN)
    }
}

impl Timers {
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Live timers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Bytes held for timers, live or room for them.
    #[cfg(test)]
    pub(crate) fn memory(&self) -> usize {
        // A slab slot is the entry or a vacant link, plus its tag.
        self.entries.capacity() * (std::mem::size_of::<Entry>() + std::mem::size_of::<usize>())
            + self.heap.capacity() * std::mem::size_of::<u32>()
    }

    pub(crate) fn set(&mut self, at: u64, due: Due) -> TimerId {
        let generation = self.next_generation();
        let pos = self.heap.len() as u32;
        let key = self.entries.insert(Entry {
            at,
            due,
            generation,
            pos,
        }) as u32;
        self.heap.push(key);
        self.sift_up(pos as usize);
        TimerId { key, generation }
    }

    /// Removes a timer; `false` if it already fired or was cancelled.
    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        match self.entries.get(id.key as usize) {
            Some(e) if e.generation == id.generation => {
                let pos = e.pos as usize;
                self.remove_at(pos);
                true
            }
            _ => false,
        }
    }

    /// Moves a live timer to `at`; `false` if it is gone.
    pub(crate) fn reschedule(&mut self, id: TimerId, at: u64) -> bool {
        let Some(e) = self.entries.get_mut(id.key as usize) else {
            return false;
        };
        if e.generation != id.generation {
            return false;
        }
        let (old, pos) = (e.at, e.pos as usize);
        e.at = at;
        if at < old {
            self.sift_up(pos);
        } else {
            self.sift_down(pos);
        }
        true
    }

    /// The earliest time anything is due.
    #[inline]
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.heap.first().map(|&k| self.entries[k as usize].at)
    }

    /// The next timer due at or before `now`, removed.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<Due> {
        let &k = self.heap.first()?;
        let e = &self.entries[k as usize];
        if e.at > now {
            return None;
        }
        let due = e.due;
        self.remove_at(0);
        Some(due)
    }

    fn remove_at(&mut self, pos: usize) {
        let key = self.heap.swap_remove(pos);
        self.entries.remove(key as usize);
        if pos < self.heap.len() {
            let moved = self.heap[pos];
            self.entries[moved as usize].pos = pos as u32;
            self.sift_down(pos);
            self.sift_up(pos);
        }
        self.shrink();
    }

    /// After a burst, give back what the live timers no longer need.
    fn shrink(&mut self) {
        if self.heap.capacity() > 64 && self.heap.len() < self.heap.capacity() / 4 {
            self.heap.shrink_to(self.heap.len() * 2);
            self.entries.shrink_to_fit();
        }
    }

    fn at(&self, pos: usize) -> u64 {
        self.entries[self.heap[pos] as usize].at
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.entries[self.heap[a] as usize].pos = a as u32;
        self.entries[self.heap[b] as usize].pos = b as u32;
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if self.at(parent) <= self.at(pos) {
                break;
            }
            self.swap(parent, pos);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        loop {
            let (l, r) = (2 * pos + 1, 2 * pos + 2);
            let mut least = pos;
            if l < self.heap.len() && self.at(l) < self.at(least) {
                least = l;
            }
            if r < self.heap.len() && self.at(r) < self.at(least) {
                least = r;
            }
            if least == pos {
                return;
            }
            self.swap(pos, least);
            pos = least;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(tag: u64) -> Due {
        Due::User(None, tag)
    }

    #[test]
    fn cancelled_timer_never_fires_and_order_is_kept() {
        let mut t = Timers::default();
        let a = t.set(10, user(1));
        t.set(5, user(2));
        t.set(20, user(3));
        assert!(t.cancel(a));
        assert!(!t.cancel(a), "cancelled twice");
        assert_eq!(t.pop_due(4), None);
        assert_eq!(t.pop_due(30), Some(user(2)));
        assert_eq!(t.pop_due(30), Some(user(3)));
        assert_eq!(t.pop_due(30), None);
        assert!(t.is_empty());
    }

    #[test]
    fn a_fired_timers_id_cannot_cancel_its_successor_in_the_same_slot() {
        let mut t = Timers::default();
        let a = t.set(1, user(1));
        assert_eq!(t.pop_due(1), Some(user(1)));
        let b = t.set(5, user(2));
        assert!(!t.cancel(a));
        assert!(t.cancel(b));
    }

    #[test]
    fn reschedule_moves_a_timer_both_ways() {
        let mut t = Timers::default();
        let a = t.set(10, user(1));
        t.set(20, user(2));
        assert!(t.reschedule(a, 30));
        assert_eq!(t.next_due(), Some(20));
        assert!(t.reschedule(a, 5));
        assert_eq!(t.pop_due(100), Some(user(1)));
    }

    #[test]
    fn random_sets_and_cancels_pop_in_time_order() {
        let mut t = Timers::default();
        let mut ids = Vec::new();
        let mut x: u64 = 12345;
        for i in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ids.push((t.set(x >> 50, user(i)), x >> 50));
            if i % 3 == 0 {
                let (id, _) = ids.remove((x as usize >> 7) % ids.len());
                assert!(t.cancel(id));
            }
        }
        let mut last = 0;
        let mut n = 0;
        while let Some(at) = t.next_due() {
            assert!(at >= last);
            last = at;
            t.pop_due(u64::MAX);
            n += 1;
        }
        assert_eq!(n, ids.len());
    }

    #[test]
    fn a_million_set_and_cancelled_timers_hold_no_memory() {
        let mut t = Timers::default();
        t.set(1_000_000, user(0));
        for i in 0..1_000_000 {
            let id = t.set(i, user(i));
            assert!(t.cancel(id));
        }
        assert_eq!(t.len(), 1);
        assert!(t.memory() < 1024, "{} bytes", t.memory());
    }

    #[test]
    fn ms_ceil_rounds_up() {
        assert_eq!(ms_ceil(Duration::from_micros(1)), 1);
        assert_eq!(ms_ceil(Duration::from_millis(3)), 3);
    }
}
