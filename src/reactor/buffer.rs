//! The output queue of one connection: allocated only while bytes are pending.

/// Bytes the socket refused, waiting for WRITABLE. A `Vec` with a read
/// position: appends go to the end, writes consume from the front, and the
/// consumed prefix is dropped when it is worth the copy.
#[derive(Default, Debug)]
pub(crate) struct OutBuf {
    data: Vec<u8>,
    pos: usize,
}

impl OutBuf {
    pub(crate) fn len(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.data[self.pos..]
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos >= self.data.len() / 2 {
            self.data.drain(..self.pos);
            self.pos = 0;
        }
        self.data.extend_from_slice(bytes);
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.pos += n;
        debug_assert!(self.pos <= self.data.len());
        if self.pos == self.data.len() {
            self.data.clear();
            self.pos = 0;
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
}
