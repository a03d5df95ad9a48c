//! Request heads for the static web server (`main.rs`): where one ends, what
//! it asks for, and what is refused before any file is looked at.
//!
//! Heads are parsed with `httparse`, which holds header names to RFC 9112's
//! token rules: `Content-Length\x0b: 5` (or `\x01`, a no-break space) is a
//! 400 and a close, never a header ignored while its body is read as the
//! next request.

/// Longest request head accepted (past it: 431), however it arrives.
pub const MAX_HEAD: usize = 8 << 10;
/// Most header fields in one head (past it: 431).
const MAX_FIELDS: usize = 64;

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
    /// The validators and range asked about (`conditional.rs`).
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    pub if_range: Option<String>,
    pub range: Option<String>,
}

/// What the start of a connection's unanswered input holds.
pub enum Head {
    /// No complete head yet (and not too long for one).
    Partial,
    /// A head of this many bytes: what it asks for, or why it is refused.
    Complete(usize, Result<Request, Refusal>),
}

/// Looks for a complete head at the start of `buf`. `scanned` says how far
/// earlier calls looked without finding its end, so a head sent a byte at
/// a time is scanned once, not once per byte; it is 0 for a new head.
pub fn next(buf: &[u8], scanned: &mut usize) -> Head {
    let limit = buf.len().min(MAX_HEAD + 4);
    let mut from = scanned.saturating_sub(2);
    while let Some(end) = blank_line(&buf[..limit], from) {
        if end > MAX_HEAD {
            break;
        }
        let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut req = httparse::Request::new(&mut fields);
        let (len, result) = match req.parse(&buf[..end]) {
            Ok(httparse::Status::Complete(len)) => (len, check(&req)),
            // Empty lines before the request line (allowed): look further.
            Ok(httparse::Status::Partial) => {
                from = end;
                continue;
            }
            Err(httparse::Error::TooManyHeaders) => (end, Err((431, "too many header fields"))),
            Err(e) => (end, Err((400, refusal(e)))),
        };
        *scanned = 0;
        return Head::Complete(len, result);
    }
    *scanned = limit;
    if buf.len() > MAX_HEAD {
        let why = (431, "request head too large");
        return Head::Complete(buf.len(), Err(why));
    }
    Head::Partial
}

/// The end of the first blank line (`\n\n` or `\n\r\n`) at or after `from`.
fn blank_line(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len()).find_map(|i| match &buf[i..] {
        [b'\n', b'\n', ..] => Some(i + 2),
        [b'\n', b'\r', b'\n', ..] => Some(i + 3),
        _ => None,
    })
}

fn refusal(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "bad header name",
        httparse::Error::HeaderValue => "bad header value",
        httparse::Error::Version => "unsupported HTTP version",
        httparse::Error::NewLine => "bad line ending",
        _ => "bad request line",
    }
}

/// What a parsed head asks for, or why it is refused.
fn check(req: &httparse::Request<'_, '_>) -> Result<Request, Refusal> {
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err((400, "bad request line"));
    };
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Err((405, "only GET and HEAD")),
    };
    let http11 = minor == 1;
    let mut r = Request {
        head_only,
        target: target.to_string(),
        keep_alive: http11,
        if_none_match: None,
        if_modified_since: None,
        if_range: None,
        range: None,
    };
    let (mut hosts, mut length, mut chunked) = (0, None, false);
    for f in req.headers.iter() {
        let value = std::str::from_utf8(f.value).ok().map(str::trim);
        let name = f.name.to_ascii_lowercase();
        let slot = match name.as_str() {
            "host" => {
                hosts += 1;
                continue;
            }
            "transfer-encoding" => {
                chunked = true;
                continue;
            }
            "content-length" if length.is_some() => return Err((400, "two Content-Length")),
            "content-length" => {
                let n = value.and_then(|v| v.parse::<u64>().ok());
                length = Some(n.ok_or((400, "bad Content-Length"))?);
                continue;
            }
            "connection" => {
                for token in value.unwrap_or("").split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        r.keep_alive = false;
                    } else if token.eq_ignore_ascii_case("keep-alive") && !http11 {
                        r.keep_alive = true;
                    }
                }
                continue;
            }
            "if-none-match" => &mut r.if_none_match,
            "if-modified-since" => &mut r.if_modified_since,
            "if-range" => &mut r.if_range,
            "range" => &mut r.range,
            _ => continue,
        };
        *slot = value.map(str::to_string);
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
    Ok(r)
}
