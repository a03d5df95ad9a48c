//! What the examples share: the logger, errors a person can act on, log
//! lines that stay text, the `--metrics` responder ([`metrics_http`]), and
//! the flags and signals of a server behind a balancer ([`deploy`]).
//! An example takes it with `#[path = "support/mod.rs"] mod support;`.
#![allow(dead_code)] // each example uses its own part

pub mod deploy;
pub mod metrics_http;

#[allow(unused_imports)] // each example uses its own part
pub use deploy::{Deploy, listen};

use ioplex::{Config, Server};
use std::fmt::Display;
use std::io;
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

/// What a client turned away at a connection cap reads before the close.
pub const BUSY: &[u8] = b"error: too many connections; try again later\n";

/// `base` plus the two limits every server here sets for its protocol: a
/// connection silent for `idle` is closed, and one client address holds at
/// most `per_ip` connections (0: no cap; the next ones get [`BUSY`]), so
/// no one address can lock the others out.
pub fn limited(base: Config, idle: Duration, per_ip: usize) -> Config {
    Config {
        idle_timeout: Some(idle),
        max_connections_per_ip: (per_ip > 0).then_some(per_ip),
        busy_message: BUSY.to_vec(),
        ..base
    }
}

/// `--threads N` and `--pin`, flattened into a server's own `Args`
/// (`#[command(flatten)]`): the loops of its [`Server`].
#[derive(clap::Args, Debug, Clone)]
pub struct Loops {
    /// Event loops, one per thread, each on its own backend (1: one loop, as in the notes).
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub threads: usize,
    /// Pin each loop's thread to a CPU of its own.
    #[arg(long)]
    pub pin: bool,
}

impl Loops {
    /// A server of `--threads` loops on `config`, pinned if `--pin`.
    pub fn server(&self, config: Config) -> io::Result<Server> {
        let mut server = Server::new(config, self.threads)?;
        server.pin(self.pin);
        Ok(server)
    }
}

/// Logs to stderr at INFO; `RUST_LOG=debug` (or `warn`, …) overrides.
pub fn logger() {
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .env()
        .init()
        .expect("logger");
}

/// What `main` returns: on an error, one line `error: …` on stderr and
/// exit status 1 (clap exits 2 on usage errors before this).
pub fn exit(result: Result<(), impl Display>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Exits with a usage error (status 2, the usage line, as clap does for
/// its own checks) for a flag value only the program can judge.
pub fn usage_error<A: clap::CommandFactory>(e: impl Display) -> ! {
    let bin = std::env::args().next().unwrap_or_default();
    let bin = std::path::Path::new(&bin)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let mut cmd = A::command();
    if let Some(bin) = bin {
        cmd = cmd.bin_name(bin);
    }
    cmd.error(clap::error::ErrorKind::InvalidValue, e).exit()
}

/// Names what failed and where, as the library's listen errors do:
/// `.map_err(cannot(format!("connect to {addr}")))` turns
/// "Connection refused (os error 111)" into
/// `cannot connect to 127.0.0.1:9999: connection refused`.
pub fn cannot(what: impl Display) -> impl FnOnce(io::Error) -> io::Error {
    move |e| {
        let text = e.to_string();
        let text = text.split(" (os error").next().unwrap_or(&text);
        let mut chars = text.chars();
        let lower: String = chars
            .next()
            .map_or(String::new(), |c| c.to_lowercase().chain(chars).collect());
        io::Error::new(e.kind(), format!("cannot {what}: {lower}"))
    }
}

/// Connects to `addr` (reads then give up after `read_timeout`); an error
/// names the address: `cannot connect to 127.0.0.1:9999: connection refused`.
pub fn connect(addr: &str, read_timeout: Option<Duration>) -> io::Result<TcpStream> {
    let sock = TcpStream::connect(addr).map_err(cannot(format!("connect to {addr}")))?;
    sock.set_read_timeout(read_timeout)?;
    Ok(sock)
}

/// Bytes from the network as one log line: lossy UTF-8 with control
/// characters escaped, so a log of arbitrary input stays readable text.
pub fn printable(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len());
    for c in String::from_utf8_lossy(data).chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
