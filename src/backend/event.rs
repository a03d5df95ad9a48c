//! What a backend is asked to watch ([`Interest`], [`Source`]) and what it
//! reports back ([`Event`]: readiness, or a finished operation).

use std::fmt;
use std::ops::BitOr;

/// What a registration asks to be told about: readable, writable or both.
///
/// The values match Python's `selectors.EVENT_READ` (1) and `EVENT_WRITE` (2).
///
/// ```
/// use ioplex::Interest;
/// let both = Interest::READABLE | Interest::WRITABLE;
/// assert!(both.is_readable() && both.is_writable());
/// assert_eq!(both.bits(), 3);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(u8);

impl Interest {
    /// Tell me when a read will not block (Python's `EVENT_READ`).
    pub const READABLE: Interest = Interest(1);
    /// Tell me when a write will not block (Python's `EVENT_WRITE`).
    pub const WRITABLE: Interest = Interest(2);
    /// No interest at all: the fd stays registered but is never reported.
    pub const NONE: Interest = Interest(0);

    /// Whether readable is asked for.
    pub fn is_readable(self) -> bool {
        self.0 & 1 != 0
    }
    /// Whether writable is asked for.
    pub fn is_writable(self) -> bool {
        self.0 & 2 != 0
    }
    /// An interest from Python-style bits (1 read, 2 write; others ignored).
    pub fn from_bits(bits: u8) -> Interest {
        Interest(bits & 3)
    }
    /// The bits, as Python prints a selector key's `events`.
    pub fn bits(self) -> u8 {
        self.0
    }
    /// `self` without the bits of `other`.
    pub fn remove(self, other: Interest) -> Interest {
        Interest(self.0 & !other.0)
    }
}

impl BitOr for Interest {
    type Output = Interest;
    fn bitor(self, rhs: Interest) -> Interest {
        Interest(self.0 | rhs.0)
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.is_readable(), self.is_writable()) {
            (true, true) => f.write_str("READABLE|WRITABLE"),
            (true, false) => f.write_str("READABLE"),
            (false, true) => f.write_str("WRITABLE"),
            (false, false) => f.write_str("NONE"),
        }
    }
}

/// What one wait reports for one registered fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    /// The token the fd was registered with.
    pub(crate) token: u64,
    /// What happened.
    pub(crate) what: What,
}

/// What happened to a registered fd: readiness, or a finished operation.
/// The results are as the kernel gives them: ≥ 0 success, else `-errno`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum What {
    /// Ready for what [`Ready`] says (every readiness backend; io_uring's
    /// poll on UDP sockets and the waker).
    Ready(Ready),
    /// A listener's accept finished: the new fd or an error; `more`: the
    /// multishot accept goes on.
    Accepted { res: i32, more: bool },
    /// A receive finished: bytes (0: EOF) in provided buffer `buf`, or an error.
    Received { res: i32, buf: Option<u16> },
    /// A send finished: bytes sent, or an error.
    Sent { res: i32 },
}

/// What kind of fd a registration is, for a completion backend, which
/// must know what to submit for it (an accept, a receive, a poll).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A listening socket.
    Listener,
    /// A connected stream socket.
    Stream,
    /// Anything else watched for readiness (UDP sockets, the waker).
    Other,
}

/// Readiness bits of one [`Event`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ready(u8);

impl Ready {
    /// A read will not block (data, EOF or an error is there).
    pub(crate) const READABLE: Ready = Ready(1);
    /// A write will not block.
    pub(crate) const WRITABLE: Ready = Ready(2);
    /// The peer closed its write side: EOF is queued (maybe behind data).
    pub(crate) const READ_CLOSED: Ready = Ready(4);
    /// An error is pending on the socket.
    pub(crate) const ERROR: Ready = Ready(8);

    /// `self` with `other`'s bits added where `on`.
    #[inline]
    pub(crate) fn with(self, other: Ready, on: bool) -> Ready {
        Ready(self.0 | if on { other.0 } else { 0 })
    }
    #[inline]
    pub(crate) fn readable(self) -> bool {
        self.0 & 1 != 0
    }
    #[inline]
    pub(crate) fn writable(self) -> bool {
        self.0 & 2 != 0
    }
    #[inline]
    pub(crate) fn read_closed(self) -> bool {
        self.0 & 4 != 0
    }
    #[inline]
    pub(crate) fn error(self) -> bool {
        self.0 & 8 != 0
    }
}
