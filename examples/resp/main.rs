//! A Redis-protocol server: the notes' C/S echo (`002_38647ddd90221e2c.txt`,
//! "示例:CS交互") grown into the server users compare a reactor against, with
//! the framing chapter of `003_8786073bdc871acb.txt` ("解决粘包问题") done
//! the way Redis does it: every argument carries its length, so commands
//! glued together in one read (pipelining) or split over many are each
//! answered once, in order.
//!
//! - `parser.rs`, `lex.rs`: inline and multi-bulk commands, zero-copy,
//!   resumable, with Redis' limits and words (`-ERR Protocol error: ...`, a close);
//! - `commands.rs` (table, arity), `connection.rs`, `keys.rs`, `expiry.rs`,
//!   `collections.rs`, `set.rs`: the commands; `store.rs`: the keyspace;
//!   `reply.rs`: replies, one `send` per read however many commands it held.
//! - Expiry as Redis does it: a key past its deadline is dropped when
//!   touched, and a loop timer (`on_loop_timer`, armed from `on_tick` for the
//!   earliest deadline) drops those nobody touches.
//! - A client that sends faster than it reads its replies: past 1 MiB of
//!   them queued its reading pauses (`pause_reading`), to go on `on_drain`.
//! - Replies are RESP2, and RESP3 after `HELLO 3` (redis-py 8 asks for it).
//! - `--threads N`: N loops (`ioplex::Server`) read, parse and reply in
//!   parallel over one keyspace, as Redis' `io-threads` do; the commands of
//!   one read run under one hold of the keyspace's lock, one read at a
//!   time. Loop 0 sweeps the expired keys.
//!
//! Try it:
//! ```text
//! cargo run --release --example resp             # 127.0.0.1:6380
//! redis-cli -p 6380 ping
//! redis-benchmark -p 6380 -t ping,set,get -n 100000 -c 50 -P 16
//! cargo run --release --example resp -- --threads 2
//! cargo run --release --example resp -- --unix /tmp/resp.sock   # redis-cli -s /tmp/resp.sock
//! ```
//! Behind HAProxy (`--proxy-protocol`, a rolling restart): `docs/deploy.md`.

mod collections;
mod commands;
mod connection;
mod expiry;
mod keys;
mod lex;
mod parser;
mod reply;
mod set;
mod store;
#[path = "../support/mod.rs"]
mod support;

use clap::Parser as _;
use commands::{Call, Client};
use ioplex::{Action, Backend, Config, Ctx, Handler, Peer};
use lex::ProtocolError;
use parser::Parser;
use reply::Out;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use store::Store;

/// Replies queued for a client past which its pipelined commands wait
/// (reading pauses) until it has read them: memory follows what it reads.
const BACKLOG: usize = 1 << 20;

/// A Redis-protocol (RESP2, RESP3 after HELLO 3) key-value server on the ioplex event loop.
#[derive(clap::Parser)]
#[command(name = "resp")]
struct Args {
    /// Address to listen on (6380: beside a Redis on 6379).
    #[arg(long, default_value = "127.0.0.1:6380")]
    addr: String,
    /// Longest bulk argument accepted, in bytes (Redis' proto-max-bulk-len); past it: protocol error.
    #[arg(long, default_value_t = 512 << 20)]
    max_bulk: usize,
    /// Unparsed input one client may hold, in bytes (Redis' client-query-buffer-limit).
    #[arg(long, default_value_t = 1 << 30)]
    max_query: usize,
    /// Replies queued for one client that is not reading, in bytes, before it is cut off.
    #[arg(long, default_value_t = 1 << 30)]
    max_output: usize,
    /// Event-loop backend: mio, epoll, poll, select or uring.
    #[arg(long, default_value = "mio")]
    backend: String,
    #[command(flatten)]
    loops: support::Loops,
    #[command(flatten)]
    deploy: support::Deploy,
}

struct Resp {
    /// The keyspace every loop serves.
    db: Arc<Mutex<Store>>,
    /// This loop sweeps the keys past their deadline that nobody touches.
    sweeper: bool,
    /// The replies to the read being answered: one buffer for every client.
    out: Vec<u8>,
    max_bulk: usize,
    /// Client ids handed out (CLIENT ID): unique over every loop.
    clients: Arc<AtomicU64>,
}

