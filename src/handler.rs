//! What users implement: a [`Handler`] with per-connection state, told about
//! connections, bytes, EOF, timers and closes, answering with an [`Action`].
//! A server with only UDP sockets implements [`DatagramHandler`] instead.

use crate::action::{Action, CloseReason, Tick};
use crate::ctx::Ctx;
use crate::peer::Peer;
use std::net::SocketAddr;

/// A server's behaviour. One value serves every connection; each
/// connection's own state is a [`Handler::Conn`].
///
/// ```
/// use ioplex::{Action, Ctx, Handler};
/// use ioplex::Peer;
///
/// /// Echoes every byte back.
/// struct Echo;
///
/// impl Handler for Echo {
///     type Conn = ();
///     fn on_connect(&mut self, _ctx: &mut Ctx<'_>, _peer: Peer) {}
///     fn on_data(&mut self, ctx: &mut Ctx<'_>, _conn: &mut (), data: &[u8]) -> Action {
///         ctx.send(data);
///         Action::Continue
///     }
/// }
/// ```
pub trait Handler {
    /// Per-connection state; `()` when there is none.
    type Conn;

    /// A client connected; `ctx.id()` is its id, `peer` who it is (over TCP
    /// or a Unix socket; behind a PROXY header, the client the header
    /// names). Returns its state.
    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) -> Self::Conn;

    /// Bytes arrived (plus any unconsumed rest of the last call).
    fn on_data(&mut self, ctx: &mut Ctx<'_>, conn: &mut Self::Conn, data: &[u8]) -> Action;

    /// The peer closed its side. The default flushes what is queued, then closes.
    fn on_eof(&mut self, _ctx: &mut Ctx<'_>, _conn: &mut Self::Conn) -> Action {
        Action::Close
    }

    /// A timer set with [`Ctx::set_timer`] for this connection fired.
    fn on_timer(&mut self, _ctx: &mut Ctx<'_>, _conn: &mut Self::Conn, _tag: u64) -> Action {
        Action::Continue
    }

    /// Everything queued for this connection has been written: the moment
    /// to send the next piece of a large reply. Called each time the output
    /// queue goes from holding bytes to empty (not when a send was taken
    /// whole by the kernel: check [`Ctx::queued`] after sending).
    fn on_drain(&mut self, _ctx: &mut Ctx<'_>, _conn: &mut Self::Conn) -> Action {
        Action::Continue
    }

    /// A timer set with [`Ctx::set_timer`] outside any connection fired.
    fn on_loop_timer(&mut self, _ctx: &mut Ctx<'_>, _tag: u64) {}

    /// The connection is gone; its state is handed back for the last time.
    fn on_close(&mut self, _ctx: &mut Ctx<'_>, _conn: Self::Conn, _reason: CloseReason) {}

    /// A datagram arrived on a UDP socket bound with
    /// [`Reactor::bind_udp`](crate::Reactor::bind_udp); `ctx.id()` is that socket.
    fn on_datagram(&mut self, _ctx: &mut Ctx<'_>, _from: SocketAddr, _data: &[u8]) {}

    /// A [`Handle::notify`](crate::Handle::notify) from another thread
    /// arrived, with its tag.
    fn on_notify(&mut self, _ctx: &mut Ctx<'_>, _tag: u64) {}

    /// A [`Handle::notify_conn`](crate::Handle::notify_conn) for this
    /// connection arrived from another thread, with its tag.
    fn on_conn_notify(&mut self, _ctx: &mut Ctx<'_>, _conn: &mut Self::Conn, _tag: u64) -> Action {
        Action::Continue
    }

    /// Another loop of the [`Server`](crate::Server) (index `from`) sent
    /// `data` with [`Ctx::tell_loops`]; `ctx` is this loop's.
    fn on_loop_message(&mut self, _ctx: &mut Ctx<'_>, _from: usize, _data: &[u8]) {}

    /// Called once per loop iteration, after the events were handled.
    fn on_tick(&mut self, _ctx: &mut Ctx<'_>, _tick: &Tick) {}

    /// A graceful shutdown began: listeners are closed, connections are flushing.
    fn on_shutdown(&mut self, _ctx: &mut Ctx<'_>) {}

    /// A signal other than the stop's arrived (`SIGHUP`, for a reload),
    /// caught by [`Reactor::stop_on_signals`](crate::Reactor::stop_on_signals).
    fn on_signal(&mut self, _ctx: &mut Ctx<'_>, _signal: i32) {}
}

/// A server of UDP sockets only ([`Reactor::bind_udp`](crate::Reactor::bind_udp)):
/// no connection callbacks to write. Every `DatagramHandler` is a
/// [`Handler`] whose connection callbacks are never called (it has no
/// listener), so [`Reactor::run`](crate::Reactor::run) takes it as is.
///
/// ```no_run
/// use ioplex::{Config, Ctx, DatagramHandler, Reactor};
/// use std::net::SocketAddr;
///
/// /// Answers every datagram with `ok`, as the notes' UDP server does.
/// struct AnswerOk;
///
/// impl DatagramHandler for AnswerOk {
///     fn on_datagram(&mut self, ctx: &mut Ctx<'_>, from: SocketAddr, _data: &[u8]) {
///         let _ = ctx.send_datagram(from, b"ok");
///     }
/// }
///
/// let mut reactor = Reactor::new(Config::default())?;
/// reactor.bind_udp("127.0.0.1:9999")?;
/// reactor.run(&mut AnswerOk)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait DatagramHandler {
    /// A datagram arrived; `ctx.id()` is the socket it arrived on.
    fn on_datagram(&mut self, ctx: &mut Ctx<'_>, from: SocketAddr, data: &[u8]);

    /// A timer set with [`Ctx::set_timer`] fired.
    fn on_loop_timer(&mut self, _ctx: &mut Ctx<'_>, _tag: u64) {}

    /// A [`Handle::notify`](crate::Handle::notify) arrived.
    fn on_notify(&mut self, _ctx: &mut Ctx<'_>, _tag: u64) {}

    /// Called once per loop iteration, after the events were handled.
    fn on_tick(&mut self, _ctx: &mut Ctx<'_>, _tick: &Tick) {}

    /// A graceful shutdown began.
    fn on_shutdown(&mut self, _ctx: &mut Ctx<'_>) {}

    /// A signal other than the stop's arrived (`SIGHUP`, for a reload).
    fn on_signal(&mut self, _ctx: &mut Ctx<'_>, _signal: i32) {}
}

impl<D: DatagramHandler> Handler for D {
    type Conn = ();

    /// Never called: a datagram server has no listener. Should a listener
    /// be added anyway, its connections are closed at once.
    fn on_connect(&mut self, ctx: &mut Ctx<'_>, _peer: Peer) {
        let id = ctx.id();
        ctx.abort(id);
    }

    fn on_data(&mut self, _ctx: &mut Ctx<'_>, _conn: &mut (), _data: &[u8]) -> Action {
        Action::Abort
    }

    fn on_datagram(&mut self, ctx: &mut Ctx<'_>, from: SocketAddr, data: &[u8]) {
        DatagramHandler::on_datagram(self, ctx, from, data)
    }

    fn on_loop_timer(&mut self, ctx: &mut Ctx<'_>, tag: u64) {
        DatagramHandler::on_loop_timer(self, ctx, tag)
    }

    fn on_notify(&mut self, ctx: &mut Ctx<'_>, tag: u64) {
        DatagramHandler::on_notify(self, ctx, tag)
    }

    fn on_tick(&mut self, ctx: &mut Ctx<'_>, tick: &Tick) {
        DatagramHandler::on_tick(self, ctx, tick)
    }

    fn on_shutdown(&mut self, ctx: &mut Ctx<'_>) {
        DatagramHandler::on_shutdown(self, ctx)
    }

    fn on_signal(&mut self, ctx: &mut Ctx<'_>, signal: i32) {
        DatagramHandler::on_signal(self, ctx, signal)
    }
}
