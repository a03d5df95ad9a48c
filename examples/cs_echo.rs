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
//! Try it:
//! ```text
//! cargo run --example cs_echo                          # 127.0.0.1:9999 (`--addr 0.0.0.0:9999` as the notes)
//! nc 127.0.0.1 9999                                    # or: telnet 127.0.0.1 9999
//! ```

use clap::Parser;
use ioplex::{Action, Config, Ctx, Handler, Reactor};
use std::net::SocketAddr;

/// The notes' C/S echo on ioplex.
#[derive(Parser)]
struct Args {
    /// Address to listen on (the notes bind every interface, `0.0.0.0:9999`;
    /// loopback by default here, so a first run is not open to the network).
    #[arg(long, default_value = "127.0.0.1:9999")]
    addr: String,
}

/// Greets, then answers every chunk with `Echo: ` + the chunk.
pub struct CsEcho;

impl Handler for CsEcho {
    type Conn = ();

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: SocketAddr) {
        log::info!("{}: Connection from {peer} has been established.", ctx.id());
        ctx.send(b"Hello, client!");
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        log::info!(
            "{}: Received data: {}",
            ctx.id(),
            String::from_utf8_lossy(data)
        );
        ctx.send_parts(&[b"Echo: ", data]);
        Action::Continue
    }
}

fn main() -> std::io::Result<()> {
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .env()
        .init()
        .expect("logger");
    let args = Args::parse();
    let mut reactor = Reactor::new(Config::default())?;
    let addr = reactor.listen(&args.addr)?;
    println!("listening on {addr}");
    log::info!("Server is listening on {addr}...");
    reactor.run(&mut CsEcho)
}
