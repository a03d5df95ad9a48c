//! The notes' date/time server (`004_530bf3ed11a85fd8.txt`, "一个提供时间日期的服务器"),
//! on the reactor: each client gets the local date and time in Python's
//! `str(datetime.now())` format (`2023-04-19 17:04:30.293444`), then the
//! connection closes.
//!
//! Fixed from the notes:
//! - **One client at a time.** The notes' blocking `accept` loop makes every
//!   other client queue; here the loop serves them all.
//! - **`bind((gethostname(), 9999))`** listens on whatever address the host
//!   name resolves to (often the LAN); here the default is 127.0.0.1.
//! - **`client.close()` right after `send`** can cut the reply short when the
//!   send was partial; here the reply is flushed, then FIN is sent.
//! - **No limits.** A client gets its one line at once, so one that is
//!   still connected after 10 s is closed, and one address holds at most
//!   64 connections (the next are told `error: too many connections; try again later`).
//!
//! Try it:
//! ```text
//! cargo run --example time_server                 # 127.0.0.1:9999
//! curl telnet://127.0.0.1:9999                     # or the notes' client.py
//! python3 -c "import socket; s=socket.create_connection(('127.0.0.1',9999)); print(s.recv(1024).decode())"
//! ```

#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use ioplex::{Action, Config, Ctx, Handler, Peer, Reactor};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The notes' date/time server: each client gets the local date and time,
/// then the connection closes.
#[derive(Parser)]
struct Args {
    /// Address to listen on (the notes: the host name, port 9999).
    #[arg(long, default_value = "127.0.0.1:9999")]
    addr: String,
    #[command(flatten)]
    deploy: support::Deploy,
}

/// Sends the time, then closes.
struct TimeServer;

/// Local time as Python's `str(datetime.now())`, via `localtime_r` (honours `TZ`).
fn now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as libc::time_t;
    // SAFETY: `tm` is plain data, filled in by localtime_r from a valid time_t.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&secs, &mut tm);
        tm
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        d.subsec_micros()
    )
}

impl Handler for TimeServer {
    type Conn = ();

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) {
        // The notes: print(str(addr) + "连接到了服务器.")
        log::info!("{peer} connected");
        ctx.send(now().as_bytes());
        ctx.close(ctx.id());
    }

    fn on_data(&mut self, _: &mut Ctx<'_>, _: &mut (), _: &[u8]) -> Action {
        Action::Continue // the client has nothing to say; ignore it
    }
}

fn main() -> ExitCode {
    support::logger();
    support::exit(serve(Args::parse()))
}

fn serve(args: Args) -> std::io::Result<()> {
    let idle = Duration::from_secs(10);
    let config = support::limited(Config::default(), idle, 64);
    let mut reactor = Reactor::new(args.deploy.config(config))?;
    support::listen(&mut reactor, &args.addr, &args.deploy)?;
    reactor.run(&mut TimeServer)
}
