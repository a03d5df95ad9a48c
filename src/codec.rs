//! Framing for a byte stream: TCP has no message boundaries ("sticky
//! packets", 粘包), so a reader must know where one message ends.
//!
//! | codec | a frame is | the notes' twin |
//! |---|---|---|
//! | [`Lines`] | bytes up to `\n` or `\r\n` (terminator stripped), at most `max` | `makefile` + `readline` |
//! | [`LengthPrefixed`] | a u32 big-endian length, then that many bytes | what replaces the handshake |
//! | [`Handshake`] | `Ready\|N\n`, `Start`, or the N body bytes after `Ready\|N` | the notes' `Ready\|N` / `Start` fix |
//!
//! A [`Codec`] decodes from a byte slice and never copies: a frame borrows
//! from the input. Inside a [`Handler`](crate::Handler), [`decode_all`]
//! turns `on_data` input into frames and answers [`Action::Consumed`] for a
//! partial tail, which the reactor keeps (up to
//! [`Config::max_input`](crate::Config::max_input)) and hands back with
//! the next bytes:
//!
//! ```
//! use ioplex::codec::{decode_all, Lines};
//! use ioplex::Action;
//!
//! let mut lines = Lines::new(1024);
//! let mut got = Vec::new();
//! let action = decode_all(&mut lines, b"one\r\ntwo\nthr", |line| {
//!     got.push(line.to_vec());
//!     Action::Continue
//! });
//! assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
//! assert_eq!(action, Ok(Action::Consumed(9))); // "thr" waits for the rest
//! ```
//!
//! Keep a codec's maximum below `Config::max_input`: the reactor closes a
//! connection whose unconsumed tail passes `max_input` before the codec
//! could say why.

use crate::handler::Action;
use std::fmt;
use std::io;

/// Why a stream could not be decoded (or a frame encoded). The connection
/// that sent it should get an error and be closed; no other is affected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodecError {
    /// A line passed the maximum before its terminator came.
    LineTooLong {
        /// The maximum line length, terminator excluded.
        max: usize,
    },
    /// A length prefix announced more than the maximum frame.
    FrameTooLarge {
        /// The announced length.
        len: u64,
        /// The maximum frame length.
        max: usize,
    },
    /// Bytes that do not follow the protocol.
    Malformed(&'static str),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::LineTooLong { max } => write!(f, "line longer than {max} bytes"),
            CodecError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes, over the maximum of {max}")
            }
            CodecError::Malformed(what) => write!(f, "malformed input: {what}"),
        }
    }
}

impl std::error::Error for CodecError {}

