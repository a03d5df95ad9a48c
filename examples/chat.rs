//! The notes' group chat server (`002_38647ddd90221e2c.txt`,
//! "示例:实现群聊服务端" and the `ChatServer` class demo), on the reactor:
//! every line a member sends goes to every other member as
//! `[ADDR] line\n`; joins and leaves are announced as `* ADDR joined\n` and
//! `* ADDR left\n`. Its client is `examples/chat_client.rs` (or `nc`).
//!
//! Fixed from the notes:
//! - **A slow reader stalls the room.** The notes' `client.send` blocks the
//!   sender's thread on a member that does not read (and `send` may send
//!   only part). Here output to each member is bounded (`--backlog`): past
//!   it, messages to that member are dropped, it is told so once
//!   (`* you read too slowly: dropping messages\n`), and when it catches up
//!   it gets `* N messages dropped\n`. Everyone else goes on.
//! - **Chunks, not messages.** The notes relay whatever one `recv(1024)`
//!   returned: two quick messages arrive glued, a long one split, and a
//!   split UTF-8 character makes `decode()` raise. Here messages are lines
//!   (the `Lines` codec, `\n` or `\r\n`, at most `--max-line` bytes).
//! - **`clients.remove` while iterating** over `clients` skips members; the
//!   class demo sends a message back to its sender and never handles a
//!   vanished client's exception. Here a member is removed in `on_close`.
//!
//! Try it:
//! ```text
//! cargo run --example chat                             # 127.0.0.1:9999 (`--addr 0.0.0.0:9999` as the notes)
//! cargo run --example chat_client                      # in two more terminals
//! nc 127.0.0.1 9999
//! ```

use clap::Parser;
use ioplex::codec::{Lines, decode_all};
use ioplex::{Action, CloseReason, Config, ConnId, Ctx, Handler, Reactor};
use std::collections::HashMap;
use std::net::SocketAddr;

/// The notes' group chat server on ioplex.
#[derive(Parser)]
struct Args {
    /// Address to listen on (the notes bind every interface, `0.0.0.0:9999`;
    /// loopback by default here, so a first run is not open to the network).
    #[arg(long, default_value = "127.0.0.1:9999")]
    addr: String,
    /// Bytes queued for one member past which messages to it are dropped.
    #[arg(long, default_value_t = 64 * 1024)]
    backlog: usize,
    /// Longest line a member may send.
    #[arg(long, default_value_t = 4096)]
    max_line: usize,
}

/// One member of the room.
struct Member {
    name: String,
    /// Messages dropped since it fell behind; 0 while it keeps up.
    dropped: u64,
}

/// The room: members by connection.
pub struct Chat {
    backlog: usize,
    max_line: usize,
    members: HashMap<ConnId, Member>,
}

impl Chat {
    /// A room that bounds each member's queued output to `backlog` bytes.
    pub fn new(backlog: usize, max_line: usize) -> Chat {
        Chat {
            backlog,
            max_line,
            members: HashMap::new(),
        }
    }

    /// Sends `msg` to every member but `from`, dropping it for slow readers.
    fn relay(&mut self, ctx: &mut Ctx<'_>, from: ConnId, msg: &[&[u8]]) {
        for (&id, m) in self.members.iter_mut().filter(|(id, _)| **id != from) {
            if ctx.queued(id) >= self.backlog {
                if m.dropped == 0 {
                    log::warn!("{}: reads too slowly: dropping its messages", m.name);
                    ctx.send_to(id, b"* you read too slowly: dropping messages\n");
                }
                m.dropped += 1;
                continue;
            }
            if m.dropped > 0 {
                let notice = format!("* {} messages dropped\n", m.dropped);
                ctx.send_to(id, notice.as_bytes());
                m.dropped = 0;
            }
            ctx.send_parts_to(id, msg);
        }
    }
}

impl Handler for Chat {
    type Conn = Lines;

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: SocketAddr) -> Lines {
        log::info!("New connection from {peer}");
        let name = peer.to_string();
        let notice = format!("* {name} joined\n");
        self.relay(ctx, ctx.id(), &[notice.as_bytes()]);
        self.members.insert(ctx.id(), Member { name, dropped: 0 });
        Lines::new(self.max_line)
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, lines: &mut Lines, data: &[u8]) -> Action {
        let id = ctx.id();
        let Some(name) = self.members.get(&id).map(|m| format!("[{}] ", m.name)) else {
            return Action::Close;
        };
        let r = decode_all(lines, data, |line| {
            self.relay(ctx, id, &[name.as_bytes(), line, b"\n"]);
            Action::Continue
        });
        r.unwrap_or_else(|e| {
            ctx.send(format!("* error: {e}\n").as_bytes());
            Action::Close
        })
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, _: Lines, reason: CloseReason) {
        let id = ctx.id();
        if let Some(m) = self.members.remove(&id) {
            log::info!("{} left ({reason:?})", m.name);
            let notice = format!("* {} left\n", m.name);
            self.relay(ctx, id, &[notice.as_bytes()]);
        }
    }
}

fn main() -> std::io::Result<()> {
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .env()
        .init()
        .expect("logger");
    let args = Args::parse();
    let config = Config {
        // The hard limit stays well above the room's own bound.
        max_output: (args.backlog * 4).max(Config::default().max_output),
        max_input: args.max_line + 2,
        ..Config::default()
    };
    let mut reactor = Reactor::new(config)?;
    let addr = reactor.listen(&args.addr)?;
    println!("listening on {addr}");
    reactor.run(&mut Chat::new(args.backlog, args.max_line))
}
