//! Sending a file body without holding it in memory (`main.rs`): a small
//! one read and sent with its head in one write; a large one handed to
//! the kernel whole with [`Ctx::send_file`] (`sendfile(2)`: from the page
//! cache to the socket, nothing read into this process), the next
//! response going on from `on_drain`. A client that has taken nothing for
//! `--stall-timeout` is cut off.
//!
//! Progress is what the peer has taken: the bytes handed to the loop less
//! what the loop ([`Ctx::queued`]) and the kernel ([`Ctx::unacked`]) still
//! hold. The loop's queue alone moves only when the kernel's send buffer
//! (megabytes on loopback) is half empty again, so a steady 4 KiB/s reader
//! looked stalled and was cut off at 30 s.

use ioplex::{Ctx, TimerId};
use std::cell::RefCell;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// Bytes read from a file at a time.
const CHUNK: usize = 64 << 10;
/// More file is read only while less than this is queued for the client.
const QUEUE_TARGET: usize = 256 << 10;
/// A body larger than this goes by `sendfile`; a smaller one is read and
/// sent with the head in one write (one system call, not two).
const SENDFILE_OVER: u64 = 16 << 10;
/// Timer tag: look whether a client with a body in progress still reads.
pub const STALL: u64 = 3;

thread_local! {
    /// What file pieces are read into: one per loop thread, zeroed once
    /// (zeroing 64 KiB per piece was 65,000 of a 1 KiB request's 87,000
    /// instructions).
    static PIECE: RefCell<Vec<u8>> = RefCell::new(vec![0; CHUNK]);
}

/// A file (or a range of it) being sent.
pub struct Sending {
    /// The response head, sent with the first piece (one send for a small file).
    head: String,
    /// Until handed to `send_file`.
    file: Option<File>,
    /// The next offset to send, and one past the last.
    at: u64,
    end: u64,
    /// Bytes of this body handed to the loop.
    handed: u64,
    /// The most the peer had taken at a look, and when that last grew.
    taken: u64,
    since: Instant,
    limit: Duration,
    watch: Option<TimerId>,
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
    /// `head`, then bytes `start..end` of `file`; a client taking none of
    /// them for `limit` is cut off.
    pub fn new(head: String, file: File, start: u64, end: u64, limit: Duration) -> Sending {
        let (handed, taken, since, watch) = (0, 0, Instant::now(), None);
        Sending {
            head,
            file: Some(file),
            at: start,
            end,
            handed,
            taken,
            since,
            limit,
            watch,
        }
    }

    /// Queues chunks while the client's queue is short: at the start and in
    /// `on_drain` (the client has taken all that was queued).
    pub fn pump(&mut self, ctx: &mut Ctx<'_>) -> Pumped {
        while (self.at < self.end || !self.head.is_empty()) && ctx.queued(ctx.id()) < QUEUE_TARGET {
            if let Err(why) = self.send_piece(ctx) {
                return abort(ctx, why);
            }
        }
        // A file handed to the kernel is out only once the queue is empty.
        if self.at < self.end || ctx.queued(ctx.id()) > 0 {
            if self.watch.is_none() {
                self.watch = Some(ctx.set_timer(self.limit / 8, STALL));
            }
            return Pumped::Later;
        }
        if let Some(t) = self.watch.take() {
            ctx.cancel_timer(t);
        }
        Pumped::Done
    }

    /// The one place a body goes out: a large rest of the file to the
    /// kernel whole, after the head; else read a chunk, send it (after the
    /// head, the first time).
    fn send_piece(&mut self, ctx: &mut Ctx<'_>) -> Result<(), &'static str> {
        let id = ctx.id();
        if self.end - self.at > SENDFILE_OVER {
            let file = self.file.take().ok_or("the file was handed on already")?;
            let head = std::mem::take(&mut self.head);
            if !ctx.send(head.as_bytes()) {
                return Err("the client is gone");
            }
            let len = self.end - self.at;
            ctx.send_file(id, file, self.at, len)
                .map_err(|_| "sendfile refused")?;
            self.at = self.end;
            self.handed += len;
            return Ok(());
        }
        let file = self.file.as_ref().ok_or("the file was handed on already")?;
        PIECE.with_borrow_mut(|chunk| {
            let want = (self.end - self.at).min(CHUNK as u64) as usize;
            let n = match file.read_at(&mut chunk[..want], self.at) {
                Ok(0) if want > 0 => return Err("file ended early (truncated while sent?)"),
                Ok(n) => n,
                Err(_) => return Err("file read failed"),
            };
            let head = std::mem::take(&mut self.head);
            if !ctx.send_parts(&[head.as_bytes(), &chunk[..n]]) {
                return Err("the client is gone");
            }
            self.at += n as u64;
            self.handed += n as u64;
            Ok(())
        })
    }

    /// The `STALL` timer: the client took more since the last look, or it
    /// has taken nothing for the limit and is cut off.
    pub fn look(&mut self, ctx: &mut Ctx<'_>) -> Pumped {
        let id = ctx.id();
        let held = (ctx.queued(id) + ctx.unacked(id)) as u64;
        let taken = self.handed.saturating_sub(held);
        if taken > self.taken {
            (self.taken, self.since) = (taken, Instant::now());
        }
        if self.since.elapsed() >= self.limit {
            return abort(ctx, "client took nothing for the stall timeout: cut off");
        }
        self.watch = Some(ctx.set_timer(self.limit / 8, STALL));
        Pumped::Later
    }
}

/// Ends a transfer early: logs why and aborts the connection.
fn abort(ctx: &mut Ctx<'_>, why: &str) -> Pumped {
    log::warn!("{}: {why}", ctx.id());
    ctx.abort(ctx.id());
    Pumped::Aborted
}
