//! The notes' timeout server (`001_55c31efdbee7bdde.txt`, `server.py`:
//! `connection.settimeout(5)`), on the reactor.
//!
//! A client that sends `1` gets `welcome to server!`, anything else gets
//! `please go out!`; then the connection is closed. A client that stays
//! silent for 5 s is closed by the reactor's idle timer.
//!
//! Fixed from the notes:
//! - **One client at a time.** The notes' loop blocks in `recv` for up to
//!   5 s per client while every other client waits in the backlog. Here the
//!   timeout is a timer ([`Config::idle_timeout`]): nothing blocks.
//! - **Python 2 only.** `buf == '1'` compares bytes with str under Python 3
//!   (always false) and `send('...')` raises `TypeError`. Here bytes are
//!   compared with bytes; a trailing newline (from `nc`) is ignored.
//! - **No cap per client.** Here one address holds at most 64 connections
//!   (the next are told `error: too many connections; try again later`).
//!
//! Try it:
//! ```text
//! cargo run --example timeout_server                  # 127.0.0.1:8001
//! echo 1 | nc -q 10 127.0.0.1 8001                     # welcome to server!
//! echo hi | nc -q 10 127.0.0.1 8001                    # please go out!
//! nc 127.0.0.1 8001                                    # say nothing: closed after 5 s
//! ```

#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use ioplex::{Action, CloseReason, Config, Ctx, Handler, Peer, Reactor};
use std::process::ExitCode;
use std::time::Duration;

/// The notes' timeout server on ioplex: `1` gets `welcome to server!`,
/// anything else `please go out!`, silence a close after the timeout.
#[derive(Parser)]
struct Args {
    /// Address to listen on (the notes: `localhost:8001`).
    #[arg(long, default_value = "127.0.0.1:8001")]
    addr: String,
    /// Close a client that sends nothing for this many milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    #[command(flatten)]
    deploy: support::Deploy,
}

/// Answers the first message and closes.
pub struct Gate;

impl Handler for Gate {
    type Conn = ();

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) {
        log::info!("{}: connected from {peer}", ctx.id());
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        let answer: &[u8] = match data.trim_ascii_end() {
            b"1" => b"welcome to server!",
            _ => b"please go out!",
        };
        ctx.send(answer);
        Action::Close
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, _: (), reason: CloseReason) {
        if reason == CloseReason::IdleTimeout {
            log::info!("{}: time out", ctx.id()); // the notes: print 'time out'
        }
    }
}

fn main() -> ExitCode {
    support::logger();
    support::exit(serve(Args::parse()))
}

fn serve(args: Args) -> std::io::Result<()> {
    let idle = Duration::from_millis(args.timeout_ms); // the notes' settimeout(5)
    let config = support::limited(Config::default(), idle, 64);
    let mut reactor = Reactor::new(args.deploy.config(config))?;
    support::listen(&mut reactor, &args.addr, &args.deploy)?;
    reactor.run(&mut Gate)
}
