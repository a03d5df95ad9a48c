//! Backends: turning "fd + interest + token" into readiness events.
//!
//! The backend is chosen in one place, [`Poller::new`], from a [`Backend`]
//! value. Everything above this module sees only [`Poller`] and [`Event`]s.
//!
//! | backend | trigger modes | limit |
//! |---|---|---|
//! | [`Backend::Mio`] (default) | edge | none |
//! | [`Backend::Epoll`] | level, edge, oneshot | none |
//! | [`Backend::Poll`] | level | none (cost grows with the fds watched) |
//! | [`Backend::Select`] | level | fds below `FD_SETSIZE` (1024) |
//!
//! A combination a backend cannot do is an [`io::ErrorKind::Unsupported`]
//! error from [`Backend::parse`], never a silent fallback; the variants that
//! take no [`Trigger`] cannot even express one.

mod epoll;
mod mio;
mod poll;
mod select;

use std::fmt;
use std::io;
use std::ops::BitOr;
use std::os::fd::RawFd;
use std::time::Duration;

/// Which readiness mechanism the loop waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// `mio` (epoll on Linux), edge-triggered. The default.
    #[default]
    Mio,
    /// Raw `epoll(7)` through `libc`, in the given trigger mode.
    Epoll(Trigger),
    /// `poll(2)` through `libc`, level-triggered: a `pollfd` array scanned
    /// whole on every wait.
    Poll,
    /// `select(2)` through `libc`, level-triggered: fd bitmaps scanned whole
    /// on every wait. Registering an fd ≥ `FD_SETSIZE` (1024) is an error.
    Select,
}

/// How the kernel reports readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Reported on every wait while the condition holds (select, poll, epoll default).
    Level,
    /// Reported when the condition changes (`EPOLLET`); the reader must drain.
    Edge,
    /// Reported once, then disarmed until re-registered (`EPOLLONESHOT`).
    Oneshot,
}

impl Backend {
    /// The trigger mode this backend delivers.
    pub fn trigger(self) -> Trigger {
        match self {
            Backend::Mio => Trigger::Edge,
            Backend::Epoll(t) => t,
            Backend::Poll | Backend::Select => Trigger::Level,
        }
    }

    /// Parses the names used by the examples' `--backend` / `--trigger` flags:
    /// `mio` (edge), `epoll` with `level`, `edge` or `oneshot`, `poll` and
    /// `select` (level). A trigger the backend cannot do is `Unsupported`.
    ///
    /// ```
    /// use ioplex::{Backend, Trigger};
    /// assert_eq!(Backend::parse("poll", None)?, Backend::Poll);
    /// assert_eq!(Backend::parse("epoll", Some("edge"))?, Backend::Epoll(Trigger::Edge));
    /// let err = Backend::parse("select", Some("edge")).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
    /// let err = Backend::parse("kqueue", None).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     r#"unknown backend "kqueue"; valid backends: mio, epoll, poll, select"#
    /// );
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn parse(backend: &str, trigger: Option<&str>) -> io::Result<Backend> {
        let trig = match trigger {
            None => None,
            Some("level") => Some(Trigger::Level),
            Some("edge") => Some(Trigger::Edge),
            Some("oneshot") => Some(Trigger::Oneshot),
            Some(other) => {
                return Err(unsupported(format!(
                    "unknown trigger {other:?}; valid triggers: level, edge, oneshot"
                )));
            }
        };
        match (backend, trig) {
            ("mio", None | Some(Trigger::Edge)) => Ok(Backend::Mio),
            ("mio", Some(t)) => Err(unsupported(format!(
                "the mio backend is edge-triggered only, not {t:?}"
            ))),
            ("epoll", t) => Ok(Backend::Epoll(t.unwrap_or(Trigger::Level))),
            ("poll", None | Some(Trigger::Level)) => Ok(Backend::Poll),
            ("select", None | Some(Trigger::Level)) => Ok(Backend::Select),
            (name @ ("poll" | "select"), Some(t)) => Err(unsupported(format!(
                "the {name} backend is level-triggered only, not {t:?}"
            ))),
            (other, _) => Err(unsupported(format!(
                "unknown backend {other:?}; valid backends: mio, epoll, poll, select"
            ))),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Mio => f.write_str("mio"),
            Backend::Epoll(t) => write!(f, "epoll-{t:?}"),
            Backend::Poll => f.write_str("poll"),
            Backend::Select => f.write_str("select"),
        }
    }
}

pub(crate) fn unsupported(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, msg)
}

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

