//! The notes' sticky-packet fix (`003_8786073bdc871acb.txt`, the command
//! server and its client): the server announces `Ready|N`, the client
//! answers `Start`, then the server sends the N bytes and the client reads
//! until it has them all. Here the service is harmless: the reply to a
//! request is the request, one per line, `--repeat` times, so it is longer
//! than the client's `recv(1024)`. (The notes run the request as a shell
//! command; see `remote_cmd/` for a safe form of that.) Its client is
//! `examples/handshake_client.rs`; the notes' Python client works unchanged.
//! `examples/framed.rs` is the same service with the length-prefixed codec,
//! which needs no round trip.
//!
//! Fixed from the notes:
//! - **`Ready|N` was bare**, trusting the client's `recv(1024)` to return it
//!   alone (`Ready|1` may be the first half of `Ready|12`): here it ends with
//!   `\n`, which the notes' client's `int()` ignores. `Start` may arrive in
//!   pieces; the `Handshake` codec waits for all of it.
//! - **Anything but `Start` left both sides waiting forever**; here it gets
//!   `error: ...\n` and a close.
//! - One client at a time; here all at once, with limits a program-driven
//!   protocol can afford: a client silent for 30 s is closed, and one
//!   address holds at most 64 connections (the next are told
//!   `error: too many connections; try again later`).
//!
//! A request is what one read returns while no reply is pending, as in the
//! notes: the client waits for each answer, so requests never glue, but a
//! request larger than one segment could split. `framed.rs` has no such gap.
//!
//! Try it:
//! ```text
//! cargo run --example handshake                        # 127.0.0.1:9999
//! cargo run --example handshake_client -- hello        # prints 100 lines of hello
//! ```

#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use ioplex::codec::{Codec, Handshake, Hs};
use ioplex::{Action, Config, Ctx, Handler, Peer, Reactor};
use std::process::ExitCode;
use std::time::Duration;

/// The notes' `Ready|N` / `Start` server on ioplex: announces each reply's
/// length, sends it on `Start`.
#[derive(Parser)]
struct Args {
    /// Address to listen on (the notes: `127.0.0.1:9999`).
    #[arg(long, default_value = "127.0.0.1:9999")]
    addr: String,
    /// How many times a reply repeats the request.
    #[arg(long, default_value_t = 100)]
    repeat: usize,
    #[command(flatten)]
    deploy: support::Deploy,
}

/// One client: its codec and the reply announced but not sent yet.
pub struct Session {
    codec: Handshake,
    pending: Option<Vec<u8>>,
}

/// Answers each request with `Ready|N\n`, then on `Start` the N bytes.
pub struct Announce {
    repeat: usize,
}

impl Announce {
    fn reply(&self, request: &[u8]) -> Vec<u8> {
        let mut line = request.to_vec();
        line.push(b'\n');
        line.repeat(self.repeat)
    }
}

impl Handler for Announce {
    type Conn = Session;

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) -> Session {
        log::info!("{}: connected from {peer}", ctx.id());
        let max = ctx.config().max_output;
        Session {
            codec: Handshake::new(max),
            pending: None,
        }
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, s: &mut Session, data: &[u8]) -> Action {
        let mut used = 0;
        while used < data.len() {
            let Some(body) = s.pending.take() else {
                // No reply pending: what arrived is a request.
                let reply = self.reply(&data[used..]);
                let mut ready = Vec::new();
                if let Err(e) = s.codec.encode(Hs::Ready(reply.len()), &mut ready) {
                    ctx.send(format!("error: {e}\n").as_bytes());
                    return Action::Close;
                }
                ctx.send(&ready);
                s.pending = Some(reply);
                return Action::Continue;
            };
            match s.codec.decode(&data[used..]) {
                Ok(Some((Hs::Start, n))) => {
                    ctx.send(&body);
                    used += n;
                }
                Ok(None) => {
                    s.pending = Some(body);
                    return Action::Consumed(used);
                }
                Ok(Some(_)) | Err(_) => {
                    log::warn!("{}: expected Start: closing", ctx.id());
                    ctx.send(b"error: expected Start\n");
                    return Action::Close;
                }
            }
        }
        Action::Continue
    }
}

fn main() -> ExitCode {
    support::logger();
    support::exit(serve(Args::parse()))
}

fn serve(args: Args) -> std::io::Result<()> {
    let idle = Duration::from_secs(30); // its clients are programs
    let config = support::limited(Config::default(), idle, 64);
    let mut reactor = Reactor::new(args.deploy.config(config))?;
    support::listen(&mut reactor, &args.addr, &args.deploy)?;
    reactor.run(&mut Announce {
        repeat: args.repeat,
    })
}
