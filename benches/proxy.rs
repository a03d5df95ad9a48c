//! What a PROXY protocol header costs per connection (target: ≤ 1 µs).
//!
//! ```text
//! cargo bench --bench proxy                    # all three parts
//! cargo bench --bench proxy -- --no-callgrind  # without valgrind
//! ```
//!
//! 1. **The parse**: `ppp::HeaderResult::parse` (what the loop calls) on a
//!    v1 and a v2 header, timed over a million calls.
//! 2. **The loop's path, in CPU time**: an echo reactor on a thread, with
//!    and without `Config::proxy_protocol`; a client opens connections one
//!    after another, each sending its header and `PING` in one write,
//!    reading `PING` and closing. Per connection: the loop thread's CPU
//!    time (`CLOCK_THREAD_CPUTIME_ID`) over the connections; the header's
//!    cost is the difference to the plain run of the same round. Rounds
//!    interleave the three; median and spread over rounds.
//! 3. **The loop's path, in instructions** (deterministic): the same server
//!    under `valgrind --tool=callgrind`, `N1` and `N2` connections; per
//!    connection = (I(N2) − I(N1)) / (N2 − N1), and the header's cost is
//!    the difference to plain.

#[path = "shared/measure.rs"]
#[allow(dead_code)]
mod measure;

use ioplex::{Action, Config, Ctx, Handler, Peer, Reactor};
use ppp::PartialResult;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MODES: [&str; 3] = ["plain", "v1", "v2"];
const ROUNDS: usize = 9;
const PER_ROUND: usize = 2_000;
const N1: usize = 300;
const N2: usize = 1_300;

struct Echo;

impl Handler for Echo {
    type Conn = ();
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        ctx.send(data);
        Action::Continue
    }
}

fn header(mode: &str) -> Vec<u8> {
    match mode {
        "v1" => b"PROXY TCP4 127.0.0.77 127.0.0.1 40000 6380\r\n".to_vec(),
        "v2" => {
            let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
            h.extend([127, 0, 0, 77, 127, 0, 0, 1]);
            h.extend(40000u16.to_be_bytes());
            h.extend(6380u16.to_be_bytes());
            h
        }
        _ => Vec::new(),
    }
}

fn reactor(mode: &str) -> io::Result<(Reactor, SocketAddr)> {
    let config = Config {
        proxy_protocol: mode != "plain",
        ..Config::default()
    };
    let mut r = Reactor::new(config)?;
    let addr = r.listen("127.0.0.1:0")?;
    Ok((r, addr))
}

