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
//!
//! Try it:
//! ```text
//! cargo run --example file_transfer -- --file Cargo.toml      # 127.0.0.1:5566
//! cargo run --example file_transfer_client -- --out /tmp       # saves /tmp/Cargo.toml (once: --force to overwrite)
//! ```

use base64::{Engine, engine::general_purpose::STANDARD};
use clap::Parser;
use ioplex::{Action, Config, Ctx, Handler, Peer, Reactor};
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
}

/// Hands every client the same encoded document.
struct FileTransfer {
    doc: Rc<[u8]>,
    stall: Duration,
}

/// A download: bytes of the document queued so far, and what was still
/// queued at the last stall check (no change in a whole period: stalled).
#[derive(Default)]
struct Download {
    sent: usize,
    seen: Option<(usize, usize)>,
}

impl FileTransfer {
    /// Queues the next chunks for the current client. What stays queued
    /// brings an `on_drain` once written: more then.
    fn pump(&self, ctx: &mut Ctx<'_>, d: &mut Download) {
        let id = ctx.id();
        while d.sent < self.doc.len() && ctx.queued(id) < QUEUE_TARGET {
            let end = (d.sent + CHUNK).min(self.doc.len());
            if !ctx.send(&self.doc[d.sent..end]) {
                return; // the client is gone
            }
            d.sent = end;
        }
        // Closed once all is written (the stall timer watches until then):
        // the flush deadline of a close would cut a slow reader off.
        if d.sent == self.doc.len() && ctx.queued(id) == 0 {
            ctx.close(id);
        }
    }
}

impl Handler for FileTransfer {
    type Conn = Download;

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) -> Download {
        log::info!("{}: {peer} connected", ctx.id());
        let mut d = Download::default();
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
}

fn serve(args: Args) -> std::io::Result<()> {
    let what = |e: std::io::Error| {
        std::io::Error::new(
            e.kind(),
            format!("cannot read {}: {e}", args.file.display()),
        )
    };
    let size = std::fs::metadata(&args.file).map_err(what)?.len();
    if size > args.max_size {
        let msg = format!("{} is {size} bytes, over --max-size", args.file.display());
        return Err(std::io::Error::other(msg));
    }
    let name = args.file.file_name().unwrap_or_default().to_string_lossy();
    let data = STANDARD.encode(std::fs::read(&args.file).map_err(what)?);
    let doc = serde_json::json!({ "filename": name, "filedata": data }).to_string();
    let busy = serde_json::json!({ "error": "too many downloads, from your address or in all" });
    let config = Config {
        max_connections_per_ip: Some(args.max_per_ip),
        busy_message: busy.to_string().into_bytes(),
        ..Config::default()
    };
    let mut reactor = Reactor::new(config)?;
    let addr = reactor.listen(&args.addr)?;
    println!("listening on {addr}");
    log::info!(
        "serving {} ({size} bytes, {} as JSON)",
        args.file.display(),
        doc.len()
    );
    let (doc, stall) = (
        Rc::from(doc.into_bytes()),
        Duration::from_millis(args.stall_timeout_ms),
    );
    reactor.run(&mut FileTransfer { doc, stall })
}

fn main() {
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .env()
        .init()
        .expect("logger");
    if let Err(e) = serve(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
