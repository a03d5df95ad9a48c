//! The length-prefixed codec that replaces the notes' `Ready|N` / `Start`
//! handshake (`003_8786073bdc871acb.txt`, "解决粘包问题"): every message,
//! both ways, is a u32 big-endian length and then that many bytes. It is
//! the service of `examples/handshake.rs` (the reply repeats the request,
//! one per line, `--repeat` times) without the extra round trip: requests
//! may be sent back to back, glued or split anywhere, and each gets its
//! reply in order.
//!
//! Fixed from the notes:
//! - **A round trip per message** (`Ready|N`, wait, `Start`, wait) only to
//!   learn a length: here the length travels in front of the body.
//! - **Requests had no framing at all.** Here a request is a frame too, and
//!   a length over `--max-frame` is refused from its 4 header bytes, before
//!   anything is buffered: the client gets `error: ...\n` and a close.
//! - **No limits on time or clients.** Its clients are programs: one
//!   silent for 30 s is closed, and one address holds at most 64
//!   connections (the next are told `error: too many connections; try again later`).
//!
//! Try it:
//! ```text
//! cargo run --example framed                           # 127.0.0.1:9999
//! cargo run --example framed -- --client hello world   # a client: sends two frames
//! ```

#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use ioplex::codec::{LengthPrefixed, decode_all};
use ioplex::{Action, Codec, Config, Ctx, Handler, Peer, Reactor};
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

/// The length-prefixed twin of the notes' handshake server (and its client,
/// with `--client`).
#[derive(Parser)]
struct Args {
    /// Address to listen on (or, with `--client`, to connect to).
    #[arg(long, default_value = "127.0.0.1:9999")]
    addr: String,
    /// How many times a reply repeats the request.
    #[arg(long, default_value_t = 100)]
    repeat: usize,
    /// Largest request accepted, in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    max_frame: usize,
    /// Be a client: send these requests, print the replies.
    #[arg(long, num_args = 1..)]
    client: Option<Vec<String>>,
    #[command(flatten)]
    deploy: support::Deploy,
}

/// Answers every request frame with a reply frame.
pub struct Framed {
    repeat: usize,
    max_frame: usize,
}

impl Handler for Framed {
    type Conn = LengthPrefixed;

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) -> LengthPrefixed {
        log::info!("{}: connected from {peer}", ctx.id());
        LengthPrefixed::new(self.max_frame)
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, codec: &mut LengthPrefixed, data: &[u8]) -> Action {
        let r = decode_all(codec, data, |request| {
            let mut line = request.to_vec();
            line.push(b'\n');
            let reply = line.repeat(self.repeat);
            ctx.send_parts(&[&(reply.len() as u32).to_be_bytes(), &reply]);
            Action::Continue
        });
        r.unwrap_or_else(|e| {
            log::warn!("{}: {e}: closing", ctx.id());
            ctx.send(format!("error: {e}\n").as_bytes());
            Action::Close
        })
    }
}

/// Sends every request at once, then reads the replies in order.
fn client(addr: &str, requests: &[String]) -> std::io::Result<()> {
    let mut sock = support::connect(addr, Some(Duration::from_secs(30)))?;
    let mut codec = LengthPrefixed::new(64 << 20);
    let mut wire = Vec::new();
    for r in requests {
        codec.encode(r.as_bytes(), &mut wire)?;
    }
    sock.write_all(&wire)?;
    let (mut buf, mut chunk, mut out) = (Vec::new(), [0u8; 4096], std::io::stdout());
    for _ in requests {
        while codec.decode(&buf)?.is_none() {
            match sock.read(&mut chunk)? {
                0 => return Err(std::io::Error::other(format!("{addr} closed mid-reply"))),
                n => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let (reply, n) = codec.decode(&buf)?.expect("decoded above");
        out.write_all(reply)?;
        buf.drain(..n);
    }
    Ok(())
}

fn main() -> ExitCode {
    support::logger();
    support::exit(run(Args::parse()))
}

fn run(args: Args) -> std::io::Result<()> {
    if let Some(requests) = &args.client {
        return client(&args.addr, requests);
    }
    let config = Config {
        max_input: args.max_frame + LengthPrefixed::HEADER,
        ..support::limited(Config::default(), Duration::from_secs(30), 64)
    };
    let mut reactor = Reactor::new(args.deploy.config(config))?;
    support::listen(&mut reactor, &args.addr, &args.deploy)?;
    reactor.run(&mut Framed {
        repeat: args.repeat,
        max_frame: args.max_frame,
    })
}
