//! The default backend: `mio` (epoll on Linux), always edge-triggered.

use super::{Driver, Event, Interest, Ready, Source, Trigger, Waker, What};
use mio::unix::SourceFd;
use mio::{Events, Poll, Token};
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct MioPoller {
    poll: Poll,
    events: Events,
}

fn mio_interest(i: Interest) -> io::Result<mio::Interest> {
    match (i.is_readable(), i.is_writable()) {
        (true, true) => Ok(mio::Interest::READABLE | mio::Interest::WRITABLE),
        (true, false) => Ok(mio::Interest::READABLE),
        (false, true) => Ok(mio::Interest::WRITABLE),
        (false, false) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "mio cannot register an fd with no interest; deregister it instead",
        )),
    }
}

impl MioPoller {
    pub(crate) fn new() -> io::Result<MioPoller> {
        Ok(MioPoller {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
        })
    }
}

impl Driver for MioPoller {
    fn trigger(&self) -> Trigger {
        Trigger::Edge
    }

    fn register(&mut self, fd: RawFd, token: u64, i: Interest, _: Source) -> io::Result<()> {
        self.poll
            .registry()
            .register(&mut SourceFd(&fd), Token(token as usize), mio_interest(i)?)
    }

    fn reregister(&mut self, fd: RawFd, token: u64, i: Interest) -> io::Result<()> {
        self.poll
            .registry()
            .reregister(&mut SourceFd(&fd), Token(token as usize), mio_interest(i)?)
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.poll.registry().deregister(&mut SourceFd(&fd))
    }

    #[inline]
    fn wait(&mut self, out: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        self.poll.poll(&mut self.events, timeout)?;
        out.extend(self.events.iter().map(|e| {
            Event {
                token: e.token().0 as u64,
                what: What::Ready(
                    Ready::default()
                        .with(Ready::READABLE, e.is_readable())
                        .with(Ready::WRITABLE, e.is_writable())
                        .with(Ready::READ_CLOSED, e.is_read_closed())
                        .with(Ready::ERROR, e.is_error()),
                ),
            }
        }));
        Ok(())
    }

    fn waker(&mut self, token: u64) -> io::Result<Waker> {
        let waker = mio::Waker::new(self.poll.registry(), Token(token as usize))?;
        Ok(Waker::Mio(Arc::new(waker)))
    }
}
