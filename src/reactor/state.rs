//! What the loop keeps per registered fd: an [`Entry`] in the slab, with
//! its generation, its [`Flags`] and what kind of fd it is.

use super::buffer::OutBuf;
use crate::action::CloseReason;
use crate::timer::TimerId;
use crate::token::ConnId;
use slab::Slab;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// One slab entry: a listener, a UDP socket or a connection.
pub(crate) struct Entry {
    pub(crate) fd: OwnedFd,
    pub(crate) generation: u32,
    pub(crate) flags: Flags,
    /// Operations a completion backend has in flight for it.
    pub(crate) io: Io,
    pub(crate) kind: Kind,
}

/// The parts of `id`'s entry a send needs, if `id` is a connection that
/// may still be sent to (open, or flushing its last replies).
#[inline]
pub(crate) fn sendable(
    entries: &mut Slab<Entry>,
    id: ConnId,
) -> Option<(&OwnedFd, &mut Flags, &mut Conn)> {
    match entries.get_mut(id.key()) {
        Some(Entry {
            fd,
            generation,
            flags,
            kind: Kind::Conn(c),
            ..
        }) if *generation == id.generation()
            && matches!(c.state, State::Open | State::Flushing) =>
        {
            Some((fd, flags, c))
        }
        _ => None,
    }
}

pub(crate) enum Kind {
    Listener,
    Udp,
    Conn(Conn),
    /// A `signalfd`: the signals [`Reactor::stop_on_signals`](crate::Reactor::stop_on_signals) catches.
    Signals,
}

impl Entry {
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Where a connection is in its life; the transitions are in
/// [`close`](super::close)'s table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum State {
    /// Reading and writing.
    Open,
    /// Close requested: flushing queued output; input is discarded.
    Flushing,
    /// FIN sent: discarding input until the peer's EOF or `linger`.
    Lingering,
    /// Marked for closing before the loop sleeps; events are ignored.
    Closed,
}

/// Input kept for the handler. Boxed: 8 bytes while idle (as `Option`)
/// instead of 24 for a bare `Vec`.
#[allow(clippy::box_collection)]
pub(crate) type Kept = Box<Vec<u8>>;

/// One connection's loop state. Its size is most of what an idle connection costs.
pub(crate) struct Conn {
    pub(crate) state: State,
    pub(crate) reason: CloseReason,
    /// Bytes the socket refused; allocated only while some are pending.
    pub(crate) out: Option<Box<OutBuf>>,
    /// Input the handler left unconsumed ([`Action::Consumed`](crate::Action::Consumed)).
    pub(crate) input: Option<Kept>,
    /// Last input (Open) or when the state began (Flushing, Lingering), in ms.
    pub(crate) since: u64,
    /// This connection's one deadline in the timer heap (idle, flush, linger).
    pub(crate) deadline: Option<TimerId>,
    /// The peer's address, kept only while the loop needs it after accept
    /// (the per-address cap counts it down at close).
    pub(crate) peer: Option<Box<SocketAddr>>,
}

impl Conn {
    pub(crate) fn new(since: u64, peer: Option<Box<SocketAddr>>) -> Conn {
        Conn {
            state: State::Open,
            reason: CloseReason::Eof,
            out: None,
            input: None,
            since,
            deadline: None,
            peer,
        }
    }

    /// Bytes queued for the socket.
    pub(crate) fn queued(&self) -> usize {
        self.out.as_ref().map_or(0, |o| o.len())
    }

    /// Whether the loop reads this connection, given its `flags`: an open
    /// one unless reading is paused; a closing one (Flushing, Lingering)
    /// always, to discard input until the peer's EOF; none after that EOF
    /// or once Closed. The readiness loop's read, its interest and the
    /// completion loop's armed receive all ask this.
    #[inline]
    pub(crate) fn wants_read(&self, flags: Flags) -> bool {
        let reading = match self.state {
            State::Open => !flags.read_paused(),
            State::Flushing | State::Lingering => true,
            State::Closed => false,
        };
        reading && !flags.has(Flags::READ_CLOSED)
    }
}

/// An entry's flags: each bit a fact the loop keeps.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct Flags(u16);

impl Flags {
    /// Queued in the loop's ready queue (stopped at its budget).
    pub(crate) const IN_READY: Flags = Flags(1);
    /// The peer's EOF was read.
    pub(crate) const READ_CLOSED: Flags = Flags(2);
    /// Reading paused: output passed the high watermark.
    pub(crate) const OUTPUT_FULL: Flags = Flags(4);
    /// Reading paused by the handler ([`Ctx::pause_reading`](crate::Ctx::pause_reading)).
    pub(crate) const HELD: Flags = Flags(8);
    /// Kept input goes to the handler again at the next ready-queue turn.
    pub(crate) const REDELIVER: Flags = Flags(16);
    /// Queued for an interest change before sleep (level, one-shot).
    pub(crate) const DIRTY: Flags = Flags(32);
    /// Registered for READABLE.
    pub(crate) const REG_R: Flags = Flags(64);
    /// Registered for WRITABLE.
    pub(crate) const REG_W: Flags = Flags(128);
    /// Waiting for its PROXY protocol header: the handler has not heard of it.
    pub(crate) const PROXY: Flags = Flags(256);
    /// The handler says a request is under way ([`Ctx::set_busy`](crate::Ctx::set_busy)).
    pub(crate) const BUSY: Flags = Flags(512);
    /// A graceful stop waits for this busy connection's request to end.
    pub(crate) const LAST_REQUEST: Flags = Flags(1024);

    #[inline]
    pub(crate) fn has(self, f: Flags) -> bool {
        self.0 & f.0 != 0
    }
    /// Reading is paused: by the high watermark or by the handler.
    #[inline]
    pub(crate) fn read_paused(self) -> bool {
        self.has(Flags::OUTPUT_FULL) || self.has(Flags::HELD)
    }
    #[inline]
    pub(crate) fn set(&mut self, f: Flags) {
        self.0 |= f.0;
    }
    #[inline]
    pub(crate) fn clear(&mut self, f: Flags) {
        self.0 &= !f.0;
    }
    /// Sets or clears `f`.
    #[inline]
    pub(crate) fn put(&mut self, f: Flags, on: bool) {
        if on { self.set(f) } else { self.clear(f) }
    }
    /// Sets `f` and says whether it was already set.
    #[inline]
    pub(crate) fn replace(&mut self, f: Flags) -> bool {
        let was = self.has(f);
        self.set(f);
        was
    }
}

/// What a completion backend has in flight for an entry. The entry (and
/// its fd, its output queue, its slab key) stays until all of it has come
/// back: no completion ever reaches a new owner, and no buffer the kernel
/// may still read is freed.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct Io(u8);

impl Io {
    pub(crate) const ACCEPT: Io = Io(1);
    pub(crate) const RECV: Io = Io(2);
    pub(crate) const SEND: Io = Io(4);
    pub(crate) const POLL: Io = Io(8);
    /// Closed and told the handler; removed once nothing is in flight.
    pub(crate) const RETIRED: Io = Io(128);

    #[inline]
    pub(crate) fn has(self, f: Io) -> bool {
        self.0 & f.0 != 0
    }
    #[inline]
    pub(crate) fn set(&mut self, f: Io) {
        self.0 |= f.0;
    }
    #[inline]
    pub(crate) fn clear(&mut self, f: Io) {
        self.0 &= !f.0;
    }
    /// Nothing in flight (whether retired or not).
    #[inline]
    pub(crate) fn idle(self) -> bool {
        self.0 & !Io::RETIRED.0 == 0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}
