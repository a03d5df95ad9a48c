//! Files for the static web server (`main.rs`): which file a target names
//! (never one outside the root), and sending it a queue's worth at a time.

use crate::request::Refusal;
use ioplex::{Ctx, TimerId};
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bytes read from a file at a time.
const CHUNK: usize = 64 << 10;
/// More file is read only while less than this is queued for the client.
const QUEUE_TARGET: usize = 256 << 10;
/// A client whose queue has not shrunk for this long is cut off: the `STALL`
/// timer looks this long after the last sign that it reads.
const STALL_LIMIT: Duration = Duration::from_secs(30);
/// Timer tag: look whether a client with a full queue still reads.
pub const STALL: u64 = 2;

/// A file being sent without holding it in memory.
pub struct Sending {
    file: File,
    left: u64,
    /// When the client was last seen reading, and what was queued then.
    seen: (Instant, usize),
    stall: Option<TimerId>,
}

/// What [`Sending::pump`] or [`Sending::look`] found.
pub enum Pumped {
    Done,
    /// The queue is full: more in `on_drain`; a `STALL` timer watches.
    Later,
    /// The file failed, or the client is gone or stalled: logged, aborted.
    Aborted,
}

impl Sending {
    pub fn new(file: File, len: u64) -> Sending {
        let (left, seen, stall) = (len, (Instant::now(), 0), None);
        Sending {
            file,
            left,
            seen,
            stall,
        }
    }

    /// Queues chunks while the client's queue is short: at the start and in
    /// `on_drain` (the client has read all that was queued).
    pub fn pump(&mut self, ctx: &mut Ctx<'_>) -> Pumped {
        let (id, chunk) = (ctx.id(), &mut [0u8; CHUNK]);
        while self.left > 0 && ctx.queued(id) < QUEUE_TARGET {
            let want = self.left.min(chunk.len() as u64) as usize;
            match self.file.read(&mut chunk[..want]) {
                Ok(n) if n > 0 && ctx.send(&chunk[..n]) => self.left -= n as u64,
                _ => return abort(ctx, "file ended early, or the client is gone"),
            }
        }
        self.seen = (Instant::now(), ctx.queued(id));
        if self.left > 0 {
            if self.stall.is_none() {
                self.stall = Some(ctx.set_timer(STALL_LIMIT, STALL));
            }
            return Pumped::Later;
        }
        if let Some(t) = self.stall.take() {
            ctx.cancel_timer(t);
        }
        Pumped::Done
    }

    /// The `STALL` timer: a queue that shrank since the last look means the
    /// client reads; one that has not for `STALL_LIMIT` is cut off.
    pub fn look(&mut self, ctx: &mut Ctx<'_>) -> Pumped {
        let queued = ctx.queued(ctx.id());
        if queued < self.seen.1 {
            self.seen = (Instant::now(), queued);
        }
        let still = self.seen.0.elapsed();
        if still >= STALL_LIMIT {
            return abort(ctx, "client read nothing for 30 s, cut off");
        }
        self.stall = Some(ctx.set_timer(STALL_LIMIT - still, STALL));
        Pumped::Later
    }
}

/// Ends a transfer early: logs why and aborts the connection.
fn abort(ctx: &mut Ctx<'_>, why: &str) -> Pumped {
    log::warn!("{}: {why}", ctx.id());
    ctx.abort(ctx.id());
    Pumped::Aborted
}

/// Opens the regular file `target` names under `root` (canonical):
/// the file, its length and its `Content-Type`.
pub fn open(root: &Path, target: &str) -> Result<(File, u64, &'static str), Refusal> {
    let path = resolve(root, target)?;
    let rel = path.strip_prefix(root).unwrap_or(&path);
    let file = match crate::beneath::open(root, rel) {
        // No openat2: O_NOFOLLOW still guards the last component.
        Err(e) if crate::beneath::unsupported(&e) => OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path),
        r => r,
    };
    let file = file.map_err(|e| match e.raw_os_error() {
        Some(libc::EXDEV) => (403, "outside the root"),
        _ => (404, "not found"),
    })?;
    match file.metadata() {
        Ok(m) if m.is_file() => Ok((file, m.len(), content_type(&path))),
        _ => Err((404, "not found")),
    }
}

/// Maps a request target to a regular file's real path inside `root`
/// (which must be canonical). Never a path outside it.
fn resolve(root: &Path, target: &str) -> Result<PathBuf, Refusal> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Err((400, "target must start with /"));
    }
    let bytes = decode_once(path)?;
    if bytes.contains(&0) {
        return Err((400, "NUL in path"));
    }
    if bytes.contains(&b'\\') {
        return Err((400, "backslash in path"));
    }
    let mut full = root.to_path_buf();
    for seg in bytes.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => return Err((400, "`..` in path")),
            s => full.push(OsStr::from_bytes(s)),
        }
    }
    if full.is_dir() {
        full.push("index.html");
    }
    // Follows every symlink; what is left must still be under the root.
    let real = full.canonicalize().map_err(|_| (404, "not found"))?;
    if !real.starts_with(root) {
        return Err((403, "outside the root"));
    }
    Ok(real)
}

/// Percent-decodes once. An escape that decodes to `.`, `/`, `\`, `%` or
/// NUL is refused: it can only be there to slip past a check (`%2e%2e`,
/// `.%2e`, `%2f`), or to be decoded a second time by someone (`%252e`).
fn decode_once(s: &str) -> Result<Vec<u8>, Refusal> {
    let (b, mut out, mut i) = (s.as_bytes(), Vec::with_capacity(s.len()), 0);
    while i < b.len() {
        if b[i] != b'%' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let hex = |k: usize| b.get(k).and_then(|c| (*c as char).to_digit(16));
        let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
            return Err((400, "bad percent escape"));
        };
        let c = (hi * 16 + lo) as u8;
        if matches!(c, b'.' | b'/' | b'\\' | b'%' | 0) {
            return Err((400, "escaped dot, separator, percent or NUL"));
        }
        out.push(c);
        i += 3;
    }
    Ok(out)
}

/// `Content-Type` by extension.
fn content_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(OsStr::to_str).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" | "md" | "toml" | "rs" | "lock" => "text/plain; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}
