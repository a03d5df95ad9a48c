//! The notes' UDP Ping server (`004_530bf3ed11a85fd8.txt`, "UDP Ping服务程序框架"),
//! on the reactor: every datagram comes back upper-cased, except that every
//! message whose count mod 3 is 1 is dropped, to simulate loss.
//!
//! Fixed from the notes:
//! - **Off by one.** The notes count, then `break` at `num >= 8` before
//!   answering: the 8th ping is never answered and the 9th finds no server.
//!   Here `--count N` stops *after* handling the N-th message; without it
//!   the server runs until stopped.
//! - **`recvfrom(1024)` truncates** larger datagrams silently; here the loop's
//!   64 KiB buffer takes any datagram.
//! - **`bind(('', 12000))`** listens on every interface; the default here is
//!   127.0.0.1 (`--addr 0.0.0.0:12000` for the notes' two-machine lab).
//!
//! UDP has no connections, so neither an idle timeout nor a per-address
//! cap applies: each datagram gets at most its one answer, nothing is held.
//!
//! Try it:
//! ```text
//! cargo run --example udp_ping                            # 127.0.0.1:12000 (UDP)
//! cargo run --example udp_ping_client                     # 9 pings, 1 s timeout
//! ```

#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use ioplex::{Config, Ctx, DatagramHandler, Reactor};
use std::net::SocketAddr;
use std::process::ExitCode;

/// The notes' UDP Ping server: answers each datagram upper-cased, drops
/// every third (the 1st, 4th, 7th, …) to simulate loss.
#[derive(Parser)]
struct Args {
    /// UDP address to bind (the notes: port 12000 on every interface).
    #[arg(long, default_value = "127.0.0.1:12000")]
    addr: String,
    /// Stop after this many messages (the notes stop at 8, one too early).
    #[arg(long)]
    count: Option<u64>,
}

/// Upper-case echo with simulated loss.
struct Pinger {
    received: u64,
    stop_after: Option<u64>,
}

// A UDP-only server: no connection callbacks to write.
impl DatagramHandler for Pinger {
    fn on_datagram(&mut self, ctx: &mut Ctx<'_>, from: SocketAddr, data: &[u8]) {
        self.received += 1;
        let n = self.received;
        if n % 3 == 1 {
            log::info!("#{n} from {from}: dropped (simulated loss)");
        } else if let Err(e) = ctx.send_datagram(from, &data.to_ascii_uppercase()) {
            log::warn!("#{n} to {from}: {e}");
        } else {
            log::info!("#{n} from {from}: answered");
        }
        if self.stop_after == Some(n) {
            log::info!("{n} messages handled, stopping");
            ctx.stop();
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
    let stop_after = args.count;
    reactor.run(&mut Pinger {
        received: 0,
        stop_after,
    })
}
