//! Raw `epoll(7)` through `libc`: level, edge or one-shot, as asked.
//!
//! This is the backend to study trigger modes with; the default loop uses
//! mio, which is epoll in edge mode underneath.

use super::{Event, Interest, Trigger};
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

pub(crate) struct EpollPoller {
    epfd: RawFd,
    trigger: Trigger,
    events: Vec<libc::epoll_event>,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl EpollPoller {
    pub(crate) fn new(trigger: Trigger) -> io::Result<EpollPoller> {
        // SAFETY: plain syscall, result checked.
        let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(EpollPoller {
            epfd,
            trigger,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 1024],
        })
    }

    pub(crate) fn trigger(&self) -> Trigger {
        self.trigger
    }

    fn ctl(&mut self, op: libc::c_int, fd: RawFd, token: usize, i: Interest) -> io::Result<()> {
        self.ctl_mode(op, fd, token, i, self.trigger)
    }

    /// Registers the loop's wake-up fd: always level-triggered, so a one-shot
    /// loop is not left deaf after its first wake-up.
    pub(crate) fn register_waker(&mut self, fd: RawFd, token: usize) -> io::Result<()> {
        self.ctl_mode(
            libc::EPOLL_CTL_ADD,
            fd,
            token,
            Interest::READABLE,
            Trigger::Level,
        )
    }

    fn ctl_mode(
        &mut self,
        op: libc::c_int,
        fd: RawFd,
        token: usize,
        i: Interest,
        trigger: Trigger,
    ) -> io::Result<()> {
        if i == Interest::NONE {
            let mut ev = libc::epoll_event {
                events: 0,
                u64: token as u64,
            };
            // SAFETY: `ev` is a valid epoll_event for the duration of the call.
            return cvt(unsafe { libc::epoll_ctl(self.epfd, op, fd, &mut ev) }).map(drop);
        }
        let mut bits = libc::EPOLLRDHUP as u32;
        if i.is_readable() {
            bits |= libc::EPOLLIN as u32;
        }
        if i.is_writable() {
            bits |= libc::EPOLLOUT as u32;
        }
        match trigger {
            Trigger::Level => {}
            Trigger::Edge => bits |= libc::EPOLLET as u32,
            Trigger::Oneshot => bits |= libc::EPOLLONESHOT as u32,
        }
        let mut ev = libc::epoll_event {
            events: bits,
            u64: token as u64,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.epfd, op, fd, &mut ev) }).map(drop)
    }

    pub(crate) fn register(&mut self, fd: RawFd, token: usize, i: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, i)
    }

    pub(crate) fn reregister(&mut self, fd: RawFd, token: usize, i: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, i)
    }

    pub(crate) fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL since Linux 2.6.9.
        cvt(unsafe { libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) })
            .map(drop)
    }

    pub(crate) fn wait(
        &mut self,
        out: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let ms = timeout_ms(timeout);
        // SAFETY: the buffer holds `len` initialised epoll_events.
        let n = cvt(unsafe {
            libc::epoll_wait(
                self.epfd,
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                ms,
            )
        })? as usize;
        for ev in &self.events[..n] {
            let bits = ev.events;
            let has = |b: libc::c_int| bits & b as u32 != 0;
            out.push(Event {
                token: ev.u64 as usize,
                readable: has(libc::EPOLLIN) || has(libc::EPOLLHUP) || has(libc::EPOLLRDHUP),
                writable: has(libc::EPOLLOUT),
                read_closed: has(libc::EPOLLHUP) || has(libc::EPOLLRDHUP),
                error: has(libc::EPOLLERR),
            });
        }
        Ok(())
    }
}

/// A poll-style timeout in milliseconds, rounded up so a timer never fires early.
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            ms.min(i32::MAX as u128) as libc::c_int
        }
    }
}

impl Drop for EpollPoller {
    fn drop(&mut self) {
        // SAFETY: we own the epoll fd.
        unsafe { libc::close(self.epfd) };
    }
}
