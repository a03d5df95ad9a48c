//! Closing a connection politely: flush what is queued, send FIN, drain the
//! peer's input until its FIN (so the kernel never answers it with RST and
//! the last reply is not lost), then close.
//!
//! | from | on | to | what happens |
//! |---|---|---|---|
//! | Open | `Action::Close`, `Ctx::close`, EOF (default `on_eof`), idle timeout, graceful stop | Flushing | input is no longer delivered; the flush deadline (`shutdown_timeout`) is armed if output is queued |
//! | Flushing | the queue is empty | Lingering | `shutdown(SHUT_WR)`; the `linger` deadline is armed |
//! | Flushing | the queue is empty and the peer's EOF was read | Closed | `shutdown(SHUT_WR)` |
//! | Lingering | the peer's EOF, or `linger` passed | Closed | |
//! | Flushing | `shutdown_timeout` passed | Closed | queued output dropped (`FlushTimeout`) |
//! | any | `Action::Abort`, `Ctx::abort`, a socket error, `max_output`, `max_input` | Closed | queued output dropped |
//! | Closed | before the loop sleeps | gone | `on_close` with the reason; fd closed; slab key free |
//!
//! Each state has at most one deadline in the timer heap, moved in place
//! ([`Core::arm`]).

use super::Loop;
use super::core::{Core, due};
use super::state::{Entry, Flags, Kind, State};
use crate::action::CloseReason;
use crate::handler::Handler;
use crate::metrics::add;
use crate::sys;
use crate::timer::ms_ceil;
use crate::token::ConnId;
use std::os::fd::AsRawFd;

impl Core {
    /// Open → Flushing: stop handing input to the handler, flush, then FIN.
    pub(crate) fn begin_close(&mut self, key: usize, reason: CloseReason) {
        let now = self.now();
        let Some((_, c)) = self.conn_at(key) else {
            return;
        };
        if c.state != State::Open {
            return;
        }
        c.state = State::Flushing;
        c.reason = reason;
        c.since = now;
        c.input = None;
        if c.out.is_none() {
            // No flush deadline to arm: a closing client that sent its EOF
            // first (churn) leaves no timer entry behind.
            self.finish_flush(key);
            return;
        }
        self.arm(key);
        self.mark_dirty(key);
    }

    /// Output is flushed: send FIN; close now if the peer's EOF came, else linger.
    pub(crate) fn finish_flush(&mut self, key: usize) {
        let now = self.now();
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        sys::shutdown_write(e.raw_fd());
        let Kind::Conn(c) = &mut e.kind else {
            return;
        };
        if e.flags.has(Flags::READ_CLOSED) {
            self.mark_closed(key);
            return;
        }
        c.state = State::Lingering;
        c.since = now;
        self.arm(key);
        self.push_ready(key);
    }

    /// Close now, dropping queued output.
    pub(crate) fn abort(&mut self, key: usize, reason: CloseReason) {
        if let Some((_, c)) = self.conn_at(key) {
            if c.state != State::Closed {
                c.reason = reason;
                self.mark_closed(key);
            }
        }
    }

    /// The graceful stop reaches connection `key`: one between requests
    /// closes at once; one mid-request (a partial frame kept, or marked
    /// busy by the handler: [`Ctx::set_busy`](crate::Ctx::set_busy)) is
    /// served to the end of that request, then closed (within
    /// `shutdown_timeout`, as every close).
    pub(crate) fn stop_conn(&mut self, key: usize) {
        let Some((flags, c)) = self.conn_at(key) else {
            return;
        };
        if c.state == State::Open && (flags.has(Flags::BUSY) || c.input.is_some()) {
            flags.set(Flags::LAST_REQUEST);
        } else {
            self.begin_close(key, CloseReason::Shutdown);
        }
    }

    /// A request may have ended (input consumed, or the handler no longer
    /// busy): a connection the stop was waiting for closes now.
    #[inline]
    pub(crate) fn request_done(&mut self, key: usize) {
        if self.stopping.is_none() {
            return;
        }
        let Some((flags, c)) = self.conn_at(key) else {
            return;
        };
        if flags.has(Flags::LAST_REQUEST) && !flags.has(Flags::BUSY) && c.input.is_none() {
            flags.clear(Flags::LAST_REQUEST);
            self.begin_close(key, CloseReason::Shutdown);
        }
    }

    /// → Closed: removed before the loop sleeps.
    pub(crate) fn mark_closed(&mut self, key: usize) {
        if let Some((_, c)) = self.conn_at(key) {
            if c.state != State::Closed {
                c.state = State::Closed;
                self.closing.push(key);
            }
        }
    }
}

