//! The notes' file transfer server (`004_530bf3ed11a85fd8.txt`,
//! "FileTransferHandler"), on the reactor: every client gets one JSON
//! document `{"filename": ..., "filedata": <base64>}` and then EOF, the
//! notes' format. `file_transfer_client` (or the notes' client) saves it.
//!
//! Fixed from the notes:
//! - **A thread per client** for what is one send; here one loop serves all.
//! - **`send(json_str)` once, then `close()`**: `send` may take only part
//!   of a large document, and the rest was lost. Here the document goes out
//!   64 KiB at a time while less than 256 KiB is queued for that client (each
//!   time that queue drains, `on_drain` tops it up), so it arrives whole, and
//!   a thousand clients cost a thousand small queues, not a thousand copies.
//!   It is encoded once.
//! - **Any file size**: here `--max-size` (default 64 MiB) is checked at start.
//! - **Clients that never read** held their thread (and here their queue)
//!   forever: a client whose download makes no progress for
//!   `--stall-timeout-ms` is closed, and one address may hold `--max-per-ip`
//!   downloads (past it: `{"error": ...}` and a close). There is no idle
//!   timeout on input: the notes' client never sends a byte.
//! - **`bind(('192.168.1.2', 5566))`**: here 127.0.0.1 by default.
//! - **A new file** meant a restart: here SIGHUP reads `--file` again (new
//!   clients get it; downloads under way finish the old one), and a
//!   graceful stop (SIGTERM) lets downloads under way finish.
//!
//! Try it:
//! ```text
//! cargo run --example file_transfer -- --file Cargo.toml      # 127.0.0.1:5566
//! cargo run --example file_transfer_client -- --out /tmp       # saves /tmp/Cargo.toml (once: --force to overwrite)
//! ```

use base64::{Engine, engine::general_purpose::STANDARD};
#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use ioplex::{Action, Config, Ctx, Handler, Peer, Reactor};
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

const CHUNK: usize = 64 << 10;
const QUEUE_TARGET: usize = 256 << 10;

/// The notes' file transfer server: every client gets one file as JSON with base64.
#[derive(Parser)]
struct Args {
    /// Address to listen on (the notes: 192.168.1.2:5566).
    #[arg(long, default_value = "127.0.0.1:5566")]
    addr: String,
    /// The file every client gets (the notes: guido.jpg).
    #[arg(long, default_value = "guido.jpg")]
    file: PathBuf,
    /// Largest file served, in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    max_size: u64,
    /// Close a client whose download moves no byte for this many milliseconds.
    #[arg(long, default_value_t = 30_000)]
    stall_timeout_ms: u64,
    /// Downloads one peer address may hold at once.
    #[arg(long, default_value_t = 8)]
    max_per_ip: usize,
    #[command(flatten)]
    deploy: support::Deploy,
}

/// Hands every client the same encoded document.
struct FileTransfer {
    args: Args,
    doc: Rc<[u8]>,
    stall: Duration,
}

/// A download: its document, bytes of it queued so far, and what was still
/// queued at the last stall check (no change in a whole period: stalled).
struct Download {
    doc: Rc<[u8]>,
    sent: usize,
    seen: Option<(usize, usize)>,
}

impl FileTransfer {
    /// Queues the next chunks for the current client. What stays queued
    /// brings an `on_drain` once written: more then.
    fn pump(&self, ctx: &mut Ctx<'_>, d: &mut Download) {
        let id = ctx.id();
        while d.sent < d.doc.len() && ctx.queued(id) < QUEUE_TARGET {
            let end = (d.sent + CHUNK).min(d.doc.len());
            if !ctx.send(&d.doc[d.sent..end]) {
                return; // the client is gone
            }
            d.sent = end;
        }
        // Closed once all is written (the stall timer watches until then):
        // the flush deadline of a close would cut a slow reader off. Till
        // then it is busy: a graceful stop lets it finish.
        let done = d.sent == d.doc.len() && ctx.queued(id) == 0;
        ctx.set_busy(id, !done);
        if done {
            ctx.close(id);
        }
    }
}

