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
//! - **`bind(('192.168.1.2', 5566))`**: here 127.0.0.1 by default.
//!
//! Try it:
//! ```text
//! cargo run --example file_transfer -- --file Cargo.toml      # 127.0.0.1:5566
//! cargo run --example file_transfer_client -- --out /tmp       # saves /tmp/Cargo.toml
//! ```

use base64::{Engine, engine::general_purpose::STANDARD};
use clap::Parser;
use ioplex::{Action, Config, Ctx, Handler, Reactor};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;

const CHUNK: usize = 64 << 10;
const QUEUE_TARGET: usize = 256 << 10;

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
}

/// Hands every client the same encoded document.
struct FileTransfer {
    doc: Rc<[u8]>,
}

impl FileTransfer {
    /// Queues the next chunks for the current client; closes when all is
    /// sent. What stays queued brings an `on_drain` once written: more then.
    fn pump(&self, ctx: &mut Ctx<'_>, sent: &mut usize) {
        let id = ctx.id();
        while *sent < self.doc.len() && ctx.queued(id) < QUEUE_TARGET {
            let end = (*sent + CHUNK).min(self.doc.len());
            if !ctx.send(&self.doc[*sent..end]) {
                return; // the client is gone
            }
            *sent = end;
        }
        if *sent == self.doc.len() {
            ctx.close(id);
        }
    }
}

impl Handler for FileTransfer {
    /// Bytes of the document already queued for this client.
    type Conn = usize;

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: SocketAddr) -> usize {
        log::info!("{}: {peer} connected", ctx.id());
        let mut sent = 0;
        self.pump(ctx, &mut sent);
        sent
    }

    fn on_data(&mut self, _: &mut Ctx<'_>, _: &mut usize, _: &[u8]) -> Action {
        Action::Continue // the notes' client sends nothing; ignore whatever comes
    }

    fn on_eof(&mut self, _: &mut Ctx<'_>, _: &mut usize) -> Action {
        Action::Continue // a half-closed client still gets the whole document
    }

    fn on_drain(&mut self, ctx: &mut Ctx<'_>, sent: &mut usize) -> Action {
        self.pump(ctx, sent);
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
    let size = std::fs::metadata(&args.file)?.len();
    if size > args.max_size {
        let msg = format!("{} is {size} bytes, over --max-size", args.file.display());
        return Err(std::io::Error::other(msg));
    }
    let name = args.file.file_name().unwrap_or_default().to_string_lossy();
    let data = STANDARD.encode(std::fs::read(&args.file)?);
    let doc = serde_json::json!({ "filename": name, "filedata": data }).to_string();
    let mut reactor = Reactor::new(Config::default())?;
    let addr = reactor.listen(&args.addr)?;
    println!("listening on {addr}");
    log::info!(
        "serving {} ({size} bytes, {} as JSON)",
        args.file.display(),
        doc.len()
    );
    let doc = Rc::from(doc.into_bytes());
    reactor.run(&mut FileTransfer { doc })
}