/// `n` connections one after another, each its header + `PING`, the echo
/// read, then closed; from 127.0.0.2..=201 in turn (no port runs out).
fn connections(addr: SocketAddr, mode: &str, n: usize) -> io::Result<()> {
    let wire = [&header(mode)[..], b"PING"].concat();
    let mut buf = [0u8; 4];
    for i in 0..n {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        let from = SocketAddr::from(([127, 0, 0, 2 + (i % 200) as u8], 0));
        s.bind(&from.into())?;
        s.connect(&addr.into())?;
        let mut c: TcpStream = s.into();
        c.set_read_timeout(Some(Duration::from_secs(30)))?;
        c.write_all(&wire)?;
        c.read_exact(&mut buf)?;
        if &buf != b"PING" {
            return Err(io::Error::other(format!("{mode}: echo {buf:?}")));
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        let mode = args.get(i + 1).cloned().unwrap_or_default();
        let served = reactor(&mode).and_then(|(mut r, addr)| {
            println!("listening on {addr}");
            r.stop_on_signals()?;
            r.run(&mut Echo)
        });
        if let Err(e) = served {
            eprintln!("proxy bench server: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list`: nothing to list
    }
    println!("{}", measure::command("proxy", &args));
    parse();
    if let Err(e) = cpu() {
        eprintln!("proxy bench: {e}");
        std::process::exit(1);
    }
    if !args.iter().any(|a| a == "--no-callgrind") {
        if let Err(e) = instructions() {
            eprintln!("proxy bench: {e}");
            std::process::exit(1);
        }
    }
}

/// Part 1: ppp's parse of a whole header.
fn parse() {
    const CALLS: u32 = 1_000_000;
    for mode in ["v1", "v2"] {
        let h = [&header(mode)[..], b"PING"].concat();
        let t = Instant::now();
        for _ in 0..CALLS {
            let r = ppp::HeaderResult::parse(std::hint::black_box(&h));
            assert!(std::hint::black_box(r).is_complete());
        }
        let ns = t.elapsed().as_nanos() as f64 / CALLS as f64;
        println!("parse, {mode}: {ns:.0} ns per header (ppp::HeaderResult::parse)");
    }
}

/// The CPU time the thread `t` has used.
fn thread_cpu(t: libc::pthread_t) -> Duration {
    let mut clock: libc::clockid_t = 0;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a live thread of this process (joined only later);
    // both calls write into the locals handed to them.
    unsafe {
        libc::pthread_getcpuclockid(t, &mut clock);
        libc::clock_gettime(clock, &mut ts);
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Part 2: the loop thread's CPU per connection, by mode, over rounds.
fn cpu() -> io::Result<()> {
    use std::os::unix::thread::JoinHandleExt;
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); MODES.len()];
    for round in 0..ROUNDS {
        for k in 0..MODES.len() {
            let m = (k + round) % MODES.len(); // each mode goes first in turn
            let (mut r, addr) = reactor(MODES[m])?;
            let handle = r.handle();
            let join = std::thread::spawn(move || r.run(&mut Echo));
            connections(addr, MODES[m], 200)?; // warm
            let before = thread_cpu(join.as_pthread_t());
            connections(addr, MODES[m], PER_ROUND)?;
            let used = thread_cpu(join.as_pthread_t()) - before;
            handle.stop();
            join.join()
                .map_err(|_| io::Error::other("loop panicked"))??;
            per[m].push(used.as_nanos() as f64 / PER_ROUND as f64);
        }
    }
    println!(
        "\nloop thread CPU per connection ({ROUNDS} rounds of {PER_ROUND}; median [min–max]):"
    );
    println!("| header | ns per connection | header's cost, ns (vs plain, same round) |");
    println!("|---|---:|---:|");
    for m in 0..MODES.len() {
        let (mid, lo, hi) = measure::spread(per[m].clone()).unwrap_or_default();
        let diff: Vec<f64> = (0..ROUNDS).map(|r| per[m][r] - per[0][r]).collect();
        let cost = match m {
            0 => "–".to_owned(),
            _ => {
                let (dm, dl, dh) = measure::spread(diff).unwrap_or_default();
                format!("{dm:.0} [{dl:.0}–{dh:.0}]")
            }
        };
        println!("| {} | {mid:.0} [{lo:.0}–{hi:.0}] | {cost} |", MODES[m]);
    }
    Ok(())
}

/// Part 3: user-space instructions per connection under callgrind.
fn instructions() -> io::Result<()> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        return Err(io::Error::other(
            "`valgrind` not found: install it with `apt-get install -y valgrind`, or pass --no-callgrind",
        ));
    }
    let dir = tempfile::tempdir()?;
    let mut per = Vec::new();
    for mode in MODES {
        let a = counted(mode, N1, dir.path())?;
        let b = counted(mode, N2, dir.path())?;
        per.push((b as f64 - a as f64) / (N2 - N1) as f64);
    }
    println!("\nuser-space instructions per connection (callgrind, ({N2} − {N1}) connections):");
    println!("| header | instructions | header's cost |");
    println!("|---|---:|---:|");
    for (m, n) in per.iter().enumerate() {
        let cost = if m == 0 {
            "–".to_owned()
        } else {
            format!("{:.0}", n - per[0])
        };
        println!("| {} | {n:.0} | {cost} |", MODES[m]);
    }
    Ok(())
}

/// The instructions of one server run under callgrind serving `n` connections.
fn counted(mode: &str, n: usize, dir: &std::path::Path) -> io::Result<u64> {
    let file = dir.join(format!("{mode}.{n}.out"));
    let mut child = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", file.display()))
        .arg(std::env::current_exe()?)
        .args(["--serve", mode])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| io::Error::other(format!("{mode} under callgrind printed {line:?}")))?;
    let served = connections(addr, mode, n);
    // SAFETY: kill(2) on our own child: SIGTERM, and it exits, writing its counts.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(io::Error::other(format!("{mode}: no exit after SIGTERM")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    served?;
    let text = std::fs::read_to_string(&file)?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary: ")
                .or_else(|| l.strip_prefix("totals: "))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no totals in {}", file.display())))
}
