//! The notes' select-based pseudo-concurrent echo server
//! (`003_8786073bdc871acb.txt`, "伪并发：利用select实现伪同时处理多个Socket客户端请求"), on the reactor.
//!
//! Each new client gets `hello...`; each received chunk (at most 1024
//! bytes, like the notes' `recv(1024)`) is answered with `response:` + the chunk.
//!
//! Fixed from the notes:
//! - **Order.** The notes queue messages per client and answer with
//!   `msg[w].pop()`: in a burst the newest message is answered first and
//!   the older ones wait for later rounds. Here every chunk is answered in
//!   order of arrival, at once.
//! - **Blocking sends.** `sendall` on a slow client blocks the whole server;
//!   here the socket's refusal is queued and sent on WRITABLE.
//! - **Disconnects** are handled without an exception per client, and a
//!   client's `outputs` entry cannot outlive it.
//!
//! - **No limits.** One address could hold every connection the server
//!   allows (10,000 idle sockets lock every newcomer out). Here one address
//!   holds at most `--max-per-ip` (64) connections, the next ones are told
//!   `error: too many connections; try again later` and closed, and a
//!   connection silent for `--idle-timeout` (300 s: a person typing may
//!   pause) is closed, so a newcomer even from that address gets in (once
//!   the closed ones have drained for `Config::linger`, 2 s).
//!
//! Like the notes' `select(inputs, outputs, [], 1)`, the loop wakes at least
//! once a second and logs (at debug level) the counts the notes print.
//! `--metrics 127.0.0.1:9100` serves the loop's counters for Prometheus at
//! `GET /metrics` on a second listener of the same loop.
//! Beyond the notes: `--threads N` runs N such loops on N threads (one per
//! core, `ioplex::Server`), each with its own backend and its own clients.
//!
//! Try it:
//! ```text
//! cargo run --release --example echo_select            # 127.0.0.1:9999
//! nc 127.0.0.1 9999                                    # in a second terminal
//! cargo run --release --example client -- 127.0.0.1:9999   # without nc
//! RUST_LOG=debug cargo run --example echo_select       # see the counts
//! cargo run --example echo_select -- --metrics 127.0.0.1:9100   # then: curl 127.0.0.1:9100/metrics
//! cargo run --release --example echo_select -- --threads 2 --pin
//! cargo run --example echo_select -- --unix /tmp/echo.sock   # then: nc -U /tmp/echo.sock
//! ```

#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use ioplex::{Action, Backend, Config, Ctx, Handler, Peer, Tick};
use std::process::ExitCode;
use std::time::Duration;
use support::metrics_http;

/// The notes' select echo server on ioplex: greets with `hello...`, answers
/// every chunk with `response:` + the chunk.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9999")]
    addr: String,
    /// Backend: mio, epoll, poll, select (readiness) or uring (io_uring, completions).
    #[arg(long, default_value = "mio")]
    backend: String,
    /// Trigger mode for backends that have a choice: level, edge, oneshot.
    #[arg(long)]
    trigger: Option<String>,
    /// Close a connection silent for this many seconds.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    idle_timeout: u64,
    /// Connections one client address may hold at once (0: no cap).
    #[arg(long, default_value_t = 64, value_name = "N")]
    max_per_ip: usize,
    /// Also serve the loop's counters for Prometheus at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR", conflicts_with = "proxy_protocol")]
    metrics: Option<String>,
    #[command(flatten)]
    loops: support::Loops,
    #[command(flatten)]
    deploy: support::Deploy,
}

/// Answers every chunk of at most 1024 bytes with `response:` + the chunk.
pub struct SelectEcho;

impl Handler for SelectEcho {
    type Conn = ();

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) {
        log::info!("{}: connected from {peer}", ctx.id());
        ctx.send(b"hello...");
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        log::debug!("{}: received {} bytes", ctx.id(), data.len());
        for chunk in data.chunks(1024) {
            ctx.send_parts(&[b"response:", chunk]);
        }
        Action::Continue
    }

    fn on_tick(&mut self, _: &mut Ctx<'_>, t: &Tick) {
        // The notes: print(len(inputs), len(rlist), len(wlist))
        log::debug!("{} {} {}", t.connections + 1, t.readable, t.writable);
    }
}

/// The notes' loop wakes at least once a second (`select(..., 1)`).
pub fn config(backend: Backend) -> Config {
    Config {
        backend,
        max_wait: Some(Duration::from_secs(1)),
        ..Config::default()
    }
}

fn main() -> ExitCode {
    support::logger();
    let args = Args::parse();
    let backend = Backend::parse(&args.backend, args.trigger.as_deref())
        .unwrap_or_else(|e| support::usage_error::<Args>(e));
    support::exit(serve(&args, backend))
}

fn serve(args: &Args, backend: Backend) -> std::io::Result<()> {
    let idle = Duration::from_secs(args.idle_timeout);
    let config = support::limited(config(backend), idle, args.max_per_ip);
    let mut server = args.loops.server(args.deploy.config(config))?;
    let bound = support::listen(&mut server, &args.addr, &args.deploy)?;
    log::info!(
        "echo_select on {} ({backend}, {} loops)",
        bound[0],
        args.loops.threads
    );
    metrics_http::run(server, args.metrics.as_deref(), "ioplex", |_| SelectEcho)
}
