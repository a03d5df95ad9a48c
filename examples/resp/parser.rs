//! RESP2 requests, the framing of the notes' "sticky packets" chapter done
//! the Redis way: a multi-bulk command (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`)
//! says how many arguments follow and how long each is; an inline command
//! (`PING\r\n`, what `nc` sends) is one line split on spaces.
//!
//! Zero-copy and bounded: multi-bulk arguments are spans of the caller's
//! buffer. A partial command is kept by the caller (`Action::Consumed`) and
//! handed back with the next bytes; the parser remembers how far it got, so
//! a bulk of N bytes arriving in pieces costs one length check per piece,
//! never a re-scan. Limits are Redis' own, with its error words.

use crate::lex::{ProtocolError, parse_int, split_args};

/// Longest inline command, and longest `*N` / `$N` header line (Redis' `PROTO_INLINE_MAX_SIZE`).
pub const MAX_INLINE: usize = 64 * 1024;
/// Most arguments one multi-bulk command may announce (Redis before 7 used the same).
pub const MAX_ARGS: i64 = 1024 * 1024;

/// One connection's parse state. Offsets are from the start of the command
/// being parsed, which is where the caller's next buffer starts.
#[derive(Default)]
pub struct Parser {
    /// Most bytes one bulk argument may hold (Redis' `proto-max-bulk-len`).
    pub max_bulk: usize,
    /// Arguments of the current command: spans of the buffer (multi-bulk)
    /// or of `inline` (an inline command, unescaped).
    spans: Vec<(usize, usize)>,
    inline: Vec<u8>,
    from_inline: bool,
    /// Arguments the `*N` header announced; 0 before it is read.
    want: usize,
    /// Bytes of the command parsed so far.
    pos: usize,
    /// Length of the bulk whose `$N` header was read, its bytes not yet all here.
    bulk: Option<usize>,
    /// How far the search for the current line's end has looked in vain:
    /// a line trickling in is searched once, not once per byte.
    seen: usize,
}

/// The arguments of a parsed command, borrowed.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    src: &'a [u8],
    spans: &'a [(usize, usize)],
}

impl<'a> Args<'a> {
    pub fn len(self) -> usize {
        self.spans.len()
    }
    /// Argument `i` (0 is the command name). Panics past `len()`, as a slice does.
    pub fn get(self, i: usize) -> &'a [u8] {
        let (start, end) = self.spans[i];
        &self.src[start..end]
    }
    pub fn iter(self) -> impl Iterator<Item = &'a [u8]> {
        (0..self.len()).map(move |i| self.get(i))
    }
}

impl Parser {
    pub fn new(max_bulk: usize) -> Parser {
        Parser {
            max_bulk,
            ..Parser::default()
        }
    }

    /// Parses one command from `buf` (which starts where the last command
    /// ended). `Ok(Some(n))`: a command of `n` bytes, its arguments in
    /// [`args`](Parser::args) (none for an empty line or `*0`); `Ok(None)`:
    /// incomplete, call again with the same start and more bytes.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        if self.want == 0 && self.pos == 0 {
            self.spans.clear();
            match buf.first() {
                None => return Ok(None),
                Some(b'*') => {}
                Some(_) => return self.parse_inline(buf),
            }
            let Some((line, next)) = self.line(buf, 1, ProtocolError::CountTooBig)? else {
                return Ok(None);
            };
            let count = parse_int(line).ok_or(ProtocolError::InvalidCount)?;
            if !(-1..=MAX_ARGS).contains(&count) {
                return Err(ProtocolError::InvalidCount);
            }
            if count <= 0 {
                return Ok(Some(next)); // `*0` and `*-1`: nothing, as Redis skips them
            }
            self.from_inline = false;
            (self.want, self.pos) = (count as usize, next);
        }
        while self.spans.len() < self.want {
            let len = match self.bulk {
                Some(len) => len,
                None => {
                    let Some(&first) = buf.get(self.pos) else {
                        return Ok(None);
                    };
                    if first != b'$' {
                        return Err(ProtocolError::Expected(first));
                    }
                    let err = ProtocolError::BulkCountTooBig;
                    let Some((line, next)) = self.line(buf, self.pos + 1, err)? else {
                        return Ok(None);
                    };
                    let len = parse_int(line).ok_or(ProtocolError::InvalidBulkLength)?;
                    if len < 0 || len as u64 > self.max_bulk as u64 {
                        return Err(ProtocolError::InvalidBulkLength);
                    }
                    self.pos = next;
                    *self.bulk.insert(len as usize)
                }
            };
            let end = self.pos + len;
            if buf.len() < end + 2 {
                return Ok(None); // one length check per piece of a big bulk
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError::NoCrlfAfterBulk);
            }
            self.spans.push((self.pos, end));
            (self.pos, self.bulk) = (end + 2, None);
        }
        let used = self.pos;
        (self.want, self.pos) = (0, 0);
        Ok(Some(used))
    }

    /// The arguments of the command [`parse`](Parser::parse) returned last;
    /// `buf` is the buffer it was given.
    pub fn args<'a>(&'a self, buf: &'a [u8]) -> Args<'a> {
        let src = if self.from_inline { &self.inline } else { buf };
        Args {
            src,
            spans: &self.spans,
        }
    }

    /// An inline command: a line ending in `\n` (a `\r` before it is
    /// dropped), split as Redis' `sdssplitargs` does.
    fn parse_inline(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let window = buf.len().min(MAX_INLINE + 1);
        let look = self.seen.min(window);
        let Some(nl) = memchr::memchr(b'\n', &buf[look..window]).map(|i| look + i) else {
            if buf.len() > MAX_INLINE {
                return Err(ProtocolError::InlineTooBig);
            }
            self.seen = buf.len();
            return Ok(None);
        };
        self.seen = 0;
        let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
        self.from_inline = true;
        self.inline.clear();
        split_args(line, &mut self.inline, &mut self.spans)?;
        Ok(Some(nl + 1))
    }

    /// The header line starting at `from`: its bytes before `\r`, and where
    /// the next line starts (the byte after `\r` is skipped, as Redis does).
    /// `None` until both are here.
    fn line<'b>(
        &mut self,
        buf: &'b [u8],
        from: usize,
        too_big: ProtocolError,
    ) -> Result<Option<(&'b [u8], usize)>, ProtocolError> {
        let end = buf.len().min(from + MAX_INLINE);
        let look = self.seen.max(from).min(end);
        match find_cr(&buf[look..end]).map(|i| look + i) {
            Some(cr) if cr + 1 < buf.len() => {
                self.seen = 0;
                Ok(Some((&buf[from..cr], cr + 2)))
            }
            Some(cr) => {
                self.seen = cr;
                Ok(None)
            }
            None if end - from >= MAX_INLINE => Err(too_big),
            None => {
                self.seen = end;
                Ok(None)
            }
        }
    }
}

/// The first `\r`: a header line (`*3`, `$5`) is a few bytes, where a plain
/// loop beats `memchr`'s setup; longer ones go to `memchr`.
fn find_cr(hay: &[u8]) -> Option<usize> {
    let head = &hay[..hay.len().min(16)];
    match head.iter().position(|&b| b == b'\r') {
        None if hay.len() > head.len() => memchr::memchr(b'\r', &hay[16..]).map(|i| i + 16),
        found => found,
    }
}
