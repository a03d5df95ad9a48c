//! The loop: one thread, one backend, a slab of listeners, UDP sockets and
//! connections. [`Reactor`] is the builder; the iteration is in
//! [`iteration`]; each room below does one thing.
//!
//! | room | what it owns |
//! |---|---|
//! | `iteration` | the order of things: the steps of [`Reactor::run`] |
//! | `state` | an entry of the slab: fd, generation, flags, connection state |
//! | `core` | everything but the handler: lookups, the ready queue, deadlines |
//! | `accept` | accepting, `max_connections`, the per-address cap, the EMFILE pause |
//! | `input` | reading into the shared buffer, handing bytes to the handler |
//! | `proxy` | the PROXY protocol header before a connection's first byte |
//! | `output` | writing at once, queueing the rest, the watermarks |
//! | `close` | the close state machine, with its table |
//! | `complete` | completions (io_uring): accepted, received, sent; retiring what is in flight |
//! | `udp` | datagrams |
//! | `interest` | interest changes for level-triggered and one-shot backends |
//! | `drain` | the listeners at a stop: serve what the kernel accepted, then close |
//! | `handle` | what other threads hold: [`Handle`] |
//! | `lifecycle` | signals, inherited and Unix listeners, `sd_notify` |
//! | `mesh`, `ring` | a [`Server`](crate::Server)'s loops talking: bounded queues, one wake per batch |

/// A [`Ctx`](crate::Ctx) for the loop's core about connection `$id`.
macro_rules! ctx {
    ($self:ident, $id:expr) => {
        &mut $crate::ctx::Ctx {
            core: &mut *$self.core,
            current: $id,
        }
    };
}

mod accept;
mod buffer;
mod close;
mod complete;
pub(crate) mod core;
mod drain;
mod group;
pub(crate) mod handle;
mod input;
mod interest;
mod iteration;
mod lifecycle;
pub(crate) mod mesh;
mod output;
mod proxy;
mod ring;
pub(crate) mod state;
mod udp;

pub use handle::Handle;

use crate::backend::{Event, Interest};
use crate::config::Config;
use crate::handler::Handler;
use crate::metrics::Metrics;
use core::Core;
use handle::Note;
use state::{Flags, Kind};
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs, UdpSocket};
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// The event loop. Build it, add listeners, then [`run`](Reactor::run) it
/// with a [`Handler`].
///
/// ```no_run
/// use ioplex::{Action, Config, Ctx, Handler, Reactor};
/// struct Echo;
/// impl Handler for Echo {
///     type Conn = ();
///     fn on_connect(&mut self, _: &mut Ctx<'_>, _: ioplex::Peer) {}
///     fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
///         ctx.send(data);
///         Action::Continue
///     }
/// }
/// let mut reactor = Reactor::new(Config::default())?;
/// let addr = reactor.listen("127.0.0.1:0")?;
/// println!("echo on {addr}");
/// reactor.run(&mut Echo)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Reactor {
    core: Core,
    /// Socket files of the Unix listeners, removed on drop.
    unix_paths: Vec<std::path::PathBuf>,
}

impl Drop for Reactor {
    fn drop(&mut self) {
        lifecycle::remove_sockets(&self.unix_paths);
    }
}

impl Reactor {
    /// A loop on `config.backend`, with nothing registered yet.
    pub fn new(config: Config) -> io::Result<Reactor> {
        Reactor::numbered(config, 0)
    }

    /// Binds a TCP listener (`SO_REUSEADDR`, backlog 1024) and returns its address.
    /// An error names the address: `cannot listen on 127.0.0.1:9999: address already in use`.
    pub fn listen(&mut self, addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
        let addr = first_addr(addr)?;
        let what = || format!("cannot listen on {addr}");
        let sock = bind_listener(addr, false).map_err(|e| context(e, &what()))?;
        self.add_listener(sock).map_err(|e| context(e, &what()))
    }

    /// Serves an already bound listener (set up with [`socket2`] for
    /// options such as `SO_REUSEPORT`); it is made non-blocking here.
    pub fn add_listener(&mut self, sock: TcpListener) -> io::Result<SocketAddr> {
        sock.set_nonblocking(true)?;
        let addr = sock.local_addr()?;
        self.core.insert(
            OwnedFd::from(sock),
            Kind::Listener,
            Interest::READABLE,
            Flags::default(),
        )?;
        Ok(addr)
    }

    /// Binds a UDP socket; its datagrams go to [`Handler::on_datagram`].
    /// An error names the address, as [`listen`](Reactor::listen)'s does.
    pub fn bind_udp(&mut self, addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
        let addr = first_addr(addr)?;
        let sock =
            UdpSocket::bind(addr).map_err(|e| context(e, &format!("cannot bind UDP {addr}")))?;
        sock.set_nonblocking(true)?;
        let addr = sock.local_addr()?;
        self.core.insert(
            OwnedFd::from(sock),
            Kind::Udp,
            Interest::READABLE,
            Flags::default(),
        )?;
        Ok(addr)
    }

