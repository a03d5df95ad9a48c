//! The notes' remote command server (`003_8786073bdc871acb.txt`, "服务端:
//! 收--发"), in a safe form only. A request is a line (`date\n`); the reply
//! is the program's output as one length-prefixed frame (u32 big-endian
//! length, then the bytes), so the client always knows where it ends.
//!
//! **Why the notes' version is a hole:** it runs `subprocess.Popen(recv_data,
//! shell=True)`: anyone who can connect (on 127.0.0.1: every local user, and
//! any local process a browser page can make connect) runs any shell command
//! as the server's user. So here: loopback only (any other `--addr` is
//! refused); the first word must be one of `date, echo, hostname, sleep,
//! uname, uptime, whoami`, run with no shell (`echo a; rm x` prints `a; rm x`)
//! and with no argument that changes the machine (`hostname NAME`, `date -s`);
//! no stdin, at most `--timeout-ms` (then killed) and 64 KiB of output, sent
//! as bytes (the notes decode GBK); errors are `error: ...` frames.
//!
//! **Off the loop, in a fair line** (`pool.rs`): workers run the children and
//! wake the loop (`Handle::notify`); at most `--max-running` at once, the next
//! waiting command taken one address at a time, so flooders delay a newcomer
//! by one command, never lock it out. A client's lines run one at a time, in
//! order; past `--max-queued` lines ahead it gets an error frame and a close.
//! Per peer: `--max-per-ip` connections, and `--idle-timeout-ms` of silence
//! closes a client, so idle sockets cannot lock newcomers out.
//!
//! Try it:
//! ```text
//! cargo run --example remote_cmd                       # 127.0.0.1:9999
//! printf 'echo hello; id\n' | nc -q 1 127.0.0.1 9999 | tail -c +5
//! ```

mod child;
mod client;
mod pool;
#[path = "../support/mod.rs"]
mod support;

use child::{Reply, frame};
use clap::Parser;
use client::{Client, newlines};
use ioplex::{Action, CloseReason, Config, ConnId, Ctx, Handler, Peer, Reactor};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// The notes' remote command server, allow-listed, without a shell, on loopback only.
#[derive(Parser)]
struct Args {
    /// Loopback address to listen on (the notes: `127.0.0.1:9999`).
    #[arg(long, default_value = "127.0.0.1:9999")]
    addr: SocketAddr,
    /// Kill a command that runs longer than this many milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Commands running at once; past it a client's next command waits its turn.
    #[arg(long, default_value_t = 8)]
    max_running: usize,
    /// Lines one client may send ahead of its answers (the running one included).
    #[arg(long, default_value_t = 8)]
    max_queued: usize,
    /// Connections one peer address may hold.
    #[arg(long, default_value_t = 8)]
    max_per_ip: usize,
    /// Close a client that sends nothing for this many milliseconds.
    #[arg(long, default_value_t = 60_000)]
    idle_timeout_ms: u64,
    #[command(flatten)]
    deploy: support::Deploy,
}

/// Runs request lines on worker threads; answers each with one frame, in order.
struct RemoteCmd {
    args: Args,
    clients: HashMap<ConnId, Client>,
    pool: pool::Pool<Reply>,
}

impl RemoteCmd {
    /// Takes `id`'s next lines (see [`Client::pump`]). While a command
    /// runs or a line is partly in, `id` is busy: a graceful stop waits
    /// for its answer.
    fn pump(&mut self, ctx: &mut Ctx<'_>, id: ConnId) {
        let timeout = Duration::from_millis(self.args.timeout_ms);
        if let Some(c) = self.clients.get_mut(&id) {
            c.pump(ctx, id, &mut self.pool, timeout);
            ctx.set_busy(id, c.busy || !c.pending.is_empty());
        }
    }
}

impl Handler for RemoteCmd {
    type Conn = ();

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) {
        log::info!("{}: connected from {peer}", ctx.id());
        // Clients on a Unix socket share one address's turn.
        let ip = peer.ip().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        let (pending, busy, eof) = (Vec::new(), false, false);
        self.clients.insert(
            ctx.id(),
            Client {
                ip,
                pending,
                busy,
                eof,
            },
        );
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        let (id, max) = (ctx.id(), self.args.max_queued);
        let Some(c) = self.clients.get_mut(&id) else {
            return Action::Close;
        };
        // Lines are at most 1 KiB (`pump`), so this bounds the bytes held too.
        let lines = newlines(&c.pending) + newlines(data);
        if lines + c.busy as usize > max {
            log::warn!("{id}: more than {max} commands sent ahead: closing");
            ctx.send(&frame(Err(format!(
                "more than {max} commands sent ahead: closing"
            ))));
            return Action::Close;
        }
        c.pending.extend_from_slice(data);
        self.pump(ctx, id);
        Action::Continue
    }

    /// The client sent all it will: answer what it sent, then close.
    fn on_eof(&mut self, ctx: &mut Ctx<'_>, _: &mut ()) -> Action {
        if let Some(c) = self.clients.get_mut(&ctx.id()) {
            c.eof = true;
        }
        self.pump(ctx, ctx.id());
        Action::Continue
    }

    /// Workers finished: send each output to its client (if still here)
    /// and take that client's next line.
    fn on_notify(&mut self, ctx: &mut Ctx<'_>, _: u64) {
        for (id, out) in self.pool.done() {
            if let Some(c) = self.clients.get_mut(&id) {
                c.busy = false;
                ctx.send_to(id, &frame(out.and_then(|r| r)));
                self.pump(ctx, id);
            }
        }
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, _: (), _: CloseReason) {
        if let Some(c) = self.clients.remove(&ctx.id()) {
            self.pool.forget(c.ip, ctx.id()); // a running command's output is dropped
        }
    }
}

fn serve(args: Args) -> std::io::Result<()> {
    let busy = "too many connections, from your address or in all";
    let config = Config {
        idle_timeout: Some(Duration::from_millis(args.idle_timeout_ms)),
        max_connections_per_ip: Some(args.max_per_ip),
        busy_message: frame(Err(busy.into())),
        ..args.deploy.config(Config::default())
    };
    let mut reactor = Reactor::new(config)?;
    let addr = args.addr.to_string();
    for l in support::listen(&mut reactor, &addr, &args.deploy)? {
        if let support::deploy::Listening::Tcp(a) = l {
            refuse_unless_loopback(a); // an inherited listener
        }
    }
    let pool = pool::Pool::new(args.max_running, reactor.handle());
    let clients = HashMap::new();
    reactor.run(&mut RemoteCmd {
        args,
        clients,
        pool,
    })
}

/// Commands are served on loopback only: any other address is refused.
fn refuse_unless_loopback(addr: SocketAddr) {
    if !addr.ip().is_loopback() {
        eprintln!("error: refusing to serve commands on {addr}: loopback only");
        std::process::exit(2);
    }
}

fn main() -> std::process::ExitCode {
    support::logger();
    let args = Args::parse();
    refuse_unless_loopback(args.addr);
    support::exit(serve(args))
}
