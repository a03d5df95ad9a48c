//! Completions: what the io_uring backend reports it did, handled. The
//! readiness rooms do the I/O themselves; here the kernel did it, and the
//! loop carries on from its result.
//!
//! | completion | what follows |
//! |---|---|
//! | accept | the new connection is added (its receive armed); a multishot that ended is armed again |
//! | receive | the bytes go to `on_data` in the ring's buffer, which goes back to the ring when the handler returns; the next receive is armed (one per connection at a time: a flooding peer gets one buffer per iteration, like everyone else) |
//! | receive, `ENOBUFS` | counted; armed again next iteration, once buffers came back |
//! | send | the queue's front is consumed; the next send goes out, or `on_drain` / the close goes on |
//! | poll (UDP) | the readiness path's `recvfrom` |
//!
//! A closed entry is *retired*: the handler hears `on_close` at once, its
//! in-flight operations are cancelled, and its slab key is freed only when
//! the last of them has come back.

use super::Loop;
use super::core::Core;
use super::output::send_file_part;
use super::state::{Flags, Io, Kind, State};
use crate::action::CloseReason;
use crate::backend::What;
use crate::handler::Handler;
use crate::metrics::add;
use crate::sys;
use crate::token::ConnId;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

impl Core {
    /// Arms connection `key`'s receive if it wants one and has none.
    pub(crate) fn arm_recv(&mut self, key: usize) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        let Kind::Conn(c) = &e.kind else {
            return;
        };
        if !c.wants_read(e.flags) || e.io.has(Io::RECV) || e.io.has(Io::RETIRED) {
            return;
        }
        e.io.set(Io::RECV);
        let token = ConnId::new(self.index, key, e.generation).token();
        let fd = e.fd.as_raw_fd();
        if let Some(u) = self.poller.uring() {
            u.recv(fd, token);
        }
    }

    /// Sends the front of connection `key`'s queue if no send is in flight.
    /// A file at the front is sent with `sendfile(2)` here (the socket is
    /// non-blocking); when the socket is full, a poll for POLLOUT says when
    /// to go on. A queue that empties goes back to the pool.
    pub(crate) fn start_send(&mut self, key: usize) {
        let metrics = &*self.metrics;
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        let Kind::Conn(c) = &mut e.kind else {
            return;
        };
        if e.io.has(Io::SEND) || e.io.has(Io::POLL) {
            return; // one at a time: its completion goes on
        }
        let fd = e.fd.as_raw_fd();
        let id = ConnId::new(self.index, key, e.generation);
        let token = id.token();
        loop {
            let Some(out) = c.out.as_mut() else {
                return;
            };
            if out.is_empty() {
                if let Some(out) = c.out.take() {
                    self.queued_conns -= 1;
                    self.pool.give(out);
                }
                return;
            }
            let Some(f) = out.front_file() else {
                break;
            };
            match send_file_part(metrics, fd, f) {
                Ok(n) => {
                    add(&metrics.bytes_out, n as u64);
                    out.file_progress();
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    e.io.set(Io::POLL);
                    if let Some(u) = self.poller.uring() {
                        u.poll_out(fd, token);
                    }
                    return;
                }
                Err(err) => {
                    log::debug!("{id}: sendfile failed: {err}");
                    self.abort(key, CloseReason::Error(err.kind()));
                    return;
                }
            }
        }
        let Some(out) = c.out.as_mut() else {
            return;
        };
        e.io.set(Io::SEND);
        out.freeze();
        let (ptr, len) = (out.bytes().as_ptr(), out.bytes().len());
        if let Some(u) = self.poller.uring() {
            // SAFETY: the bytes are frozen in a boxed queue that the entry
            // keeps until this send's completion (Io::SEND), and nothing
            // moves them before that (OutBuf::freeze).
            unsafe { u.send(fd, token, ptr, len) };
        }
    }

    /// `Ctx::send` on a completion backend: everything is queued (the
    /// kernel reads the bytes later), and a send is started if none is in
    /// flight.
    pub(crate) fn send_queued(&mut self, id: ConnId, parts: &[&[u8]]) -> bool {
        // The common case: nothing queued or in flight, a small reply. A
        // pooled queue takes it and its send goes at once.
        let high = self.cfg.output_high_water;
        if let Some(e) = self.entries.get_mut(id.key()) {
            if let Kind::Conn(c) = &mut e.kind {
                let total: usize = parts.iter().map(|p| p.len()).sum();
                let idle = c.out.is_none() && !e.io.has(Io::SEND) && !e.io.has(Io::POLL);
                if e.generation == id.generation()
                    && matches!(c.state, State::Open | State::Flushing)
                    && idle
                    && total > 0
                    && total <= high
                {
                    let mut out = self.pool.take();
                    for p in parts {
                        out.push(p);
                    }
                    out.freeze();
                    let (ptr, len) = (out.bytes().as_ptr(), out.bytes().len());
                    c.out = Some(out);
                    e.io.set(Io::SEND);
                    self.queued_conns += 1;
                    let fd = e.fd.as_raw_fd();
                    if let Some(u) = self.poller.uring() {
                        // SAFETY: as in start_send: the bytes are frozen in
                        // the boxed queue the entry keeps until the completion.
                        unsafe { u.send(fd, id.token(), ptr, len) };
                    }
                    return true;
                }
            }
        }
        if !self.queue(id, parts, 0) {
            return false;
        }
        self.start_send(id.key());
        true
    }

    /// A closed entry leaves: at once if nothing is in flight for it, else
    /// once the last completion is back (its operations are cancelled now).
    pub(crate) fn retire(&mut self, key: usize) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        if e.io.idle() || !self.completion {
            self.remove(key);
            return;
        }
        e.io.set(Io::RETIRED);
        self.retired += 1;
        let fd = e.fd.as_raw_fd();
        if let Some(u) = self.poller.uring() {
            u.cancel(fd);
        }
    }

    /// A retired entry whose last completion came back leaves.
    fn reap(&mut self, key: usize) {
        if self
            .entries
            .get(key)
            .is_some_and(|e| e.io.has(Io::RETIRED) && e.io.idle())
        {
            self.retired -= 1;
            self.remove(key);
        }
    }

    /// Takes `key` out of the slab; its fd closes, its queue goes back to the pool.
    pub(crate) fn remove(&mut self, key: usize) {
        let e = self.entries.remove(key);
        if let Kind::Conn(c) = e.kind {
            if let Some(out) = c.out {
                self.pool.give(out);
            }
        }
    }
}

