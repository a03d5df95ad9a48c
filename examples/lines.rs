//! The notes' `makefile` line I/O (`002_38647ddd90221e2c.txt`, "Makefile"):
//! the client writes `This is the message. It will be repeated.\n` and
//! reads one line back with `readline()`. This server repeats every line
//! it receives, on the reactor, with the `Lines` codec.
//!
//! What the codec does for it: a partial line waits for its rest (however
//! the bytes are split), `\n` and `\r\n` both end a line (the reply always
//! ends with `\n`), and a line longer than `--max-line` bytes gets
//! `error: line longer than N bytes\n` and a close, for that client only.
//!
//! Fixed from the notes:
//! - **`f.read(5)` on a text-mode socket file** blocks until 5 characters
//!   came, whatever their lines, and the server serves one client and quits.
//!   Here lines are the unit, for every client at once.
//! - **No limit.** `readline()` without a size buffers a line of any
//!   length; here a line is bounded, and the reactor's `max_input` is set
//!   just above it.
//!
//! - **No limits on time or clients.** Here a client silent for 5 minutes
//!   is closed and one address holds at most 64 connections (the next are
//!   told `error: too many connections; try again later`).
//!
//! Try it:
//! ```text
//! cargo run --example lines                            # 127.0.0.1:10000, the notes' client
//! nc 127.0.0.1 10000                                   # or: nc -C for \r\n
//! ```

#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use ioplex::codec::{Lines, decode_all};
use ioplex::{Action, Config, Ctx, Handler, Peer, Reactor};
use std::process::ExitCode;
use std::time::Duration;

/// The notes' line server on ioplex: repeats every line it receives.
#[derive(Parser)]
struct Args {
    /// Address to listen on (the notes' client: `localhost:10000`).
    #[arg(long, default_value = "127.0.0.1:10000")]
    addr: String,
    /// Longest line accepted, terminator excluded.
    #[arg(long, default_value_t = 1024)]
    max_line: usize,
    #[command(flatten)]
    deploy: support::Deploy,
}

/// Repeats every line.
pub struct Repeat {
    max_line: usize,
}

impl Handler for Repeat {
    type Conn = Lines;

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) -> Lines {
        log::info!("{}: connected from {peer}", ctx.id());
        Lines::new(self.max_line)
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, lines: &mut Lines, data: &[u8]) -> Action {
        let r = decode_all(lines, data, |line| {
            ctx.send_parts(&[line, b"\n"]);
            Action::Continue
        });
        r.unwrap_or_else(|e| {
            log::warn!("{}: {e}: closing", ctx.id());
            ctx.send(format!("error: {e}\n").as_bytes());
            Action::Close
        })
    }
}

fn main() -> ExitCode {
    support::logger();
    support::exit(serve(Args::parse()))
}

fn serve(args: Args) -> std::io::Result<()> {
    let idle = Duration::from_secs(300); // a person at nc may pause
    let config = Config {
        max_input: args.max_line + 2,
        ..support::limited(Config::default(), idle, 64)
    };
    let mut reactor = Reactor::new(args.deploy.config(config))?;
    support::listen(&mut reactor, &args.addr, &args.deploy)?;
    reactor.run(&mut Repeat {
        max_line: args.max_line,
    })
}