impl<H: Handler> Loop<'_, H> {
    /// A connection's deadline is due: idle, flush or linger, by its state.
    pub(super) fn deadline(&mut self, id: ConnId) {
        let now = self.core.now();
        let key = id.key();
        let core = &mut *self.core;
        let Some(Entry {
            kind: Kind::Conn(c),
            generation,
            flags,
            ..
        }) = core.entries.get_mut(key)
        else {
            return;
        };
        if *generation != id.generation() {
            return;
        }
        // The timer that fired is gone from the heap.
        c.deadline = None;
        let state = c.state;
        // New input may have moved the idle deadline since it was set.
        let proxy = flags.has(Flags::PROXY);
        match due(&core.cfg, *flags, c) {
            Some(at) if at > now => return self.core.arm(key),
            None => return,
            Some(_) => {}
        }
        match state {
            State::Open if proxy => {
                log::warn!(
                    "{id}: {}: no whole PROXY header within {:?}: closed",
                    self.socket_peer(key),
                    self.core.cfg.proxy_timeout
                );
                add(&self.core.metrics.proxy_errors, 1);
                self.core.abort(key, CloseReason::InputLimit);
            }
            State::Open => {
                log::info!(
                    "{id}: idle for {:?}: closing",
                    self.core.cfg.idle_timeout.unwrap_or_default()
                );
                add(&self.core.metrics.idle_timeouts, 1);
                self.core.begin_close(key, CloseReason::IdleTimeout);
            }
            State::Flushing => {
                log::info!(
                    "{id}: output not flushed in {:?}: closing",
                    self.core.cfg.shutdown_timeout
                );
                self.core.abort(key, CloseReason::FlushTimeout);
            }
            State::Lingering => self.core.mark_closed(key),
            State::Closed => {}
        }
    }

    /// Removes what was marked Closed, telling the handler.
    pub(super) fn close_marked(&mut self) {
        while let Some(key) = self.core.closing.pop() {
            self.core.disarm(key);
            let core = &mut *self.core;
            let Some(Entry {
                kind: Kind::Conn(c),
                generation,
                fd,
                ..
            }) = core.entries.get_mut(key)
            else {
                continue;
            };
            let id = ConnId::new(core.index, key, *generation);
            let (reason, peer, fd) = (c.reason.clone(), c.peer.take(), fd.as_raw_fd());
            if let Some(out) = c.out.take_if(|_| !core.completion) {
                core.pool.give(out);
                core.queued_conns -= 1;
            } else if c.out.is_some() {
                core.queued_conns -= 1; // freed when its send is back (retire)
            }
            if let Some(peer) = peer {
                core.forget_peer(peer.ip());
                core.spare_peer(peer);
            }
            core.conns -= 1;
            add(&core.metrics.closed, 1);
            // epoll forgets an fd when it is closed; poll and select keep tables.
            if core.poller.keeps_table() && core.poller.deregister(fd).is_ok() {
                add(&core.metrics.deregistrations, 1);
            }
            log::debug!("{id}: closing ({reason:?})");
            core.retire(key);
            if let Some(st) = self.states.get_mut(key).and_then(Option::take) {
                self.handler.on_close(ctx!(self, Some(id)), st, reason);
            }
        }
    }

    /// The graceful stop begins: UDP sockets close, listeners drain (take
    /// no new SYN, serve what the kernel accepted, then close: `drain`),
    /// every connection starts closing (flushing first), the handler hears
    /// [`Handler::on_shutdown`].
    pub(super) fn begin_shutdown(&mut self) {
        let core = &mut *self.core;
        core.stopping = Some(core.now() + ms_ceil(core.cfg.shutdown_timeout));
        log::info!("shutting down: {} connections to flush", core.conns);
        if core.index == 0 {
            super::lifecycle::sd_notify("STOPPING=1");
        }
        core.announce_stop();
        let keys: Vec<usize> = core.entries.iter().map(|(k, _)| k).collect();
        for key in keys {
            match core.entries[key].kind {
                Kind::Conn(_) => core.stop_conn(key),
                Kind::Listener => {} // they drain: see `drain`
                Kind::Signals => {}  // a second SIGINT may still come
                Kind::Udp if core.entries[key].io.has(super::state::Io::RETIRED) => {}
                Kind::Udp => {
                    if !core.completion {
                        let _ = core.poller.deregister(core.entries[key].raw_fd());
                    }
                    add(&core.metrics.deregistrations, 1);
                    core.retire(key); // a completion backend cancels its poll
                }
            }
        }
        self.begin_drain();
        self.handler.on_shutdown(ctx!(self, None));
    }

    /// The stop's deadline passed: close everything that is left.
    pub(super) fn abort_all(&mut self, reason: CloseReason) {
        let keys: Vec<usize> = self.core.entries.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.core.abort(key, reason.clone());
        }
        self.close_marked();
    }
}
