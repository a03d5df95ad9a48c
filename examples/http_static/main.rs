//! The notes' web server (`004_530bf3ed11a85fd8.txt`, "WebServer.py"), on
//! the reactor: `GET`/`HEAD` of files under `--root`, keep-alive, many clients.
//!
//! Fixed from the notes:
//! - **Path traversal**: `open(filename[1:])` opened anything. Here the target
//!   is percent-decoded once; `..`, escapes decoding to `.` `/` `\` `%` NUL
//!   (`%2e%2e`, `.%2e`, `%252e`), `\` and NUL are 400; symlinks are resolved
//!   and must stay under the root (403); `openat2` `RESOLVE_BENEATH` opens the
//!   file (`beneath.rs`): a directory swapped for a symlink cannot lead out.
//!   Dotfiles and dot-directories (`.git/config`) are 404 unless `--allow-hidden`.
//! - **Broken responses**: a space before `HTTP/1.1`, `\n` line ends, a length
//!   in characters, a 404 with no head, one `send` per byte. Here: proper heads
//!   (`response.rs`), `Content-Type` from `mime_guess`, `ETag`/`Last-Modified`
//!   and 304, one `Range` (206/416; `conditional.rs`), `index.html` for a
//!   directory (301 without its trailing slash), keep-alive, `HEAD`.
//! - **Requests**: `recv(1024)` was the whole request. Here heads are parsed by
//!   `httparse` (`request.rs`): up to 8 KiB however they arrive (431 past it),
//!   header names must be tokens, `Content-Length` with `Transfer-Encoding`,
//!   two lengths or a body on GET/HEAD are 400 and a close.
//! - **Big files** go out 64 KiB at a time from `on_drain` (`body.rs`); while a
//!   body goes out, reading pauses (`server.rs`), so input waiting behind it
//!   stays in the kernel, not in memory, and the connection is busy: a
//!   graceful stop (SIGTERM) lets the body finish.
//!
//! Time and connection limits, each a flag:
//! - `--idle-timeout` (15 s): a connection waiting for its next request, or for
//!   its first, is closed; `--header-timeout` (10 s) from a head's first byte
//!   to its end, else 408 (slowloris); `--stall-timeout` (60 s): a client that
//!   takes no byte of a body for that long is cut off. Taking is what its kernel
//!   acknowledges, which on loopback comes in ~100 KB steps (every ~25 s at
//!   4 KiB/s): a reader slower than ~2 KiB/s looks stalled there.
//! - `--max-connections` (10,000) and `--max-per-ip` (64; six per browser is
//!   usual): past either a client gets `HTTP/1.1 503` with `Retry-After` and a
//!   close. So one address holding idle sockets locks out only itself, and only
//!   until the idle timeout frees them.
//!
//! No file operation waits on the loop thread for another process: files are
//! opened `O_NONBLOCK` and refused (403) unless regular (a FIFO would wait for
//! a writer). What may still block is the disk: `open`, `fstat` and `read` of
//! a cold file on a slow disk hold every client meanwhile. A server for such
//! disks does them on a worker thread and hands the result back with
//! `Handle::notify_conn` (as `remote_cmd` does with its child processes).
//! Out of descriptors, a request gets 503 with `Retry-After` (logged: EMFILE).
//! `--threads N` serves on N loops, one per core (`ioplex::Server`); the
//! connection limits then hold per loop. `--metrics ADDR` serves the loops'
//! counters (requests' file bodies sent with sendfile among them) for
//! Prometheus at `GET /metrics` on a listener of their own.
//!
//! Try it:
//! ```text
//! cargo run --example http_static -- --root .    # 127.0.0.1:6789
//! curl -v http://127.0.0.1:6789/Cargo.toml
//! curl --path-as-is http://127.0.0.1:6789/../../etc/passwd   # 400
//! curl -r 0-99 http://127.0.0.1:6789/README.md               # 206
//! cargo run --example http_static -- --root . --metrics 127.0.0.1:9100   # curl 127.0.0.1:9100/metrics
//! ```

