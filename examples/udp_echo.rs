//! The notes' UDP server (`003_8786073bdc871acb.txt`, "基于UDP的套接字"), on
//! the reactor: every datagram is answered with `ok`, sent back to its sender.
//!
//! Fixed from the notes:
//! - **`recvfrom(1024)` silently truncates** a larger datagram. Here the
//!   read buffer is the loop's (64 KiB, any UDP datagram fits) and a
//!   datagram that still does not fit is counted and logged, not cut.
//! - The blocking `while True: recvfrom` loop serves only this socket; here
//!   the same loop could serve TCP clients too.
//!
//! UDP has no connections, so neither an idle timeout nor a per-address
//! cap applies: each datagram gets its one answer and nothing is held.
//!
//! Try it:
//! ```text
//! cargo run --example udp_echo                         # 127.0.0.1:9999 (UDP)
//! nc -u 127.0.0.1 9999                                 # type: each line gets "ok"
//! python3 -c "import socket; s=socket.socket(type=socket.SOCK_DGRAM); s.sendto(b'hi',('127.0.0.1',9999)); print(s.recvfrom(1024))"
//! ```

#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use ioplex::{Config, Ctx, DatagramHandler, Reactor};
use std::net::SocketAddr;
use std::process::ExitCode;

/// The notes' UDP `ok` server on ioplex: answers every datagram with `ok`.
#[derive(Parser)]
struct Args {
    /// UDP address to bind (the notes: `127.0.0.1:9999`).
    #[arg(long, default_value = "127.0.0.1:9999")]
    addr: String,
}

/// Answers every datagram with `ok`.
pub struct UdpOk;

// A UDP-only server: no connection callbacks to write.
impl DatagramHandler for UdpOk {
    fn on_datagram(&mut self, ctx: &mut Ctx<'_>, from: SocketAddr, data: &[u8]) {
        // The notes: print(data, host, port)
        log::info!(
            "{:?} {} {}",
            support::printable(data),
            from.ip(),
            from.port()
        );
        if let Err(e) = ctx.send_datagram(from, b"ok") {
            log::warn!("send to {from}: {e}");
        }
    }
}

fn main() -> ExitCode {
    support::logger();
    support::exit(serve(Args::parse()))
}

fn serve(args: Args) -> std::io::Result<()> {
    let mut reactor = Reactor::new(Config::default())?;
    let addr = reactor.bind_udp(&args.addr)?;
    reactor.stop_on_signals()?; // SIGTERM, SIGINT: stop
    println!("listening on {addr}");
    reactor.run(&mut UdpOk)
}