/// One readiness report, backend-neutral.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// The token the fd was registered with.
    pub token: usize,
    /// A read will not block (data, EOF or an error is there).
    pub readable: bool,
    /// A write will not block.
    pub writable: bool,
    /// The peer closed its write side: EOF is queued (maybe behind data).
    pub read_closed: bool,
    /// An error is pending on the socket.
    pub error: bool,
}

/// The chosen backend behind one enum: the loop dispatches with a `match`,
/// not through a vtable.
pub(crate) enum Poller {
    Mio(mio::MioPoller),
    Epoll(epoll::EpollPoller),
    Poll(poll::PollPoller),
    Select(select::SelectPoller),
}

macro_rules! dispatch {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            Poller::Mio($p) => $e,
            Poller::Epoll($p) => $e,
            Poller::Poll($p) => $e,
            Poller::Select($p) => $e,
        }
    };
}

impl Poller {
    pub(crate) fn new(backend: Backend) -> io::Result<Poller> {
        Ok(match backend {
            Backend::Mio => Poller::Mio(mio::MioPoller::new()?),
            Backend::Epoll(t) => Poller::Epoll(epoll::EpollPoller::new(t)?),
            Backend::Poll => Poller::Poll(poll::PollPoller::new()?),
            Backend::Select => Poller::Select(select::SelectPoller::new()?),
        })
    }

    pub(crate) fn trigger(&self) -> Trigger {
        match self {
            Poller::Mio(_) => Trigger::Edge,
            Poller::Epoll(p) => p.trigger(),
            Poller::Poll(_) | Poller::Select(_) => Trigger::Level,
        }
    }

    /// Whether the backend keeps its own table of fds, so a closed fd must
    /// be deregistered first; epoll (and so mio) forgets it on `close`.
    pub(crate) fn keeps_table(&self) -> bool {
        !matches!(self, Poller::Mio(_) | Poller::Epoll(_))
    }

    pub(crate) fn register(
        &mut self,
        fd: RawFd,
        token: usize,
        interest: Interest,
    ) -> io::Result<()> {
        dispatch!(self, p => p.register(fd, token, interest))
    }

    pub(crate) fn reregister(
        &mut self,
        fd: RawFd,
        token: usize,
        interest: Interest,
    ) -> io::Result<()> {
        dispatch!(self, p => p.reregister(fd, token, interest))
    }

    pub(crate) fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        dispatch!(self, p => p.deregister(fd))
    }

    /// Waits for events, retrying on `EINTR`; appends to `out`.
    pub(crate) fn wait(
        &mut self,
        out: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        loop {
            let r = dispatch!(self, p => p.wait(out, timeout));
            match r {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    /// A thread-safe way to make `wait` return, delivering `token`.
    pub(crate) fn waker(&mut self, token: usize) -> io::Result<Waker> {
        match self {
            Poller::Mio(p) => p.waker(token),
            Poller::Epoll(p) => {
                let w = EventFd::new()?;
                p.register_waker(w.0, token)?;
                Ok(Waker::Fd(std::sync::Arc::new(w)))
            }
            // Level-triggered anyway: the loop's `reset` clears the eventfd.
            Poller::Poll(p) => {
                let w = EventFd::new()?;
                p.register(w.0, token, Interest::READABLE)?;
                Ok(Waker::Fd(std::sync::Arc::new(w)))
            }
            Poller::Select(p) => {
                let w = EventFd::new()?;
                p.register(w.0, token, Interest::READABLE)?;
                Ok(Waker::Fd(std::sync::Arc::new(w)))
            }
        }
    }
}

/// Wakes a poller from another thread.
#[derive(Clone)]
pub(crate) enum Waker {
    Mio(std::sync::Arc<::mio::Waker>),
    Fd(std::sync::Arc<EventFd>),
}

impl Waker {
    pub(crate) fn wake(&self) -> io::Result<()> {
        match self {
            Waker::Mio(w) => w.wake(),
            Waker::Fd(fd) => fd.write(),
        }
    }

    /// Clears a level-triggered wake-up so it is not reported again.
    pub(crate) fn reset(&self) {
        if let Waker::Fd(fd) = self {
            fd.read();
        }
    }
}

/// An `eventfd(2)`, the wake-up fd for the non-mio backends.
pub(crate) struct EventFd(RawFd);

impl EventFd {
    fn new() -> io::Result<EventFd> {
        // SAFETY: plain syscall, result checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(EventFd(fd))
    }
    fn write(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our own fd.
        let n = unsafe { libc::write(self.0, (&one as *const u64).cast(), 8) };
        if n < 0 {
            let e = io::Error::last_os_error();
            // A full counter already means "woken".
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
        }
        Ok(())
    }
    fn read(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64 from our own fd.
        unsafe { libc::read(self.0, (&mut v as *mut u64).cast(), 8) };
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.0) };
    }
}
