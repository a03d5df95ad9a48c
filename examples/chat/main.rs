//! The notes' group chat server (`002_38647ddd90221e2c.txt`,
//! "示例:实现群聊服务端" and the `ChatServer` class demo), on the reactor:
//! every line a member sends goes to every other member as
//! `[ADDR] line\n`; joins and leaves are announced as `* ADDR joined\n` and
//! `* ADDR left\n`. Its client is `examples/chat_client.rs` (or `nc`).
//!
//! Fixed from the notes:
//! - **A slow reader stalls the room.** The notes' `client.send` blocks on a
//!   member that does not read. Here output to each member is bounded
//!   (`--backlog`): past it, messages to it are dropped, it is told once
//!   (`* you read too slowly: dropping messages\n`), and when it catches up
//!   it gets `* N messages dropped\n`. Everyone else goes on.
//! - **One member's cheap input costs everyone.** Each line was sent to each
//!   member at once: one member flooding empty lines beside 500 others kept the
//!   loop busy for a minute, and 4,000 joins made 16 million sends. Here what
//!   the room says in one loop iteration is gathered (at most 64 KiB: a
//!   sender past it waits for the next iteration) and sent to each member as
//!   one write in `on_tick`; each member may send `--rate` lines a second
//!   (past it the loop stops reading it until it may: backpressure, nothing
//!   dropped); empty lines count, but are not relayed.
//! - **Chunks, not messages.** The notes relay whatever one `recv(1024)`
//!   returned; here messages are lines (`Lines`, at most `--max-line` bytes).
//! - **`clients.remove` while iterating** skips members; here a member is
//!   removed in `on_close`. `--max-per-ip` members per address, and one that
//!   sends nothing for `--idle-timeout-s` is closed.
//!
//! Beyond the notes: `--threads N` runs the room on N loops (one per core,
//! `ioplex::Server`): each serves its own members, and what they say reaches
//! the members of the other loops too. `--metrics ADDR` serves the loops'
//! counters for Prometheus at `GET /metrics`.
//!
//! Try it:
//! ```text
//! cargo run --example chat                             # 127.0.0.1:9999 (`--addr 0.0.0.0:9999` as the notes)
//! cargo run --example chat_client                      # in two more terminals
//! nc 127.0.0.1 9999
//! cargo run --release --example chat -- --threads 2 --metrics 127.0.0.1:9100
//! ```

mod room;
#[path = "../support/mod.rs"]
mod support;

use clap::Parser;
use ioplex::codec::{Codec, Lines};
use ioplex::{Action, CloseReason, Config, Ctx, Handler, Peer, Tick};
use room::Chat;
use std::time::{Duration, Instant};
use support::metrics_http;

/// The notes' group chat server on ioplex.
#[derive(Parser, Clone)]
pub struct Args {
    /// Address to listen on (the notes bind every interface, `0.0.0.0:9999`;
    /// loopback by default here, so a first run is not open to the network).
    #[arg(long, default_value = "127.0.0.1:9999")]
    pub addr: String,
    /// Bytes queued for one member past which messages to it are dropped.
    #[arg(long, default_value_t = 64 * 1024)]
    pub backlog: usize,
    /// Longest line a member may send.
    #[arg(long, default_value_t = 4096)]
    pub max_line: usize,
    /// Lines a member may send per second (and twice as many in a burst).
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Members one peer address may have in the room.
    #[arg(long, default_value_t = 16)]
    pub max_per_ip: usize,
    /// Close a member that sends nothing for this many seconds.
    #[arg(long, default_value_t = 1800)]
    pub idle_timeout_s: u64,
    #[command(flatten)]
    pub loops: support::Loops,
    /// Also serve the loops' counters for Prometheus at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR", conflicts_with = "proxy_protocol")]
    pub metrics: Option<String>,
    #[command(flatten)]
    pub deploy: support::Deploy,
}

