//! Python's `selectors` module in Rust: register a file object with an
//! interest and some data, `select` to get the ready keys back.
//!
//! Like Python's `DefaultSelector` on Linux, [`Selector::new`] is
//! level-triggered epoll: a callback may read once per event and anything
//! left is reported again. [`Selector::with_backend`] picks another backend;
//! under an edge-triggered one ([`Backend::Mio`]) the caller must drain to
//! `WouldBlock`.
//!
//! Keys carry a generation: an event for an fd that was unregistered, whose
//! slot was then reused, never reaches the new owner.

#[cfg(test)]
use crate::backend::Ready;
use crate::backend::{Backend, Event, Interest, Poller, Trigger};
use crate::token::{ConnId, Generations};
use slab::Slab;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// A registration, as Python's `SelectorKey`: the fd, the events asked for, the data.
#[derive(Clone)]
pub struct Key<T> {
    /// The registered file descriptor (Python's `key.fd`).
    pub fd: RawFd,
    /// What was asked for (Python's `key.events`).
    pub events: Interest,
    /// What the caller attached: a callback, a state, anything (Python's `key.data`).
    pub data: T,
}

impl<T: fmt::Debug> fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SelectorKey(fd={}, events={}, data={:?})",
            self.fd,
            self.events.bits(),
            self.data
        )
    }
}

struct Slot<T> {
    key: Key<T>,
    generation: u32,
}

/// Python's `selectors.DefaultSelector`, on ioplex's backends.
///
/// ```
/// use ioplex::{Interest, Selector};
/// use std::net::TcpListener;
/// use std::time::Duration;
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// listener.set_nonblocking(true)?;
/// let mut sel = Selector::new()?;
/// let key = sel.register(&listener, Interest::READABLE, "accept")?;
/// assert_eq!(key.events, Interest::READABLE);
///
/// let _client = std::net::TcpStream::connect(listener.local_addr()?)?;
/// let ready = sel.select(Some(Duration::from_secs(5)))?;
/// assert_eq!(ready[0].0.data, "accept");
/// assert!(ready[0].1.is_readable());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Selector<T> {
    poller: Poller,
    slots: Slab<Slot<T>>,
    by_fd: HashMap<RawFd, usize>,
    generations: Generations,
    events: Vec<Event>,
}

fn not_registered(fd: RawFd) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{fd} is not registered"))
}

impl<T: Clone> Selector<T> {
    /// A level-triggered selector, as Python's `DefaultSelector` on Linux.
    pub fn new() -> io::Result<Selector<T>> {
        Selector::with_backend(Backend::Epoll(Trigger::Level))
    }

