//! `select(2)` through `libc`: level-triggered only, fds below `FD_SETSIZE`.
//!
//! An `fd_set` is a bitmap of `FD_SETSIZE` (1024) bits. The kernel is given
//! the highest fd + 1 and scans every bit below it, and the caller scans them
//! again to find the ready ones; the sets are overwritten by the result, so
//! they are rebuilt (copied from the master sets) before every call. Setting
//! a bit at or past 1024 writes outside the bitmap: in C that is silent
//! memory corruption, so [`SelectPoller::register`] refuses such an fd with
//! an error instead.

use super::{
    Driver, Event, Interest, Ready, Source, Trigger, Waker, What, already_registered,
    not_registered,
};
use crate::sys::{cvt, timeout_ms};
use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// The largest fd `select` can watch, plus one.
pub(crate) const FD_SETSIZE: usize = libc::FD_SETSIZE;

struct Watched {
    fd: RawFd,
    token: u64,
    interest: Interest,
}

pub(crate) struct SelectPoller {
    watched: Vec<Watched>,
    index: HashMap<RawFd, usize>,
    /// The sets as registered; copied into the kernel's before each wait.
    /// Boxed: 128 bytes each would make every `Poller` that large.
    read_set: Box<libc::fd_set>,
    write_set: Box<libc::fd_set>,
    /// Highest registered fd, or -1.
    max_fd: RawFd,
}

fn empty_set() -> libc::fd_set {
    // SAFETY: an all-zero fd_set is valid, and FD_ZERO makes sure of it.
    unsafe {
        let mut set: libc::fd_set = std::mem::zeroed();
        libc::FD_ZERO(&mut set);
        set
    }
}

fn check_fd(fd: RawFd) -> io::Result<()> {
    if fd < 0 || fd as usize >= FD_SETSIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "select(2) cannot watch fd {fd}: only fds 0..{FD_SETSIZE} fit in an fd_set \
                 (FD_SETSIZE); use the poll or epoll backend"
            ),
        ));
    }
    Ok(())
}

impl Default for SelectPoller {
    fn default() -> SelectPoller {
        SelectPoller {
            watched: Vec::new(),
            index: HashMap::new(),
            read_set: Box::new(empty_set()),
            write_set: Box::new(empty_set()),
            max_fd: -1,
        }
    }
}

impl SelectPoller {
    /// Sets or clears `fd`'s bits in the master sets. `fd` was checked.
    fn set_bits(&mut self, fd: RawFd, i: Interest) {
        // SAFETY: `check_fd` put fd in 0..FD_SETSIZE; the sets are ours.
        unsafe {
            if i.is_readable() {
                libc::FD_SET(fd, &mut *self.read_set);
            } else {
                libc::FD_CLR(fd, &mut *self.read_set);
            }
            if i.is_writable() {
                libc::FD_SET(fd, &mut *self.write_set);
            } else {
                libc::FD_CLR(fd, &mut *self.write_set);
            }
        }
    }
}

impl Driver for SelectPoller {
    fn trigger(&self) -> Trigger {
        Trigger::Level
    }

    fn keeps_table(&self) -> bool {
        true
    }

    fn register(&mut self, fd: RawFd, token: u64, i: Interest, _: Source) -> io::Result<()> {
        check_fd(fd)?;
        if self.index.contains_key(&fd) {
            return Err(already_registered(fd));
        }
        self.index.insert(fd, self.watched.len());
        self.watched.push(Watched {
            fd,
            token,
            interest: i,
        });
        self.set_bits(fd, i);
        self.max_fd = self.max_fd.max(fd);
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: u64, i: Interest) -> io::Result<()> {
        let at = *self.index.get(&fd).ok_or_else(|| not_registered(fd))?;
        self.watched[at].token = token;
        self.watched[at].interest = i;
        self.set_bits(fd, i);
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let at = self.index.remove(&fd).ok_or_else(|| not_registered(fd))?;
        self.set_bits(fd, Interest::NONE);
        self.watched.swap_remove(at);
        if let Some(moved) = self.watched.get(at) {
            self.index.insert(moved.fd, at);
        }
        if fd == self.max_fd {
            self.max_fd = self.watched.iter().map(|w| w.fd).max().unwrap_or(-1);
        }
        Ok(())
    }

