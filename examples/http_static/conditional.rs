//! What to send of a file (`main.rs`): nothing when the client's copy is
//! current (`If-None-Match`, `If-Modified-Since`: 304), one range of it
//! (`Range`: 206, or 416 when no byte of it exists), or all of it. Several
//! ranges get the whole file (200), as RFC 9110 allows.

use crate::request::Request;
use crate::response::{self, Meta};
use std::time::SystemTime;

/// The head answering `r` about the file `m` describes, and the bytes of
/// the file to send after it (none for `HEAD`, 304 and 416).
pub fn respond(r: &Request, m: &Meta, keep_alive: bool) -> (String, Option<(u64, u64)>) {
    match decide(r, m) {
        Answer::NotModified => (response::not_modified(m, keep_alive), None),
        Answer::Unsatisfiable => (response::unsatisfiable(m, keep_alive), None),
        Answer::Send(start, end) => {
            let head = response::file_head(m, (start, end), keep_alive);
            (head, (!r.head_only).then_some((start, end)))
        }
    }
}

/// The answer about one file.
enum Answer {
    NotModified,
    /// Bytes `start..end`: the whole file is `(0, len)`.
    Send(u64, u64),
    Unsatisfiable,
}

/// Decides what `r` gets of the file `m` describes.
fn decide(r: &Request, m: &Meta) -> Answer {
    let current = match (&r.if_none_match, &r.if_modified_since) {
        (Some(tags), _) => tags.split(',').any(|t| weak_eq(t, &m.etag)),
        (None, Some(date)) => date_of(date).is_some_and(|d| m.modified <= d),
        (None, None) => false,
    };
    if current {
        return Answer::NotModified;
    }
    let whole = Answer::Send(0, m.len);
    // Ranges are defined for GET only; an `If-Range` that no longer holds
    // asks for the whole (new) file.
    let (false, Some(range)) = (r.head_only, &r.range) else {
        return whole;
    };
    if r.if_range.as_deref().is_some_and(|v| !if_range_holds(v, m)) {
        return whole;
    }
    range_of(range, m.len).unwrap_or(whole)
}

/// `If-None-Match` comparison: `W/` is ignored, `*` matches any file.
fn weak_eq(tag: &str, etag: &str) -> bool {
    let tag = tag.trim();
    tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag
}

/// `If-Range`: our strong `ETag` exactly, or our `Last-Modified` date.
fn if_range_holds(v: &str, m: &Meta) -> bool {
    match v.starts_with('"') || v.starts_with("W/") {
        true => v == m.etag,
        false => date_of(v) == Some(m.modified),
    }
}

fn date_of(v: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(v.trim()).ok()
}

/// One `bytes=` range: `Some(Send)` or `Some(Unsatisfiable)`; `None` (send
/// the whole file) for another unit, bad syntax or several ranges.
fn range_of(v: &str, len: u64) -> Option<Answer> {
    let (unit, spec) = v.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return None;
    }
    let (first, last) = spec.trim().split_once('-')?;
    let num = |s: &str| match s.bytes().all(|b| b.is_ascii_digit()) {
        true => s.parse::<u64>().ok(),
        false => None,
    };
    let (start, end) = match (first, last) {
        ("", n) => {
            let n = num(n)?; // the last n bytes
            (len.saturating_sub(n), if n == 0 { 0 } else { len })
        }
        (a, "") => (num(a)?, len),
        (a, b) => {
            let (a, b) = (num(a)?, num(b)?);
            if b < a {
                return None;
            }
            (a, b.saturating_add(1).min(len))
        }
    };
    Some(match start < end {
        true => Answer::Send(start, end),
        false => Answer::Unsatisfiable,
    })
}
