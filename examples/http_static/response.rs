//! Response heads for the static web server (`main.rs`): the validators a
//! file goes out with (`ETag`, `Last-Modified`), its type (`mime_guess`),
//! 200/206/304 heads, error pages, and the 503 the loop sends when full.

use std::fmt::Write;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What every response about one file says of it.
pub struct Meta {
    pub len: u64,
    /// Strong: inode, length and modification time in nanoseconds.
    pub etag: String,
    /// The modification time in whole seconds (what `Last-Modified` says).
    pub modified: SystemTime,
    pub ty: String,
}

impl Meta {
    /// The metadata of an open file; `name` (as requested) gives its type.
    pub fn of(m: &Metadata, name: &Path) -> Meta {
        let (secs, nanos) = (m.mtime().max(0) as u64, m.mtime_nsec().max(0) as u64);
        let etag = format!("\"{:x}-{:x}-{:x}.{:x}\"", m.ino(), m.len(), secs, nanos);
        // httpdate takes 1970..=9999 only: clamp what a `touch -d` can set.
        let modified = UNIX_EPOCH + Duration::from_secs(secs.min(253_402_300_799));
        let ty = content_type(name);
        Meta {
            len: m.len(),
            etag,
            modified,
            ty,
        }
    }
}

/// `Content-Type` from the extension; text is UTF-8. Source and notes
/// files a browser would download show as plain text.
fn content_type(name: &Path) -> String {
    let ext = name.extension().and_then(|e| e.to_str()).unwrap_or("");
    let ext = ext.to_ascii_lowercase();
    let ty = match ext.as_str() {
        "md" | "toml" | "rs" | "lock" => "text/plain",
        _ => mime_guess::from_ext(&ext)
            .first_raw()
            .unwrap_or("application/octet-stream"),
    };
    match ty.starts_with("text/") || ty == "application/javascript" {
        true => format!("{ty}; charset=utf-8"),
        false => ty.to_string(),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    }
}

/// A head: the status line, `fields` (each ending in CRLF), `Date` and
/// `Connection` following `keep_alive`.
fn head(status: u16, fields: &str, keep_alive: bool) -> String {
    let date = httpdate::fmt_http_date(SystemTime::now());
    let conn = if keep_alive { "keep-alive" } else { "close" };
    let text = reason(status);
    format!("HTTP/1.1 {status} {text}\r\n{fields}Date: {date}\r\nConnection: {conn}\r\n\r\n")
}

/// The validators of `m` as header lines.
fn validators(m: &Meta) -> String {
    let modified = httpdate::fmt_http_date(m.modified);
    format!("ETag: {}\r\nLast-Modified: {modified}\r\n", m.etag)
}

/// A 200 for the whole file, or a 206 for bytes `start..end` of it.
pub fn file_head(m: &Meta, (start, end): (u64, u64), keep_alive: bool) -> String {
    let mut f = format!(
        "Content-Type: {}\r\nContent-Length: {}\r\n",
        m.ty,
        end - start
    );
    f += &validators(m);
    // The type is ours to say: a browser must not guess a script from bytes.
    f += "Accept-Ranges: bytes\r\nX-Content-Type-Options: nosniff\r\n";
    let whole = (start, end) == (0, m.len);
    if !whole {
        let _ = write!(f, "Content-Range: bytes {start}-{}/{}\r\n", end - 1, m.len);
    }
    head(if whole { 200 } else { 206 }, &f, keep_alive)
}

/// A 304: the client's copy is current.
pub fn not_modified(m: &Meta, keep_alive: bool) -> String {
    head(304, &validators(m), keep_alive)
}

/// A 416: no byte of the file is in the range asked for.
pub fn unsatisfiable(m: &Meta, keep_alive: bool) -> String {
    let range = format!("Content-Range: bytes */{}\r\n", m.len);
    page(416, "range not satisfiable", &range, keep_alive)
}

/// A 301 to the directory's URL with its trailing slash.
pub fn redirect(location: &str, keep_alive: bool) -> String {
    page(
        301,
        location,
        &format!("Location: {location}\r\n"),
        keep_alive,
    )
}

/// A plain-text error page: head and body, `Connection` following `keep_alive`.
pub fn error_page(status: u16, why: &str, keep_alive: bool) -> String {
    let fields = match status {
        405 => "Allow: GET, HEAD\r\n",
        503 => "Retry-After: 1\r\n",
        _ => "",
    };
    page(status, why, fields, keep_alive)
}

fn page(status: u16, why: &str, fields: &str, keep_alive: bool) -> String {
    let body = format!("{status}: {why}\n");
    let ty = "Content-Type: text/plain; charset=utf-8";
    let fields = format!("{ty}\r\nContent-Length: {}\r\n{fields}", body.len());
    head(status, &fields, keep_alive) + &body
}

/// What the loop sends a client it turns away (`max_connections`,
/// `max_connections_per_ip`) before closing: an HTTP 503, not a bare line.
pub fn busy() -> Vec<u8> {
    let body = "503: too many connections, try again\n";
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