impl Handler for FileTransfer {
    type Conn = Download;

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) -> Download {
        log::info!("{}: {peer} connected", ctx.id());
        let (doc, sent, seen) = (self.doc.clone(), 0, None);
        let mut d = Download { doc, sent, seen };
        self.pump(ctx, &mut d);
        ctx.set_timer(self.stall, 0);
        d
    }

    fn on_data(&mut self, _: &mut Ctx<'_>, _: &mut Download, _: &[u8]) -> Action {
        Action::Continue // the notes' client sends nothing; ignore whatever comes
    }

    fn on_eof(&mut self, _: &mut Ctx<'_>, _: &mut Download) -> Action {
        Action::Continue // a half-closed client still gets the whole document
    }

    fn on_drain(&mut self, ctx: &mut Ctx<'_>, d: &mut Download) -> Action {
        self.pump(ctx, d);
        Action::Continue
    }

    /// Every `--stall-timeout-ms`: a download that moved no byte since the
    /// last look is dropped (its queue with it).
    fn on_timer(&mut self, ctx: &mut Ctx<'_>, d: &mut Download, _: u64) -> Action {
        let now = (d.sent, ctx.queued(ctx.id()));
        if d.seen == Some(now) {
            log::warn!("{}: no byte read in {:?}: closing", ctx.id(), self.stall);
            return Action::Abort;
        }
        d.seen = Some(now);
        ctx.set_timer(self.stall, 0);
        Action::Continue
    }

    /// SIGHUP: `--file` again, for the clients that come next (on an
    /// error the old document stays).
    fn on_signal(&mut self, _: &mut Ctx<'_>, signal: i32) {
        log::info!(
            "signal {signal}: reading {} again",
            self.args.file.display()
        );
        match load(&self.args) {
            Ok(doc) => {
                self.doc = doc;
                log_serving(&self.args, &self.doc);
            }
            Err(e) => log::warn!("signal {signal}: kept the old document: {e}"),
        }
    }
}

/// `--file` as the JSON document every client gets (checked against `--max-size`).
fn load(args: &Args) -> io::Result<Rc<[u8]>> {
    let file = args.file.display();
    let what = |e: io::Error| io::Error::new(e.kind(), format!("cannot read {file}: {e}"));
    let size = std::fs::metadata(&args.file).map_err(what)?.len();
    if size > args.max_size {
        let msg = format!("{file} is {size} bytes, over --max-size");
        return Err(io::Error::other(msg));
    }
    let data = std::fs::read(&args.file).map_err(what)?;
    let name = args.file.file_name().unwrap_or_default().to_string_lossy();
    let doc = serde_json::json!({ "filename": name, "filedata": STANDARD.encode(data) });
    Ok(Rc::from(doc.to_string().into_bytes()))
}

fn log_serving(args: &Args, doc: &[u8]) {
    let file = args.file.display();
    log::info!("serving {file} ({} bytes as JSON)", doc.len());
}

fn serve(args: Args) -> io::Result<()> {
    let doc = load(&args)?;
    let busy = serde_json::json!({ "error": "too many downloads, from your address or in all" });
    let config = Config {
        max_connections_per_ip: Some(args.max_per_ip),
        busy_message: busy.to_string().into_bytes(),
        ..args.deploy.config(Config::default())
    };
    let mut reactor = Reactor::new(config)?;
    support::listen(&mut reactor, &args.addr, &args.deploy)?;
    log_serving(&args, &doc);
    let stall = Duration::from_millis(args.stall_timeout_ms);
    reactor.run(&mut FileTransfer { args, doc, stall })
}

fn main() -> std::process::ExitCode {
    support::logger();
    support::exit(serve(Args::parse()))
}
