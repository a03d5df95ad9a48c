//! Input: [`Loop::read`] pulls bytes into the loop's one shared buffer and
//! [`Loop::deliver`] hands them to the handler, with whatever it left
//! unconsumed last time in front.
//!
//! Reading stops at `WouldBlock`; at the read budget (the connection goes
//! to the ready queue, so one flooding peer cannot starve the others); or
//! at a short read, which under edge triggering means the socket is
//! drained unless the event also said the peer closed (EOF may sit behind
//! the data, and no new edge would come for it).

use super::Loop;
use super::state::{Flags, Kept, Kind, State};
use crate::action::{Action, CloseReason};
use crate::handler::Handler;
use crate::metrics::add;
use crate::sys;
use crate::token::ConnId;
use std::io;
use std::os::fd::AsRawFd;

impl<H: Handler> Loop<'_, H> {
    /// Reads until `WouldBlock`, a short read (unless `until_would_block`),
    /// EOF, or the budget. Input of a closing connection is discarded.
    #[inline]
    pub(super) fn read(&mut self, key: usize, until_would_block: bool) {
        let mut budget = self.core.cfg.read_budget;
        let track_idle = self.core.cfg.idle_timeout.is_some();
        loop {
            let Some(e) = self.core.entries.get_mut(key) else {
                return;
            };
            let Kind::Conn(c) = &mut e.kind else {
                return;
            };
            if !c.wants_read(e.flags) {
                if c.state == State::Lingering {
                    self.core.mark_closed(key); // its EOF was read
                }
                return;
            }
            let (state, generation) = (c.state, e.generation);
            let r = sys::recv(e.fd.as_raw_fd(), &mut self.rbuf);
            add(&self.core.metrics.reads, 1);
            let id = ConnId::new(self.core.index, key, generation);
            match r {
                Ok(0) => {
                    e.flags.set(Flags::READ_CLOSED);
                    self.core.mark_dirty(key); // stop asking for READABLE
                    return self.eof(key, id, state);
                }
                Ok(n) => {
                    add(&self.core.metrics.bytes_in, n as u64);
                    if state == State::Open {
                        let kept = c.input.take();
                        if track_idle {
                            c.since = self.core.clock.now();
                        }
                        // Out of `self` for the call: the handler borrows the rest.
                        let rbuf = std::mem::take(&mut self.rbuf);
                        self.deliver(key, id, &rbuf[..n], kept);
                        self.rbuf = rbuf;
                    }
                    if n >= budget {
                        self.core.push_ready(key);
                        return;
                    }
                    budget -= n;
                    if n < self.rbuf.len() && !until_would_block {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("{id}: read failed: {e}");
                    self.core.abort(key, CloseReason::Error(e.kind()));
                    return;
                }
            }
        }
    }

    /// The peer's EOF: an open connection's handler decides, a lingering
    /// one is done.
    pub(super) fn eof(&mut self, key: usize, id: ConnId, state: State) {
        match state {
            State::Open => {
                let action = match self.states[key].as_mut() {
                    Some(st) => self.handler.on_eof(ctx!(self, Some(id)), st),
                    None => Action::Close,
                };
                self.apply(key, action, CloseReason::Eof);
            }
            State::Lingering => self.core.mark_closed(key),
            State::Flushing | State::Closed => {}
        }
    }

    /// Hands `data`, after `kept` (the unconsumed rest of last time, taken
    /// from the connection), to the handler.
    #[inline(always)]
    pub(super) fn deliver(&mut self, key: usize, id: ConnId, data: &[u8], kept: Option<Kept>) {
        let n = data.len();
        let Some(state) = self.states[key].as_mut() else {
            // No handler state yet: still waiting for a PROXY header.
            return self.proxy_header(key, id, data, kept);
        };
        let (action, mut pending) = match kept {
            None => {
                let a = self.handler.on_data(ctx!(self, Some(id)), state, data);
                (a, None)
            }
            Some(mut buf) => {
                buf.extend_from_slice(data);
                let a = self.handler.on_data(ctx!(self, Some(id)), state, &buf);
                (a, Some(buf))
            }
        };
        let Action::Consumed(used) = action else {
            self.apply(key, action, CloseReason::Closed);
            return self.core.request_done(key);
        };
        let held = pending.as_ref().map_or(n, |b| b.len());
        let used = used.min(held);
        if used == held {
            return self.core.request_done(key);
        }
        let max = self.core.cfg.max_input;
        if held - used > max {
            log::warn!(
                "{id}: {} bytes of unconsumed input, over max_input {max}: closing",
                held - used
            );
            add(&self.core.metrics.input_limit, 1);
            return self.core.abort(key, CloseReason::InputLimit);
        }
        let rest = match pending.as_mut() {
            Some(b) => {
                b.drain(..used);
                pending.take()
            }
            None => Some(Box::new(data[used..].to_vec())),
        };
        if let Some((_, c)) = self.core.conn_at(key) {
            if c.state == State::Open {
                c.input = rest;
            }
        }
    }

    /// Kept input goes to the handler again, without new bytes (after
    /// [`Ctx::resume_reading`](crate::Ctx::resume_reading)).
    pub(super) fn redeliver(&mut self, key: usize) {
        let Some(e) = self.core.entries.get_mut(key) else {
            return;
        };
        let Kind::Conn(c) = &mut e.kind else {
            return;
        };
        let again = e.flags.has(Flags::REDELIVER) && c.state == State::Open;
        e.flags.clear(Flags::REDELIVER);
        if again {
            let id = ConnId::new(self.core.index, key, e.generation);
            let kept = c.input.take();
            if kept.is_some() {
                self.deliver(key, id, &[], kept);
            }
        }
    }

    /// Carries out what a handler answered.
    pub(super) fn apply(&mut self, key: usize, action: Action, reason: CloseReason) {
        match action {
            Action::Continue | Action::Consumed(_) => {}
            Action::Close => self.core.begin_close(key, reason),
            Action::Abort => self.core.abort(key, CloseReason::Aborted),
        }
    }
}
