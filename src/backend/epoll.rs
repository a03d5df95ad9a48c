//! Raw `epoll(7)` through `libc`: level, edge or one-shot, as asked.
//!
//! This is the backend to study trigger modes with; the default loop uses
//! mio, which is epoll in edge mode underneath.

use super::{Driver, Event, Interest, Ready, Source, Trigger, Waker, What};
use crate::sys::{cvt, timeout_ms};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

pub(crate) struct EpollPoller {
    epfd: OwnedFd,
    trigger: Trigger,
    events: Vec<libc::epoll_event>,
}

impl EpollPoller {
    pub(crate) fn new(trigger: Trigger) -> io::Result<EpollPoller> {
        // SAFETY: plain syscall; the result is a fresh fd or -1.
        let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(EpollPoller {
            // SAFETY: epoll_create1 returned a fresh fd that nothing else owns.
            epfd: unsafe { OwnedFd::from_raw_fd(epfd) },
            trigger,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 1024],
        })
    }

    fn ctl(
        &mut self,
        op: libc::c_int,
        fd: RawFd,
        token: u64,
        i: Interest,
        trigger: Trigger,
    ) -> io::Result<()> {
        let mut bits = 0;
        if i != Interest::NONE {
            bits = libc::EPOLLRDHUP as u32;
            if i.is_readable() {
                bits |= libc::EPOLLIN as u32;
            }
            if i.is_writable() {
                bits |= libc::EPOLLOUT as u32;
            }
            bits |= match trigger {
                Trigger::Level => 0,
                Trigger::Edge => libc::EPOLLET as u32,
                Trigger::Oneshot => libc::EPOLLONESHOT as u32,
                Trigger::Completion => 0, // not a mode of epoll: Backend::Epoll never has it
            };
        }
        let mut ev = libc::epoll_event {
            events: bits,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) }).map(drop)
    }
}

impl Driver for EpollPoller {
    fn trigger(&self) -> Trigger {
        self.trigger
    }

    fn register(&mut self, fd: RawFd, token: u64, i: Interest, _: Source) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, i, self.trigger)
    }

    fn reregister(&mut self, fd: RawFd, token: u64, i: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, i, self.trigger)
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL since Linux 2.6.9.
        let r = unsafe {
            libc::epoll_ctl(
                self.epfd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
        cvt(r).map(drop)
    }

    fn wait(&mut self, out: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        // SAFETY: the buffer holds `len` initialised epoll_events.
        let n = cvt(unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                timeout_ms(timeout),
            )
        })? as usize;
        for ev in &self.events[..n] {
            let bits = ev.events;
            let has = |b: libc::c_int| bits & b as u32 != 0;
            let closed = has(libc::EPOLLHUP) || has(libc::EPOLLRDHUP);
            out.push(Event {
                token: ev.u64,
                what: What::Ready(
                    Ready::default()
                        .with(Ready::READABLE, has(libc::EPOLLIN) || closed)
                        .with(Ready::WRITABLE, has(libc::EPOLLOUT))
                        .with(Ready::READ_CLOSED, closed)
                        .with(Ready::ERROR, has(libc::EPOLLERR)),
                ),
            });
        }
        Ok(())
    }

    /// Always level-triggered, so a one-shot loop is not left deaf after
    /// its first wake-up.
    fn waker(&mut self, token: u64) -> io::Result<Waker> {
        Waker::eventfd(|fd| {
            self.ctl(
                libc::EPOLL_CTL_ADD,
                fd,
                token,
                Interest::READABLE,
                Trigger::Level,
            )
        })
    }
}