impl From<CodecError> for io::Error {
    fn from(e: CodecError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// A framing: decode frames from the front of a byte slice, encode frames.
///
/// ```
/// use ioplex::codec::{Codec, LengthPrefixed};
///
/// let mut codec = LengthPrefixed::new(1 << 20);
/// let mut wire = Vec::new();
/// codec.encode(b"hello", &mut wire)?;
/// assert_eq!(wire, b"\0\0\0\x05hello");
/// assert_eq!(codec.decode(&wire[..6])?, None); // need more
/// assert_eq!(codec.decode(&wire)?, Some((&b"hello"[..], 9)));
/// # Ok::<(), ioplex::codec::CodecError>(())
/// ```
pub trait Codec {
    /// A decoded frame; it may borrow from the decoded bytes.
    type Frame<'a>;

    /// Decodes one frame from the front of `buf`: `Ok(Some((frame,
    /// consumed)))`, `Ok(None)` when `buf` holds only part of a frame (call
    /// again with more), or an error that no more input can repair.
    ///
    /// A frame may consume 0 bytes (the empty body after `Ready|0`) only if
    /// decoding it changes the codec's state, so the next call moves on.
    fn decode<'a>(&mut self, buf: &'a [u8])
    -> Result<Option<(Self::Frame<'a>, usize)>, CodecError>;

    /// Appends `frame`, framed, to `out`.
    fn encode(&mut self, frame: Self::Frame<'_>, out: &mut Vec<u8>) -> Result<(), CodecError>;
}

/// Decodes every whole frame in `data`, calling `on_frame` for each, and
/// says what `on_data` should return: `Continue` when all was used,
/// `Consumed(n)` when a partial frame follows byte `n`, or the first
/// `Close`/`Abort` that `on_frame` returned (decoding stops there).
///
/// An `Err` means the input broke the protocol: tell that peer and close it.
pub fn decode_all<C: Codec>(
    codec: &mut C,
    data: &[u8],
    mut on_frame: impl FnMut(C::Frame<'_>) -> Action,
) -> Result<Action, CodecError> {
    let mut used = 0;
    loop {
        let Some((frame, n)) = codec.decode(&data[used..])? else {
            return Ok(match used == data.len() {
                true => Action::Continue,
                false => Action::Consumed(used),
            });
        };
        used += n;
        match on_frame(frame) {
            Action::Continue | Action::Consumed(_) => {}
            stop => return Ok(stop),
        }
    }
}

/// Lines ended by `\n` or `\r\n`; the frame is the line without its
/// terminator. A line of more than `max` bytes is an error, reported as soon
/// as it is certain (not after buffering the whole line).
///
/// ```
/// use ioplex::codec::{Codec, CodecError, Lines};
/// let mut lines = Lines::new(4);
/// assert_eq!(lines.decode(b"abcd\r\n")?, Some((&b"abcd"[..], 6)));
/// assert_eq!(lines.decode(b"abcd\r")?, None);
/// assert_eq!(lines.decode(b"abcde"), Err(CodecError::LineTooLong { max: 4 }));
/// # Ok::<(), CodecError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Lines {
    max: usize,
}

impl Lines {
    /// Lines of at most `max` bytes, terminator excluded.
    pub fn new(max: usize) -> Lines {
        Lines { max }
    }
}

impl Codec for Lines {
    type Frame<'a> = &'a [u8];

    fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(&'a [u8], usize)>, CodecError> {
        let too_long = Err(CodecError::LineTooLong { max: self.max });
        // A valid line with its terminator fits in max + 2 bytes: look no further.
        let window = &buf[..buf.len().min(self.max.saturating_add(2))];
        match window.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let line = buf[..i].strip_suffix(b"\r").unwrap_or(&buf[..i]);
                if line.len() > self.max {
                    return too_long;
                }
                Ok(Some((line, i + 1)))
            }
            // Without a '\n' the line is at least len - 1 bytes (a last '\r' may
            // be half of "\r\n"), and exactly len when the last byte is not '\r'.
            None if buf.len() > self.max.saturating_add(1) => too_long,
            None if buf.len() == self.max.saturating_add(1) && buf.last() != Some(&b'\r') => {
                too_long
            }
            None => Ok(None),
        }
    }

    fn encode(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        if line.len() > self.max {
            return Err(CodecError::LineTooLong { max: self.max });
        }
        if line.contains(&b'\n') {
            return Err(CodecError::Malformed("a line to send contains '\\n'"));
        }
        out.extend_from_slice(line);
        out.push(b'\n');
        Ok(())
    }
}

/// Frames of a u32 big-endian length and then that many bytes. A length
/// over `max` is an error as soon as the 4 header bytes are in, before any
/// byte of the body is waited for or buffered.
///
/// ```
/// use ioplex::codec::{Codec, CodecError, LengthPrefixed};
/// let mut codec = LengthPrefixed::new(10);
/// assert_eq!(
///     codec.decode(b"\xff\xff\xff\xff"),
///     Err(CodecError::FrameTooLarge { len: u32::MAX as u64, max: 10 })
/// );
/// ```
#[derive(Clone, Debug)]
pub struct LengthPrefixed {
    max: usize,
}

impl LengthPrefixed {
    /// Bytes of the length header.
    pub const HEADER: usize = 4;

    /// Frames of at most `max` bytes (header excluded).
    pub fn new(max: usize) -> LengthPrefixed {
        LengthPrefixed { max }
    }

    /// The header for a body of `len` bytes, to send header and body with
    /// one `Ctx::send_parts` and no copy.
    pub fn header(&self, len: usize) -> Result<[u8; 4], CodecError> {
        if len > self.max || len > u32::MAX as usize {
            return Err(CodecError::FrameTooLarge {
                len: len as u64,
                max: self.max,
            });
        }
        Ok((len as u32).to_be_bytes())
    }
}

impl Codec for LengthPrefixed {
    type Frame<'a> = &'a [u8];

    fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(&'a [u8], usize)>, CodecError> {
        let Some(head) = buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*head) as usize;
        if len > self.max {
            return Err(CodecError::FrameTooLarge {
                len: len as u64,
                max: self.max,
            });
        }
        let end = Self::HEADER + len;
        Ok(buf.get(Self::HEADER..end).map(|body| (body, end)))
    }

    fn encode(&mut self, body: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(&self.header(body.len())?);
        out.extend_from_slice(body);
        Ok(())
    }
}

/// A message of the notes' handshake (note 003): the server announces
/// `Ready|N`, the client answers `Start`, the server sends N bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hs<'a> {
    /// `Ready|N\n`: N body bytes will follow `Start`.
    Ready(usize),
    /// `Start`: send the body.
    Start,
    /// The N bytes announced by the last `Ready|N`.
    Body(&'a [u8]),
}

/// The notes' `Ready|N` / `Start` handshake as a codec.
///
/// The notes send `Ready|N` bare and trust the peer's `recv(1024)` to return
/// it alone, which is the very sticky-packet assumption the handshake is
/// meant to remove: `Ready|1` could be all of `Ready|12`. Here `Ready|N` ends
/// with `\n` (the notes' client parses it unchanged: `int()` ignores the
/// newline). `Start` is the notes' bare 5 bytes. After decoding `Ready|N`,
/// the codec's next frame is the N-byte [`Hs::Body`].
///
/// ```
/// use ioplex::codec::{Codec, Handshake, Hs};
/// let mut hs = Handshake::new(1 << 20);
/// assert_eq!(hs.decode(b"Ready|5\nhello")?, Some((Hs::Ready(5), 8)));
/// assert_eq!(hs.decode(b"hel")?, None);
/// assert_eq!(hs.decode(b"hello")?, Some((Hs::Body(b"hello"), 5)));
/// assert_eq!(hs.decode(b"Start")?, Some((Hs::Start, 5)));
/// # Ok::<(), ioplex::codec::CodecError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Handshake {
    max: usize,
    /// Length of the body announced by the last `Ready|N`, not yet decoded.
    body: Option<usize>,
}

impl Handshake {
    const READY: &'static [u8] = b"Ready|";
    const START: &'static [u8] = b"Start";

    /// A handshake whose bodies are at most `max` bytes.
    pub fn new(max: usize) -> Handshake {
        Handshake { max, body: None }
    }

    fn too_large(&self, len: u64) -> CodecError {
        CodecError::FrameTooLarge { len, max: self.max }
    }
}

/// `Some(true)`: `buf` starts with `tag`; `Some(false)`: `buf` is a proper prefix of it.
fn starts(buf: &[u8], tag: &[u8]) -> Option<bool> {
    let n = buf.len().min(tag.len());
    (buf[..n] == tag[..n]).then_some(n == tag.len())
}

impl Codec for Handshake {
    type Frame<'a> = Hs<'a>;

    fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Hs<'a>, usize)>, CodecError> {
        if let Some(n) = self.body {
            return Ok(buf.get(..n).map(|body| {
                self.body = None;
                (Hs::Body(body), n)
            }));
        }
        match (starts(buf, Self::START), starts(buf, Self::READY)) {
            (Some(true), _) => return Ok(Some((Hs::Start, Self::START.len()))),
            (_, Some(true)) => {}
            (Some(false), _) | (_, Some(false)) => return Ok(None),
            (None, None) => return Err(CodecError::Malformed("expected `Ready|N` or `Start`")),
        }
        let digits = &buf[Self::READY.len()..];
        let mut len: u64 = 0;
        for (i, &b) in digits.iter().enumerate() {
            match b {
                b'0'..=b'9' => {
                    len = len.saturating_mul(10).saturating_add(u64::from(b - b'0'));
                    if len > self.max as u64 {
                        return Err(self.too_large(len));
                    }
                }
                b'\n' | b'\r' if i == 0 => return Err(CodecError::Malformed("`Ready|` without N")),
                b'\n' => return Ok(Some(self.ready(len, Self::READY.len() + i + 1))),
                b'\r' => match digits.get(i + 1) {
                    None => return Ok(None),
                    Some(b'\n') => return Ok(Some(self.ready(len, Self::READY.len() + i + 2))),
                    Some(_) => break,
                },
                _ => break,
            }
        }
        if digits.iter().all(u8::is_ascii_digit) {
            return Ok(None);
        }
        Err(CodecError::Malformed("`Ready|N` where N is not a number"))
    }

    fn encode(&mut self, frame: Hs<'_>, out: &mut Vec<u8>) -> Result<(), CodecError> {
        match frame {
            Hs::Ready(n) if n > self.max => return Err(self.too_large(n as u64)),
            Hs::Ready(n) => {
                out.extend_from_slice(Self::READY);
                out.extend_from_slice(n.to_string().as_bytes());
                out.push(b'\n');
            }
            Hs::Start => out.extend_from_slice(Self::START),
            Hs::Body(b) => out.extend_from_slice(b),
        }
        Ok(())
    }
}

