//! [`Core`]: everything the loop owns except the handler — the slab of
//! entries, the backend, the queues, the timers, the counters — and the
//! lookups every room uses.

use super::buffer::Pool;
use super::handle::Shared;
use super::state::{Conn, Entry, Flags, Io, Kind, State};
use crate::action::Tick;
use crate::backend::{Interest, Poller, Source, Trigger, Waker};
use crate::config::Config;
use crate::metrics::{Metrics, add};
use crate::sys::monotonic_ms;
use crate::timer::{Due, Timers, ms_ceil};
use crate::token::{ConnId, Generations, MAX_KEYS};
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

pub(crate) struct Core {
    pub(crate) cfg: Config,
    pub(crate) poller: Poller,
    pub(crate) trigger: Trigger,
    /// This loop's index in a multi-loop server (0 alone); part of every id.
    pub(crate) index: u8,
    pub(crate) entries: Slab<Entry>,
    generations: Generations,
    /// Entries that stopped at their budget: no new edge will come for them.
    pub(crate) ready: VecDeque<usize>,
    /// Connections marked Closed, removed before the loop sleeps.
    pub(crate) closing: Vec<usize>,
    /// Connections whose registered interest may be stale (level, one-shot).
    pub(crate) dirty: Vec<usize>,
    /// Reused by `broadcast`: no allocation per call.
    pub(crate) scratch: Vec<ConnId>,
    pub(crate) timers: Timers,
    pub(crate) metrics: Arc<Metrics>,
    /// Open connections (any state but removed).
    pub(crate) conns: usize,
    /// Connections with output queued: while 0, WRITABLE events need no look.
    pub(crate) queued_conns: usize,
    /// The backend reports completions (io_uring), not readiness.
    pub(crate) completion: bool,
    /// Entries closed but waiting for completions in flight.
    pub(crate) retired: usize,
    /// Spare output queues.
    pub(crate) pool: Pool,
    pub(crate) clock: Clock,
    /// What the loop shares with its [`Handle`](crate::Handle)s.
    pub(crate) shared: Arc<Shared>,
    pub(crate) waker: Waker,
    /// The graceful stop's deadline, once it began.
    pub(crate) stopping: Option<u64>,
    pub(crate) accept: AcceptState,
    pub(crate) tick: Tick,
    /// This loop's end of the mesh in a [`Server`](crate::Server); `None` alone.
    pub(crate) mesh: Option<Box<super::mesh::Port>>,
}

/// When a connection's deadline for its current state falls: the PROXY
/// header's (`proxy_timeout`) until it is in, then idle in Open, `shutdown_timeout` in Flushing, `linger` in Lingering.
pub(crate) fn due(cfg: &Config, flags: Flags, c: &Conn) -> Option<u64> {
    let after = match c.state {
        State::Open if flags.has(Flags::PROXY) => cfg.proxy_timeout,
        State::Open => cfg.idle_timeout?,
        State::Flushing => cfg.shutdown_timeout,
        State::Lingering => cfg.linger,
        State::Closed => return None,
    };
    Some(c.since + ms_ceil(after).max(1))
}

/// The accept room's state: the EMFILE pause and the per-address counts.
#[derive(Default)]
pub(crate) struct AcceptState {
    /// Accepting is paused after EMFILE/ENFILE until this time.
    pub(crate) resume: Option<u64>,
    /// Turning clients away at `max_connections`: logged once per episode.
    pub(crate) rejecting: bool,
    /// In an EMFILE/ENFILE episode: logged once, cleared by the next accept.
    pub(crate) exhausted: bool,
    /// Connections per peer address, kept while `max_connections_per_ip` is set.
    pub(crate) per_ip: HashMap<IpAddr, u32>,
    /// Boxes for the peer addresses connections keep (`Conn::peer`), from
    /// closed ones: a PROXY header or a counted client allocates nothing.
    #[allow(clippy::vec_box)] // the boxes themselves are what is kept
    pub(crate) spare_peers: Vec<Box<std::net::SocketAddr>>,
    /// At a stop: until when the listeners let begun handshakes complete.
    pub(crate) drain: Option<u64>,
}

/// The loop's clock: milliseconds since it started, read at most once per
/// iteration and only when something needs the time (a timer, a deadline,
/// the idle timeout), so a loop with no timers never reads it.
pub(crate) struct Clock {
    start: u64,
    now: u64,
    fresh: bool,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            start: monotonic_ms(),
            now: 0,
            fresh: true,
        }
    }

    /// The time, read once per iteration.
    #[inline]
    pub(crate) fn now(&mut self) -> u64 {
        if !self.fresh {
            self.now = monotonic_ms().saturating_sub(self.start);
            self.fresh = true;
        }
        self.now
    }

    /// A wait returned: the next `now` reads the clock again.
    #[inline]
    pub(crate) fn expire(&mut self) {
        self.fresh = false;
    }
}

impl Core {
    pub(crate) fn new(cfg: Config, index: u8) -> io::Result<Core> {
        let metrics = Arc::new(Metrics::default());
        let mut poller = Poller::new(cfg.backend, &cfg, &metrics)?;
        let waker = poller.waker(crate::token::WAKER)?;
        let trigger = poller.trigger();
        Ok(Core {
            trigger,
            poller,
            cfg,
            index,
            entries: Slab::new(),
            generations: Generations::default(),
            ready: VecDeque::new(),
            closing: Vec::new(),
            dirty: Vec::new(),
            scratch: Vec::new(),
            timers: Timers::default(),
            metrics,
            conns: 0,
            queued_conns: 0,
            completion: trigger == Trigger::Completion,
            retired: 0,
            pool: Pool::default(),
            clock: Clock::new(),
            shared: Arc::default(),
            waker,
            stopping: None,
            accept: AcceptState::default(),
            tick: Tick::default(),
            mesh: None,
        })
    }

