//! Accepting: until `WouldBlock` or `accepts_per_cycle` (then the ready
//! queue), with the limits a new client can meet — `max_connections`,
//! `max_connections_per_ip` — and the EMFILE pause.
//!
//! Out of descriptors, `accept` fails while the listener stays readable: a
//! level-triggered loop would spin on it at 100 % CPU. Instead the
//! listeners are deregistered for `accept_backoff` and tried again after.

use super::Loop;
use super::state::{Conn, Flags, Kind};
use crate::backend::Interest;
use crate::handler::Handler;
use crate::metrics::add;
use crate::peer::Peer;
use crate::sys;
use crate::timer::ms_ceil;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

impl<H: Handler> Loop<'_, H> {
    /// Accepts until WouldBlock, the per-cycle cap (then: ready queue), or
    /// descriptor exhaustion (then: pause for `accept_backoff`).
    pub(super) fn accept(&mut self, key: usize) {
        // A completion backend accepts by itself (a multishot accept).
        let draining = self.core.accept.drain.is_some(); // a stop: see `drain`
        let stopped = self.core.stopping.is_some() && !draining;
        if self.core.accept.resume.is_some() || stopped || self.core.completion {
            return;
        }
        for _ in 0..self.core.cfg.accepts_per_cycle {
            let Some(e) = self.core.entries.get(key) else {
                return;
            };
            match sys::accept(e.raw_fd()) {
                Ok((fd, peer)) => {
                    if std::mem::take(&mut self.core.accept.exhausted) {
                        log::info!("accept: descriptors available again");
                    }
                    if let Some(fd) = self.core.hand_off(fd) {
                        self.add_conn(fd, peer) // this loop serves it
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if sys::is_fd_exhaustion(&e) => {
                    self.pause_accepting(&e);
                    return;
                }
                Err(e) => log::debug!("accept: {e}"),
            }
        }
        self.core.push_ready(key);
    }

    pub(super) fn pause_accepting(&mut self, e: &io::Error) {
        let core = &mut *self.core;
        add(&core.metrics.accept_errors, 1);
        let backoff = core.cfg.accept_backoff;
        if core.accept.exhausted {
            log::debug!("accept: {e}: still out of descriptors, pausing again");
        } else {
            log::warn!(
                "accept: {e}: pausing accepts for {backoff:?} at a time until descriptors free up"
            );
            core.accept.exhausted = true;
        }
        core.accept.resume = Some(core.now() + ms_ceil(backoff).max(1));
        // Level-triggered backends would report the listener again at once.
        for k in core.listener_keys() {
            if core.poller.deregister(core.entries[k].raw_fd()).is_ok() {
                add(&core.metrics.deregistrations, 1);
            }
        }
    }

    pub(super) fn resume_accepting(&mut self) {
        self.core.accept.resume = None;
        log::debug!("accept: retrying after the back-off");
        for k in self.core.listener_keys() {
            if let Err(e) = self.core.register_key(k, Interest::READABLE) {
                log::error!("accept: cannot re-register listener: {e}");
            }
            self.core.push_ready(k);
        }
    }

    /// Whether a new client from `peer` may stay; if not it is told why.
    fn admit(&mut self, fd: &OwnedFd, peer: &Peer) -> bool {
        let core = &mut *self.core;
        let refuse = |fd: &OwnedFd, msg: &[u8]| {
            let _ = sys::send(fd.as_raw_fd(), msg);
        };
        if core.conns >= core.cfg.max_connections {
            add(&core.metrics.rejected, 1);
            if !core.accept.rejecting {
                log::warn!(
                    "max_connections ({}) reached: turning new clients away",
                    core.cfg.max_connections
                );
                core.accept.rejecting = true;
            }
            refuse(fd, &core.cfg.busy_message);
            return false;
        }
        if core.accept.rejecting {
            log::info!("below max_connections again: accepting");
            core.accept.rejecting = false;
        }
        // Behind a PROXY header the socket's peer is the balancer: the
        // client is counted once the header names it.
        match peer.inet() {
            Some(inet) if !core.cfg.proxy_protocol => core.admit_ip(fd.as_raw_fd(), inet),
            _ => true,
        }
    }

    /// Serves a connection another loop accepted (a [`Server`](crate::Server)'s acceptor).
    pub(super) fn adopt(&mut self, fd: OwnedFd) {
        let peer = sys::peer_of(&fd);
        self.add_conn(fd, peer);
    }

    pub(super) fn add_conn(&mut self, fd: OwnedFd, peer: Peer) {
        if !self.admit(&fd, &peer) {
            return;
        }
        let proxied = self.core.cfg.proxy_protocol;
        let core = &mut *self.core;
        if core.cfg.nodelay {
            let _ = socket2::SockRef::from(&fd).set_tcp_nodelay(true);
        }
        let edge = core.edge();
        let (interest, mut flags) = match edge {
            true => (
                Interest::READABLE | Interest::WRITABLE,
                Flags::REG_R | Flags::REG_W,
            ),
            false => (Interest::READABLE, Flags::REG_R),
        };
        if proxied {
            flags = flags | Flags::PROXY; // the handler hears of it once the header is in
        }
        // Kept while the per-address cap must count it down at close.
        let counted = peer
            .inet()
            .filter(|_| core.cfg.max_connections_per_ip.is_some() && !proxied);
        let since = match proxied {
            true => core.now(), // the header's deadline counts from now
            false => core.now_if_idle(),
        };
        let kept = counted.map(|a| core.keep_peer(a));
        let conn = Conn::new(since, kept);
        let key = match core.insert(fd, Kind::Conn(conn), interest, flags) {
            Ok(key) => key,
            Err(e) => {
                log::warn!("register {peer}: {e}");
                if let Some(inet) = counted {
                    core.forget_peer(inet.ip());
                }
                return;
            }
        };
        core.conns += 1;
        add(&core.metrics.accepted, 1);
        core.arm(key);
        if core.completion {
            core.arm_recv(key);
        }
        let id = core.id_of(key, core.entries[key].generation);
        log::debug!("{id}: accepted {peer}");
        if self.states.len() <= key {
            self.states.resize_with(key + 1, || None);
        }
        if proxied {
            return; // `on_connect` once the PROXY header names the client (proxy.rs)
        }
        let state = self.handler.on_connect(ctx!(self, Some(id)), peer);
        self.states[key] = Some(state);
        if self.core.stopping.is_some() {
            // Taken from the accept queue during a stop: it gets what
            // `on_connect` sent, then the close every connection gets.
            self.core
                .begin_close(key, crate::action::CloseReason::Shutdown);
        }
    }
}

/// Spare boxes for peer addresses kept at most: a churn of that many
/// closes between accepts allocates nothing (48 KiB with malloc's headers).
const SPARE_PEERS: usize = 1024;

impl super::core::Core {
    /// The time a new connection's idle clock starts at; 0 (unread) when
    /// there is no idle timeout to measure.
    fn now_if_idle(&mut self) -> u64 {
        match self.cfg.idle_timeout {
            Some(_) => self.now(),
            None => 0,
        }
    }

    /// The per-address cap for a new client from `peer`: counted, or told
    /// `busy_message` on `fd` and refused.
    pub(crate) fn admit_ip(&mut self, fd: std::os::fd::RawFd, peer: SocketAddr) -> bool {
        let Some(cap) = self.cfg.max_connections_per_ip else {
            return true;
        };
        let held = self.accept.per_ip.entry(peer.ip()).or_insert(0);
        if *held as usize >= cap {
            add(&self.metrics.rejected_per_ip, 1);
            log::debug!(
                "{peer}: already holds {cap} connections (max_connections_per_ip): turned away"
            );
            let _ = sys::send(fd, &self.cfg.busy_message);
            return false;
        }
        *held += 1;
        true
    }

    /// A box holding `addr` for a connection to keep, reused from a closed
    /// connection's when there is one: no allocation per connection once warm.
    pub(crate) fn keep_peer(&mut self, addr: SocketAddr) -> Box<SocketAddr> {
        match self.accept.spare_peers.pop() {
            Some(mut b) => {
                *b = addr;
                b
            }
            None => Box::new(addr),
        }
    }

    /// A connection's kept address is no longer needed: the box is kept
    /// for the next one (up to `SPARE_PEERS`).
    pub(crate) fn spare_peer(&mut self, b: Box<SocketAddr>) {
        if self.accept.spare_peers.len() < SPARE_PEERS {
            self.accept.spare_peers.push(b);
        }
    }

    /// One connection from `ip` is gone: count it down (and forget the address at 0).
    pub(crate) fn forget_peer(&mut self, ip: IpAddr) {
        if let Some(n) = self.accept.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.accept.per_ip.remove(&ip);
            }
        }
    }
}
