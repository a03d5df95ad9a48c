//! The notes' remote command server (`003_8786073bdc871acb.txt`, "服务端:
//! 收--发"), in a safe form only. A request is a line (`date\n`); the reply
//! is the program's output as one length-prefixed frame (u32 big-endian
//! length, then the bytes), so the client always knows where it ends.
//!
//! **Why the notes' version is a hole:** it runs `subprocess.Popen(recv_data,
//! shell=True)` on whatever arrives: anyone who can connect runs any shell
//! command as the server's user (`rm -rf ~`, `curl … | sh`, a reverse shell).
//! Binding 127.0.0.1 narrows "anyone" to every local user and every local
//! process a browser page can make connect. So here:
//! - it binds a loopback address only (any other `--addr` is refused);
//! - the first word must be one of `date, echo, hostname, sleep, uname, uptime, whoami`,
//!   run with no shell: other words are plain arguments (`echo a; rm x` prints `a; rm x`),
//!   and none that would change the machine (`hostname NAME`, `date -s …`);
//! - the child gets no stdin, at most `--timeout-ms` (then it is killed:
//!   `sleep 999` ends there) and at most 64 KiB of its output is sent;
//! - output is sent as bytes (the notes decode GBK); errors are `error: ...` frames.
//!
//! **Off the loop:** a worker thread runs the child, sends the output on a
//! channel its connection holds and wakes the loop (`Handle::notify_conn`;
//! `on_conn_notify` sends the frame). Past `--max-running` commands at once a
//! request gets `error: busy` (simpler than a queue). A client's lines run one at
//! a time, in order (16 KiB of them may wait); one that leaves drops its output.
//!
//! Try it:
//! ```text
//! cargo run --example remote_cmd                       # 127.0.0.1:9999
//! printf 'echo hello; id\n' | nc -q 1 127.0.0.1 9999 | tail -c +5
//! ```

mod child;

use child::Reply;
use clap::Parser;
use ioplex::codec::{Codec, LengthPrefixed, Lines};
use ioplex::{Action, Config, ConnId, Ctx, Handle, Handler, Reactor};
use std::net::SocketAddr;
use std::sync::{Arc, mpsc};
use std::time::Duration;

const MAX_PENDING: usize = 16 * 1024;

/// The notes' command server, allow-listed and without a shell.
#[derive(Parser)]
struct Args {
    /// Loopback address to listen on (the notes: `127.0.0.1:9999`).
    #[arg(long, default_value = "127.0.0.1:9999")]
    addr: SocketAddr,
    /// Kill a command that runs longer than this.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Commands running at once; past it requests are answered `error: busy`.
    #[arg(long, default_value_t = 8)]
    max_running: usize,
}

/// Sends one frame of the length codec: output is at most 64 KiB, an error
/// a request line (at most 1 KiB) and a few words.
fn reply(ctx: &mut Ctx<'_>, r: Reply) {
    let out = r.unwrap_or_else(|e| format!("error: {e}\n").into_bytes());
    let frames = LengthPrefixed::new(child::MAX_OUTPUT as usize + 4096);
    let head = frames.header(out.len()).expect("replies are bounded");
    ctx.send_parts(&[&head, &out]);
}

/// Runs request lines on worker threads; answers each with one frame, in order.
pub struct RemoteCmd {
    args: Args,
    running: Arc<()>, // one more clone per worker that has not ended
    handle: Handle,
}

/// A client: input not run yet, its running command's channel, EOF seen.
#[derive(Default)]
pub struct Conn {
    pending: Vec<u8>,
    answer: Option<mpsc::Receiver<Reply>>,
    eof: bool,
}

impl RemoteCmd {
    /// Checks a request, then runs it on a worker that sends the output and notifies `id`.
    fn start(&self, id: ConnId, request: &[u8]) -> Result<mpsc::Receiver<Reply>, String> {
        log::info!("{id}: run {:?}", String::from_utf8_lossy(request));
        let argv = child::check(request)?;
        if Arc::strong_count(&self.running) > self.args.max_running {
            log::warn!("{id}: busy, {} commands running", self.args.max_running);
            return Err("busy, try again later".into());
        }
        let (tx, rx) = mpsc::channel();
        let (running, handle) = (self.running.clone(), self.handle.clone());
        let ms = self.args.timeout_ms;
        std::thread::Builder::new()
            .spawn(move || {
                let _ = tx.send(child::run(&argv, Duration::from_millis(ms))); // fails if the client left
                drop(running); // before the wake-up: this client's next line is not "busy"
                handle.notify_conn(id, 0); // the loop calls `on_conn_notify`
            })
            .map(|_| rx)
            .map_err(|e| format!("cannot start a worker: {e}"))
    }

    /// Takes the client's lines while none runs (refused or busy: answered at once).
    fn feed(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn) -> Action {
        while c.answer.is_none() {
            let (started, n) = match Lines::new(1024).decode(&c.pending) {
                Ok(Some((line, n))) => (self.start(ctx.id(), line), n),
                Ok(None) if c.eof => return Action::Close,
                Ok(None) => return Action::Continue,
                Err(e) => {
                    reply(ctx, Err(e.to_string())); // a line too long: the rest is unknown
                    return Action::Close;
                }
            };
            c.pending.drain(..n);
            c.answer = started.map_err(|e| reply(ctx, Err(e))).ok();
        }
        Action::Continue
    }
}

impl Handler for RemoteCmd {
    type Conn = Conn;

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: SocketAddr) -> Conn {
        log::info!("{}: connected from {peer}", ctx.id());
        Conn::default()
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn, data: &[u8]) -> Action {
        if c.pending.len() + data.len() > MAX_PENDING {
            log::warn!("{}: over {MAX_PENDING} bytes sent ahead: closing", ctx.id());
            reply(ctx, Err(format!("over {MAX_PENDING} bytes sent ahead")));
            return Action::Close;
        }
        c.pending.extend_from_slice(data);
        self.feed(ctx, c)
    }

    /// The client sent all it will: answer what it sent, then close.
    fn on_eof(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn) -> Action {
        c.eof = true;
        self.feed(ctx, c)
    }

    /// This client's worker sent the output, then notified (only it does).
    fn on_conn_notify(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn, _: u64) -> Action {
        if let Some(out) = c.answer.take().and_then(|rx| rx.try_recv().ok()) {
            reply(ctx, out);
        }
        self.feed(ctx, c)
    }
}

fn main() -> std::io::Result<()> {
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .env()
        .init()
        .expect("logger");
    let args = Args::parse();
    if !args.addr.ip().is_loopback() {
        log::error!("refusing to serve commands on {}: loopback only", args.addr);
        std::process::exit(2);
    }
    let mut reactor = Reactor::new(Config::default())?;
    println!("listening on {}", reactor.listen(args.addr)?);
    let (running, handle) = (Arc::default(), reactor.handle());
    reactor.run(&mut RemoteCmd {
        args,
        running,
        handle,
    })
}
