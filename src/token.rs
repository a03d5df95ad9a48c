//! Generation-counted tokens: a slab key, the loop that owns it, and the
//! generation of its occupant, in one `u64`.
//!
//! `slab` reuses keys. Without a generation, an event still queued for a
//! closed connection would be delivered to the next connection that took its
//! key (mio issue #219). With one, the stale event is recognised and dropped.
//!
//! | bits | 63..32 | 31..24 | 23..0 |
//! |---|---|---|---|
//! | | generation | loop index | slab key |

use std::fmt;
use std::num::NonZeroU64;

/// Identifies one connection (or listener, or UDP socket) for its whole
/// life, and says which loop owns it; never reused while the loop runs (the
/// generation would have to wrap around 2³² times first).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(NonZeroU64);

/// Slab keys of one loop stay below this: 24 bits, the all-ones key left out
/// so that no id is ever the waker's token.
pub(crate) const MAX_KEYS: usize = (1 << 24) - 1;

impl ConnId {
    /// `generation` is never 0 ([`Generations`] skips it), so no id is 0.
    #[inline]
    pub(crate) fn new(lp: u8, key: usize, generation: u32) -> ConnId {
        debug_assert!(key < MAX_KEYS && generation != 0);
        let raw = (u64::from(generation) << 32) | (u64::from(lp) << 24) | key as u64;
        ConnId(NonZeroU64::new(raw).unwrap_or(NonZeroU64::MAX))
    }

    /// The id a backend token carries; `None` for 0, which no id is.
    #[inline]
    pub(crate) fn from_token(token: u64) -> Option<ConnId> {
        NonZeroU64::new(token).map(ConnId)
    }

    /// The slab key part.
    #[inline]
    pub(crate) fn key(self) -> usize {
        (self.0.get() & 0xff_ffff) as usize
    }

    /// The generation part.
    #[inline]
    pub(crate) fn generation(self) -> u32 {
        (self.0.get() >> 32) as u32
    }

    /// Which loop owns this connection: 0 in a single-loop server.
    pub fn loop_index(self) -> usize {
        ((self.0.get() >> 24) & 0xff) as usize
    }

    /// The token as registered with the backend.
    #[inline]
    pub(crate) fn token(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.loop_index() {
            0 => write!(f, "#{}.{}", self.key(), self.generation()),
            lp => write!(f, "#{lp}:{}.{}", self.key(), self.generation()),
        }
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
    /// The next generation; never 0, so no id is 0 and `Option<ConnId>`
    /// costs nothing.
    pub(crate) fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(1).max(1);
        self.0
    }
}

/// The token of the loop's waker; no slab key reaches it.
pub(crate) const WAKER: u64 = u64::MAX;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_loop_and_generation_round_trip() {
        let id = ConnId::new(3, 7, 42);
        assert_eq!((id.key(), id.loop_index(), id.generation()), (7, 3, 42));
        assert_ne!(id, ConnId::new(3, 7, 43));
        assert_ne!(id, ConnId::new(2, 7, 42));
        let top = ConnId::new(255, MAX_KEYS - 1, u32::MAX);
        assert_eq!(top.key(), MAX_KEYS - 1);
        assert_eq!(top.loop_index(), 255);
        assert_ne!(top.token(), WAKER, "the waker's token is no connection's");
        assert_eq!(format!("{}", ConnId::new(0, 5, 1)), "#5.1");
        assert_eq!(format!("{}", ConnId::new(1, 5, 1)), "#1:5.1");
    }
}
