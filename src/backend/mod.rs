//! Backends: turning "fd + interest + token" into events — readiness
//! (select, poll, epoll, mio: the loop then does the I/O) or completions
//! (io_uring: the backend did it).
//!
//! Each backend is one file implementing one trait, [`Driver`]; the
//! backend is chosen in one place, [`Poller::new`], from a [`Backend`]
//! value. Everything above this module sees only [`Poller`] and [`Event`]s.
//!
//! | backend | trigger modes | limit |
//! |---|---|---|
//! | [`Backend::Mio`] (default) | edge | none |
//! | [`Backend::Epoll`] | level, edge, oneshot | none |
//! | [`Backend::Poll`] | level | none (cost grows with the fds watched) |
//! | [`Backend::Select`] | level | fds below `FD_SETSIZE` (1024) |
//! | [`Backend::Uring`] | completion | Linux io_uring; refused with the cause where the kernel refuses it |
//!
//! A combination a backend cannot do is an [`io::ErrorKind::Unsupported`]
//! error from [`Backend::parse`], never a silent fallback; the variants that
//! take no [`Trigger`] cannot even express one.

mod bufring;
mod epoll;
mod event;
mod mio;
mod poll;
mod select;
mod uring;

pub use event::Interest;
pub(crate) use event::{Event, Ready, Source, What};

use crate::sys::EventFd;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
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
    /// `io_uring(7)`, a completion backend: receives, sends and accepts are
    /// submitted to a ring shared with the kernel and reaped from another,
    /// one `io_uring_enter` per loop iteration for all of them. Where the
    /// kernel refuses io_uring (ENOSYS, a seccomp policy's EPERM,
    /// `kernel.io_uring_disabled`), [`Reactor::new`](crate::Reactor::new)
    /// fails with the cause.
    Uring,
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
    /// Not readiness at all: the backend reports operations it finished
    /// (io_uring).
    Completion,
}

impl Backend {
    /// The trigger mode this backend delivers.
    pub fn trigger(self) -> Trigger {
        match self {
            Backend::Mio => Trigger::Edge,
            Backend::Epoll(t) => t,
            Backend::Poll | Backend::Select => Trigger::Level,
            Backend::Uring => Trigger::Completion,
        }
    }

    /// Parses the names used by the examples' `--backend` / `--trigger` flags:
    /// `mio` (edge), `epoll` with `level`, `edge` or `oneshot`, `poll` and
    /// `select` (level), `uring` (completion). A trigger the backend cannot
    /// do is `Unsupported`.
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
    ///     r#"unknown backend "kqueue"; valid backends: mio, epoll, poll, select, uring"#
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
            ("uring", None) => Ok(Backend::Uring),
            ("uring", Some(t)) => Err(unsupported(format!(
                "the uring backend reports completions, not readiness: no {t:?} trigger"
            ))),
            (other, _) => Err(unsupported(format!(
                "unknown backend {other:?}; valid backends: mio, epoll, poll, select, uring"
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
            Backend::Uring => f.write_str("uring"),
        }
    }
}

pub(crate) fn unsupported(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, msg)
}

