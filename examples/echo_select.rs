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
//! Like the notes' `select(inputs, outputs, [], 1)`, the loop wakes at least
//! once a second and logs (at debug level) the counts the notes print.
//! Beyond the notes: `--threads N` runs N such loops on N threads (one per
//! core, `ioplex::Server`), each with its own backend and its own clients.
//!
//! Try it:
//! ```text
//! cargo run --release --example echo_select            # 127.0.0.1:9999
//! nc 127.0.0.1 9999                                    # in a second terminal
//! cargo run --release --example client -- 127.0.0.1:9999   # without nc
//! RUST_LOG=debug cargo run --example echo_select       # see the counts
//! cargo run --release --example echo_select -- --threads 2 --pin
//! ```

use clap::Parser;
use ioplex::{Action, Backend, Config, Ctx, Handler, Server, Tick};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// The notes' select echo server on ioplex.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9999")]
    addr: String,
    /// Readiness backend: mio, epoll, poll or select.
    #[arg(long, default_value = "mio")]
    backend: String,
    /// Trigger mode for backends that have a choice: level, edge, oneshot.
    #[arg(long)]
    trigger: Option<String>,
    /// Event loops, one per thread, each on its own backend (1: the notes' one loop).
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    threads: usize,
    /// Pin each loop's thread to a CPU of its own.
    #[arg(long)]
    pin: bool,
}

/// Answers every chunk of at most 1024 bytes with `response:` + the chunk.
pub struct SelectEcho;

impl Handler for SelectEcho {
    type Conn = ();

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: SocketAddr) {
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
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .env()
        .init()
        .expect("logger");
    match serve(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_select: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: Args) -> std::io::Result<()> {
    let backend = Backend::parse(&args.backend, args.trigger.as_deref())?;
    let mut server = Server::new(config(backend), args.threads)?;
    server.pin(args.pin);
    let addr = server.listen(&args.addr)?;
    println!("listening on {addr}");
    log::info!("echo_select on {addr} ({backend}, {} loops)", args.threads);
    server.run(|_| SelectEcho)
}
