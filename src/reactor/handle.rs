//! [`Handle`]: talking to a running loop from any other thread.

use super::mesh::Group;
use crate::backend::Waker;
use crate::token::ConnId;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a handle asks of its loop, delivered on the loop's thread.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Note {
    /// [`Handle::notify`]: `on_notify` with this tag.
    Loop(u64),
    /// [`Handle::notify_conn`]: `on_conn_notify` for this connection.
    Conn(ConnId, u64),
    /// A signal caught by [`Reactor::stop_on_signals`](crate::Reactor::stop_on_signals): `on_signal`.
    Signal(i32),
}

/// What a loop shares with its handles.
#[derive(Default)]
pub(crate) struct Shared {
    /// A graceful stop was asked for.
    pub(crate) stop: AtomicBool,
    /// A stop at once was asked for: every connection closed, output dropped.
    pub(crate) stop_now: AtomicBool,
    /// Notifications not yet taken by the loop.
    pub(crate) notes: Mutex<Vec<Note>>,
}

impl Shared {
    #[inline]
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn stop_now_requested(&self) -> bool {
        self.stop_now.load(Ordering::Acquire)
    }

    /// Swaps the pending notes into `into` (which must be empty).
    pub(crate) fn take_notes(&self, into: &mut Vec<Note>) {
        std::mem::swap(
            into,
            &mut self.notes.lock().unwrap_or_else(|e| e.into_inner()),
        );
    }
}

/// Talks to a running loop from any thread: stop it gracefully, or hand it
/// a notification (say, a worker thread's result is ready).
///
/// ```no_run
/// let mut reactor = ioplex::Reactor::new(ioplex::Config::default())?;
/// let handle = reactor.handle();
/// std::thread::spawn(move || {
///     std::thread::sleep(std::time::Duration::from_secs(1));
///     handle.stop();
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
    pub(crate) waker: Waker,
    /// Every loop of the [`Server`](crate::Server) this loop belongs to.
    pub(crate) group: Option<Arc<Group>>,
}

impl Handle {
    /// Stops accepting, flushes queued output (within `shutdown_timeout`),
    /// closes everything and makes [`Reactor::run`](crate::Reactor::run)
    /// return; for a [`Server`](crate::Server), on every loop, and
    /// [`Server::run`](crate::Server::run) returns when all have.
    pub fn stop(&self) {
        if let Some(group) = &self.group {
            return group.stop_all();
        }
        self.shared.stop.store(true, Ordering::Release);
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake the loop to stop it: {e}");
        }
    }

    /// Stops at once: no more accepting, every connection closed now with
    /// its queued output dropped, and `run` returns (for a
    /// [`Server`](crate::Server), on every loop). What a second Ctrl-C does.
    pub fn stop_now(&self) {
        for (shared, waker) in self.loops() {
            shared.stop_now.store(true, Ordering::Release);
            shared.stop.store(true, Ordering::Release);
            if let Err(e) = waker.wake() {
                log::error!("cannot wake a loop to stop it: {e}");
            }
        }
    }

    /// Calls [`Handler::on_signal`](crate::Handler::on_signal) with `signal`
    /// on every loop (on its thread).
    pub(crate) fn signal(&self, signal: i32) {
        for (shared, waker) in self.loops() {
            post(shared, waker, Note::Signal(signal));
        }
    }

    /// This loop, or every loop of its server.
    fn loops(&self) -> Vec<(&Shared, &Waker)> {
        match &self.group {
            Some(g) => g.members.iter().map(|m| (&*m.shared, &m.waker)).collect(),
            None => vec![(&*self.shared, &self.waker)],
        }
    }

    /// Wakes the loop and calls [`Handler::on_notify`](crate::Handler::on_notify)
    /// with `tag` on its thread: the way for a worker thread to say its
    /// result is ready (the result itself travels in whatever the handler
    /// and worker share). Notifications sent before
    /// [`Reactor::run`](crate::Reactor::run) are delivered when it starts.
    pub fn notify(&self, tag: u64) {
        post(&self.shared, &self.waker, Note::Loop(tag));
    }

    /// Like [`notify`](Handle::notify), for one connection: the loop that
    /// owns it (in a [`Server`](crate::Server), whichever that is) calls
    /// [`Handler::on_conn_notify`](crate::Handler::on_conn_notify) with that
    /// connection's state, or drops the tag if the connection is gone by then.
    pub fn notify_conn(&self, id: ConnId, tag: u64) {
        let member = self
            .group
            .as_ref()
            .and_then(|g| g.members.get(id.loop_index()));
        match member {
            Some(m) => post(&m.shared, &m.waker, Note::Conn(id, tag)),
            None => post(&self.shared, &self.waker, Note::Conn(id, tag)),
        }
    }
}

/// Queues a note for a loop and wakes it.
pub(crate) fn post(shared: &Shared, waker: &Waker, note: Note) {
    shared
        .notes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(note);
    if let Err(e) = waker.wake() {
        log::error!("cannot wake the loop to notify it: {e}");
    }
}
