//! What users implement: a [`Handler`] with per-connection state, told about
//! connections, bytes, EOF, timers and closes, answering with an [`Action`].

use crate::reactor::Ctx;
use std::io;
use std::net::SocketAddr;

/// What the loop should do after a handler call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// All input was consumed; keep the connection.
    Continue,
    /// Only the first `n` bytes were consumed (a partial frame follows):
    /// the loop keeps the rest and hands it back, followed by what arrives
    /// next. At most [`Config::max_input`](crate::Config::max_input) bytes are kept.
    Consumed(usize),
    /// Flush queued output, send FIN, then close.
    Close,
    /// Close now and drop queued output.
    Abort,
}

/// Why a connection was closed, as told to [`Handler::on_close`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its side (read of 0 bytes) and our output was flushed.
    Eof,
    /// A handler returned [`Action::Close`] or called [`Ctx::close`].
    Closed,
    /// A handler returned [`Action::Abort`] or called [`Ctx::abort`].
    Aborted,
    /// No input for [`Config::idle_timeout`](crate::Config::idle_timeout).
    IdleTimeout,
    /// Queued output passed [`Config::max_output`](crate::Config::max_output): a slow consumer.
    OutputLimit,
    /// A partial frame passed [`Config::max_input`](crate::Config::max_input).
    InputLimit,
    /// The server is shutting down.
    Shutdown,
    /// Queued output could not be flushed before a deadline.
    FlushTimeout,
    /// A socket error (reset, broken pipe, …).
    Error(io::ErrorKind),
}

/// The loop's view of one iteration, for handlers that want to log like the
/// notes' `print(len(inputs), len(rlist), len(wlist))`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tick {
    /// Open connections.
    pub connections: usize,
    /// Events that said readable this iteration.
    pub readable: usize,
    /// Events that said writable this iteration.
    pub writable: usize,
}

/// A server's behaviour. One value serves every connection; each
/// connection's own state is a [`Handler::Conn`].
///
/// ```
/// use ioplex::{Action, Ctx, Handler};
/// use std::net::SocketAddr;
///
/// /// Echoes every byte back.
/// struct Echo;
///
/// impl Handler for Echo {
///     type Conn = ();
///     fn on_connect(&mut self, _ctx: &mut Ctx<'_>, _peer: SocketAddr) {}
///     fn on_data(&mut self, ctx: &mut Ctx<'_>, _conn: &mut (), data: &[u8]) -> Action {
///         ctx.send(data);
///         Action::Continue
///     }
/// }
/// ```
pub trait Handler {
    /// Per-connection state; `()` when there is none.
    type Conn;

    /// A client connected; `ctx.id()` is its id. Returns its state.
    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: SocketAddr) -> Self::Conn;

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

    /// Called once per loop iteration, after the events were handled.
    fn on_tick(&mut self, _ctx: &mut Ctx<'_>, _tick: &Tick) {}

    /// A graceful shutdown began: listeners are closed, connections are flushing.
    fn on_shutdown(&mut self, _ctx: &mut Ctx<'_>) {}
}
