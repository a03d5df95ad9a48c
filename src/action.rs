//! What a handler answers and what the loop tells it: plain values that
//! depend on nothing else in the crate, so codecs and handlers can use them
//! without pulling in the loop.

use std::io;

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

/// Why a connection was closed, as told to [`Handler::on_close`](crate::Handler::on_close).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its side (read of 0 bytes) and our output was flushed.
    Eof,
    /// A handler returned [`Action::Close`] or called [`Ctx::close`](crate::Ctx::close).
    Closed,
    /// A handler returned [`Action::Abort`] or called [`Ctx::abort`](crate::Ctx::abort).
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
