//! Request heads for the static web server (`main.rs`): where a head ends,
//! what it asks for, and what is refused before any file is looked at.

/// Longest request head accepted (past it: 431).
pub const MAX_HEAD: usize = 8 << 10;

/// A status and a short reason for a request the server refuses.
pub type Refusal = (u16, &'static str);

/// What a valid request head asks for.
pub struct Request {
    /// `HEAD`: the same headers as `GET`, no body.
    pub head_only: bool,
    /// The request target as sent (`/a%20b.html?x=1`).
    pub target: String,
    /// HTTP/1.1 without `Connection: close`, or 1.0 with `keep-alive`.
    pub keep_alive: bool,
}

/// Where a head ends: `(head length, bytes up to and including the blank line)`.
pub fn head_end(buf: &[u8]) -> Option<(usize, usize)> {
    (0..buf.len()).find_map(|i| match &buf[i..] {
        [b'\n', b'\n', ..] => Some((i, i + 2)),
        [b'\n', b'\r', b'\n', ..] => Some((i, i + 3)),
        _ => None,
    })
}

/// Parses a complete head (request line and header lines, no blank line).
pub fn parse(head: &[u8]) -> Result<Request, Refusal> {
    let text = std::str::from_utf8(head).map_err(|_| (400, "head is not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err((400, "bad request line"));
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err((400, "unsupported HTTP version")),
    };
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Err((405, "only GET and HEAD")),
    };
    let (mut hosts, mut length, mut chunked, mut connection) = (0, None, false, String::new());
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err((400, "bad header line"));
        };
        // `Name :` or a folded line: ambiguous between servers, so refused.
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err((400, "bad header name"));
        }
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "host" => hosts += 1,
            "transfer-encoding" => chunked = true,
            "connection" => connection = value.to_ascii_lowercase(),
            "content-length" if length.is_some() => return Err((400, "two Content-Length")),
            "content-length" => {
                let n: u64 = value.parse().map_err(|_| (400, "bad Content-Length"))?;
                length = Some(n);
            }
            _ => {}
        }
    }
    // The request-smuggling pair: two framings, two answers downstream.
    if chunked && length.is_some() {
        return Err((400, "Content-Length together with Transfer-Encoding"));
    }
    if chunked || length.unwrap_or(0) > 0 {
        return Err((400, "GET and HEAD take no body"));
    }
    if http11 && hosts != 1 {
        return Err((400, "HTTP/1.1 needs exactly one Host"));
    }
    let keep_alive = match connection.as_str() {
        c if c.contains("close") => false,
        c if c.contains("keep-alive") => true,
        _ => http11,
    };
    let target = target.to_string();
    Ok(Request {
        head_only,
        target,
        keep_alive,
    })
}

/// A response head; `Connection` follows `keep_alive`.
pub fn response_head(status: u16, ty: &str, len: u64, keep_alive: bool) -> String {
    let text = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed\r\nAllow: GET, HEAD",
        408 => "Request Timeout",
        _ => "Request Header Fields Too Large",
    };
    let conn = if keep_alive { "keep-alive" } else { "close" };
    format!(
        "HTTP/1.1 {status} {text}\r\nContent-Type: {ty}\r\nContent-Length: {len}\r\nConnection: {conn}\r\n\r\n"
    )
}

/// A plain-text error page: head and body, `Connection` following `keep_alive`.
pub fn error_page(status: u16, why: &str, keep_alive: bool) -> String {
    let body = format!("{status}: {why}\n");
    let ty = "text/plain; charset=utf-8";
    response_head(status, ty, body.len() as u64, keep_alive) + &body
}
