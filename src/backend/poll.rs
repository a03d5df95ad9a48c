//! `poll(2)` through `libc`: level-triggered only.
//!
//! The table is a `Vec<pollfd>` handed to the kernel as is, plus the tokens
//! at the same indexes and an fd → index map. Every wait copies the whole
//! table into the kernel and scans all of it back: the cost grows with the
//! number of registered fds, ready or not (note 003: "poll返回后,需要轮询pollfd
//! 来获取就绪的描述符"). Unlike `select` there is no fd limit.

use super::{
    Driver, Event, Interest, Ready, Source, Trigger, Waker, What, already_registered,
    not_registered,
};
use crate::sys::{cvt, timeout_ms};
use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

#[derive(Default)]
pub(crate) struct PollPoller {
    /// What the kernel reads and fills in, one entry per registered fd.
    fds: Vec<libc::pollfd>,
    /// `tokens[i]` belongs to `fds[i]`.
    tokens: Vec<u64>,
    /// Where each fd sits in `fds`.
    index: HashMap<RawFd, usize>,
}

fn events_for(i: Interest) -> libc::c_short {
    let mut bits = 0;
    if i.is_readable() {
        // POLLRDHUP: tell a half-closed peer apart from data (Linux only).
        bits |= libc::POLLIN | libc::POLLRDHUP;
    }
    if i.is_writable() {
        bits |= libc::POLLOUT;
    }
    bits
}

impl Driver for PollPoller {
    fn trigger(&self) -> Trigger {
        Trigger::Level
    }

    fn keeps_table(&self) -> bool {
        true
    }

    fn register(&mut self, fd: RawFd, token: u64, i: Interest, _: Source) -> io::Result<()> {
        if fd < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot poll fd {fd}"),
            ));
        }
        if self.index.contains_key(&fd) {
            return Err(already_registered(fd));
        }
        self.index.insert(fd, self.fds.len());
        self.fds.push(libc::pollfd {
            fd,
            events: events_for(i),
            revents: 0,
        });
        self.tokens.push(token);
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: u64, i: Interest) -> io::Result<()> {
        let at = *self.index.get(&fd).ok_or_else(|| not_registered(fd))?;
        self.fds[at].events = events_for(i);
        self.tokens[at] = token;
        Ok(())
    }

    /// Swap-remove: the last entry takes the freed place, so removal is O(1)
    /// and the table stays dense for the kernel.
    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let at = self.index.remove(&fd).ok_or_else(|| not_registered(fd))?;
        self.fds.swap_remove(at);
        self.tokens.swap_remove(at);
        if let Some(moved) = self.fds.get(at) {
            self.index.insert(moved.fd, at);
        }
        Ok(())
    }

    fn wait(&mut self, out: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        // SAFETY: `fds` holds `len` initialised pollfds for the whole call.
        let n = cvt(unsafe {
            libc::poll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                timeout_ms(timeout),
            )
        })?;
        let mut left = n as usize;
        for (pfd, &token) in self.fds.iter().zip(&self.tokens) {
            if left == 0 {
                break;
            }
            let r = pfd.revents;
            if r == 0 {
                continue;
            }
            left -= 1;
            let has = |b: libc::c_short| r & b != 0;
            let closed = has(libc::POLLHUP) || has(libc::POLLRDHUP);
            out.push(Event {
                token,
                what: What::Ready(
                    Ready::default()
                        .with(Ready::READABLE, has(libc::POLLIN) || closed)
                        .with(Ready::WRITABLE, has(libc::POLLOUT))
                        .with(Ready::READ_CLOSED, closed)
                        // POLLNVAL: the fd was closed while registered; the owner's
                        // next read fails with EBADF and it deregisters.
                        .with(Ready::ERROR, has(libc::POLLERR) || has(libc::POLLNVAL)),
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

impl PollPoller {
    /// How many fds the table holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.fds.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn deregister_swaps_the_last_entry_into_the_hole() {
        let socks: Vec<_> = (0..3).map(|_| UnixStream::pair().unwrap()).collect();
        let mut p = PollPoller::default();
        for (t, (a, _)) in socks.iter().enumerate() {
            p.register(a.as_raw_fd(), t as u64, Interest::READABLE, Source::Other)
                .unwrap();
        }
        p.deregister(socks[0].0.as_raw_fd()).unwrap();
        assert_eq!(p.len(), 2);
        // The last one moved to index 0 and is still found by fd.
        (&socks[2].1).write_all(b"x").unwrap();
        let mut out = Vec::new();
        p.wait(&mut out, Some(Duration::from_secs(5))).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].token, 2);
        p.reregister(socks[2].0.as_raw_fd(), 7, Interest::READABLE)
            .unwrap();
        out.clear();
        p.wait(&mut out, Some(Duration::ZERO)).unwrap();
        assert_eq!(out[0].token, 7);
        assert_eq!(
            p.deregister(socks[0].0.as_raw_fd()).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
