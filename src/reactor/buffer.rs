//! The output queue of one connection, held only while bytes are pending,
//! and the loop's pool of spare queues, so that queueing allocates nothing
//! once the loop is warm.

/// Bytes waiting for the socket. A `Vec` with a read position: appends go
/// to the end, writes consume from the front, and the consumed prefix is
/// dropped when it is worth the copy.
///
/// A completion backend sends from the front while the kernel holds a
/// pointer into it: while such a send is in flight ([`OutBuf::freeze`])
/// nothing may move those bytes, so appends go to a second `Vec`, which
/// becomes the front once the send completes.
#[derive(Default, Debug)]
pub(crate) struct OutBuf {
    data: Vec<u8>,
    pos: usize,
    /// Appended while `data` is frozen.
    later: Vec<u8>,
    frozen: bool,
}

impl OutBuf {
    pub(crate) fn len(&self) -> usize {
        self.data.len() - self.pos + self.later.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes to write next.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.data[self.pos..]
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        // Behind bytes already waiting in `later`, order says: there too.
        if self.frozen || !self.later.is_empty() {
            self.later.extend_from_slice(bytes);
            return;
        }
        if self.pos > 0 && self.pos >= self.data.len() / 2 {
            self.data.drain(..self.pos);
            self.pos = 0;
        }
        self.data.extend_from_slice(bytes);
    }

    /// A send of [`bytes`](OutBuf::bytes) is in flight: they must not move.
    pub(crate) fn freeze(&mut self) {
        self.frozen = true;
    }

    /// `n` bytes of the front were written (a send in flight completed).
    pub(crate) fn consume(&mut self, n: usize) {
        self.pos += n;
        debug_assert!(self.pos <= self.data.len());
        self.frozen = false;
        if self.pos == self.data.len() {
            self.data.clear();
            self.pos = 0;
            std::mem::swap(&mut self.data, &mut self.later);
        }
    }

    fn clear(&mut self) {
        self.data.clear();
        self.later.clear();
        self.pos = 0;
        self.frozen = false;
    }

    fn capacity(&self) -> usize {
        self.data.capacity() + self.later.capacity()
    }
}

/// Spare output queues of the loop: taken when a connection first queues,
/// given back when its queue empties.
// Boxes, not queues: a connection holds its queue as a `Box` (8 bytes
// while idle), and moving one in and out of the pool allocates nothing.
#[allow(clippy::vec_box)]
#[derive(Default)]
pub(crate) struct Pool(Vec<Box<OutBuf>>);

impl Pool {
    /// Queues kept at most, and the most memory one may keep.
    const KEEP: usize = 256;
    const KEEP_BYTES: usize = 64 << 10;

    pub(crate) fn take(&mut self) -> Box<OutBuf> {
        self.0.pop().unwrap_or_default()
    }

    pub(crate) fn give(&mut self, mut out: Box<OutBuf>) {
        if self.0.len() < Self::KEEP && out.capacity() <= Self::KEEP_BYTES {
            out.clear();
            self.0.push(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OutBuf;

    #[test]
    fn push_consume_keeps_order() {
        let mut b = OutBuf::default();
        b.push(b"hello ");
        b.consume(3);
        b.push(b"world");
        assert_eq!(b.bytes(), b"lo world");
        b.consume(8);
        assert!(b.is_empty());
    }

    #[test]
    fn bytes_in_flight_never_move_and_order_is_kept() {
        let mut b = OutBuf::default();
        b.push(b"abc");
        b.freeze();
        let at = b.bytes().as_ptr();
        for _ in 0..1000 {
            b.push(b"0123456789"); // would reallocate the front
        }
        assert_eq!(b.bytes().as_ptr(), at, "the front moved while in flight");
        assert_eq!(b.len(), 3 + 10_000);
        b.consume(2); // a short send
        assert_eq!(b.bytes(), b"c");
        b.push(b"!"); // after the ten thousand, not before
        b.freeze();
        b.consume(1);
        assert_eq!(&b.bytes()[..10], b"0123456789");
        assert_eq!(b.len(), 10_001);
        assert_eq!(b.bytes().last(), Some(&b'!'));
    }
}