impl<H: Handler> Loop<'_, H> {
    /// A completion for entry `key`, whose generation matched.
    pub(super) fn completion(&mut self, key: usize, what: What) {
        match what {
            What::Accepted { res, more } => self.accepted(key, res, more),
            What::Received { res, buf } => self.received(key, res, buf),
            What::Sent { res } => self.sent(key, res),
            What::Ready(_) => self.polled(key),
        }
        if self.core.retired > 0 {
            self.core.reap(key);
        }
    }

    /// A completion for an entry that is gone: what it holds goes back.
    pub(super) fn stale_completion(&mut self, what: What) {
        add(&self.core.metrics.stale_events, 1);
        match what {
            What::Received { buf: Some(bid), .. } => {
                if let Some(u) = self.core.poller.uring() {
                    u.recycle(bid);
                }
            }
            // SAFETY: a successful accept's result is a fresh fd nobody owns.
            What::Accepted { res, .. } if res >= 0 => drop(unsafe { OwnedFd::from_raw_fd(res) }),
            _ => {}
        }
    }

    fn accepted(&mut self, key: usize, res: i32, more: bool) {
        let core = &mut *self.core;
        let Some(e) = core.entries.get_mut(key) else {
            return;
        };
        if !more {
            e.io.clear(Io::ACCEPT);
        }
        let retired = e.io.has(Io::RETIRED);
        if res >= 0 {
            // SAFETY: a successful accept's result is a fresh fd nobody owns.
            let fd = unsafe { OwnedFd::from_raw_fd(res) };
            // After the stop's drain (or a listener retired): closed.
            if retired || (core.stopping.is_some() && core.accept.drain.is_none()) {
                return;
            }
            // A server's acceptor may hand it to another loop.
            if let Some(fd) = core.hand_off(fd) {
                let peer = sys::peer_of(&fd);
                self.add_conn(fd, peer);
            }
        } else {
            let err = io::Error::from_raw_os_error(-res);
            if sys::is_fd_exhaustion(&err) && !more {
                self.pause_accepting(&err);
                return;
            }
            if res != -libc::ECANCELED {
                log::debug!("accept: {err}");
            }
        }
        // A multishot accept that ended (and was not cancelled) goes on.
        let core = &mut *self.core;
        if !more
            && res != -libc::ECANCELED
            && !retired
            && core.accept.resume.is_none()
            && core.stopping.is_none()
        {
            if let Err(e) = core.register_key(key, crate::backend::Interest::READABLE) {
                log::error!("accept: cannot arm the listener again: {e}");
            }
        }
    }

    fn received(&mut self, key: usize, res: i32, buf: Option<u16>) {
        let Some(e) = self.core.entries.get_mut(key) else {
            return;
        };
        e.io.clear(Io::RECV);
        let (generation, retired) = (e.generation, e.io.has(Io::RETIRED));
        let id = ConnId::new(self.core.index, key, generation);
        let state = match &e.kind {
            Kind::Conn(c) => c.state,
            _ => State::Closed,
        };
        if res > 0 {
            let n = res as usize;
            add(&self.core.metrics.reads, 1);
            add(&self.core.metrics.bytes_in, n as u64);
            if let (Some(bid), false) = (buf, retired) {
                self.take_received(key, id, state, bid, n);
            }
        } else if res == 0 && !retired {
            add(&self.core.metrics.reads, 1);
            if let Some(e) = self.core.entries.get_mut(key) {
                e.flags.set(Flags::READ_CLOSED);
            }
            self.eof(key, id, state);
        } else if res == -libc::ENOBUFS {
            add(&self.core.metrics.uring_nobufs, 1);
            self.core.push_ready(key); // armed again next iteration
        } else if res < 0 && res != -libc::ECANCELED && !retired {
            let err = io::Error::from_raw_os_error(-res);
            log::debug!("{id}: receive failed: {err}");
            self.core.abort(key, CloseReason::Error(err.kind()));
        }
        if let (Some(bid), Some(u)) = (buf, self.core.poller.uring()) {
            u.recycle(bid);
        }
        if res != -libc::ENOBUFS {
            self.core.arm_recv(key);
        }
    }

    /// Received bytes in ring buffer `bid`: to the handler in place, kept
    /// for later while reading is paused, dropped while closing.
    fn take_received(&mut self, key: usize, id: ConnId, state: State, bid: u16, n: usize) {
        let track_idle = self.core.cfg.idle_timeout.is_some();
        let now = if track_idle { self.core.now() } else { 0 };
        let Some(u) = self.core.poller.uring() else {
            return;
        };
        // SAFETY: `bid` came with this completion and is given back only
        // after the handler returns (in `received`); the slice does not
        // outlive this call.
        let data = unsafe { u.received(bid, n) };
        let max_input = self.core.cfg.max_input;
        let Some((flags, c)) = self.core.conn_at(key) else {
            return;
        };
        if state != State::Open {
            return; // closing: input is discarded
        }
        if track_idle {
            c.since = now;
        }
        let kept = c.input.take();
        if flags.read_paused() {
            // A receive armed before the pause: keep its bytes for the resume.
            let mut kept = kept.unwrap_or_default();
            kept.extend_from_slice(data);
            if kept.len() > max_input {
                add(&self.core.metrics.input_limit, 1);
                return self.core.abort(key, CloseReason::InputLimit);
            }
            c.input = Some(kept);
            flags.set(Flags::REDELIVER);
            return;
        }
        self.deliver(key, id, data, kept);
    }

    fn sent(&mut self, key: usize, res: i32) {
        let Some(e) = self.core.entries.get_mut(key) else {
            return;
        };
        e.io.clear(Io::SEND);
        let (generation, retired) = (e.generation, e.io.has(Io::RETIRED));
        let Kind::Conn(c) = &mut e.kind else {
            return;
        };
        if retired {
            return;
        }
        let id = ConnId::new(self.core.index, key, generation);
        if res < 0 {
            if res != -libc::ECANCELED {
                let err = io::Error::from_raw_os_error(-res);
                log::debug!("{id}: send failed: {err}");
                self.core.abort(key, CloseReason::Error(err.kind()));
            }
            return;
        }
        add(&self.core.metrics.writes, 1);
        add(&self.core.metrics.bytes_out, res as u64);
        let Some(out) = c.out.as_mut() else {
            return;
        };
        out.consume(res as usize);
        if !out.is_empty() {
            return self.output_went(key); // more to send
        }
        // All out (the common case): the queue goes back to the pool, the
        // close goes on or the handler may send more.
        if let Some(out) = c.out.take() {
            self.core.pool.give(out);
        }
        self.core.queued_conns -= 1;
        let state = c.state;
        if e.flags.has(Flags::OUTPUT_FULL) {
            e.flags.clear(Flags::OUTPUT_FULL);
            self.core.push_ready(key); // to arm the receive again
        }
        match state {
            State::Flushing => self.core.finish_flush(key),
            State::Open => self.drained(key),
            _ => {}
        }
    }

    /// Output went out (a send completed, or a file went on): the next
    /// piece goes; a queue that emptied lets the handler send more, or the
    /// close go on; a reader paused by the high watermark resumes below
    /// the low one.
    fn output_went(&mut self, key: usize) {
        let low = self.core.cfg.output_low_water;
        self.core.start_send(key);
        let Some((flags, c)) = self.core.conn_at(key) else {
            return;
        };
        let (queued, held) = c.out.as_ref().map_or((0, 0), |o| (o.len(), o.in_memory()));
        let state = c.state;
        let resume = flags.has(Flags::OUTPUT_FULL) && held <= low;
        if resume {
            flags.clear(Flags::OUTPUT_FULL);
            self.core.push_ready(key); // to arm the receive again
        }
        match (queued, state) {
            (0, State::Flushing) => self.core.finish_flush(key),
            (0, State::Open) => self.drained(key),
            _ => {}
        }
    }

    /// A poll fired: a UDP socket receives what is there, then polls
    /// again; a connection sending a file goes on (the socket has room).
    fn polled(&mut self, key: usize) {
        let Some(e) = self.core.entries.get_mut(key) else {
            return;
        };
        e.io.clear(Io::POLL);
        if e.io.has(Io::RETIRED) {
            return;
        }
        match e.kind {
            Kind::Conn(_) => return self.output_went(key),
            Kind::Signals => self.signals(key),
            _ => self.recv_udp(key),
        }
        if let Err(e) = self
            .core
            .register_key(key, crate::backend::Interest::READABLE)
        {
            log::error!("cannot poll entry {key} again: {e}");
        }
    }
}
