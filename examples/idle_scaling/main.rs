//! Many idle connections beside one busy one, on each backend (note 003:
//! "select和poll都需要在返回后,通过遍历文件描述符来获取已经就绪的socket").
//!
//! One client sends 32-byte messages and waits for each echo while N others
//! sit idle. epoll hands back only the ready fd, so its cost stays flat;
//! `poll` and `select` pass and scan every fd on every wake-up, so theirs
//! grows with N. `select` cannot go past fd 1023 at all.
//!
//! Try it:
//! ```text
//! cargo run --release --example idle_scaling -- --idle 1000
//! cargo run --release --example idle_scaling -- --serve poll --addr 127.0.0.1:7777
//! cargo run --release --example idle_scaling -- --connect 127.0.0.1:7777 --idle 100
//! ```
//! The full sweep with a plot is `cargo bench --bench scaling`; the client
//! side of a measurement is in `measure.rs`. The server has no idle timeout
//! and no per-address cap: N idle connections from one address are what it
//! measures.

#[path = "measure.rs"]
mod measure;
#[path = "../support/mod.rs"]
mod support;

use clap::Parser;
use ioplex::{Action, Backend, Config, Ctx, Handler, Peer, Reactor};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitCode};

pub use measure::{Sample, measure, raise_fd_limit, spawn_server};

/// One busy client's round trips beside N idle connections, per backend.
#[derive(Parser)]
struct Args {
    /// Idle connections beside the active one.
    #[arg(long, default_value_t = 1000)]
    idle: usize,
    /// Round trips measured.
    #[arg(long, default_value_t = 5000)]
    messages: usize,
    /// Run only the server, on this backend (mio, epoll, poll, select, uring).
    #[arg(long)]
    serve: Option<String>,
    /// Address for `--serve`.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: String,
    /// Measure a server already running there.
    #[arg(long)]
    connect: Option<SocketAddr>,
}

/// Echoes; answers `?` with its CPU time and loop counters.
pub struct Probe;

/// This thread's user + system CPU time (`getrusage(RUSAGE_THREAD)`), in µs.
pub fn thread_cpu_us() -> u64 {
    // SAFETY: getrusage fills the struct we hand it.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

impl Handler for Probe {
    type Conn = ();
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        if data != b"?" {
            ctx.send(data);
            return Action::Continue;
        }
        let m = ctx.metrics();
        let sys = m.wakeups + m.reads + m.writes;
        let sys = sys + m.registrations + m.reregistrations + m.deregistrations;
        let (cpu, acc, wake) = (thread_cpu_us(), m.accepted, m.wakeups);
        ctx.send(format!("{cpu:20} {acc:20} {wake:20} {sys:20}\n").as_bytes());
        Action::Continue
    }
}

/// Serves [`Probe`] on `addr`, printing `listening on ADDR` once SIGTERM
/// and SIGINT stop it gracefully.
pub fn serve(backend: Backend, addr: &str) -> io::Result<()> {
    let max_connections = 30_000;
    let mut reactor = Reactor::new(Config {
        backend,
        max_connections,
        ..Config::default()
    })?;
    let bound = reactor.listen(addr)?;
    // Signals first: whoever reads the line may send SIGTERM at once.
    reactor.stop_on_signals()?;
    println!("listening on {bound}");
    reactor.run(&mut Probe)
}

fn main() -> ExitCode {
    let args = Args::parse();
    raise_fd_limit();
    if let Some(b) = &args.serve {
        let backend = Backend::parse(b, None).unwrap_or_else(|e| support::usage_error::<Args>(e));
        return support::exit(serve(backend, &args.addr));
    }
    support::exit(measure_all(args))
}

fn measure_all(args: Args) -> io::Result<()> {
    let report = |b: &str, s: Sample| {
        let (rtt, cpu) = (s.rtt_ns / 1e3, s.cpu_per_wakeup_ns / 1e3);
        let (w, sys) = (s.wakeups_per_msg, s.syscalls_per_msg);
        println!(
            "{b:>7} {:>6} idle: round trip {rtt:>6.1} µs, server CPU {cpu:>6.1} µs \
             per wake-up; per message {w:.2} wake-ups, {sys:.2} system calls",
            s.idle
        )
    };
    if let Some(addr) = args.connect {
        drop(TcpStream::connect(addr).map_err(support::cannot(format!("connect to {addr}")))?);
        report("server", measure(addr, args.idle, args.messages));
        return Ok(());
    }
    for backend in ["mio", "epoll", "poll", "select"] {
        if backend == "select" && args.idle > 1000 {
            println!(" select: skipped, fds past 1023 do not fit in an fd_set");
            continue;
        }
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["--serve", backend]);
        let (mut child, addr) = spawn_server(cmd);
        report(backend, measure(addr, args.idle, args.messages));
        let _ = (child.kill(), child.wait());
    }
    Ok(())
}
