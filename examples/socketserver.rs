//! The notes' `socketserver.ThreadingTCPServer` (`003_8786073bdc871acb.txt`,
//! "ThreadingTCPServer基础"): a handler object per client, greeting
//! `欢迎致电... ` and then echoing every chunk. The same handler type runs
//! on the reactor (default) or on one thread per client (`--threads`), so
//! the two models can be compared side by side.
//!
//! The façade: Python's `handle()` loops over `recv` and blocks, which a
//! single-threaded loop cannot allow. So [`RequestHandler::handle`] is the
//! *body* of that loop, called once per chunk received, and
//! [`RequestHandler::setup`] is what runs before it (Python's `setup()`).
//! One value per client is made by a factory, as Python makes one
//! `RequestHandlerClass` instance per request.
//!
//! Fixed from the notes:
//! - **An empty `recv` (the client left) was echoed forever**: the loop only
//!   ends on an exception, so a closed client spins a thread at 100 % CPU.
//!   Here EOF ends the client (both models).
//! - **A thread per client** costs a stack each; the reactor serves all
//!   clients from one thread (compare with `--threads`).
//! - **No limits.** Here, in both models, a client silent for 5 minutes is
//!   closed and one address holds at most 64 connections (the next are told
//!   `error: too many connections; try again later`).
//!
//! Try it:
//! ```text
//! cargo run --example socketserver                     # 127.0.0.1:8009, reactor
//! cargo run --example socketserver -- --threads        # one thread per client
//! nc 127.0.0.1 8009
//! ```

#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use ioplex::{Action, Config, Ctx, Handler, Peer, Reactor};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

/// A client silent this long is closed (a person at nc may pause).
const IDLE: Duration = Duration::from_secs(300);
/// Connections one client address may hold.
const PER_IP: usize = 64;

/// The notes' ThreadingTCPServer, two ways: greets with `欢迎致电... `, then
/// echoes every chunk.
#[derive(Parser)]
struct Args {
    /// Address to listen on (the notes: `127.0.0.1:8009`).
    #[arg(long, default_value = "127.0.0.1:8009")]
    addr: String,
    /// One thread per client instead of the reactor.
    #[arg(long, conflicts_with_all = ["proxy_protocol", "unix"])]
    threads: bool,
    #[command(flatten)]
    deploy: support::Deploy,
}

/// What a handler sees of its client (Python's `self.request` and `self.client_address`).
pub trait Request {
    /// Sends bytes to the client.
    fn send(&mut self, data: &[u8]);
    /// The client's address.
    fn client_address(&self) -> SocketAddr;
}

/// Python's `BaseRequestHandler` subclass: one value per client.
pub trait RequestHandler {
    /// Runs once when the client connects.
    fn setup(&mut self, _req: &mut dyn Request) {}
    /// The body of Python's `handle()` loop: one chunk received.
    fn handle(&mut self, req: &mut dyn Request, data: &[u8]);
}

/// The notes' `MyServer`.
#[derive(Default)]
pub struct MyServer;

impl RequestHandler for MyServer {
    fn setup(&mut self, req: &mut dyn Request) {
        req.send("欢迎致电... ".as_bytes());
    }
    fn handle(&mut self, req: &mut dyn Request, data: &[u8]) {
        let says = support::printable(data);
        log::info!("[{}] says {says}.", req.client_address());
        req.send(data);
    }
}

/// A client on the reactor: the loop's context and the peer.
struct OnLoop<'a, 'b>(&'a mut Ctx<'b>, SocketAddr);

impl Request for OnLoop<'_, '_> {
    fn send(&mut self, data: &[u8]) {
        self.0.send(data);
    }
    fn client_address(&self) -> SocketAddr {
        self.1
    }
}

/// Serves `H` on the reactor: one `H` per connection, kept as its state.
pub struct ReactorServer<H>(pub fn() -> H);

impl<H: RequestHandler> Handler for ReactorServer<H> {
    type Conn = (H, SocketAddr);

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) -> (H, SocketAddr) {
        // A TCP listener's peer is an address (Python's `client_address`).
        let peer = peer.inet().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut h = (self.0)();
        h.setup(&mut OnLoop(ctx, peer));
        (h, peer)
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, c: &mut (H, SocketAddr), data: &[u8]) -> Action {
        c.0.handle(&mut OnLoop(ctx, c.1), data);
        Action::Continue
    }
}

/// A client on its own thread: a blocking socket.
struct OnThread(TcpStream, SocketAddr);

impl Request for OnThread {
    fn send(&mut self, data: &[u8]) {
        let _ = self.0.write_all(data); // sendall; a failure ends the client at its next recv
    }
    fn client_address(&self) -> SocketAddr {
        self.1
    }
}

/// Clients per address in the threads model (the reactor counts its own).
static HELD: Mutex<BTreeMap<IpAddr, usize>> = Mutex::new(BTreeMap::new());

/// Counts `ip` in, unless it already holds `PER_IP` connections.
fn admit(ip: IpAddr, delta: isize) -> bool {
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    let n = held.entry(ip).or_default();
    if delta > 0 && *n >= PER_IP {
        return false;
    }
    *n = n.saturating_add_signed(delta);
    true
}

/// Serves `H` with one thread per client, as Python's ThreadingTCPServer.
pub fn serve_threads<H: RequestHandler + 'static>(l: TcpListener, make: fn() -> H) {
    for conn in l.incoming() {
        let Ok(mut stream) = conn else { continue };
        let Ok(peer) = stream.peer_addr() else {
            continue;
        };
        if !admit(peer.ip(), 1) {
            let _ = stream.write_all(support::BUSY);
            continue;
        }
        let _ = stream.set_read_timeout(Some(IDLE)); // a silent client's recv fails
        std::thread::spawn(move || {
            let mut req = OnThread(stream, peer);
            let mut h = make();
            h.setup(&mut req);
            let mut buf = [0u8; 1024];
            while let Ok(n) = req.0.read(&mut buf) {
                if n == 0 {
                    break;
                }
                h.handle(&mut req, &buf[..n]);
            }
            admit(peer.ip(), -1);
        });
    }
}

fn main() -> ExitCode {
    support::logger();
    support::exit(serve(Args::parse()))
}

fn serve(args: Args) -> std::io::Result<()> {
    if args.threads {
        let addr = &args.addr;
        let listener =
            TcpListener::bind(addr).map_err(support::cannot(format!("listen on {addr}")))?;
        println!("listening on {}", listener.local_addr()?);
        serve_threads(listener, MyServer::default);
        return Ok(());
    }
    let config = support::limited(Config::default(), IDLE, PER_IP);
    let mut reactor = Reactor::new(args.deploy.config(config))?;
    support::listen(&mut reactor, &args.addr, &args.deploy)?;
    reactor.run(&mut ReactorServer(MyServer::default))
}
