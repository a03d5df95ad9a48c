//! Interest changes for the backends that need them, made once before the
//! loop sleeps. Edge-triggered backends need none: a connection is
//! registered READABLE|WRITABLE once at accept and never again. Level
//! triggering asks for WRITABLE only while output is queued (or it would
//! report a writable socket on every wait), and for READABLE only while
//! reading is not paused; one-shot re-arms what it disarmed.

use super::Loop;
use super::core::Core;
use super::state::{Flags, Kind, State};
use crate::action::CloseReason;
use crate::backend::{Interest, Trigger};
use crate::handler::Handler;
use crate::metrics::add;

impl Core {
    /// Makes each dirty connection's registered interest match what it needs now.
    pub(crate) fn apply_interest(&mut self) {
        let oneshot = self.trigger == Trigger::Oneshot;
        while let Some(key) = self.dirty.pop() {
            let Some(e) = self.entries.get_mut(key) else {
                continue;
            };
            let Kind::Conn(c) = &e.kind else {
                continue;
            };
            let f = &mut e.flags;
            f.clear(Flags::DIRTY);
            if c.state == State::Closed {
                continue;
            }
            let want_r = c.wants_read(*f);
            let want_w = c.out.is_some();
            if !oneshot && want_r == f.has(Flags::REG_R) && want_w == f.has(Flags::REG_W) {
                continue;
            }
            f.put(Flags::REG_R, want_r);
            f.put(Flags::REG_W, want_w);
            let mut i = Interest::NONE;
            if want_r {
                i = i | Interest::READABLE;
            }
            if want_w {
                i = i | Interest::WRITABLE;
            }
            let token = crate::token::ConnId::new(self.index, key, e.generation).token();
            let fd = e.raw_fd();
            add(&self.metrics.reregistrations, 1);
            if let Err(err) = self.poller.reregister(fd, token, i) {
                log::warn!("reregister {fd}: {err}");
                self.abort(key, CloseReason::Error(err.kind()));
            }
        }
    }
}

impl<H: Handler> Loop<'_, H> {
    /// A one-shot backend disarms an fd after each event: listeners, UDP
    /// sockets and the signalfd are armed again at once (connections before
    /// sleep). A listener paused for EMFILE is left to `resume_accepting`.
    pub(super) fn rearm_oneshot(&mut self, key: usize) {
        if self.core.trigger != Trigger::Oneshot {
            return;
        }
        let Some(e) = self.core.entries.get(key) else {
            return;
        };
        if matches!(e.kind, Kind::Listener) && self.core.accept.resume.is_some() {
            return;
        }
        let token = self.core.id_of(key, e.generation).token();
        add(&self.core.metrics.reregistrations, 1);
        if let Err(e) = self
            .core
            .poller
            .reregister(e.raw_fd(), token, Interest::READABLE)
        {
            log::error!("re-arming a listener, UDP socket or signalfd: {e}");
        }
    }
}
