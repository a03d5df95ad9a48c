//! The pieces the parser is made of, each as Redis has it: integers as
//! `string2ll` reads them, inline lines (`SET k "a b"` typed into `nc`) as
//! `sdssplitargs` splits them, and the protocol errors in Redis' words.

use std::fmt;

/// Splits an inline line into arguments, unescaped into `out`: spaces
/// separate; `"..."` takes `\n \r \t \b \a \\ \" \xHH`; `'...'` takes `\'`.
/// A closing quote must be followed by a space or the end.
pub fn split_args(
    line: &[u8],
    out: &mut Vec<u8>,
    spans: &mut Vec<(usize, usize)>,
) -> Result<(), ProtocolError> {
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            return Ok(());
        }
        let start = out.len();
        let quote = match line[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                Some(q)
            }
            _ => None,
        };
        loop {
            let Some(&c) = line.get(i) else {
                if quote.is_some() {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                break;
            };
            i += 1;
            match quote {
                None if c.is_ascii_whitespace() => break,
                None => out.push(c),
                Some(q) if c == q => {
                    if line.get(i).is_some_and(|n| !n.is_ascii_whitespace()) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    break;
                }
                Some(q) if c == b'\\' && i < line.len() => {
                    let (byte, skip) = unescape(q, &line[i..]);
                    out.push(byte);
                    i += skip;
                }
                Some(_) => out.push(c),
            }
        }
        spans.push((start, out.len()));
    }
}

/// The byte an escape after `\` stands for inside quote `q`, and how many bytes it spans.
fn unescape(q: u8, rest: &[u8]) -> (u8, usize) {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    match (q, rest) {
        (b'"', [b'x', h, l, ..]) if hex(*h).is_some() && hex(*l).is_some() => {
            (hex(*h).unwrap() * 16 + hex(*l).unwrap(), 3)
        }
        (b'"', [c, ..]) => {
            let byte = match c {
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'b' => 8,
                b'a' => 7,
                other => *other,
            };
            (byte, 1)
        }
        (_, [b'\'', ..]) => (b'\'', 1),
        _ => (b'\\', 0),
    }
}

/// Bad input: the client gets `-ERR Protocol error: <this>` and is closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    InlineTooBig,
    CountTooBig,
    BulkCountTooBig,
    InvalidCount,
    InvalidBulkLength,
    Expected(u8),
    NoCrlfAfterBulk,
    UnbalancedQuotes,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ProtocolError::*;
        match self {
            InlineTooBig => write!(f, "too big inline request"),
            CountTooBig => write!(f, "too big mbulk count string"),
            BulkCountTooBig => write!(f, "too big bulk count string"),
            InvalidCount => write!(f, "invalid multibulk length"),
            InvalidBulkLength => write!(f, "invalid bulk length"),
            Expected(c) => write!(f, "expected '$', got '{}'", c.escape_ascii()),
            NoCrlfAfterBulk => write!(f, "expected '\\r\\n' after a bulk argument"),
            UnbalancedQuotes => write!(f, "unbalanced quotes in request"),
        }
    }
}

/// A signed decimal as Redis' `string2ll` takes it: no `+`, no leading
/// zeros, no spaces, within `i64`.
pub fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits {
        [b'0'] if !neg => return Some(0),
        [b'1'..=b'9', ..] if digits.len() <= 19 => {}
        _ => return None,
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        v = v.checked_mul(10)?;
        v = if neg {
            v.checked_sub(d)?
        } else {
            v.checked_add(d)?
        };
    }
    Some(v)
}
