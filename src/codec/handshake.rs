//! The notes' `Ready|N` / `Start` handshake (note 003) as a codec.

use super::{Codec, CodecError};

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
    use crate::codec::testing::*;

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
