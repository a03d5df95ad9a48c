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
//! The full sweep with a plot is `cargo bench --bench scaling`.

use clap::Parser;
use ioplex::{Action, Backend, Config, Ctx, Handler, Reactor};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Idle connections beside the active one.
    #[arg(long, default_value_t = 1000)]
    idle: usize,
    /// Round trips measured.
    #[arg(long, default_value_t = 5000)]
    messages: usize,
    /// Run only the server, on this backend (mio, epoll, poll, select).
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
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: SocketAddr) {}
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

/// Serves [`Probe`] on `addr`, printing `listening on ADDR` first.
pub fn serve(backend: Backend, addr: &str) -> io::Result<()> {
    let mut reactor = Reactor::new(Config {
        backend,
        max_connections: 30_000,
        ..Config::default()
    })?;
    println!("listening on {}", reactor.listen(addr)?);
    reactor.run(&mut Probe)
}

/// Starts `cmd` (a server printing `listening on ADDR`) and returns its address.
pub fn spawn_server(mut cmd: Command) -> (Child, SocketAddr) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn server");
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).expect("server output");
    let addr = line.trim().strip_prefix("listening on ").expect("address");
    (child, addr.parse().expect("address"))
}

/// One measurement: N idle connections; the mean round trip and the server's
/// CPU per wake-up in ns; wake-ups and system calls (the loop's counters) per message.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub idle: usize,
    pub rtt_ns: f64,
    pub cpu_per_wakeup_ns: f64,
    pub wakeups_per_msg: f64,
    pub syscalls_per_msg: f64,
}

fn probe(c: &mut TcpStream) -> [u64; 4] {
    c.write_all(b"?").unwrap();
    let mut line = [0u8; 4 * 21]; // four fixed-width numbers
    c.read_exact(&mut line).expect("probe answer");
    let mut v = std::str::from_utf8(&line).unwrap().split_whitespace();
    [(); 4].map(|_| v.next().and_then(|x| x.parse().ok()).unwrap_or(0))
}

fn round(c: &mut TcpStream, n: usize) {
    let mut buf = [b'x'; 32];
    for _ in 0..n {
        c.write_all(&buf).unwrap();
        c.read_exact(&mut buf).expect("echo");
    }
}

/// Opens `idle` connections to `addr`, then times `messages` round trips.
pub fn measure(addr: SocketAddr, idle: usize, messages: usize) -> Sample {
    let mut active = TcpStream::connect(addr).expect("connect");
    active.set_nodelay(true).unwrap();
    active.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut idlers = Vec::with_capacity(idle);
    while idlers.len() < idle {
        // In batches the accept backlog can hold, so no SYN is dropped.
        let batch = (idle - idlers.len()).min(256);
        for _ in 0..batch {
            idlers.push(TcpStream::connect(addr).expect("connect idle"));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while probe(&mut active)[1] < idlers.len() as u64 + 1 {
            assert!(Instant::now() < deadline, "server stopped accepting");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    round(&mut active, messages / 10); // warm up
    let p0 = probe(&mut active);
    let t0 = Instant::now();
    round(&mut active, messages);
    let elapsed = t0.elapsed();
    let p1 = probe(&mut active);
    let (cpu, wakeups, sys) = (p1[0] - p0[0], p1[2] - p0[2], p1[3] - p0[3]);
    Sample {
        idle,
        rtt_ns: elapsed.as_nanos() as f64 / messages as f64,
        cpu_per_wakeup_ns: cpu as f64 * 1000.0 / wakeups.max(1) as f64,
        wakeups_per_msg: wakeups as f64 / messages as f64,
        syscalls_per_msg: sys as f64 / messages as f64,
    }
}

/// Raises the soft fd limit to the hard limit (the server child inherits it).
pub fn raise_fd_limit() {
    // SAFETY: plain calls with a valid struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    raise_fd_limit();
    if let Some(b) = args.serve {
        return serve(Backend::parse(&b, None)?, &args.addr);
    }
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
