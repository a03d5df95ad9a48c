//! The static web server's handler (`main.rs`): requests on a connection
//! are answered one at a time, in order. While a body goes out, reading
//! pauses (`Ctx::pause_reading`): pipelined requests wait in the kernel,
//! whose flow control slows the client, not in our memory. What is kept
//! behind a response is at most a head and one read, and parsing moves no
//! bytes (`Action::Consumed`): linear in the input, however it is pipelined.
//! After `PER_TURN` answers in a row a connection yields the loop to the
//! others until the next iteration.

use crate::answer::{self, Reply};
use crate::body::{Pumped, STALL, Sending};
use crate::request::{self, Head, Refusal, Request};
use crate::resolve::Root;
use ioplex::{Action, Ctx, Handler, Peer, TimerId};
use std::time::Duration;

/// Timer tags: waiting for the next request, for the rest of a head, and
/// the end of a yield.
const IDLE: u64 = 1;
const HEAD: u64 = 2;
const YIELD: u64 = 4;
/// Pipelined requests answered in one go before the others get the loop.
const PER_TURN: usize = 32;

/// A step of a file transfer: [`Sending::pump`] or [`Sending::look`].
type Step = fn(&mut Sending, &mut Ctx<'_>) -> Pumped;

/// How long a client may take (`--idle-timeout` and friends).
#[derive(Clone, Copy)]
pub struct Limits {
    pub idle: Duration,
    pub header: Duration,
    pub stall: Duration,
}

pub struct Web {
    pub root: std::sync::Arc<Root>, // one `Web` per loop (`--threads`)
    pub limits: Limits,
}

#[derive(Default)]
pub struct Conn {
    body: Option<Sending>,
    /// The idle or head deadline, with its tag.
    wait: Option<(TimerId, u64)>,
    /// How far the unanswered head was scanned (`request::next`).
    scanned: usize,
    yielded: bool,
    keep_alive: bool,
    eof: bool,
    closing: bool,
}

impl Web {
    /// Answers the complete heads at the start of `data` until one needs
    /// `on_drain` for its body, or `PER_TURN`; returns the bytes used.
    fn serve(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn, data: &[u8]) -> usize {
        let (mut used, mut answered) = (0, 0);
        while c.body.is_none() && !c.closing && !c.yielded {
            let Head::Complete(len, request) = request::next(&data[used..], &mut c.scanned) else {
                break;
            };
            used += len;
            self.answer(ctx, c, request);
            answered += 1;
            c.yielded = answered == PER_TURN && used < data.len();
        }
        if used < data.len() && c.body.is_none() && !c.closing && !c.yielded {
            self.wait(ctx, c, HEAD, self.limits.header); // a head has begun
        }
        used
    }

    fn answer(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn, request: Result<Request, Refusal>) {
        if let Some((t, _)) = c.wait.take() {
            ctx.cancel_timer(t);
        }
        let reply = answer::reply(&self.root, ctx.id(), request);
        self.send(ctx, c, reply);
    }

    /// Sends a reply's head, then its body as the client takes it.
    fn send(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn, reply: Reply) {
        c.keep_alive = reply.keep_alive;
        let (head, stall) = (reply.head, self.limits.stall);
        match reply.body {
            Some((file, start, end)) => c.body = Some(Sending::new(head, file, start, end, stall)),
            None => drop(ctx.send(head.as_bytes())),
        }
        if self.pump(ctx, c, Sending::pump) {
            self.finish(ctx, c);
        }
    }

    /// Takes `step` on the body being sent; `true` when it is all sent.
    fn pump(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn, step: Step) -> bool {
        match c.body.as_mut().map(|s| step(s, ctx)) {
            None | Some(Pumped::Done) => c.body = None,
            Some(Pumped::Later) => {}
            Some(Pumped::Aborted) => c.closing = true,
        }
        ctx.set_busy(ctx.id(), c.body.is_some() && !c.closing); // a stop waits for it
        c.body.is_none() && !c.closing
    }

    /// A response is complete: close, or wait for the next request.
    fn finish(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn) {
        if !c.keep_alive || c.eof {
            c.closing = true;
            ctx.close(ctx.id());
        } else {
            self.wait(ctx, c, IDLE, self.limits.idle);
        }
    }

    /// Arms the `tag` deadline unless it is the one already running.
    fn wait(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn, tag: u64, after: Duration) {
        if c.wait.is_some_and(|(_, t)| t == tag) {
            return;
        }
        if let Some((t, _)) = c.wait.take() {
            ctx.cancel_timer(t);
        }
        c.wait = Some((ctx.set_timer(after, tag), tag));
    }
}

impl Handler for Web {
    type Conn = Conn;

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) -> Conn {
        log::info!("{}: connected from {peer}", ctx.id());
        let mut c = Conn {
            keep_alive: true,
            ..Conn::default()
        };
        self.wait(ctx, &mut c, IDLE, self.limits.idle);
        c
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn, data: &[u8]) -> Action {
        let used = match (c.closing, c.body.is_some() || c.yielded) {
            (true, _) => return Action::Continue,
            (false, true) => 0, // only before the pause below took hold
            (false, false) => self.serve(ctx, c, data),
        };
        if c.body.is_some() || c.yielded {
            ctx.pause_reading(ctx.id()); // until `on_drain` or the yield ends
        }
        if c.yielded {
            ctx.set_timer(Duration::ZERO, YIELD);
        }
        match used >= data.len() || c.closing {
            true => Action::Continue,
            false => Action::Consumed(used),
        }
    }

    fn on_eof(&mut self, _: &mut Ctx<'_>, c: &mut Conn) -> Action {
        c.eof = true;
        // A body still being sent is finished first; `finish` closes then.
        match c.body.is_some() {
            true => Action::Continue,
            false => Action::Close,
        }
    }

    fn on_drain(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn) -> Action {
        if c.body.is_some() && !c.closing && self.pump(ctx, c, Sending::pump) {
            self.finish(ctx, c);
            ctx.resume_reading(ctx.id()); // kept input comes back to `on_data`
        }
        Action::Continue
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn, tag: u64) -> Action {
        match tag {
            STALL => drop(self.pump(ctx, c, Sending::look)), // never done: it only looks
            YIELD => {
                c.yielded = false;
                ctx.resume_reading(ctx.id());
            }
            _ if c.closing || c.wait.is_none_or(|(_, t)| t != tag) => {}
            HEAD => {
                c.wait = None;
                let why = (408, "request head not complete in time");
                self.send(ctx, c, answer::refused(ctx.id(), "", why, false));
            }
            _ => {
                // Idle between requests: nothing is in flight, so no FIN and
                // `linger` to hold the slot (per address, too) for 2 s more.
                c.closing = true;
                return Action::Abort;
            }
        }
        Action::Continue
    }
}