impl Handshake {
    fn ready(&mut self, len: u64, used: usize) -> (Hs<'static>, usize) {
        self.body = Some(len as usize);
        (Hs::Ready(len as usize), used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Owned copy of a frame, to compare decodes made from different buffers.
    trait Own: Codec {
        fn own(f: Self::Frame<'_>) -> String;
    }
    impl Own for Lines {
        fn own(f: &[u8]) -> String {
            format!("{f:?}")
        }
    }
    impl Own for LengthPrefixed {
        fn own(f: &[u8]) -> String {
            format!("{f:?}")
        }
    }
    impl Own for Handshake {
        fn own(f: Hs<'_>) -> String {
            format!("{f:?}")
        }
    }

    /// Feeds `chunks` as the reactor would: unconsumed bytes are kept and
    /// handed back with the next chunk.
    fn feed<C: Own>(mut codec: C, chunks: &[&[u8]]) -> Result<Vec<String>, CodecError> {
        let mut held = Vec::new();
        let mut frames = Vec::new();
        for chunk in chunks {
            held.extend_from_slice(chunk);
            let action = decode_all(&mut codec, &held, |f| {
                frames.push(C::own(f));
                Action::Continue
            })?;
            match action {
                Action::Continue => held.clear(),
                Action::Consumed(n) => drop(held.drain(..n)),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(held.is_empty(), "left over: {held:?}");
        Ok(frames)
    }

    /// Every split of `wire` into two and three chunks decodes as the whole.
    fn every_split_gives_the_same_frames<C: Own + Clone>(codec: C, wire: &[u8]) -> Vec<String> {
        let whole = feed(codec.clone(), &[wire]).unwrap();
        for i in 0..=wire.len() {
            let (a, b) = wire.split_at(i);
            assert_eq!(feed(codec.clone(), &[a, b]).unwrap(), whole, "split at {i}");
            for j in i..=wire.len() {
                let parts = [&wire[..i], &wire[i..j], &wire[j..]];
                assert_eq!(feed(codec.clone(), &parts).unwrap(), whole, "split {i},{j}");
            }
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(feed(codec, &bytes).unwrap(), whole, "byte by byte");
        whole
    }

    #[test]
    fn lines_split_at_every_byte_and_glued_give_the_same_lines() {
        let wire = b"hello\r\nworld\n\n\r\nx\ry\n\xe4\xbd\xa0\xe5\xa5\xbd\r\n";
        let frames = every_split_gives_the_same_frames(Lines::new(8), wire);
        let want: Vec<String> = [
            &b"hello"[..],
            b"world",
            b"",
            b"",
            b"x\ry",
            "你好".as_bytes(),
        ]
        .iter()
        .map(|l| format!("{l:?}"))
        .collect();
        assert_eq!(frames, want);
    }

    #[test]
    fn a_line_of_exactly_max_bytes_passes_at_every_split() {
        every_split_gives_the_same_frames(Lines::new(4), b"abcd\r\nabcd\nab\r\n");
    }

    #[test]
    fn an_over_long_line_is_an_error_at_every_split_and_early() {
        let wire = b"ok\nabcdefgh\n";
        for i in 0..=wire.len() {
            let (a, b) = wire.split_at(i);
            let r = feed(Lines::new(4), &[a, b]);
            assert_eq!(r, Err(CodecError::LineTooLong { max: 4 }), "split at {i}");
        }
        // Detected before the terminator: after max + 1 bytes that cannot be a line.
        assert_eq!(
            Lines::new(4).decode(b"abcde"),
            Err(CodecError::LineTooLong { max: 4 })
        );
        assert_eq!(Lines::new(4).decode(b"abcd\r"), Ok(None));
        assert_eq!(
            Lines::new(4).decode(b"abcd\r\r"),
            Err(CodecError::LineTooLong { max: 4 })
        );
    }

    #[test]
    fn lines_encode_and_decode_round_trip() {
        let mut c = Lines::new(10);
        let mut out = Vec::new();
        c.encode(b"one", &mut out).unwrap();
        c.encode(b"", &mut out).unwrap();
        assert_eq!(out, b"one\n\n");
        assert!(c.encode(b"a\nb", &mut out).is_err());
        assert_eq!(
            c.encode(b"0123456789x", &mut out),
            Err(CodecError::LineTooLong { max: 10 })
        );
    }

    #[test]
    fn length_prefixed_split_at_every_byte_and_glued_give_the_same_frames() {
        let mut c = LengthPrefixed::new(16);
        let mut wire = Vec::new();
        for body in [&b"hello"[..], b"", b"0123456789abcdef", "你好".as_bytes()] {
            c.encode(body, &mut wire).unwrap();
        }
        let frames = every_split_gives_the_same_frames(c, &wire);
        assert_eq!(frames.len(), 4);
        assert_eq!(frames[2], format!("{:?}", b"0123456789abcdef"));
    }

    #[test]
    fn an_oversized_length_is_rejected_from_the_header_alone() {
        let mut c = LengthPrefixed::new(16);
        assert_eq!(
            c.decode(b"\0\0\0\x11"),
            Err(CodecError::FrameTooLarge { len: 17, max: 16 })
        );
        assert_eq!(c.decode(b"\0\0\0"), Ok(None));
        assert!(c.encode(&[0; 17], &mut Vec::new()).is_err());
        assert!(c.header(17).is_err());
        assert_eq!(c.header(16), Ok([0, 0, 0, 16]));
        let wire = b"\0\0\0\x02ok\x7f\xff\xff\xff";
        for i in 0..=wire.len() {
            let (a, b) = wire.split_at(i);
            assert!(matches!(
                feed(LengthPrefixed::new(16), &[a, b]),
                Err(CodecError::FrameTooLarge { .. })
            ));
        }
    }

    #[test]
    fn handshake_split_at_every_byte_and_glued_gives_the_same_messages() {
        let mut c = Handshake::new(100);
        let mut wire = Vec::new();
        // Both directions' messages in one stream: the codec decodes either.
        for m in [
            Hs::Ready(5),
            Hs::Body(b"He|lo"),
            Hs::Start,
            Hs::Ready(0),
            Hs::Start,
        ] {
            c.encode(m, &mut wire).unwrap();
        }
        wire.extend_from_slice(b"Ready|12\r\nReady|Start!");
        wire.extend_from_slice(b"Start");
        let frames = every_split_gives_the_same_frames(Handshake::new(100), &wire);
        let want = [
            "Ready(5)",
            "Body([72, 101, 124, 108, 111])",
            "Start",
            "Ready(0)",
            "Body([])",
            "Start",
            "Ready(12)",
            "Body([82, 101, 97, 100, 121, 124, 83, 116, 97, 114, 116, 33])",
            "Start",
        ];
        assert_eq!(frames, want);
    }

    #[test]
    fn handshake_rejects_garbage_and_oversized_lengths() {
        let mut c = Handshake::new(100);
        assert!(matches!(c.decode(b"Hello"), Err(CodecError::Malformed(_))));
        assert!(matches!(
            c.decode(b"Ready|1x\n"),
            Err(CodecError::Malformed(_))
        ));
        assert!(matches!(
            c.decode(b"Ready|\n"),
            Err(CodecError::Malformed(_))
        ));
        assert_eq!(
            c.decode(b"Ready|101"),
            Err(CodecError::FrameTooLarge { len: 101, max: 100 })
        );
        // A huge N fails on its digits, long before a terminator or any body.
        let r = c.decode(b"Ready|99999999999999999999999999");
        assert!(matches!(r, Err(CodecError::FrameTooLarge { .. })));
        assert_eq!(c.decode(b"Rea"), Ok(None));
        assert_eq!(c.decode(b"Ready|10"), Ok(None));
        assert_eq!(c.decode(b"Ready|10\r"), Ok(None));
    }
}