    /// A handle to stop or notify the loop from another thread.
    pub fn handle(&self) -> Handle {
        self.core.handle()
    }

    /// The loop's counters, shared: read them from any thread, any time.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.core.metrics.clone()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.core.cfg
    }

    /// Runs the loop until a graceful stop completes. One iteration, in
    /// order (the code is one call per step):
    ///
    /// 1. **Timeout.** Sleep until the nearest timer, deadline or accept
    ///    back-off, capped by [`Config::max_wait`]; 0 when the ready queue
    ///    holds work or a stop was asked for.
    /// 2. **Wait** for events (retrying on `EINTR`).
    /// 3. **Stop?** A [`Handle::stop`] or [`Ctx::stop`](crate::Ctx::stop)
    ///    begins the graceful stop: listeners take no new SYN (for
    ///    [`Config::accept_drain`] the handshakes already begun complete and
    ///    are served, then what the kernel accepted is, then they close),
    ///    every connection starts closing, [`Handler::on_shutdown`] is called.
    /// 4. **Events.** Each one: dropped if its token's generation is stale; a
    ///    listener accepts until `WouldBlock` or `accepts_per_cycle`
    ///    ([`Handler::on_connect`]); a connection flushes queued output on
    ///    WRITABLE ([`Handler::on_drain`] when it empties) and reads up to
    ///    `read_budget` on READABLE ([`Handler::on_data`], [`Handler::on_eof`]),
    ///    whose sends are written at once (only what the socket refuses is
    ///    queued); a UDP socket hands each datagram to
    ///    [`Handler::on_datagram`]; the waker delivers [`Handle::notify`]
    ///    tags ([`Handler::on_notify`], [`Handler::on_conn_notify`]) and, in
    ///    a [`Server`](crate::Server), what the other loops sent.
    /// 5. **Ready queue.** What stopped at its budget last time goes on
    ///    (no new edge will come for it), and input kept behind a
    ///    [`Ctx::resume_reading`](crate::Ctx::resume_reading) is handed back.
    /// 6. **Timers** due fire ([`Handler::on_timer`],
    ///    [`Handler::on_loop_timer`]) and connection deadlines (idle, flush,
    ///    linger) act; accepting resumes after an EMFILE back-off.
    /// 7. **Before sleep.** Close what was marked ([`Handler::on_close`]),
    ///    call [`Handler::on_tick`], close what that marked, and apply the
    ///    interest changes level-triggered and one-shot backends need.
    ///    Edge-triggered backends need none: a connection is registered
    ///    READABLE|WRITABLE once at accept and never again. In a
    ///    [`Server`](crate::Server), what this iteration sent other loops
    ///    is published, with one wake-up per loop that needs one.
    /// 8. **Exit** when stopping and no connection or listener is left (in a
    ///    server: and every loop has begun stopping, and nothing sent to
    ///    this one is unread), or when the stop's `shutdown_timeout` has
    ///    passed (what is left is dropped).
    pub fn run<H: Handler>(&mut self, handler: &mut H) -> io::Result<()> {
        let mut lp = Loop {
            rbuf: vec![0; self.core.cfg.read_buffer.max(1)],
            core: &mut self.core,
            handler,
            states: Vec::new(),
            events: Vec::with_capacity(1024),
            notes: Vec::new(),
            signalled: false,
        };
        lp.run()
    }
}

/// The loop while it runs: the core, the handler and its states, the
/// shared read buffer.
pub(crate) struct Loop<'a, H: Handler> {
    core: &'a mut Core,
    handler: &'a mut H,
    /// Handler state per slab key (`None` for listeners and free keys).
    states: Vec<Option<H::Conn>>,
    /// The loop's one read buffer, shared by every connection.
    rbuf: Vec<u8>,
    /// What the last wait reported.
    events: Vec<Event>,
    /// Notifications taken from the handles, being delivered.
    notes: Vec<Note>,
    /// A SIGTERM or SIGINT came: the next SIGINT stops at once.
    signalled: bool,
}

/// `e` with `what` in front and its kind kept: one line a person can act on.
pub(crate) fn context(e: io::Error, what: &str) -> io::Error {
    let msg = e.to_string();
    // "Address already in use (os error 98)" → "address already in use".
    let msg = msg.split(" (os error").next().unwrap_or(&msg);
    let mut lower = msg.to_owned();
    if let Some(first) = lower.get(..1) {
        let first = first.to_lowercase();
        lower.replace_range(..1, &first);
    }
    io::Error::new(e.kind(), format!("{what}: {lower}"))
}

/// A TCP listener on `addr` (`SO_REUSEADDR`, backlog 1024), in a
/// `SO_REUSEPORT` group if `reuse_port`.
pub(crate) fn bind_listener(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    sock.set_reuse_address(true)?;
    if reuse_port {
        sock.set_reuse_port(true)?;
    }
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    Ok(sock.into())
}

pub(crate) fn first_addr(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    let what = "cannot resolve the address to listen on";
    addr.to_socket_addrs()
        .map_err(|e| context(e, what))?
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{what}: it resolved to nothing"),
            )
        })
}

#[cfg(test)]
mod tests;
