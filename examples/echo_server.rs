//! The notes' echo server (`001_55c31efdbee7bdde.txt`, the `server端` on
//! port 50007), on the reactor: every chunk received is answered with
//! `Echo=>` + the chunk. Its client is `examples/echo_client.rs`.
//!
//! Fixed from the notes:
//! - **One client at a time.** The notes serve a client until it leaves
//!   before the next `accept`; here every client is served at once.
//! - **Python 2 only.** `'Echo=>' + data` adds str to bytes under Python 3.
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

use clap::Parser;
use ioplex::{Action, Config, Ctx, Handler, Reactor};
use std::net::SocketAddr;

/// The notes' echo server on ioplex.
#[derive(Parser)]
struct Args {
    /// Address to listen on (the notes: `''`, every interface, port 50007).
    #[arg(long, default_value = "127.0.0.1:50007")]
    addr: String,
}

/// Answers every chunk with `Echo=>` + the chunk.
pub struct Echo;

impl Handler for Echo {
    type Conn = ();

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: SocketAddr) {
        log::info!("{}: Server connected by {peer}", ctx.id());
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        ctx.send_parts(&[b"Echo=>", data]);
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
    reactor.run(&mut Echo)
}