    #[inline]
    pub(crate) fn now(&mut self) -> u64 {
        self.clock.now()
    }

    #[inline]
    pub(crate) fn edge(&self) -> bool {
        self.trigger == Trigger::Edge
    }

    #[inline]
    pub(crate) fn id_of(&self, key: usize, generation: u32) -> ConnId {
        ConnId::new(self.index, key, generation)
    }

    /// Adds an entry under a new generation and registers it; on failure
    /// it is not kept. Returns its key.
    pub(crate) fn insert(
        &mut self,
        fd: std::os::fd::OwnedFd,
        kind: Kind,
        interest: Interest,
        flags: Flags,
    ) -> io::Result<usize> {
        if self.entries.vacant_key() >= MAX_KEYS {
            return Err(io::Error::other(format!(
                "more than {MAX_KEYS} entries in one loop"
            )));
        }
        let generation = self.generations.next();
        let key = self.entries.insert(Entry {
            fd,
            generation,
            flags,
            io: Io::default(),
            kind,
        });
        self.register_key(key, interest).inspect_err(|_| {
            self.entries.remove(key);
        })?;
        Ok(key)
    }

    pub(crate) fn register_key(&mut self, key: usize, interest: Interest) -> io::Result<()> {
        let e = &mut self.entries[key];
        let token = ConnId::new(self.index, key, e.generation).token();
        let source = match e.kind {
            Kind::Listener => Source::Listener,
            Kind::Conn(_) => Source::Stream,
            Kind::Udp | Kind::Signals => Source::Other,
        };
        self.poller
            .register(e.fd.as_raw_fd(), token, interest, source)?;
        if self.completion {
            // What the completion backend submitted for it (see UringDriver::register).
            match source {
                Source::Listener => e.io.set(Io::ACCEPT),
                Source::Other => e.io.set(Io::POLL),
                Source::Stream => {}
            }
        }
        add(&self.metrics.registrations, 1);
        Ok(())
    }

    /// A handle to this loop (and, in a server, to every loop).
    pub(crate) fn handle(&self) -> super::handle::Handle {
        super::handle::Handle {
            shared: self.shared.clone(),
            waker: self.waker.clone(),
            group: self.mesh.as_ref().map(|p| p.group.clone()),
        }
    }

    /// The open-or-closing connection `id`, if it is still the one `id` names.
    #[inline]
    pub(crate) fn conn(&self, id: ConnId) -> Option<&Conn> {
        if id.loop_index() != self.index as usize {
            return None; // another loop's: its key means nothing here
        }
        match self.entries.get(id.key()) {
            Some(Entry {
                generation,
                kind: Kind::Conn(c),
                ..
            }) if *generation == id.generation() => Some(c),
            _ => None,
        }
    }

    /// The entry of connection `id`, if it is still the one `id` names.
    #[inline]
    pub(crate) fn conn_entry(&mut self, id: ConnId) -> Option<(&mut Flags, &mut Conn)> {
        if id.loop_index() != self.index as usize {
            return None;
        }
        match self.entries.get_mut(id.key()) {
            Some(Entry {
                generation,
                flags,
                kind: Kind::Conn(c),
                ..
            }) if *generation == id.generation() => Some((flags, c)),
            _ => None,
        }
    }

    /// The connection at slab key `key`, whatever its generation.
    #[inline]
    pub(crate) fn conn_at(&mut self, key: usize) -> Option<(&mut Flags, &mut Conn)> {
        match self.entries.get_mut(key) {
            Some(Entry {
                flags,
                kind: Kind::Conn(c),
                ..
            }) => Some((flags, c)),
            _ => None,
        }
    }

    /// Slab keys of the listeners (not those retired, going away).
    pub(crate) fn listener_keys(&self) -> Vec<usize> {
        self.entries
            .iter()
            .filter(|(_, e)| matches!(e.kind, Kind::Listener) && !e.io.has(Io::RETIRED))
            .map(|(k, _)| k)
            .collect()
    }

    /// Queues `key` to go on next turn (at most once).
    #[inline]
    pub(crate) fn push_ready(&mut self, key: usize) {
        if let Some(e) = self.entries.get_mut(key) {
            if !e.flags.replace(Flags::IN_READY) {
                self.ready.push_back(key);
            }
        }
    }

    /// Queues `key` for an interest change before sleep; nothing to do
    /// under edge triggering, where interest never changes.
    #[inline]
    pub(crate) fn mark_dirty(&mut self, key: usize) {
        if matches!(self.trigger, Trigger::Edge | Trigger::Completion) {
            return;
        }
        if let Some((flags, _)) = self.conn_at(key) {
            if !flags.replace(Flags::DIRTY) {
                self.dirty.push(key);
            }
        }
    }

    /// Arms (or moves) a connection's deadline for its current state.
    pub(crate) fn arm(&mut self, key: usize) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        let Kind::Conn(c) = &mut e.kind else {
            return;
        };
        let token = ConnId::new(self.index, key, e.generation);
        match (due(&self.cfg, e.flags, c), c.deadline) {
            (None, _) => {
                if let Some(id) = c.deadline.take() {
                    self.timers.cancel(id);
                }
            }
            (Some(at), Some(id)) => {
                self.timers.reschedule(id, at);
            }
            (Some(at), None) => c.deadline = Some(self.timers.set(at, Due::Deadline(token))),
        }
    }

    /// Takes a connection's deadline out of the timer heap.
    pub(crate) fn disarm(&mut self, key: usize) {
        if let Some(id) = self.conn_at(key).and_then(|(_, c)| c.deadline.take()) {
            self.timers.cancel(id);
        }
    }
}