    /// A selector on a chosen backend.
    /// [`Backend::Uring`] reports completions, not readiness: it is refused.
    pub fn with_backend(backend: Backend) -> io::Result<Selector<T>> {
        if backend == Backend::Uring {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "Selector is readiness only (Python's selectors): the uring backend reports completions",
            ));
        }
        let (cfg, metrics) = (crate::Config::default(), std::sync::Arc::default());
        Ok(Selector {
            poller: Poller::new(backend, &cfg, &metrics)?,
            slots: Slab::new(),
            by_fd: HashMap::new(),
            generations: Generations::default(),
            events: Vec::with_capacity(256),
        })
    }

    /// Starts watching `source` for `events`. Errors as Python's: an fd
    /// registered twice is `AlreadyExists` (Python's `KeyError`), no events
    /// is `InvalidInput` (Python's `ValueError`).
    pub fn register(
        &mut self,
        source: &impl AsRawFd,
        events: Interest,
        data: T,
    ) -> io::Result<Key<T>> {
        let fd = source.as_raw_fd();
        if events == Interest::NONE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("Invalid events: {events:?}"),
            ));
        }
        if self.by_fd.contains_key(&fd) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{fd} is already registered"),
            ));
        }
        let generation = self.generations.next();
        let key = Key { fd, events, data };
        let slot = self.slots.insert(Slot {
            key: key.clone(),
            generation,
        });
        let token = ConnId::new(0, slot, generation).token();
        if let Err(e) = self
            .poller
            .register(fd, token, events, crate::backend::Source::Other)
        {
            self.slots.remove(slot);
            return Err(e);
        }
        self.by_fd.insert(fd, slot);
        Ok(key)
    }

    /// Stops watching `source`; returns its key. `NotFound` if it was not registered.
    pub fn unregister(&mut self, source: &impl AsRawFd) -> io::Result<Key<T>> {
        let fd = source.as_raw_fd();
        let slot = self.by_fd.remove(&fd).ok_or_else(|| not_registered(fd))?;
        let Slot { key, .. } = self.slots.remove(slot);
        // An fd already closed is gone from epoll: that is not an error here.
        let _ = self.poller.deregister(fd);
        Ok(key)
    }

    /// Changes the events and data of a registration, as Python's `modify`:
    /// the backend is only told when the events change.
    pub fn modify(
        &mut self,
        source: &impl AsRawFd,
        events: Interest,
        data: T,
    ) -> io::Result<Key<T>> {
        let fd = source.as_raw_fd();
        let slot = *self.by_fd.get(&fd).ok_or_else(|| not_registered(fd))?;
        if events == Interest::NONE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("Invalid events: {events:?}"),
            ));
        }
        let s = &mut self.slots[slot];
        if s.key.events != events {
            let token = ConnId::new(0, slot, s.generation).token();
            self.poller.reregister(fd, token, events)?;
            s.key.events = events;
        }
        s.key.data = data;
        Ok(s.key.clone())
    }

    /// Waits up to `timeout` (`None`: forever, `Some(ZERO)`: poll) and returns
    /// the ready keys with the ready events among those asked for.
    pub fn select(&mut self, timeout: Option<Duration>) -> io::Result<Vec<(Key<T>, Interest)>> {
        self.events.clear();
        self.poller.wait(&mut self.events, timeout)?;
        let mut ready = Vec::with_capacity(self.events.len());
        for ev in &self.events {
            if let Some(k) = self.resolve(ev) {
                ready.push(k);
            }
        }
        Ok(ready)
    }

    /// Maps an event to its key, dropping it if the token's generation is stale.
    fn resolve(&self, ev: &Event) -> Option<(Key<T>, Interest)> {
        let id = ConnId::from_token(ev.token)?;
        let slot = self.slots.get(id.key())?;
        if slot.generation != id.generation() {
            return None;
        }
        let mut mask = Interest::NONE;
        let crate::backend::What::Ready(r) = ev.what else {
            return None;
        };
        if r.readable() || r.read_closed() || r.error() {
            mask = mask | Interest::READABLE;
        }
        if r.writable() || r.error() {
            mask = mask | Interest::WRITABLE;
        }
        let mask = Interest::from_bits(mask.bits() & slot.key.events.bits());
        (mask != Interest::NONE).then(|| (slot.key.clone(), mask))
    }

    /// The key of a registered `source`; `NotFound` if there is none.
    pub fn get_key(&self, source: &impl AsRawFd) -> io::Result<Key<T>> {
        let fd = source.as_raw_fd();
        let slot = self.by_fd.get(&fd).ok_or_else(|| not_registered(fd))?;
        Ok(self.slots[*slot].key.clone())
    }

    /// How many file objects are registered.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Unregisters everything and closes the selector's own fd.
    pub fn close(self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn event_for_a_reused_slot_is_dropped() {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let b = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut sel = Selector::new().unwrap();
        sel.register(&a, Interest::READABLE, 'a').unwrap();
        let old = ConnId::new(0, 0, sel.slots[0].generation).token();
        sel.unregister(&a).unwrap();
        sel.register(&b, Interest::READABLE, 'b').unwrap();
        let stale = Event {
            token: old,
            what: crate::backend::What::Ready(Ready::READABLE),
        };
        assert!(
            sel.resolve(&stale).is_none(),
            "stale event reached the new owner"
        );
        let fresh = Event {
            token: ConnId::new(0, 0, sel.slots[0].generation).token(),
            what: crate::backend::What::Ready(Ready::READABLE),
        };
        assert_eq!(sel.resolve(&fresh).unwrap().0.data, 'b');
    }
}
