//! RESP2 replies, and the RESP3 forms of nil, map and set for clients
//! that asked with `HELLO 3` (redis-py 8 does by default). Every reply to
//! one read goes into the loop's one reply buffer and leaves in one `send`
//! when the read is answered: sixteen pipelined commands cost one system
//! call, not sixteen. Integers are written with `itoa` (no allocation), and
//! a big bulk value goes out with `send_parts` straight from the store,
//! never copied into the buffer.

use ioplex::Ctx;

/// Past this many buffered bytes the buffer is sent before the read is done.
const FLUSH_AT: usize = 64 * 1024;
/// A bulk value this long is sent from where it lies instead of copied.
const SEND_DIRECT: usize = 16 * 1024;

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const SYNTAX: &str = "ERR syntax error";

/// Replies for the connection of `ctx`, gathered in `buf`.
pub struct Out<'a, 'c> {
    buf: &'a mut Vec<u8>,
    ctx: &'a mut Ctx<'c>,
    /// The client said `HELLO 3`: nil, maps and sets in their RESP3 forms.
    pub resp3: bool,
}

impl<'a, 'c> Out<'a, 'c> {
    pub fn new(buf: &'a mut Vec<u8>, ctx: &'a mut Ctx<'c>, resp3: bool) -> Out<'a, 'c> {
        buf.clear();
        Out { buf, ctx, resp3 }
    }

    /// The loop, for what is not a reply (how much is queued, pausing).
    pub fn ctx(&mut self) -> &mut Ctx<'c> {
        self.ctx
    }

    /// Sends what is gathered (the caller does at the end of each read).
    pub fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.ctx.send(self.buf);
            self.buf.clear();
        }
    }

    /// Sends early when the buffer has grown big: it stays under [`FLUSH_AT`].
    pub fn flush_if_big(&mut self) {
        if self.buf.len() >= FLUSH_AT {
            self.flush();
        }
    }

    /// `+OK`, `+PONG`: a status line.
    pub fn simple(&mut self, s: &str) {
        self.line(b'+', s.as_bytes());
    }

    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// `-ERR ...`: `msg` starts with its code (`ERR`, `WRONGTYPE`).
    pub fn error(&mut self, msg: &str) {
        self.line(b'-', msg.as_bytes());
    }

    /// An error built from pieces; `\r` and `\n` in them become spaces (as
    /// Redis does), so a client's bytes cannot end the line early.
    pub fn error_parts(&mut self, parts: &[&[u8]]) {
        self.buf.push(b'-');
        for part in parts {
            let safe = part
                .iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b });
            self.buf.extend(safe);
        }
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `-ERR wrong number of arguments for 'get' command`.
    pub fn arity_error(&mut self, name: &str) {
        let parts: [&[u8]; 3] = [
            b"ERR wrong number of arguments for '",
            name.as_bytes(),
            b"' command",
        ];
        self.error_parts(&parts);
    }

    pub fn int(&mut self, n: i64) {
        self.header(b':', n);
    }

    /// A bulk string; one of [`SEND_DIRECT`] bytes or more goes out by itself.
    pub fn bulk(&mut self, data: &[u8]) {
        self.header(b'$', data.len() as i64);
        if data.len() >= SEND_DIRECT {
            self.ctx.send_parts(&[self.buf, data, b"\r\n"]);
            self.buf.clear();
            return;
        }
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An integer sent as a bulk string (GET of a counter).
    pub fn bulk_int(&mut self, n: i64) {
        let mut digits = itoa::Buffer::new();
        self.bulk(digits.format(n).as_bytes());
    }

    /// `$-1`: no such key (RESP3: `_`).
    pub fn nil(&mut self) {
        let nil: &[u8] = if self.resp3 { b"_\r\n" } else { b"$-1\r\n" };
        self.buf.extend_from_slice(nil);
    }

    /// `*-1`: no such key, where an array was asked for (RESP3: `_`).
    pub fn nil_array(&mut self) {
        let nil: &[u8] = if self.resp3 { b"_\r\n" } else { b"*-1\r\n" };
        self.buf.extend_from_slice(nil);
    }

    /// `*N`: N replies follow.
    pub fn array(&mut self, n: usize) {
        self.header(b'*', n as i64);
    }

    /// N key-value pairs follow: `%N` in RESP3, a flat array of 2N in RESP2.
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'%', n as i64)
        } else {
            self.array(2 * n)
        }
    }

    /// N members of a set follow: `~N` in RESP3, an array in RESP2.
    pub fn set(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'~', n as i64)
        } else {
            self.array(n)
        }
    }

    fn header(&mut self, kind: u8, n: i64) {
        let mut digits = itoa::Buffer::new();
        self.line(kind, digits.format(n).as_bytes());
    }

    fn line(&mut self, kind: u8, s: &[u8]) {
        self.buf.push(kind);
        self.buf.extend_from_slice(s);
        self.buf.extend_from_slice(b"\r\n");
    }
}