mod answer;
mod beneath;
mod body;
mod conditional;
mod request;
mod resolve;
mod response;
mod server;
#[path = "../support/mod.rs"]
mod support;

use clap::Parser;
use ioplex::{Backend, Config};
use resolve::Root;
use server::{Limits, Web};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use support::metrics_http::Scrape;

/// Serves the files under a directory over HTTP/1.1 (GET and HEAD, keep-alive,
/// ranges, conditional requests), never a byte from outside it.
#[derive(Parser)]
#[command(name = "http_static")]
struct Args {
    /// Address to listen on (the notes: 127.0.0.1:6789).
    #[arg(long, default_value = "127.0.0.1:6789")]
    addr: String,
    /// Event-loop backend: mio, epoll, poll, select or uring.
    #[arg(long, default_value = "mio")]
    backend: String,
    /// Directory to serve.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Serve dotfiles and dot-directories (`.git`, `.env`); 404 without it.
    #[arg(long)]
    allow_hidden: bool,
    /// Seconds a connection may wait for its next request before it is closed.
    #[arg(long, default_value_t = 15.0)]
    idle_timeout: f64,
    /// Seconds from the first byte of a request head to its end (else 408).
    #[arg(long, default_value_t = 10.0)]
    header_timeout: f64,
    /// Seconds a client may take no byte of a response body before it is cut off.
    #[arg(long, default_value_t = 60.0)]
    stall_timeout: f64,
    /// Connections held at once; past it new clients get a 503.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Connections one client address may hold; past it that address gets a 503 (0: no cap).
    #[arg(long, default_value_t = 64)]
    max_per_ip: usize,
    #[command(flatten)]
    loops: support::Loops,
    /// Also serve the loops' counters for Prometheus at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR", conflicts_with = "proxy_protocol")]
    metrics: Option<String>,
    #[command(flatten)]
    deploy: support::Deploy,
}

fn main() -> ExitCode {
    support::logger();
    support::exit(run(Args::parse()))
}

fn run(args: Args) -> Result<(), String> {
    let root = open_root(&args.root, args.allow_hidden)?;
    let seconds = |s: f64, flag: &str| {
        Duration::try_from_secs_f64(s).map_err(|_| format!("--{flag} {s}: not a number of seconds"))
    };
    let limits = Limits {
        idle: seconds(args.idle_timeout, "idle-timeout")?,
        header: seconds(args.header_timeout, "header-timeout")?,
        stall: seconds(args.stall_timeout, "stall-timeout")?,
    };
    let backend =
        Backend::parse(&args.backend, None).unwrap_or_else(|e| support::usage_error::<Args>(e));
    let config = Config {
        backend,
        max_connections: args.max_connections,
        max_connections_per_ip: (args.max_per_ip > 0).then_some(args.max_per_ip),
        busy_message: response::busy(),
        ..args.deploy.config(Config::default())
    };
    let mut server = args
        .loops
        .server(config)
        .map_err(|e| format!("cannot start the loop: {e}"))?;
    support::listen(&mut server, &args.addr, &args.deploy).map_err(|e| e.to_string())?;
    let root = Arc::new(root);
    let web = || Web {
        root: root.clone(),
        limits,
    };
    let ran = match &args.metrics {
        None => server.run(|_| web()),
        Some(addr) => {
            let scrape =
                Scrape::listen(&mut server, addr, "http_static").map_err(|e| e.to_string())?;
            println!("metrics on http://{}/metrics", scrape.addr());
            server.run(|_| scrape.clone().around(web()))
        }
    };
    ran.map_err(|e| format!("the loop failed: {e}"))
}

/// The root, checked and held open; an error names the path.
fn open_root(path: &Path, allow_hidden: bool) -> Result<Root, String> {
    let fail = |why: String| format!("cannot serve {}: {why}", path.display());
    match path.metadata() {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(fail("not a directory".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail("no such directory".into()));
        }
        Err(e) => return Err(fail(e.to_string())),
    }
    let dir = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let path = path.canonicalize().map_err(|e| fail(e.to_string()))?;
    Ok(Root {
        path,
        dir,
        allow_hidden,
    })
}
