//! The client side of a measurement: N idle connections, one busy one,
//! the server's own counters read before and after (its `?` probe).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
