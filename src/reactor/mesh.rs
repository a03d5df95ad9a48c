//! What the loops of a [`Server`](crate::Server) send each other: bytes for
//! a connection another loop owns, broadcasts, notifications, closes, and
//! accepted connections from an acceptor.
//!
//! Shared-nothing: one [`Ring`] per ordered pair of loops (loop `a` writes
//! ring `a → b`, only loop `b` reads it), fixed in size, so a message costs
//! a copy into the ring and nothing else — no lock, no allocation, no
//! atomic read-modify-write. What a loop writes during an iteration is
//! published before it sleeps, with at most one wake-up per loop written
//! to, and none while that loop is still busy with the last batch
//! ([`Ring::publish`]). Sends to the same connection in one iteration grow
//! one record, so the owner writes them to the socket with one call.
//!
//! A full queue is the sender's error (`false`, counted in
//! `Metrics::mesh_full`), never a silent drop. Order is kept per sender.
//!
//! | record | word | payload | the receiving loop |
//! |---|---|---|---|
//! | `DATA` | connection id | bytes | sends them to that connection |
//! | `BROADCAST` | – | bytes | sends them to each of its open connections |
//! | `NOTIFY` | connection id | tag | calls `Handler::on_conn_notify` |
//! | `ADOPT` | fd | – | serves it as a new connection (acceptor hand-off) |
//! | `CLOSE` / `ABORT` | connection id | – | closes that connection |
//! | `MESSAGE` | sending loop | bytes | calls `Handler::on_loop_message` |

use super::Loop;
use super::core::Core;
use super::ring::{Header, Reader, Writer};
use crate::action::CloseReason;
use crate::handler::Handler;
use crate::metrics::{Metrics, add};
use crate::token::ConnId;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

const DATA: u32 = 1;
const BROADCAST: u32 = 2;
const NOTIFY: u32 = 3;
pub(super) const ADOPT: u32 = 4;
const CLOSE: u32 = 5;
const ABORT: u32 = 6;
const MESSAGE: u32 = 7;

pub(crate) use super::group::{Group, Member, Pick};
use super::group::{RUNNING, STOPPING};

/// One loop's end of the mesh, kept in its [`Core`].
pub(crate) struct Port {
    pub(crate) group: Arc<Group>,
    me: usize,
    /// Per target loop: the writer of ring `me → target`.
    out: Vec<Out>,
    /// Targets written to since the last publish.
    dirty: Vec<usize>,
    /// The readers of the rings into this loop; taken while delivering.
    inbox: Option<Box<Inbox>>,
    /// Set on the loop holding an acceptor listener.
    pub(crate) pick: Option<Pick>,
    /// Connections this acceptor handed to each other loop (its own it
    /// counts itself: `Core::conns`).
    handed: Vec<u64>,
    next: usize,
}

#[derive(Default)]
struct Out {
    w: Writer,
    /// The connection the open record is for: a send to it grows the record.
    open: Option<ConnId>,
    listed: bool,
}

struct Inbox {
    group: Arc<Group>,
    readers: Vec<Reader>,
}

impl Port {
    pub(crate) fn new(group: Arc<Group>, me: usize) -> Port {
        let n = group.members.len();
        Port {
            inbox: Some(Box::new(Inbox {
                group: group.clone(),
                readers: (0..n).map(|_| Reader::default()).collect(),
            })),
            group,
            me,
            out: (0..n).map(|_| Out::default()).collect(),
            dirty: Vec::with_capacity(n),
            pick: None,
            handed: vec![0; n],
            next: 0,
        }
    }

    /// Writes one record for loop `to`; on a full queue publishes what is
    /// there (so the reader can catch up) and returns `false`.
    fn push(&mut self, m: &Metrics, to: usize, kind: u32, word: u64, parts: &[&[u8]]) -> bool {
        let ring = self.group.ring(self.me, to);
        let o = &mut self.out[to];
        if !ring.push(&mut o.w, kind, word, parts) {
            o.open = None;
            if ring.publish(&mut o.w) {
                wake(&self.group, to, m);
            }
            add(&m.mesh_full, 1);
            log::debug!("the queue to loop {to} is full: send refused");
            return false;
        }
        o.open = None;
        if !o.listed {
            o.listed = true;
            self.dirty.push(to);
        }
        add(&m.mesh_sent, 1);
        true
    }

    /// Makes this iteration's records visible, waking the loops that need it.
    #[inline(never)]
    fn publish(&mut self, m: &Metrics) {
        while let Some(to) = self.dirty.pop() {
            let o = &mut self.out[to];
            o.listed = false;
            o.open = None;
            if self.group.ring(self.me, to).publish(&mut o.w) {
                wake(&self.group, to, m);
            }
        }
    }

    /// The loop a new connection goes to.
    fn choose(&mut self, own: usize, pick: Pick) -> usize {
        let n = self.group.members.len();
        let start = self.next;
        self.next = (self.next + 1) % n;
        let alive = |j: &usize| !self.group.gone(*j);
        let candidates = (0..n).map(|k| (start + k) % n).filter(alive);
        match pick {
            Pick::RoundRobin => candidates.take(1).next().unwrap_or(self.me),
            Pick::LeastLoaded => candidates
                .min_by_key(|&j| self.load(j, own))
                .unwrap_or(self.me),
        }
    }

