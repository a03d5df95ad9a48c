//! [`Ctx`]: what a handler may do from inside a callback.

use crate::action::CloseReason;
use crate::config::Config;
use crate::metrics::Snapshot;
use crate::peer::Peer;
use crate::reactor::core::Core;
use crate::reactor::state::{Flags, State};
use crate::timer::{Due, TimerId, ms_ceil};
use crate::token::ConnId;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// What a handler may do: send, close, broadcast, set timers, pause
/// reading, stop the server.
pub struct Ctx<'a> {
    pub(crate) core: &'a mut Core,
    pub(crate) current: Option<ConnId>,
}

impl Ctx<'_> {
    /// The connection (or UDP socket) this callback is about.
    ///
    /// # Panics
    /// In [`Handler::on_loop_timer`](crate::Handler::on_loop_timer),
    /// [`Handler::on_tick`](crate::Handler::on_tick) and
    /// [`Handler::on_shutdown`](crate::Handler::on_shutdown), which are about
    /// no connection; use [`Ctx::current`] there.
    pub fn id(&self) -> ConnId {
        self.current
            .expect("Ctx::id called outside a connection callback")
    }

    /// The connection this callback is about, if any.
    pub fn current(&self) -> Option<ConnId> {
        self.current
    }

    /// Sends to the current connection. Returns `false` if it is gone or closing.
    #[inline]
    pub fn send(&mut self, data: &[u8]) -> bool {
        match self.current {
            Some(id) => self.core.send(id, &[data]),
            None => false,
        }
    }

    /// Sends several slices as one write (`sendmsg`), e.g. a header and a body.
    /// Up to 8 slices go in one system call.
    pub fn send_parts(&mut self, parts: &[&[u8]]) -> bool {
        match self.current {
            Some(id) => self.send_parts_to(id, parts),
            None => false,
        }
    }

    /// Sends `len` bytes of `file` from `offset` to connection `id`, after
    /// what is queued for it: the kernel sends them from the page cache
    /// (`sendfile(2)`, counted in [`Metrics::sendfiles`](crate::Metrics)),
    /// they never pass through this process's memory, and they count
    /// toward neither the watermarks nor `max_output`.
    /// [`Handler::on_drain`](crate::Handler::on_drain) follows when all of
    /// it is out (unless the socket took it all at once: check
    /// [`Ctx::queued`]). One file at a time per connection: a second
    /// before the first is out is a `WouldBlock` error. The file is closed
    /// once sent; one cut short under the sender closes the connection.
    ///
    /// ```no_run
    /// # use ioplex::{Action, Ctx};
    /// # fn on_request(ctx: &mut Ctx<'_>) -> std::io::Result<()> {
    /// let file = std::fs::File::open("index.html")?;
    /// let len = file.metadata()?.len();
    /// ctx.send(format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").as_bytes());
    /// ctx.send_file(ctx.id(), file, 0, len)?;
    /// # Ok(()) }
    /// ```
    pub fn send_file(
        &mut self,
        id: ConnId,
        file: std::fs::File,
        offset: u64,
        len: u64,
    ) -> io::Result<()> {
        self.core.send_file(id, file, offset, len)
    }

    /// Sends to any connection. Returns `false` if it is gone or closing.
    ///
    /// In a [`Server`](crate::Server) `id` may live on another loop (its
    /// [`ConnId::loop_index`]): the bytes go into that loop's bounded queue
    /// and it sends them, in the order this loop sent them. `false` then
    /// means the queue is full (counted in `Metrics::mesh_full`) or that
    /// loop has exited; `true`, that the bytes are queued (a connection that
    /// closes before they arrive does not get them).
    pub fn send_to(&mut self, id: ConnId, data: &[u8]) -> bool {
        self.core.send(id, &[data])
    }

    /// [`send_parts`](Ctx::send_parts) to any connection.
    pub fn send_parts_to(&mut self, id: ConnId, parts: &[&[u8]]) -> bool {
        match parts.len() {
            0..=8 => self.core.send(id, parts),
            _ => parts.chunks(8).all(|c| self.core.send(id, c)),
        }
    }

    /// Sends to every open connection except `except`; returns how many took it.
    ///
    /// In a [`Server`](crate::Server), the connections of every loop: each
    /// other loop gets the bytes through its queue and sends them to its
    /// own. Those count as the connections such a loop held when it was
    /// queued; a loop whose queue is full (counted in `Metrics::mesh_full`)
    /// counts nothing, so the sender sees it.
    pub fn broadcast(&mut self, data: &[u8], except: Option<ConnId>) -> usize {
        let here = self.broadcast_here(data, except);
        match self.core.mesh {
            Some(_) => here + self.core.broadcast_remote(data),
            None => here,
        }
    }

    /// Gives `data` to the handler of every other loop of the
    /// [`Server`](crate::Server) ([`Handler::on_loop_message`](crate::Handler::on_loop_message),
    /// after its current callback), in the order this loop told them: the
    /// way for loops to share what their own connections must hear (a chat
    /// room's messages, with each loop's own rules for its members).
    /// Returns how many loops' queues took it: fewer than
    /// `loop_count() - 1` when a queue is full (counted in
    /// `Metrics::mesh_full`) or a loop has exited, or `data` is over half
    /// a queue ([`Config::loop_queue`](crate::Config::loop_queue)). 0 for a lone [`Reactor`](crate::Reactor).
    pub fn tell_loops(&mut self, data: &[u8]) -> usize {
        self.core.tell_remote(data)
    }

    /// [`broadcast`](Ctx::broadcast) to this loop's connections only.
    pub(crate) fn broadcast_here(&mut self, data: &[u8], except: Option<ConnId>) -> usize {
        let mut ids = std::mem::take(&mut self.core.scratch);
        ids.clear();
        ids.extend(self.connections());
        let mut n = 0;
        for &id in &ids {
            if Some(id) != except && self.core.send(id, &[data]) {
                n += 1;
            }
        }
        self.core.scratch = ids;
        n
    }

    /// Ids of the open connections (of this loop, in a [`Server`](crate::Server)).
    pub fn connections(&self) -> impl Iterator<Item = ConnId> + '_ {
        let index = self.core.index;
        self.core
            .entries
            .iter()
            .filter_map(move |(key, e)| match &e.kind {
                crate::reactor::state::Kind::Conn(c) if c.state == State::Open => {
                    Some(ConnId::new(index, key, e.generation))
                }
                _ => None,
            })
    }

    /// How many connections the loop holds.
    pub fn connection_count(&self) -> usize {
        self.core.conns
    }

    /// Which loop of a [`Server`](crate::Server) this is (0 for a lone
    /// [`Reactor`](crate::Reactor)): the [`ConnId::loop_index`] of its connections.
    pub fn loop_index(&self) -> usize {
        self.core.index as usize
    }

    /// How many loops the server runs (1 for a lone [`Reactor`](crate::Reactor)).
    pub fn loop_count(&self) -> usize {
        self.core.loops()
    }

    /// Calls [`Handler::on_conn_notify`](crate::Handler::on_conn_notify)
    /// with `tag` for connection `id`, on whichever loop owns it, after this
    /// callback: the way for handlers on different loops to talk (a
    /// notification for a connection gone by then is dropped). Another
    /// loop's goes through its bounded queue: `false` if that is full
    /// (counted in `Metrics::mesh_full`) or the loop has exited; this loop's
    /// is delivered on its next iteration, as a
    /// [`Handle::notify_conn`](crate::Handle::notify_conn) is.
    pub fn notify_conn(&mut self, id: ConnId, tag: u64) -> bool {
        if id.loop_index() != self.core.index as usize {
            return self.core.notify_remote(id, tag);
        }
        let core = &*self.core;
        crate::reactor::handle::post(
            &core.shared,
            &core.waker,
            crate::reactor::handle::Note::Conn(id, tag),
        );
        true
    }

    /// Bytes queued for `id` that the socket has not taken yet (0 for
    /// another loop's connection: only its loop knows).
    pub fn queued(&self, id: ConnId) -> usize {
        self.core.conn(id).map_or(0, |c| c.queued())
    }

    /// Bytes of `id`'s output that the kernel holds and the peer has not
    /// acknowledged yet (`SIOCOUTQ`): what [`Ctx::queued`] does not see.
    /// `queued + unacked` shrinking is the sign that a peer reads, however
    /// large the kernel's buffers have grown. 0 if `id` is gone.
    pub fn unacked(&self, id: ConnId) -> usize {
        self.core.conn(id).map_or(0, |_| {
            let fd = self.core.entries[id.key()].raw_fd();
            crate::sys::unacked(fd).unwrap_or(0)
        })
    }

    /// Who connection `id` is connected to: over TCP its address (behind
    /// a PROXY header, the client's), over a Unix socket its path if any.
    pub fn peer(&self, id: ConnId) -> Option<Peer> {
        let c = self.core.conn(id)?;
        if let Some(p) = &c.peer {
            return Some(Peer::Inet(**p));
        }
        Some(crate::sys::peer_of(&self.core.entries.get(id.key())?.fd))
    }

    /// The peer's address of a TCP connection (see [`Ctx::peer`]).
    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        let e = self.core.entries.get(id.key())?;
        let c = self.core.conn(id)?;
        match &c.peer {
            Some(p) => Some(**p),
            None => socket2::SockRef::from(&e.fd).peer_addr().ok()?.as_socket(),
        }
    }

    /// The local address of a connection: the address of the listener it
    /// came in on (with the concrete IP when that listener is on `0.0.0.0`).
    /// A handler serving two listeners tells them apart with it in
    /// [`Handler::on_connect`](crate::Handler::on_connect), say a service
    /// port and a metrics port. One `getsockname(2)` per call; nothing is
    /// stored per connection.
    pub fn local_addr(&self, id: ConnId) -> Option<SocketAddr> {
        self.core.conn(id)?;
        let e = self.core.entries.get(id.key())?;
        socket2::SockRef::from(&e.fd).local_addr().ok()?.as_socket()
    }

    /// Flushes `id`'s output, sends FIN, then closes. Idempotent. Another
    /// loop's connection is closed by its loop, after what this one sent it.
    pub fn close(&mut self, id: ConnId) {
        if self.core.conn(id).is_some() {
            self.core.begin_close(id.key(), CloseReason::Closed);
        } else if id.loop_index() != self.core.index as usize {
            self.core.close_remote(id, false);
        }
    }

    /// Closes `id` now, dropping queued output (another loop's: when its
    /// loop takes the request).
    pub fn abort(&mut self, id: ConnId) {
        if self.core.conn(id).is_some() {
            self.core.abort(id.key(), CloseReason::Aborted);
        } else if id.loop_index() != self.core.index as usize {
            self.core.close_remote(id, true);
        }
    }

    /// Says whether `id` is in the middle of a request (say, its answer is
    /// being computed on a worker thread): a graceful stop closes
    /// connections between requests at once and waits for busy ones to
    /// finish (within `shutdown_timeout`). A connection holding a partial
    /// frame ([`Action::Consumed`](crate::Action::Consumed)) counts as busy
    /// without being told.
    pub fn set_busy(&mut self, id: ConnId, busy: bool) {
        if let Some((flags, _)) = self.core.conn_entry(id) {
            flags.put(Flags::BUSY, busy);
            if !busy {
                self.core.request_done(id.key());
            }
        }
    }

    /// Stops reading from `id`: its bytes wait in the kernel, whose flow
    /// control slows the peer down (backpressure, not buffering). Input kept
    /// with [`Action::Consumed`](crate::Action::Consumed) stays kept. Say,
    /// while a long reply is being sent and pipelined requests should wait
    /// behind it.
    pub fn pause_reading(&mut self, id: ConnId) {
        if let Some((flags, c)) = self.core.conn_entry(id) {
            if c.state == State::Open && !flags.replace(Flags::HELD) {
                self.core.mark_dirty(id.key());
            }
        }
    }

    /// Reads from `id` again after [`pause_reading`](Ctx::pause_reading).
    /// Input kept with [`Action::Consumed`](crate::Action::Consumed) is
    /// handed to [`Handler::on_data`](crate::Handler::on_data) again before
    /// the loop sleeps, without waiting for new bytes.
    pub fn resume_reading(&mut self, id: ConnId) {
        let Some((flags, c)) = self.core.conn_entry(id) else {
            return;
        };
        if !flags.has(Flags::HELD) {
            return;
        }
        flags.clear(Flags::HELD);
        if c.input.is_some() {
            flags.set(Flags::REDELIVER);
        }
        self.core.push_ready(id.key());
        self.core.mark_dirty(id.key());
    }

    /// Calls [`Handler::on_timer`](crate::Handler::on_timer) for the current
    /// connection after `after` (or
    /// [`Handler::on_loop_timer`](crate::Handler::on_loop_timer) outside a
    /// connection), with `tag`. A connection's timers die with it.
    pub fn set_timer(&mut self, after: Duration, tag: u64) -> TimerId {
        // +1: the current millisecond has partly passed already, and a timer
        // must never fire early.
        let at = self.core.now() + ms_ceil(after) + 1;
        self.core.timers.set(at, Due::User(self.current, tag))
    }

    /// Cancels a timer; `false` if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.core.timers.cancel(id)
    }

    /// Begins a graceful stop, as [`Handle::stop`](crate::Handle::stop) does
    /// (in a [`Server`](crate::Server), of every loop).
    pub fn stop(&mut self) {
        // Step 3 of this iteration has passed: the handle's wake-up makes
        // the next wait return at once.
        self.core.handle().stop();
    }

    /// The loop's counters now.
    pub fn metrics(&self) -> Snapshot {
        self.core.metrics.snapshot()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.core.cfg
    }

    /// Sends a datagram from the current UDP socket. A datagram the kernel
    /// cannot take now is dropped (UDP promises nothing more) and `Ok(0)` returned.
    pub fn send_datagram(&mut self, to: SocketAddr, data: &[u8]) -> io::Result<usize> {
        self.core.send_datagram(self.current, to, data)
    }
}
