//! Generation-counted tokens: a slab key plus the generation of its occupant.
//!
//! `slab` reuses keys. Without a generation, an event still queued for a
//! closed connection would be delivered to the next connection that took its
//! key (mio issue #219). With one, the stale event is recognised and dropped.

use std::fmt;

/// Identifies one connection for its whole life; never reused while the loop runs
/// (the generation would have to wrap around 2³² times first).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) usize);

impl ConnId {
    pub(crate) fn new(key: usize, generation: u32) -> ConnId {
        debug_assert!(key <= u32::MAX as usize);
        ConnId(((generation as usize) << 32) | key)
    }
    /// The slab key part.
    pub(crate) fn key(self) -> usize {
        self.0 & 0xffff_ffff
    }
    /// The generation part.
    pub(crate) fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
    /// The token as registered with the backend.
    pub fn token(self) -> usize {
        self.0
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.key(), self.generation())
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Hands out generations; one counter per loop, so a reused key always gets a new one.
#[derive(Default)]
pub(crate) struct Generations(u32);

impl Generations {
    pub(crate) fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(1);
        self.0
    }
}

/// The token of the loop's waker; no slab key reaches it.
pub(crate) const WAKER: usize = usize::MAX;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_generation_round_trip() {
        let id = ConnId::new(7, 42);
        assert_eq!((id.key(), id.generation()), (7, 42));
        assert_ne!(id, ConnId::new(7, 43));
    }
}
