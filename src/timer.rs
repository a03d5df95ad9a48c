//! Timers in millisecond ticks since the loop started.
//!
//! Two heaps: user timers (cancellable by id) and connection deadlines (idle,
//! flush, linger: at most one live entry per connection, the rest are
//! dropped lazily when they surface).

use crate::token::ConnId;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

/// Names a timer set with [`Ctx::set_timer`](crate::Ctx::set_timer), to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId(u64);

/// Milliseconds, rounded up so a timer never fires early.
pub(crate) fn ms_ceil(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000).min(u64::MAX as u128) as u64
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    live: HashMap<u64, (Option<ConnId>, u64)>,
    next_id: u64,
    /// Connection deadlines: (tick, token).
    deadlines: BinaryHeap<Reverse<(u64, usize)>>,
}

impl Timers {
    pub(crate) fn set(&mut self, at: u64, owner: Option<ConnId>, tag: u64) -> TimerId {
        self.next_id += 1;
        let id = self.next_id;
        self.heap.push(Reverse((at, id)));
        self.live.insert(id, (owner, tag));
        TimerId(id)
    }

    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        let gone = self.live.remove(&id.0).is_some();
        if self.live.is_empty() {
            self.heap.clear();
        }
        gone
    }

    /// The next user timer due at or before `now`: (owner, tag).
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<(Option<ConnId>, u64)> {
        while let Some(&Reverse((at, id))) = self.heap.peek() {
            if at > now {
                return None;
            }
            self.heap.pop();
            if let Some(t) = self.live.remove(&id) {
                return Some(t);
            }
        }
        None
    }

    pub(crate) fn arm_deadline(&mut self, at: u64, token: usize) {
        self.deadlines.push(Reverse((at, token)));
    }

    /// The next connection deadline due at or before `now`: (tick, token).
    pub(crate) fn pop_deadline(&mut self, now: u64) -> Option<(u64, usize)> {
        match self.deadlines.peek() {
            Some(&Reverse((at, token))) if at <= now => {
                self.deadlines.pop();
                Some((at, token))
            }
            _ => None,
        }
    }

    /// The earliest tick anything is due.
    pub(crate) fn next_due(&self) -> Option<u64> {
        let a = self.heap.peek().map(|r| r.0.0);
        let b = self.deadlines.peek().map(|r| r.0.0);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelled_timer_never_fires_and_order_is_kept() {
        let mut t = Timers::default();
        let a = t.set(10, None, 1);
        t.set(5, None, 2);
        t.set(20, None, 3);
        assert!(t.cancel(a));
        assert_eq!(t.pop_due(4), None);
        assert_eq!(t.pop_due(30), Some((None, 2)));
        assert_eq!(t.pop_due(30), Some((None, 3)));
        assert_eq!(t.pop_due(30), None);
    }

    #[test]
    fn ms_ceil_rounds_up() {
        assert_eq!(ms_ceil(Duration::from_micros(1)), 1);
        assert_eq!(ms_ceil(Duration::from_millis(3)), 3);
    }
}
