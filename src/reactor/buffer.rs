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
///
/// After those bytes a file may wait ([`Ctx::send_file`](crate::Ctx::send_file)),
/// sent by the kernel from the page cache (`sendfile(2)`), never read into
/// memory; what is queued behind it waits in `after`.
#[derive(Default, Debug)]
pub(crate) struct OutBuf {
    data: Vec<u8>,
    pos: usize,
    /// Appended while `data` is frozen.
    later: Vec<u8>,
    frozen: bool,
    file: Option<FilePart>,
    /// Appended while a file waits: sent after it.
    after: Vec<u8>,
}

/// The part of a file still to send: `off..end`.
#[derive(Debug)]
pub(crate) struct FilePart {
    pub(crate) file: std::fs::File,
    pub(crate) off: u64,
    pub(crate) end: u64,
}

impl OutBuf {
    /// Bytes still to send, a waiting file's included.
    pub(crate) fn len(&self) -> usize {
        let file = self.file.as_ref().map_or(0, |f| (f.end - f.off) as usize);
        self.in_memory() + file
    }

    /// Bytes held in memory (what the watermarks and `max_output` count).
    pub(crate) fn in_memory(&self) -> usize {
        self.data.len() - self.pos + self.later.len() + self.after.len()
    }

    /// A file to send after the bytes queued so far; `false` if one
    /// already waits (the next goes once this one is out: `on_drain`).
    pub(crate) fn set_file(&mut self, part: FilePart) -> bool {
        if self.file.is_some() {
            return false;
        }
        self.file = Some(part);
        true
    }

    /// The file to send now: all bytes before it are out.
    pub(crate) fn front_file(&mut self) -> Option<&mut FilePart> {
        match self.bytes().is_empty() && self.later.is_empty() {
            true => self.file.as_mut(),
            false => None,
        }
    }

    /// The front file moved on (its `off` advanced by the send); once it
    /// is all out, what waited behind it comes to the front.
    pub(crate) fn file_progress(&mut self) {
        let Some(f) = self.file.as_mut() else {
            return;
        };
        if f.off >= f.end {
            self.file = None;
            self.data.clear();
            self.pos = 0;
            std::mem::swap(&mut self.data, &mut self.after);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes to write next.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.data[self.pos..]
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.file.is_some() {
            self.after.extend_from_slice(bytes);
            return;
        }
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
        self.after.clear();
        self.file = None;
        self.pos = 0;
        self.frozen = false;
    }

    fn capacity(&self) -> usize {
        self.data.capacity() + self.later.capacity() + self.after.capacity()
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

    #[test]
    fn bytes_queued_behind_a_file_go_after_it() {
        let file = tempfile::tempfile().unwrap();
        let mut b = OutBuf::default();
        b.push(b"head");
        assert!(b.set_file(super::FilePart {
            file,
            off: 0,
            end: 100
        }));
        b.push(b"next");
        assert_eq!((b.len(), b.in_memory()), (108, 8));
        assert!(b.front_file().is_none(), "the head goes first");
        b.consume(4);
        assert_eq!(b.front_file().map(|f| f.end - f.off), Some(100));
        b.front_file().unwrap().off += 60;
        b.file_progress();
        assert_eq!(b.len(), 44);
        b.front_file().unwrap().off += 40;
        b.file_progress();
        assert_eq!(b.bytes(), b"next");
        assert!(b.front_file().is_none());
    }
}
