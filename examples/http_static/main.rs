//! The notes' web server (`004_530bf3ed11a85fd8.txt`, "WebServer.py"), on
//! the reactor: `GET`/`HEAD` of files under `--root`, keep-alive, many clients.
//!
//! Fixed from the notes:
//! - **Path traversal**: `open(filename[1:])` opened anything. Here the target
//!   is percent-decoded once; `..`, escapes decoding to `.` `/` `\` `%` NUL
//!   (`%2e%2e`, `.%2e`, `%252e`), `\` and NUL are 400; symlinks are resolved
//!   and must stay under the root (403); `openat2` `RESOLVE_BENEATH` opens the
//!   file (`beneath.rs`): a directory swapped for a symlink cannot lead out.
//! - **Broken responses**: a space before `HTTP/1.1`, `\n` line ends, a length
//!   in characters, a 404 with no head, one `send` per byte. Here: a proper
//!   head, byte length, `Content-Type` by extension, keep-alive, `HEAD`.
//! - **Requests**: `recv(1024)` was the whole request. Here the head is read up to
//!   8 KiB (431 past it) within `--header-timeout` (slowloris: 408, close);
//!   `Content-Length` with `Transfer-Encoding`, two lengths, or a body on GET/HEAD: 400, close.
//! - **Big files** go out 64 KiB at a time from `on_drain` (`files.rs`): ~320 KiB
//!   queued per client at most; one reading nothing for 30 s is cut off.
//!
//! Try it:
//! ```text
//! cargo run --example http_static -- --root .    # 127.0.0.1:6789
//! curl -v http://127.0.0.1:6789/Cargo.toml
//! curl --path-as-is http://127.0.0.1:6789/../../etc/passwd   # 400
//! ```

mod beneath;
mod files;
mod request;

use clap::Parser;
use files::{Pumped, STALL, Sending};
use ioplex::{Action, Config, Ctx, Handler, Reactor, TimerId};
use request::{MAX_HEAD, Refusal, error_page, head_end, parse, response_head};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

const DEADLINE: u64 = 1;
/// A step of a file transfer: [`Sending::pump`] or [`Sending::look`].
type Step = fn(&mut Sending, &mut Ctx<'_>) -> Pumped;

#[derive(Parser)]
struct Args {
    /// Address to listen on (the notes: 127.0.0.1:6789).
    #[arg(long, default_value = "127.0.0.1:6789")]
    addr: String,
    /// Directory to serve.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Seconds a client has to send a complete request head.
    #[arg(long, default_value_t = 10.0)]
    header_timeout: f64,
}

struct Web {
    root: PathBuf,
    header_timeout: Duration,
}

#[derive(Default)]
struct Conn {
    buf: Vec<u8>,
    file: Option<Sending>,
    deadline: Option<TimerId>,
    keep_alive: bool,
    eof: bool,
    closing: bool,
}

impl Web {
    /// Answers every complete head in the buffer, unless a file is being sent.
    fn serve(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn) {
        while c.file.is_none() && !c.closing {
            let Some((head, end)) = head_end(&c.buf) else {
                if c.buf.len() > MAX_HEAD {
                    self.refuse(ctx, c, (431, "request head too large"));
                }
                return;
            };
            if let Some(t) = c.deadline.take() {
                ctx.cancel_timer(t);
            }
            let result = parse(&c.buf[..head]);
            c.buf.drain(..end);
            let opened = result.and_then(|r| {
                c.keep_alive = r.keep_alive;
                files::open(&self.root, &r.target).map(|f| (r.head_only, f))
            });
            match opened {
                Err(refusal) => self.refuse(ctx, c, refusal),
                Ok((head_only, (file, len, ty))) => {
                    ctx.send(response_head(200, ty, len, c.keep_alive).as_bytes());
                    c.file = (!head_only).then(|| Sending::new(file, len));
                    if self.pump(ctx, c, Sending::pump) {
                        self.finish(ctx, c);
                    }
                }
            }
        }
    }

    /// Takes `step` on the file being sent; `true` when it is all sent.
    fn pump(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn, step: Step) -> bool {
        match c.file.as_mut().map(|s| step(s, ctx)) {
            None | Some(Pumped::Done) => c.file = None,
            Some(Pumped::Later) => {}
            Some(Pumped::Aborted) => c.closing = true,
        }
        c.file.is_none() && !c.closing
    }

    /// An error page; after a 403 or 404 the connection is kept.
    fn refuse(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn, (status, why): Refusal) {
        log::info!("{}: {status} {why}", ctx.id());
        c.keep_alive &= matches!(status, 403 | 404) && !c.eof;
        ctx.send(error_page(status, why, c.keep_alive).as_bytes());
        self.finish(ctx, c);
    }

    /// A response is complete: close, or wait for the next head.
    fn finish(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn) {
        if !c.keep_alive || c.eof {
            c.closing = true;
            ctx.close(ctx.id());
        } else {
            c.deadline = Some(ctx.set_timer(self.header_timeout, DEADLINE));
        }
    }
}

impl Handler for Web {
    type Conn = Conn;

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: SocketAddr) -> Conn {
        log::info!("{}: connected from {peer}", ctx.id());
        let deadline = Some(ctx.set_timer(self.header_timeout, DEADLINE));
        Conn {
            deadline,
            keep_alive: true,
            ..Conn::default()
        }
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn, data: &[u8]) -> Action {
        if !c.closing {
            c.buf.extend_from_slice(data);
            self.serve(ctx, c);
        }
        Action::Continue
    }

    fn on_eof(&mut self, _: &mut Ctx<'_>, c: &mut Conn) -> Action {
        c.eof = true;
        // A file still being sent is finished first; `finish` closes then.
        if c.file.is_some() {
            Action::Continue
        } else {
            Action::Close
        }
    }

    fn on_drain(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn) -> Action {
        if c.file.is_some() && !c.closing && self.pump(ctx, c, Sending::pump) {
            self.finish(ctx, c);
            self.serve(ctx, c);
        }
        Action::Continue
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn, tag: u64) -> Action {
        if tag == STALL && !c.closing {
            self.pump(ctx, c, Sending::look); // never done: it only looks
        } else if tag == DEADLINE && c.deadline.take().is_some() && !c.closing {
            if c.buf.is_empty() {
                c.closing = true;
                return Action::Close; // an idle keep-alive connection
            }
            self.refuse(ctx, c, (408, "request head not complete in time"));
        }
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
    let mut web = Web {
        root: args.root.canonicalize()?,
        header_timeout: Duration::from_secs_f64(args.header_timeout),
    };
    let mut reactor = Reactor::new(Config::default())?;
    let addr = reactor.listen(&args.addr)?;
    println!("listening on {addr}");
    reactor.run(&mut web)
}
