//! The loops of a [`Server`](crate::Server) as a group: each loop as the
//! others reach it ([`Member`]), the rings between them, and the stop they
//! share. A loop's own end of it is its [`Port`](super::mesh::Port).

use super::handle::Shared;
use super::mesh::ADOPT;
use super::ring::Ring;
use crate::backend::Waker;
use crate::metrics::Metrics;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// A loop's life, as the others see it.
pub(super) const RUNNING: u8 = 0;
pub(super) const STOPPING: u8 = 1;
pub(super) const EXITED: u8 = 2;

/// How an acceptor loop picks the loop that serves a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pick {
    /// The loop holding the fewest connections (counting those handed to
    /// it and not yet taken).
    LeastLoaded,
    /// Each loop in turn.
    RoundRobin,
}

/// One loop, as the others reach it.
pub(crate) struct Member {
    pub(crate) shared: Arc<Shared>,
    pub(crate) waker: Waker,
    pub(crate) metrics: Arc<Metrics>,
    pub(super) state: AtomicU8,
}

/// What the loops of a server share: who they are, and the rings between them.
pub(crate) struct Group {
    pub(crate) members: Vec<Member>,
    /// `rings[from * n + to]`; the diagonal is unused.
    rings: Vec<Ring>,
    /// Loops that began stopping (or exited): all of them, and no loop
    /// hands another a connection any more.
    stopping: AtomicUsize,
}

impl Group {
    pub(crate) fn new(members: Vec<Member>, queue: usize) -> Group {
        let n = members.len();
        let rings = (0..n * n)
            .map(|i| Ring::new(if i / n == i % n { 0 } else { queue }))
            .collect();
        Group {
            members,
            rings,
            stopping: AtomicUsize::new(0),
        }
    }

    #[inline]
    pub(super) fn ring(&self, from: usize, to: usize) -> &Ring {
        &self.rings[from * self.members.len() + to]
    }

    /// Asks every loop to stop gracefully.
    pub(crate) fn stop_all(&self) {
        for (i, m) in self.members.iter().enumerate() {
            m.shared.stop.store(true, Ordering::Release);
            if let Err(e) = m.waker.wake() {
                log::error!("cannot wake loop {i} to stop it: {e}");
            }
        }
    }

    /// Loop `i` is now `state` (never back); the last loop to begin
    /// stopping wakes the others, which may be waiting for it to exit.
    pub(super) fn set_state(&self, i: usize, state: u8) {
        let was = self.members[i].state.swap(state, Ordering::SeqCst);
        if was == RUNNING && self.stopping.fetch_add(1, Ordering::SeqCst) + 1 == self.members.len()
        {
            for m in &self.members {
                let _ = m.waker.wake();
            }
        }
    }

    /// Loop `i` has returned from `run` (or panicked): sends to it fail now.
    pub(crate) fn exited(&self, i: usize) {
        self.set_state(i, EXITED);
    }

    pub(super) fn all_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst) == self.members.len()
    }

    pub(super) fn gone(&self, i: usize) -> bool {
        self.members[i].state.load(Ordering::Relaxed) == EXITED
    }
}

impl Drop for Group {
    /// Connections handed to a loop that exited before taking them are closed.
    fn drop(&mut self) {
        for ring in &self.rings {
            ring.drain(&mut ring.leftover_reader(), usize::MAX, |h, _| {
                if h.kind == ADOPT {
                    // SAFETY: the record owned this fd; nothing else took it.
                    drop(unsafe { OwnedFd::from_raw_fd(h.word as i32) });
                }
            });
        }
    }
}