    /// Connections loop `j` holds, counting those handed to it and not yet taken.
    fn load(&self, j: usize, own: usize) -> u64 {
        if j == self.me {
            return own as u64;
        }
        let m = &self.group.members[j].metrics;
        let held = held(m);
        let in_flight = self.handed[j].saturating_sub(m.adopted.load(Ordering::Relaxed));
        held + in_flight
    }
}

impl Drop for Port {
    /// Records written and not yet published (a loop that panicked) are
    /// published, so that handed connections are closed, not leaked.
    fn drop(&mut self) {
        for (to, o) in self.out.iter_mut().enumerate() {
            if to != self.me {
                self.group.ring(self.me, to).publish(&mut o.w);
            }
        }
    }
}

/// Connections a loop holds, from its counters (closed read first, so
/// that it never exceeds accepted).
fn held(m: &Metrics) -> u64 {
    let closed = m.closed.load(Ordering::Acquire);
    m.accepted.load(Ordering::Acquire).saturating_sub(closed)
}

fn wake(group: &Group, to: usize, m: &Metrics) {
    add(&m.mesh_wakes, 1);
    if let Err(e) = group.members[to].waker.wake() {
        log::error!("cannot wake loop {to}: {e}");
    }
}

impl Core {
    /// This loop's index and the number of loops (1 alone).
    pub(crate) fn loops(&self) -> usize {
        self.mesh.as_ref().map_or(1, |p| p.group.members.len())
    }

    /// Loop `to` can be sent to: another loop of this server, still running.
    fn peer(&self, to: usize) -> bool {
        self.mesh
            .as_ref()
            .is_some_and(|p| to < p.group.members.len() && to != p.me && !p.group.gone(to))
    }

    /// [`Core::send`] to a connection of another loop: into its queue.
    #[cold]
    pub(crate) fn send_remote(&mut self, id: ConnId, parts: &[&[u8]]) -> bool {
        let to = id.loop_index();
        if !self.peer(to) {
            return false;
        }
        let Some(port) = self.mesh.as_deref_mut() else {
            return false;
        };
        let o = &mut port.out[to];
        if o.open == Some(id) && port.group.ring(port.me, to).extend(&mut o.w, parts) {
            return true;
        }
        let ok = port.push(&self.metrics, to, DATA, id.token(), parts);
        if ok {
            port.out[to].open = Some(id);
        }
        ok
    }

    /// A broadcast for the other loops' connections. Returns how many
    /// connections the loops it was queued to held then.
    pub(crate) fn broadcast_remote(&mut self, data: &[u8]) -> usize {
        self.push_to_others(BROADCAST, 0, data, |m| held(m) as usize)
    }

    /// A message for the handler of every other loop; returns how many
    /// loops' queues took it.
    pub(crate) fn tell_remote(&mut self, data: &[u8]) -> usize {
        let me = self.mesh.as_deref().map_or(0, |p| p.me as u64);
        self.push_to_others(MESSAGE, me, data, |_| 1)
    }

    /// One record for every other running loop; the sum of `worth` over
    /// the loops whose queues took it.
    fn push_to_others(
        &mut self,
        kind: u32,
        word: u64,
        data: &[u8],
        worth: fn(&Metrics) -> usize,
    ) -> usize {
        let Some(port) = self.mesh.as_deref_mut() else {
            return 0;
        };
        let mut reached = 0;
        for to in 0..port.group.members.len() {
            if to != port.me
                && !port.group.gone(to)
                && port.push(&self.metrics, to, kind, word, &[data])
            {
                reached += worth(&port.group.members[to].metrics);
            }
        }
        reached
    }

    /// A notification for connection `id` of another loop.
    pub(crate) fn notify_remote(&mut self, id: ConnId, tag: u64) -> bool {
        self.control_remote(id, NOTIFY, &tag.to_le_bytes())
    }

    /// Closes (`abort`: at once) connection `id` of another loop.
    pub(crate) fn close_remote(&mut self, id: ConnId, abort: bool) -> bool {
        self.control_remote(id, if abort { ABORT } else { CLOSE }, &[])
    }

    fn control_remote(&mut self, id: ConnId, kind: u32, payload: &[u8]) -> bool {
        let to = id.loop_index();
        if !self.peer(to) {
            return false;
        }
        let Some(port) = self.mesh.as_deref_mut() else {
            return false;
        };
        port.push(&self.metrics, to, kind, id.token(), &[payload])
    }

