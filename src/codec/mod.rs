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

use crate::action::Action;
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

mod handshake;
mod length;
mod lines;

pub use handshake::{Handshake, Hs};
pub use length::LengthPrefixed;
pub use lines::Lines;

/// What the codecs' tests share: feeding a stream in pieces as the reactor does.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Owned copy of a frame, to compare decodes made from different buffers.
    pub(crate) trait Own: Codec {
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
    pub(crate) fn feed<C: Own>(mut codec: C, chunks: &[&[u8]]) -> Result<Vec<String>, CodecError> {
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
    pub(crate) fn every_split_gives_the_same_frames<C: Own + Clone>(
        codec: C,
        wire: &[u8],
    ) -> Vec<String> {
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
}
