//! `--metrics ADDR`: the server's own counters ([`ioplex::Metrics`], every
//! loop's summed) for Prometheus, at `GET /metrics` on a listener of its
//! own in the same loops.
//! No thread, no HTTP library: the scrape is answered between the
//! service's callbacks, and a connection is told apart by the listener it
//! came in on ([`Ctx::local_addr`]).
//!
//! Give a server `--metrics` after its own `listen` with [`run`]:
//! ```text
//! support::metrics_http::run(server, args.metrics.as_deref(), "ioplex", |_| handler)
//! ```
//! then `curl http://ADDR/metrics`, or point a Prometheus scrape job at it.
//! Scrapes count against the server's own limits (connections, per-address
//! cap, idle timeout): a stuck scraper is closed like any idle client.

use ioplex::{Action, CloseReason, Ctx, Handler, Peer, Server, ServerMetrics, Tick};
use std::io;
use std::net::SocketAddr;

/// Runs `server` with `make`'s handlers; with `metrics` (`--metrics ADDR`)
/// also the scrape listener there, announced as `metrics on http://…/metrics`.
pub fn run<H: Handler>(
    mut server: Server,
    metrics: Option<&str>,
    prefix: &str,
    make: impl Fn(usize) -> H + Sync,
) -> io::Result<()> {
    let Some(addr) = metrics else {
        return server.run(make);
    };
    let scrape = Scrape::listen(&mut server, addr, prefix)?;
    println!("metrics on http://{}/metrics", scrape.addr());
    server.run(move |i| scrape.clone().around(make(i)))
}

/// A request head longer than this is refused (431) and closed.
const MAX_REQUEST: usize = 8 << 10;

/// The metrics listener: where it is, the prefix of every metric name,
/// and the counters of every loop (one `Scrape` per loop, cloned).
#[derive(Clone)]
pub struct Scrape {
    addr: SocketAddr,
    prefix: String,
    metrics: ServerMetrics,
}

impl Scrape {
    /// Listens on `addr` in `server`; metrics are named `{prefix}_…_total`.
    pub fn listen(server: &mut Server, addr: &str, prefix: &str) -> io::Result<Scrape> {
        let addr = server.listen(addr)?; // its error names the address
        Ok(Scrape {
            addr,
            prefix: prefix.to_owned(),
            metrics: server.metrics(),
        })
    }

    /// The bound address (the port chosen, for `:0`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `handler`, with the metrics listener's connections answered here.
    pub fn around<H: Handler>(self, handler: H) -> WithMetrics<H> {
        WithMetrics {
            inner: handler,
            scrape: self,
        }
    }

    /// Whether a connection whose local address is `local` came in here.
    fn owns(&self, local: Option<SocketAddr>) -> bool {
        local.is_some_and(|l| {
            l == self.addr || (self.addr.ip().is_unspecified() && l.port() == self.addr.port())
        })
    }

    /// Answers one HTTP request once its head is complete, then closes.
    fn answer(&self, ctx: &mut Ctx<'_>, data: &[u8]) -> Action {
        let Some(head) = request_head(data) else {
            if data.len() > MAX_REQUEST {
                reply(ctx, "431 Request Header Fields Too Large", "", "");
                return Action::Close;
            }
            return Action::Consumed(0); // keep it; the rest of the head follows
        };
        let mut words = head.split(|&b| b == b' ');
        match (words.next(), words.next()) {
            (Some(b"GET"), Some(b"/metrics")) => {
                let body = self.metrics.total().to_prometheus(&self.prefix);
                let kind = "text/plain; version=0.0.4; charset=utf-8";
                reply(ctx, "200 OK", kind, &body);
            }
            (Some(b"GET"), _) => reply(ctx, "404 Not Found", "", "only /metrics here\n"),
            _ => reply(ctx, "405 Method Not Allowed", "", "GET /metrics\n"),
        }
        Action::Close
    }
}