impl Handler for Chat {
    type Conn = Lines;

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) -> Lines {
        log::info!("{}: new connection from {peer}", ctx.id());
        self.join(ctx.id(), peer.to_string());
        Lines::new(self.args.max_line)
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, lines: &mut Lines, data: &[u8]) -> Action {
        let (id, now, mut used) = (ctx.id(), Instant::now(), 0);
        let Some(m) = self.members.get_mut(&id) else {
            return Action::Close;
        };
        let name = format!("[{}] ", m.name);
        loop {
            let (line, n) = match lines.decode(&data[used..]) {
                Ok(Some(frame)) => frame,
                Ok(None) if used == data.len() => return Action::Continue,
                Ok(None) => return Action::Consumed(used),
                Err(e) => {
                    ctx.send(format!("* error: {e}\n").as_bytes());
                    return Action::Close;
                }
            };
            if self.round_full() {
                ctx.pause_reading(id); // the room said enough this iteration
                self.waiting.push(id);
                return Action::Consumed(used);
            }
            let m = self.members.get_mut(&id).expect("member");
            if let Some(wait) = Chat::take_token(self.args.rate, m, now) {
                ctx.pause_reading(id); // past its rate: read it again when it may speak
                ctx.set_timer(wait, 0);
                return Action::Consumed(used);
            }
            used += n;
            if !line.is_empty() {
                self.post(id, &[name.as_bytes(), line, b"\n"]);
            }
        }
    }

    /// A member paused for its rate may speak again.
    fn on_timer(&mut self, ctx: &mut Ctx<'_>, _: &mut Lines, _: u64) -> Action {
        ctx.resume_reading(ctx.id());
        Action::Continue
    }

    /// The round goes out at the end of the iteration, or (in a large room,
    /// where one flush is a send per member) once its gap since the last.
    fn on_tick(&mut self, ctx: &mut Ctx<'_>, _: &Tick) {
        if self.said.is_empty() || self.flush_due.is_some() {
            return;
        }
        match self.flush_gap().checked_sub(self.flushed.elapsed()) {
            Some(wait) if !wait.is_zero() => self.flush_due = Some(ctx.set_timer(wait, 0)),
            _ => self.flush(ctx),
        }
    }

    fn on_loop_timer(&mut self, ctx: &mut Ctx<'_>, _: u64) {
        self.flush_due = None;
        self.flush(ctx);
    }

    /// What the members of another loop said: to this loop's members too.
    fn on_loop_message(&mut self, _: &mut Ctx<'_>, _: usize, lines: &[u8]) {
        self.heard(lines);
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, _: Lines, reason: CloseReason) {
        let id = ctx.id();
        if let Some(m) = self.members.remove(&id) {
            log::info!("{} left ({reason:?})", m.name);
            self.post(id, &[b"* ", m.name.as_bytes(), b" left\n"]);
        }
    }
}

fn serve(args: Args) -> std::io::Result<()> {
    let read_buffer = Config::default().read_buffer;
    let config = Config {
        // The hard limit stays well above the room's own bound.
        max_output: (args.backlog * 4).max(Config::default().max_output),
        // A sender that waits for the next round keeps what it sent meanwhile.
        max_input: read_buffer + args.max_line + 2,
        max_connections_per_ip: Some(args.max_per_ip),
        busy_message: b"* the room is full, or your address has too many members in it\n".to_vec(),
        idle_timeout: Some(Duration::from_secs(args.idle_timeout_s)),
        ..args.deploy.config(Config::default())
    };
    let mut server = args.loops.server(config)?;
    support::listen(&mut server, &args.addr, &args.deploy)?;
    let metrics = args.metrics.clone();
    metrics_http::run(server, metrics.as_deref(), "chat", |_| {
        Chat::new(args.clone())
    })
}

fn main() -> std::process::ExitCode {
    support::logger();
    support::exit(serve(Args::parse()))
}
