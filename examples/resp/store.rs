//! The keyspace: one `HashMap` from key to value, and expiry done the Redis
//! way, twice over. A key past its deadline is dropped when it is touched
//! (lazy: a read never sees it, to the millisecond), and a heap of
//! deadlines lets a loop timer drop the keys nobody touches (active).

use ioplex::Ctx;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

pub use crate::set::Set;

/// Keys dropped by one sweep at most: the loop stays responsive when a
/// million keys expire in the same millisecond (the rest go next turn).
const SWEEP_MAX: usize = 10_000;
/// Longest the sweep timer waits: far deadlines are looked at 10 times a
/// second, as Redis' `hz 10` does.
const SWEEP_EVERY: u64 = 100;

/// A hash: field → value.
pub type Hash = HashMap<Box<[u8]>, Box<[u8]>>;

pub enum Value {
    Str(Vec<u8>),
    /// A string INCR has turned into a number (Redis' "int" encoding).
    Int(i64),
    List(VecDeque<Box<[u8]>>),
    Set(Set),
    Hash(Hash),
}

struct Entry {
    value: Value,
    /// Milliseconds after `Store::start` when the key goes; 0: never.
    expires: u64,
}

pub struct Store {
    map: HashMap<Box<[u8]>, Entry>,
    /// (deadline, key) of every deadline set; a stale one (the key was
    /// deleted, or given another deadline) is skipped when it surfaces.
    deadlines: BinaryHeap<Reverse<(u64, Box<[u8]>)>>,
    /// Keys with a deadline: 0 means no lookup pays for the expiry check.
    volatile: usize,
    start: Instant,
    /// When the sweep timer armed last is due (its tag), until it fires.
    armed: Option<u64>,
}

impl Store {
    pub fn new() -> Store {
        Store {
            map: HashMap::new(),
            deadlines: BinaryHeap::new(),
            volatile: 0,
            start: Instant::now(),
            armed: None,
        }
    }

    /// Milliseconds since the store began, never 0 (0 is "no deadline").
    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The value of a live key. A key past its deadline is dropped here.
    pub fn get(&mut self, key: &[u8]) -> Option<&mut Value> {
        if self.volatile > 0 {
            let now = self.now_ms();
            if self
                .map
                .get(key)
                .is_some_and(|e| e.expires != 0 && e.expires <= now)
            {
                self.remove(key);
                return None;
            }
        }
        self.map.get_mut(key).map(|e| &mut e.value)
    }

    /// A new key, without a deadline (the caller saw it absent with [`get`](Store::get)).
    pub fn insert(&mut self, key: &[u8], value: Value) {
        self.map.insert(key.into(), Entry { value, expires: 0 });
    }

    /// SET: `key` holds `data`, with deadline `expires` (0: none). The old
    /// string's buffer is reused when it is big enough: no allocation.
    pub fn set_str(&mut self, key: &[u8], data: &[u8], expires: u64) {
        let old = match self.map.get_mut(key) {
            Some(e) => {
                match &mut e.value {
                    Value::Str(s) => {
                        s.clear();
                        s.extend_from_slice(data);
                    }
                    other => *other = Value::Str(data.to_vec()),
                }
                std::mem::replace(&mut e.expires, expires)
            }
            None => {
                let value = Value::Str(data.to_vec());
                self.map.insert(key.into(), Entry { value, expires });
                0
            }
        };
        self.track(key, old, expires);
    }

    /// Deletes `key`; `true` if it was there (and live).
    pub fn remove(&mut self, key: &[u8]) -> bool {
        match self.map.remove(key) {
            Some(e) if e.expires != 0 => {
                self.volatile -= 1;
                e.expires > self.now_ms()
            }
            Some(_) => true,
            None => false,
        }
    }

    /// The deadline of a live key: `None` if absent, `Some(0)` if it has none.
    pub fn deadline(&mut self, key: &[u8]) -> Option<u64> {
        self.get(key)?;
        self.map.get(key).map(|e| e.expires)
    }

    /// Gives a live key the deadline `at` (ms, as [`now_ms`](Store::now_ms)).
    pub fn set_deadline(&mut self, key: &[u8], at: u64) -> bool {
        self.get(key);
        let Some(e) = self.map.get_mut(key) else {
            return false;
        };
        let old = std::mem::replace(&mut e.expires, at);
        self.track(key, old, at);
        true
    }

    /// Counts and files a deadline change of `key` from `old` to `new`.
    fn track(&mut self, key: &[u8], old: u64, new: u64) {
        self.volatile = self.volatile + usize::from(new != 0) - usize::from(old != 0);
        if new != 0 && new != old {
            self.deadlines.push(Reverse((new, key.into())));
        }
        // Stale entries are at most half the heap: memory follows the live deadlines.
        if self.deadlines.len() > 2 * self.volatile + 1024 {
            let map = &self.map;
            self.deadlines
                .retain(|Reverse((at, k))| map.get(k).is_some_and(|e| e.expires == *at));
        }
    }

    /// From `on_tick`: arms a loop timer for the earliest deadline filed
    /// (maybe stale: then the sweep finds nothing), unless one is armed for
    /// it. A timer armed for later is left to fire: it only sweeps.
    pub fn arm_sweep(&mut self, ctx: &mut Ctx<'_>) {
        let Some(Reverse((next, _))) = self.deadlines.peek() else {
            return;
        };
        let now = self.now_ms();
        let at = (*next).min(now + SWEEP_EVERY);
        if self.armed.is_none_or(|armed| at < armed) {
            ctx.set_timer(Duration::from_millis(at.saturating_sub(now)), at);
            self.armed = Some(at);
        }
    }

    /// From `on_loop_timer`: the sweep timer `tag` fired. Drops the keys
    /// whose deadline has passed, looking at [`SWEEP_MAX`] deadlines at most.
    pub fn swept(&mut self, tag: u64) {
        if self.armed == Some(tag) {
            self.armed = None; // `arm_sweep` arms the next one
        }
        let now = self.now_ms();
        for _ in 0..SWEEP_MAX {
            if self
                .deadlines
                .peek()
                .is_none_or(|Reverse((at, _))| *at > now)
            {
                return;
            }
            let Some(Reverse((at, key))) = self.deadlines.pop() else {
                return;
            };
            if self.map.get(&key).is_some_and(|e| e.expires == at) {
                self.map.remove(&key);
                self.volatile -= 1;
            }
        }
    }
}
