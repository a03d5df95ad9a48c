//! The listeners at a graceful stop: lose no connection the kernel accepted.
//!
//! The kernel completes handshakes on its own and queues them on the
//! listener; closing a listener resets every connection still in its
//! queue (in a `SO_REUSEPORT` group too, unless `net.ipv4.tcp_migrate_req`
//! is set, which it is not by default). So a stop does not close them at
//! once:
//!
//! 1. a socket filter makes the listener drop SYNs: no new handshake
//!    begins (such a client retries in 1 s and is refused then), while
//!    those already begun complete and are accepted and served as usual,
//!    for `Config::accept_drain`;
//! 2. then the filter drops everything: no handshake completes any more,
//!    so the accept queue holds exactly what the kernel had accepted and
//!    can only shrink;
//! 3. the queue is accepted to its end (each connection gets what
//!    `on_connect` sends, then the graceful close), and only then is the
//!    listener closed.

use super::Loop;
use super::state::Kind;
use crate::handler::Handler;
use crate::metrics::add;
use crate::sys::{self, Admit};
use crate::timer::ms_ceil;
use std::io;

impl<H: Handler> Loop<'_, H> {
    /// Step 1 above, when the stop begins.
    pub(super) fn begin_drain(&mut self) {
        let keys = self.core.listener_keys();
        if keys.is_empty() {
            return;
        }
        for &k in &keys {
            self.filter(k, Admit::Handshakes);
        }
        let grace = ms_ceil(self.core.cfg.accept_drain);
        self.core.accept.drain = Some(self.core.now() + grace);
    }

    /// Steps 2 and 3, once `accept_drain` has passed. Whether no listener
    /// is left (step 8 waits for that).
    pub(super) fn listeners_closed(&mut self) -> bool {
        let Some(until) = self.core.accept.drain else {
            return true;
        };
        if self.core.now() < until {
            return false;
        }
        for key in self.core.listener_keys() {
            self.filter(key, Admit::Nothing);
            self.accept_rest(key);
            // A completion backend cancels its accept; the listener leaves
            // once that is back (retire).
            if self.core.completion
                || self
                    .core
                    .poller
                    .deregister(self.core.entries[key].raw_fd())
                    .is_ok()
            {
                add(&self.core.metrics.deregistrations, 1);
            }
            self.core.retire(key);
        }
        self.core.accept.drain = None;
        true
    }

    fn filter(&mut self, key: usize, admit: Admit) {
        if let Err(e) = sys::filter_listener(self.core.entries[key].raw_fd(), admit) {
            // Then closing it may reset what arrives meanwhile, as without this.
            log::warn!("stop: cannot filter listener {key} ({admit:?}): {e}");
        }
    }

    /// Accepts what the listener's queue holds, to its end.
    fn accept_rest(&mut self, key: usize) {
        loop {
            let Some(e) = self.core.entries.get(key) else {
                return;
            };
            if !matches!(e.kind, Kind::Listener) {
                return;
            }
            match sys::accept(e.raw_fd()) {
                Ok((fd, peer)) => self.add_conn(fd, peer),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::warn!("stop: accepting what was queued: {e}");
                    return;
                }
            }
        }
    }
}
