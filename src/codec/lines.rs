//! Lines ended by `\n` or `\r\n`.

use super::{Codec, CodecError};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::testing::*;

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
}