/// The seam between the loop and a backend: "register this fd with this
/// token, wait, tell me what happened". Every backend implements it in its
/// own file; nothing above this module knows which one it talks to.
///
/// A readiness backend reports [`Event`]s and the loop does the I/O. A
/// completion backend (io_uring) does the I/O itself and reports what it
/// did, through the same `wait`.
pub(crate) trait Driver {
    /// The trigger mode its events follow.
    fn trigger(&self) -> Trigger;
    /// Whether it keeps its own table of fds, so a closed fd must be
    /// deregistered first; epoll (and so mio) forgets an fd on `close`.
    fn keeps_table(&self) -> bool {
        false
    }
    /// Starts watching `fd` for `interest`, reported with `token`; `source`
    /// says what kind of fd it is (a completion backend submits by it).
    fn register(
        &mut self,
        fd: RawFd,
        token: u64,
        interest: Interest,
        source: Source,
    ) -> io::Result<()>;
    /// Changes what `fd` is watched for (and its token).
    fn reregister(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()>;
    /// Stops watching `fd`.
    fn deregister(&mut self, fd: RawFd) -> io::Result<()>;
    /// Waits up to `timeout` (`None`: until something happens) and appends
    /// what happened to `out`. May return `Interrupted`; [`Poller::wait`] retries.
    fn wait(&mut self, out: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()>;
    /// A thread-safe way to make `wait` return, reported with `token`.
    fn waker(&mut self, token: u64) -> io::Result<Waker>;
}

/// The backend chosen at run time from [`Config`](crate::Config), as an
/// enum rather than a `Box<dyn Driver>`: `wait`, the one call made on every
/// iteration, is matched and called directly (and inlined); everything else
/// goes through [`Poller::driver`], one indirect call next to a system call
/// that costs a hundred times more.
pub(crate) enum Poller {
    Mio(mio::MioPoller),
    Epoll(epoll::EpollPoller),
    Poll(poll::PollPoller),
    Select(select::SelectPoller),
    /// Boxed: the rings' bookkeeping is several hundred bytes.
    Uring(Box<uring::UringDriver>),
}

impl Poller {
    /// The one place a backend is chosen.
    pub(crate) fn new(
        backend: Backend,
        cfg: &crate::Config,
        metrics: &Arc<crate::Metrics>,
    ) -> io::Result<Poller> {
        Ok(match backend {
            Backend::Uring => {
                Poller::Uring(Box::new(uring::UringDriver::new(cfg, metrics.clone())?))
            }
            Backend::Mio => Poller::Mio(mio::MioPoller::new()?),
            Backend::Epoll(t) => Poller::Epoll(epoll::EpollPoller::new(t)?),
            Backend::Poll => Poller::Poll(poll::PollPoller::default()),
            Backend::Select => Poller::Select(select::SelectPoller::default()),
        })
    }

    /// The chosen backend as the seam.
    fn driver(&mut self) -> &mut dyn Driver {
        match self {
            Poller::Mio(p) => p,
            Poller::Epoll(p) => p,
            Poller::Poll(p) => p,
            Poller::Select(p) => p,
            Poller::Uring(p) => &mut **p,
        }
    }

    /// The completion backend, if this is it.
    #[inline]
    pub(crate) fn uring(&mut self) -> Option<&mut uring::UringDriver> {
        match self {
            Poller::Uring(p) => Some(p),
            _ => None,
        }
    }

    /// Waits for events, retrying on `EINTR`; appends to `out`.
    #[inline]
    pub(crate) fn wait(
        &mut self,
        out: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        loop {
            let r = match self {
                // The default backend's wait, inlined: the hot path.
                Poller::Mio(p) => p.wait(out, timeout),
                _ => self.wait_other(out, timeout),
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    /// Every other backend's wait, out of line: each costs a system call
    /// that dwarfs the call to it.
    #[inline(never)]
    fn wait_other(&mut self, out: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        self.driver().wait(out, timeout)
    }

    pub(crate) fn trigger(&mut self) -> Trigger {
        self.driver().trigger()
    }

    pub(crate) fn keeps_table(&mut self) -> bool {
        self.driver().keeps_table()
    }

    pub(crate) fn register(
        &mut self,
        fd: RawFd,
        token: u64,
        interest: Interest,
        source: Source,
    ) -> io::Result<()> {
        self.driver().register(fd, token, interest, source)
    }

    pub(crate) fn reregister(
        &mut self,
        fd: RawFd,
        token: u64,
        interest: Interest,
    ) -> io::Result<()> {
        self.driver().reregister(fd, token, interest)
    }

    pub(crate) fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.driver().deregister(fd)
    }

    pub(crate) fn waker(&mut self, token: u64) -> io::Result<Waker> {
        self.driver().waker(token)
    }
}

/// Wakes a poller from another thread.
#[derive(Clone)]
pub(crate) enum Waker {
    Mio(Arc<::mio::Waker>),
    Fd(Arc<EventFd>),
    /// An eventfd the completion backend reads itself (each read resets it).
    Ring(Arc<EventFd>),
}

impl Waker {
    /// An eventfd waker, registered READABLE with `token` by `register`.
    pub(crate) fn eventfd(register: impl FnOnce(RawFd) -> io::Result<()>) -> io::Result<Waker> {
        let fd = EventFd::new()?;
        register(fd.fd())?;
        Ok(Waker::Fd(Arc::new(fd)))
    }

    pub(crate) fn wake(&self) -> io::Result<()> {
        match self {
            Waker::Mio(w) => w.wake(),
            Waker::Fd(fd) | Waker::Ring(fd) => fd.write(),
        }
    }

    /// Clears a level-triggered wake-up so it is not reported again.
    pub(crate) fn reset(&self) {
        if let Waker::Fd(fd) = self {
            fd.read();
        }
    }
}

/// The error for an fd a table-keeping backend does not hold.
pub(crate) fn not_registered(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("fd {fd} is not registered"),
    )
}

/// The error for an fd registered twice.
pub(crate) fn already_registered(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("fd {fd} is already registered"),
    )
}