/// The request line, once the whole head (up to the blank line) arrived.
fn request_head(data: &[u8]) -> Option<&[u8]> {
    let end = data.windows(2).position(|w| w == b"\n\n").or_else(|| {
        data.windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| i + 1)
    })?;
    let line = data[..end].split(|&b| b == b'\n').next()?;
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

fn reply(ctx: &mut Ctx<'_>, status: &str, kind: &str, body: &str) {
    let kind = if kind.is_empty() { "text/plain" } else { kind };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    ctx.send_parts(&[head.as_bytes(), body.as_bytes()]);
}

/// A connection of the wrapped server: the service's, or a scrape.
pub enum Conn<C> {
    /// Came in on the service's listener: the wrapped handler's state.
    Service(C),
    /// Came in on the metrics listener.
    Scrape,
}

/// A handler plus the metrics listener; every callback about a service
/// connection (and every loop-wide one) goes to the wrapped handler.
pub struct WithMetrics<H> {
    /// The wrapped server.
    pub inner: H,
    scrape: Scrape,
}

impl<H: Handler> Handler for WithMetrics<H> {
    type Conn = Conn<H::Conn>;

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) -> Self::Conn {
        if self.scrape.owns(ctx.local_addr(ctx.id())) {
            return Conn::Scrape;
        }
        Conn::Service(self.inner.on_connect(ctx, peer))
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, conn: &mut Self::Conn, data: &[u8]) -> Action {
        match conn {
            Conn::Service(c) => self.inner.on_data(ctx, c, data),
            Conn::Scrape => self.scrape.answer(ctx, data),
        }
    }

    fn on_eof(&mut self, ctx: &mut Ctx<'_>, conn: &mut Self::Conn) -> Action {
        match conn {
            Conn::Service(c) => self.inner.on_eof(ctx, c),
            Conn::Scrape => Action::Close,
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, conn: &mut Self::Conn, tag: u64) -> Action {
        match conn {
            Conn::Service(c) => self.inner.on_timer(ctx, c, tag),
            Conn::Scrape => Action::Continue,
        }
    }

    fn on_drain(&mut self, ctx: &mut Ctx<'_>, conn: &mut Self::Conn) -> Action {
        match conn {
            Conn::Service(c) => self.inner.on_drain(ctx, c),
            Conn::Scrape => Action::Continue,
        }
    }

    fn on_conn_notify(&mut self, ctx: &mut Ctx<'_>, conn: &mut Self::Conn, tag: u64) -> Action {
        match conn {
            Conn::Service(c) => self.inner.on_conn_notify(ctx, c, tag),
            Conn::Scrape => Action::Continue,
        }
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, conn: Self::Conn, reason: CloseReason) {
        if let Conn::Service(c) = conn {
            self.inner.on_close(ctx, c, reason);
        }
    }

    fn on_loop_timer(&mut self, ctx: &mut Ctx<'_>, tag: u64) {
        self.inner.on_loop_timer(ctx, tag);
    }

    fn on_datagram(&mut self, ctx: &mut Ctx<'_>, from: SocketAddr, data: &[u8]) {
        self.inner.on_datagram(ctx, from, data);
    }

    fn on_notify(&mut self, ctx: &mut Ctx<'_>, tag: u64) {
        self.inner.on_notify(ctx, tag);
    }

    fn on_loop_message(&mut self, ctx: &mut Ctx<'_>, from: usize, data: &[u8]) {
        self.inner.on_loop_message(ctx, from, data);
    }

    fn on_tick(&mut self, ctx: &mut Ctx<'_>, tick: &Tick) {
        self.inner.on_tick(ctx, tick);
    }

    fn on_shutdown(&mut self, ctx: &mut Ctx<'_>) {
        self.inner.on_shutdown(ctx);
    }

    fn on_signal(&mut self, ctx: &mut Ctx<'_>, signal: i32) {
        self.inner.on_signal(ctx, signal);
    }
}
