//! One iteration of the loop, in order: the code of
//! [`Reactor::run`](crate::Reactor::run), one call per step of its list.

use super::Loop;
use super::handle::Note;
use super::state::Kind;
use crate::action::{Action, CloseReason, Tick};
use crate::backend::{Ready, Trigger, What};
use crate::ctx::Ctx;
use crate::handler::Handler;
use crate::metrics::add;
use crate::timer::Due;
use crate::token::{ConnId, WAKER};
use std::io;
use std::time::Duration;

impl<H: Handler> Loop<'_, H> {
    /// The loop. Each line is one step of the list on `Reactor::run`.
    pub(super) fn run(&mut self) -> io::Result<()> {
        self.take_notes(); // notifications sent before `run`
        if self.core.index == 0 {
            super::lifecycle::sd_notify("READY=1");
        }
        loop {
            let timeout = self.timeout(); // 1.
            self.wait(timeout)?; // 2.
            self.check_stop(); // 3.
            self.events(); // 4.
            self.ready_queue(); // 5.
            self.timers(); // 6.
            self.before_sleep(); // 7.
            if self.finished() {
                return Ok(()); // 8.
            }
        }
    }

    /// Step 1: How long the backend may sleep: until the nearest timer, deadline
    /// or back-off, capped by `max_wait`; 0 when the ready queue holds work.
    /// The clock is not read when nothing is due. (A stop wakes the loop
    /// through its waker, [`Ctx::stop`] included.)
    fn timeout(&mut self) -> Option<Duration> {
        let core = &mut *self.core;
        if !core.ready.is_empty() {
            return Some(Duration::ZERO);
        }
        if core.timers.is_empty() && core.accept.resume.is_none() && core.stopping.is_none() {
            return core.cfg.max_wait; // nothing due: no clock read
        }
        let due = [
            core.timers.next_due(),
            core.accept.resume,
            core.stopping,
            core.accept.drain,
        ]
        .into_iter()
        .flatten()
        .min();
        let timeout = due.map(|d| Duration::from_millis(d.saturating_sub(core.now())));
        match (timeout, core.cfg.max_wait) {
            (Some(t), Some(m)) => Some(t.min(m)),
            (t, m) => t.or(m),
        }
    }

    /// Step 2: Wait for events; the backend retries on `EINTR`.
    #[inline]
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.events.clear();
        self.core.poller.wait(&mut self.events, timeout)?;
        self.core.clock.expire();
        add(&self.core.metrics.wakeups, 1);
        add(&self.core.metrics.events, self.events.len() as u64);
        Ok(())
    }

    /// Step 3: A stop was asked for ([`Handle::stop`](crate::Handle::stop),
    /// [`Ctx::stop`]): begin the graceful stop.
    #[inline]
    fn check_stop(&mut self) {
        if self.core.stopping.is_none() && self.core.shared.stop_requested() {
            self.begin_shutdown();
        }
    }

    /// Whether a stop at once ([`Handle::stop_now`](crate::Handle::stop_now)) was asked for.
    fn stop_now(&mut self) -> bool {
        if !self.core.shared.stop_now_requested() {
            return false;
        }
        log::warn!("stopping at once: {} connections closed", self.core.conns);
        self.abort_all(CloseReason::Shutdown);
        self.core.publish_mesh();
        true
    }

    /// Step 4: Each event: stale generations dropped; listeners accept, UDP
    /// sockets receive, connections flush on WRITABLE and read on READABLE.
    pub(super) fn events(&mut self) {
        self.core.tick = Tick::default();
        for i in 0..self.events.len() {
            let ev = self.events[i];
            if ev.token == WAKER {
                self.core.waker.reset();
                self.take_notes();
                self.take_mesh(); // what other loops of a `Server` sent
                continue;
            }
            let id = ConnId::from_token(ev.token);
            let key = id.map_or(usize::MAX, ConnId::key);
            let kind = match (self.core.entries.get(key), id) {
                (Some(e), Some(id)) if e.generation == id.generation() => &e.kind,
                _ if self.core.completion => {
                    self.stale_completion(ev.what);
                    continue;
                }
                _ => {
                    add(&self.core.metrics.stale_events, 1);
                    continue;
                }
            };
            match (ev.what, kind) {
                (What::Ready(r), Kind::Conn(_)) if !self.core.completion => self.conn_event(key, r),
                (What::Ready(_), Kind::Listener) if !self.core.completion => {
                    self.accept(key);
                    self.rearm_oneshot(key);
                }
                (What::Ready(_), Kind::Signals) if !self.core.completion => {
                    self.signals(key);
                    self.rearm_oneshot(key);
                }
                (What::Ready(_), Kind::Udp) if !self.core.completion => {
                    self.recv_udp(key);
                    self.rearm_oneshot(key);
                }
                (what, _) => self.completion(key, what),
            }
        }
    }

    /// A connection's event: write what is queued, then read.
    #[inline]
    pub(super) fn conn_event(&mut self, key: usize, r: Ready) {
        self.core.tick.writable += r.writable() as usize;
        self.core.tick.readable += r.readable() as usize;
        if (r.writable() || r.error()) && self.core.queued_conns > 0 && self.core.flush(key) {
            self.drained(key);
        }
        if r.readable() || r.read_closed() || r.error() {
            self.read(key, r.read_closed());
        }
        if self.core.trigger == Trigger::Oneshot {
            self.core.mark_dirty(key);
        }
    }

    /// Step 5: What stopped at its budget last time goes on (no new edge will
    /// come for it); what is queued during this step waits for the next turn.
    fn ready_queue(&mut self) {
        for _ in 0..self.core.ready.len() {
            let Some(key) = self.core.ready.pop_front() else {
                break;
            };
            let Some(e) = self.core.entries.get_mut(key) else {
                continue;
            };
            e.flags.clear(super::state::Flags::IN_READY);
            match e.kind {
                Kind::Conn(_) => {
                    self.redeliver(key);
                    if self.core.completion {
                        self.core.arm_recv(key);
                    } else {
                        self.read(key, true);
                    }
                }
                Kind::Listener => self.accept(key),
                Kind::Udp => self.recv_udp(key),
                Kind::Signals => self.signals(key),
            }
        }
    }

    /// Step 6: Timers and deadlines that are due; accepting resumes after an
    /// EMFILE back-off.
    fn timers(&mut self) {
        if self.core.timers.is_empty() && self.core.accept.resume.is_none() {
            return;
        }
        let now = self.core.now();
        // Timers set, none due (an idle timeout far away): one comparison.
        let due = self.core.timers.next_due().is_some_and(|at| at <= now);
        if !due && self.core.accept.resume.is_none() {
            return;
        }
        while let Some(due) = self.core.timers.pop_due(now) {
            match due {
                Due::User(None, tag) => {
                    add(&self.core.metrics.timers, 1);
                    self.handler.on_loop_timer(ctx!(self, None), tag);
                }
                Due::User(Some(id), tag) => {
                    add(&self.core.metrics.timers, 1);
                    self.call_open(id, |h, ctx, st| h.on_timer(ctx, st, tag));
                }
                Due::Deadline(id) => self.deadline(id),
            }
        }
        if self.core.accept.resume.is_some_and(|t| t <= now) && self.core.stopping.is_none() {
            self.resume_accepting();
        }
    }

    /// Step 7: Before sleeping: close what was marked (telling the handler),
    /// [`Handler::on_tick`], close what that marked, apply interest changes.
    fn before_sleep(&mut self) {
        if !self.core.closing.is_empty() {
            self.close_marked();
        }
        let tick = Tick {
            connections: self.core.conns,
            ..self.core.tick
        };
        self.handler.on_tick(ctx!(self, None), &tick);
        if !self.core.closing.is_empty() {
            self.close_marked();
        }
        if !self.core.dirty.is_empty() {
            self.core.apply_interest();
        }
        self.core.publish_mesh(); // what this iteration sent other loops
    }

    /// Step 8: Stopping, and nothing left: no connection, no listener still
    /// draining, nothing from other loops (or the stop's deadline passed).
    fn finished(&mut self) -> bool {
        let Some(deadline) = self.core.stopping else {
            return false;
        };
        if self.stop_now() {
            return true;
        }
        let settled = self.listeners_closed() & self.mesh_quiet();
        if settled && self.core.conns == 0 && self.core.retired == 0 {
            return true;
        }
        if self.core.now() >= deadline {
            self.abort_all(CloseReason::FlushTimeout);
            self.core.publish_mesh();
            return true;
        }
        false
    }

    /// A connection's queued output was all written: the handler may send more.
    pub(super) fn drained(&mut self, key: usize) {
        let generation = self.core.entries[key].generation;
        let id = self.core.id_of(key, generation);
        self.call_open(id, |h, ctx, st| h.on_drain(ctx, st));
    }

    /// Calls the handler with an open connection's state and applies the
    /// action it returns; nothing if `id` is gone or already closing.
    pub(super) fn call_open(
        &mut self,
        id: ConnId,
        call: impl FnOnce(&mut H, &mut Ctx<'_>, &mut H::Conn) -> Action,
    ) {
        if !self
            .core
            .conn(id)
            .is_some_and(|c| c.state == super::state::State::Open)
        {
            return;
        }
        let Some(st) = self.states.get_mut(id.key()).and_then(|s| s.as_mut()) else {
            return;
        };
        let action = call(self.handler, ctx!(self, Some(id)), st);
        self.apply(id.key(), action, CloseReason::Closed);
    }

    /// Delivers [`Handle::notify`](crate::Handle::notify) tags, oldest first.
    fn take_notes(&mut self) {
        let mut notes = std::mem::take(&mut self.notes);
        self.core.shared.take_notes(&mut notes);
        for &note in &notes {
            match note {
                Note::Loop(tag) => self.handler.on_notify(ctx!(self, None), tag),
                Note::Conn(id, tag) => {
                    self.call_open(id, |h, ctx, st| h.on_conn_notify(ctx, st, tag))
                }
                Note::Signal(sig) => self.handler.on_signal(ctx!(self, None), sig),
            }
        }
        notes.clear();
        self.notes = notes;
    }
}