    /// An acceptor's new connection: handed to the loop its rule picks, or
    /// given back to be served here (this loop picked, it is stopping, or
    /// the queue is full).
    pub(crate) fn hand_off(&mut self, fd: OwnedFd) -> Option<OwnedFd> {
        let Some(port) = self.mesh.as_deref_mut() else {
            return Some(fd);
        };
        let Some(pick) = port.pick else {
            return Some(fd);
        };
        let to = match self.stopping {
            Some(_) => port.me,
            None => port.choose(self.conns, pick),
        };
        use std::os::fd::AsRawFd;
        if to != port.me && port.push(&self.metrics, to, ADOPT, fd.as_raw_fd() as u64, &[]) {
            port.handed[to] += 1;
            let _ = fd.into_raw_fd(); // the record owns it now
            return None;
        }
        Some(fd)
    }

    /// Step 7's last act: this iteration's records become visible to their loops.
    #[inline]
    pub(crate) fn publish_mesh(&mut self) {
        if let Some(port) = self.mesh.as_deref_mut() {
            if !port.dirty.is_empty() {
                port.publish(&self.metrics);
            }
        }
    }

    /// This loop began its graceful stop: it hands no connection on any more.
    pub(crate) fn announce_stop(&mut self) {
        if let Some(port) = self.mesh.as_deref() {
            port.group.set_state(port.me, STOPPING);
        }
    }
}

impl<H: Handler> Loop<'_, H> {
    /// Takes what the other loops sent (step 4, on the waker's event): up
    /// to `read_budget` bytes from each, then the loop wakes itself for the rest.
    pub(super) fn take_mesh(&mut self) {
        let Some(mut inbox) = self.core.mesh.as_deref_mut().and_then(|p| p.inbox.take()) else {
            return;
        };
        let me = self.core.mesh.as_deref().map_or(0, |p| p.me);
        let budget = self.core.cfg.read_budget.max(1);
        let Inbox { group, readers } = &mut *inbox;
        let mut more = false;
        for (from, reader) in readers.iter_mut().enumerate() {
            if from != me {
                more |= group
                    .ring(from, me)
                    .drain(reader, budget, |h, p| self.deliver_record(h, p));
            }
        }
        if let Some(port) = self.core.mesh.as_deref_mut() {
            port.inbox = Some(inbox);
        }
        if more {
            let _ = self.core.waker.wake();
        }
    }

    fn deliver_record(&mut self, h: Header, payload: &[u8]) {
        add(&self.core.metrics.mesh_received, 1);
        if h.kind == ADOPT {
            add(&self.core.metrics.adopted, 1);
            // SAFETY: the acceptor gave up this fd when it wrote the record.
            return self.adopt(unsafe { OwnedFd::from_raw_fd(h.word as i32) });
        }
        if h.kind == BROADCAST {
            ctx!(self, None).broadcast_here(payload, None);
            return;
        }
        if h.kind == MESSAGE {
            let from = h.word as usize;
            return self
                .handler
                .on_loop_message(ctx!(self, None), from, payload);
        }
        let Some(id) = ConnId::from_token(h.word) else {
            return;
        };
        match h.kind {
            DATA => {
                self.core.send(id, &[payload]);
            }
            NOTIFY => {
                let tag = payload.try_into().map_or(0, u64::from_le_bytes);
                self.call_open(id, |h, ctx, st| h.on_conn_notify(ctx, st, tag));
            }
            CLOSE | ABORT if self.core.conn(id).is_some() => match h.kind {
                CLOSE => self.core.begin_close(id.key(), CloseReason::Closed),
                _ => self.core.abort(id.key(), CloseReason::Aborted),
            },
            _ => {}
        }
    }

    /// Step 8's part: the loop may exit once every loop has begun stopping
    /// (so none hands it a connection any more) and nothing sent to it is
    /// left unread.
    pub(super) fn mesh_quiet(&mut self) -> bool {
        let Some(port) = self.core.mesh.as_deref() else {
            return true;
        };
        if !port.group.all_stopping() {
            return false;
        }
        self.take_mesh();
        let Some(port) = self.core.mesh.as_deref() else {
            return true;
        };
        let n = port.group.members.len();
        (0..n).all(|from| from == port.me || port.group.ring(from, port.me).is_empty())
    }
}

impl super::Reactor {
    /// A loop that will be loop `index` of a server.
    pub(crate) fn numbered(config: crate::Config, index: u8) -> std::io::Result<super::Reactor> {
        Ok(super::Reactor {
            core: Core::new(config, index)?,
            unix_paths: Vec::new(),
        })
    }

    /// Loop `index` of a server whose loops are `group`.
    pub(crate) fn join_group(&mut self, group: Arc<Group>, index: usize) {
        self.core.mesh = Some(Box::new(Port::new(group, index)));
    }

    /// How the other loops reach this one.
    pub(crate) fn member(&self) -> Member {
        Member {
            shared: self.core.shared.clone(),
            waker: self.core.waker.clone(),
            metrics: self.core.metrics.clone(),
            state: AtomicU8::new(RUNNING),
        }
    }

    /// Makes this loop the acceptor of its listeners.
    pub(crate) fn set_pick(&mut self, pick: Pick) {
        if let Some(port) = self.core.mesh.as_deref_mut() {
            port.pick = Some(pick);
        }
    }
}