struct Conn {
    parser: Parser,
    client: Client,
}

impl Handler for Resp {
    type Conn = Conn;

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) -> Conn {
        log::debug!("{}: connected from {peer}", ctx.id());
        let id = self.clients.fetch_add(1, Relaxed) + 1;
        let parser = Parser::new(self.max_bulk);
        let client = Client {
            id,
            ..Client::default()
        };
        Conn { parser, client }
    }

    /// Answers every complete command in `data`; keeps a partial one.
    fn on_data(&mut self, ctx: &mut Ctx<'_>, conn: &mut Conn, data: &[u8]) -> Action {
        let id = ctx.id();
        let mut db = lock(&self.db);
        let mut out = Out::new(&mut self.out, ctx, conn.client.resp3);
        let mut used = 0;
        let action = loop {
            let rest = &data[used..];
            match conn.parser.parse(rest) {
                Ok(Some(n)) => {
                    used += n;
                    let args = conn.parser.args(rest);
                    if args.len() == 0 {
                        continue; // an empty line or `*0`: nothing to answer
                    }
                    let call = &mut Call {
                        args,
                        db: &mut db,
                        out: &mut out,
                        client: &mut conn.client,
                    };
                    commands::execute(call);
                    if conn.client.quit {
                        break Action::Close;
                    }
                    out.flush_if_big();
                    if out.ctx().queued(id) >= BACKLOG && used < data.len() {
                        out.ctx().pause_reading(id); // the rest waits, kept
                        conn.client.held = true;
                        break Action::Consumed(used);
                    }
                }
                Ok(None) if used == data.len() => break Action::Continue,
                Ok(None) => break Action::Consumed(used),
                Err(e) => break protocol_error(&mut out, id, e),
            }
        };
        out.flush();
        action
    }

    /// Pipelined commands held back by a backlog go on once it is written.
    fn on_drain(&mut self, ctx: &mut Ctx<'_>, conn: &mut Conn) -> Action {
        if std::mem::take(&mut conn.client.held) {
            ctx.resume_reading(ctx.id()); // hands the kept commands back
        }
        Action::Continue
    }

    fn on_tick(&mut self, ctx: &mut Ctx<'_>, _: &ioplex::Tick) {
        if self.sweeper {
            lock(&self.db).arm_sweep(ctx);
        }
    }

    fn on_loop_timer(&mut self, _: &mut Ctx<'_>, tag: u64) {
        lock(&self.db).swept(tag);
    }
}

/// The keyspace, also after a panic on another loop (its commands are
/// each whole before the next: what a panic leaves is at worst one reply short).
fn lock(db: &Mutex<Store>) -> MutexGuard<'_, Store> {
    db.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `-ERR Protocol error: ...`, and the connection is closed once it is sent.
fn protocol_error(out: &mut Out<'_, '_>, id: ioplex::ConnId, e: ProtocolError) -> Action {
    log::info!("{id}: protocol error: {e}");
    out.error(&format!("ERR Protocol error: {e}"));
    Action::Close
}

fn run(args: Args) -> std::io::Result<()> {
    use clap::{CommandFactory, error::ErrorKind::ArgumentConflict};
    if args.max_bulk.saturating_add(parser::MAX_INLINE) > args.max_query {
        let why = "--max-query must be larger than --max-bulk (by 64 KiB for the headers)";
        Args::command().error(ArgumentConflict, why).exit();
    }
    let backend =
        Backend::parse(&args.backend, None).unwrap_or_else(|e| support::usage_error::<Args>(e));
    let config = Config {
        backend,
        max_input: args.max_query,
        max_output: args.max_output,
        ..Config::default()
    };
    let mut server = args.loops.server(args.deploy.config(config))?;
    support::listen(&mut server, &args.addr, &args.deploy)?;
    let (db, clients) = (Arc::new(Mutex::new(Store::new())), Arc::default());
    server.run(|i| Resp {
        db: db.clone(),
        sweeper: i == 0,
        out: Vec::new(),
        max_bulk: args.max_bulk,
        clients: Arc::clone(&clients),
    })
}

fn main() -> std::process::ExitCode {
    support::logger();
    support::exit(run(Args::parse()))
}
