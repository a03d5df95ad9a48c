//! Frames of a u32 big-endian length, then the body.

use super::{Codec, CodecError};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::testing::*;

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
}
