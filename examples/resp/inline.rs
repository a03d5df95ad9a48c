//! Inline commands (`SET k "a b"` typed into `nc`) split into arguments
//! as Redis' `sdssplitargs` does, unescaped into a buffer of their own.

use crate::parser::ProtocolError;

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
