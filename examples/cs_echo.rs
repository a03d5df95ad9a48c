//! The notes' C/S echo (`002_38647ddd90221e2c.txt`, "示例:CS交互"), on the
//! reactor: a client is greeted with `Hello, client!`, then every chunk it
//! sends is answered with `Echo: ` + the chunk.
//!
//! Fixed from the notes:
//! - **One client, then exit.** The notes accept once, serve that client
//!   and close the server. Here every client is served, at the same time.
//! - **`data.decode('utf-8')` on a raw chunk** raises when a multi-byte
//!   character is split between two reads, which ends the session. Here the
//!   log shows the chunk lossily and the echo is bytes, untouched.
//!
//! - **No limits.** Here a client silent for 5 minutes is closed, and one
//!   address holds at most 64 connections (the next get
//!   `error: too many connections; try again later`), so no one address
//!   can lock the others out.
//!
//! Try it:
//! ```text
//! cargo run --example cs_echo                          # 127.0.0.1:9999 (`--addr 0.0.0.0:9999` as the notes)
//! nc 127.0.0.1 9999                                    # or: telnet 127.0.0.1 9999
//! ```

#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use ioplex::{Action, Config, Ctx, Handler, Peer, Reactor};
use std::process::ExitCode;
use std::time::Duration;

/// The notes' C/S echo on ioplex: greets with `Hello, client!`, answers
/// every chunk with `Echo: ` + the chunk.
#[derive(Parser)]
struct Args {
    /// Address to listen on (the notes bind every interface, `0.0.0.0:9999`;
    /// loopback by default here, so a first run is not open to the network).
    #[arg(long, default_value = "127.0.0.1:9999")]
    addr: String,
    #[command(flatten)]
    deploy: support::Deploy,
}

/// Greets, then answers every chunk with `Echo: ` + the chunk.
pub struct CsEcho;

impl Handler for CsEcho {
    type Conn = ();

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) {
        log::info!("{}: Connection from {peer} has been established.", ctx.id());
        ctx.send(b"Hello, client!");
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        log::info!("{}: Received data: {}", ctx.id(), support::printable(data));
        ctx.send_parts(&[b"Echo: ", data]);
        Action::Continue
    }
}

fn main() -> ExitCode {
    support::logger();
    support::exit(serve(Args::parse()))
}

fn serve(args: Args) -> std::io::Result<()> {
    // A person at telnet may pause: 5 minutes.
    let config = support::limited(Config::default(), Duration::from_secs(300), 64);
    let mut reactor = Reactor::new(args.deploy.config(config))?;
    let bound = support::listen(&mut reactor, &args.addr, &args.deploy)?;
    log::info!("Server is listening on {}...", bound[0]);
    reactor.run(&mut CsEcho)
}
