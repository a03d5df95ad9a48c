//! The notes' echo server (`001_55c31efdbee7bdde.txt`, the `server端` on
//! port 50007), on the reactor: every chunk received is answered with
//! `Echo=>` + the chunk. Its client is `examples/echo_client.rs`.
//!
//! Fixed from the notes:
//! - **One client at a time.** The notes serve a client until it leaves
//!   before the next `accept`; here every client is served at once.
//! - **Python 2 only.** `'Echo=>' + data` adds str to bytes under Python 3.
//! - **No limits.** Here a client silent for 5 minutes is closed and one
//!   address holds at most 64 connections (the next are told
//!   `error: too many connections; try again later`).
//!
//! As in the notes, a reply answers one chunk as it arrived: TCP keeps no
//! message boundaries, so a long message may come back as several
//! `Echo=>` replies (see `lines.rs` and `framed.rs` for framing).
//!
//! Try it:
//! ```text
//! cargo run --example echo_server                      # 127.0.0.1:50007 (`--addr 0.0.0.0:50007` as the notes)
//! cargo run --example echo_client -- --addr 127.0.0.1:50007 hello world
//! nc 127.0.0.1 50007
//! ```

#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use ioplex::{Action, Config, Ctx, Handler, Peer, Reactor};
use std::process::ExitCode;
use std::time::Duration;

/// The notes' echo server on ioplex: answers every chunk with `Echo=>` + the chunk.
#[derive(Parser)]
struct Args {
    /// Address to listen on (the notes: `''`, every interface, port 50007).
    #[arg(long, default_value = "127.0.0.1:50007")]
    addr: String,
    #[command(flatten)]
    deploy: support::Deploy,
}

/// Answers every chunk with `Echo=>` + the chunk.
pub struct Echo;

impl Handler for Echo {
    type Conn = ();

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) {
        log::info!("{}: Server connected by {peer}", ctx.id());
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        ctx.send_parts(&[b"Echo=>", data]);
        Action::Continue
    }
}

fn main() -> ExitCode {
    support::logger();
    support::exit(serve(Args::parse()))
}

fn serve(args: Args) -> std::io::Result<()> {
    let idle = Duration::from_secs(300); // a person at nc may pause
    let config = support::limited(Config::default(), idle, 64);
    let mut reactor = Reactor::new(args.deploy.config(config))?;
    support::listen(&mut reactor, &args.addr, &args.deploy)?;
    reactor.run(&mut Echo)
}