    fn wait(&mut self, out: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        // The kernel overwrites the sets with the result: hand it copies.
        let mut r = *self.read_set;
        let mut w = *self.write_set;
        let mut tv = timeout.map(|d| {
            // Milliseconds rounded up, as the other backends, so a timer never fires early.
            let ms = timeout_ms(Some(d)) as i64;
            libc::timeval {
                tv_sec: (ms / 1000) as libc::time_t,
                tv_usec: ((ms % 1000) * 1000) as libc::suseconds_t,
            }
        });
        let tvp = tv
            .as_mut()
            .map_or(std::ptr::null_mut(), |t| t as *mut libc::timeval);
        // SAFETY: the sets and the timeval are valid for the call; nfds is
        // at most FD_SETSIZE because every fd was checked at registration.
        let n = cvt(unsafe {
            libc::select(self.max_fd + 1, &mut r, &mut w, std::ptr::null_mut(), tvp)
        })?;
        // `n` counts bits, so an fd both readable and writable counts twice.
        let mut left = n as usize;
        for wd in &self.watched {
            if left == 0 {
                break;
            }
            // SAFETY: every watched fd is in 0..FD_SETSIZE.
            let (readable, writable) =
                unsafe { (libc::FD_ISSET(wd.fd, &r), libc::FD_ISSET(wd.fd, &w)) };
            if !readable && !writable {
                continue;
            }
            left = left.saturating_sub(readable as usize + writable as usize);
            // select cannot tell EOF or an error from data: all three are
            // "readable", and the read that follows finds out which.
            out.push(Event {
                token: wd.token,
                what: What::Ready(
                    Ready::default()
                        .with(Ready::READABLE, readable && wd.interest.is_readable())
                        .with(Ready::WRITABLE, writable && wd.interest.is_writable()),
                ),
            });
        }
        Ok(())
    }

    /// Level-triggered anyway: the loop's `reset` clears the eventfd.
    fn waker(&mut self, token: u64) -> io::Result<Waker> {
        Waker::eventfd(|fd| self.register(fd, token, Interest::READABLE, Source::Other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn an_fd_past_fd_setsize_is_refused_not_written_past_the_bitmap() {
        let mut p = SelectPoller::default();
        for fd in [1024, 5000, -1] {
            let e = p
                .register(fd, 0, Interest::READABLE, Source::Other)
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        }
        assert!(
            p.register(1023, 0, Interest::READABLE, Source::Other)
                .is_ok()
        );
    }

    fn ready(token: u64, r: Ready) -> Event {
        Event {
            token,
            what: What::Ready(r),
        }
    }

    #[test]
    fn readiness_and_interest_changes_are_reported() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut p = SelectPoller::default();
        p.register(b.as_raw_fd(), 9, Interest::READABLE, Source::Other)
            .unwrap();
        let mut out = Vec::new();
        p.wait(&mut out, Some(Duration::ZERO)).unwrap();
        assert!(out.is_empty());
        (&a).write_all(b"x").unwrap();
        p.wait(&mut out, Some(Duration::from_secs(5))).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0], ready(9, Ready::READABLE));
        out.clear();
        p.reregister(b.as_raw_fd(), 10, Interest::WRITABLE).unwrap();
        p.wait(&mut out, Some(Duration::from_secs(5))).unwrap();
        assert_eq!(out[0], ready(10, Ready::WRITABLE));
        p.deregister(b.as_raw_fd()).unwrap();
        assert_eq!(p.max_fd, -1);
    }
}
