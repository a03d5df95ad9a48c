//! Level versus edge triggering (note 003, "水平触发 / 边缘触发"): the same
//! echo server four ways, two classic bugs and their fixes. Written on
//! [`ioplex::Selector`] over raw epoll, because the reactor has neither bug.
//!
//! | `--trigger` | `--bug` | what happens |
//! |---|---|---|
//! | `edge` | yes | reads once (the notes' `recv(1024)`) per event: the rest of a long message sits unread, no new edge comes, **the client waits forever** (the lost wake-up) |
//! | `edge` | no | reads until `WouldBlock`: every byte is answered |
//! | `level` | yes | WRITABLE asked for all the time: an idle socket is always writable, **the loop spins** (watch the idle wake-ups climb) |
//! | `level` | no | WRITABLE asked for only while output is queued: idle means asleep |
//!
//! Try it (`timeout` ends `nc`, which waits for more; without `--bug`: 3000):
//! ```text
//! cargo run --example level_vs_edge -- --trigger edge --bug     # 127.0.0.1:9998
//! head -c 3000 /dev/zero | tr '\0' x | timeout 1 nc 127.0.0.1 9998 | wc -c   # 1024
//! cargo run --example level_vs_edge -- --trigger level --bug    # then: nc 127.0.0.1 9998
//! ```
//! The loop prints its counters to stderr once a second, read between two
//! of its own iterations, so the numbers of one line belong to one moment.

#[path = "support/mod.rs"]
mod support;

use clap::{Parser, ValueEnum};
use ioplex::{Backend, Interest, Selector, Trigger};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The trigger mode of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// `EPOLLET`: told once per change.
    Edge,
    /// epoll's default: told on every wait while it holds.
    Level,
}

/// The same echo server with or without the classic bug of its trigger mode.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9998")]
    addr: String,
    /// Trigger mode.
    #[arg(long, value_enum, default_value = "edge")]
    trigger: Mode,
    /// Keep the classic bug of that mode instead of its fix.
    #[arg(long)]
    bug: bool,
}

/// What the server counted; the tests read it to prove each bug and fix.
#[derive(Default, Debug)]
pub struct Stats {
    /// Returns from `select` with at least one event.
    pub wakeups: AtomicU64,
    /// Of those, the ones where no byte moved and nothing was accepted.
    pub idle_wakeups: AtomicU64,
    /// Successful `read` calls.
    pub reads: AtomicU64,
    /// Bytes read from clients.
    pub bytes_in: AtomicU64,
    /// Interest changes (`epoll_ctl(MOD)`): WRITABLE switched on or off.
    pub modifies: AtomicU64,
}

struct Conn {
    sock: TcpStream,
    out: Vec<u8>,
}

/// Writes what is queued until the socket refuses.
fn flush(c: &mut Conn) -> io::Result<()> {
    while !c.out.is_empty() {
        match c.sock.write(&c.out) {
            Ok(n) => drop(c.out.drain(..n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Serves echo on `listener` until `stop`; `bug` keeps the mode's classic
/// bug; every `report` the loop prints the counters to stderr.
pub fn serve(
    listener: TcpListener,
    (mode, bug): (Mode, bool),
    stats: &Stats,
    stop: &AtomicBool,
    report: Option<Duration>,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let trigger = match mode {
        Mode::Edge => Trigger::Edge,
        Mode::Level => Trigger::Level,
    };
    let mut sel = Selector::with_backend(Backend::Epoll(trigger))?;
    sel.register(&listener, Interest::READABLE, true)?;
    // Edge: register both once. Level with the bug: both, always.
    let always_both = mode == Mode::Edge || bug;
    let drain = !(mode == Mode::Edge && bug);
    let mut conns: HashMap<RawFd, Conn> = HashMap::new();
    let mut buf = [0u8; 1024]; // the notes' recv(1024)
    let mut reported = Instant::now();
    while !stop.load(Relaxed) {
        if report.is_some_and(|r| reported.elapsed() >= r) {
            eprintln!("{stats:?}"); // by their only writer, between two turns: one moment
            reported = Instant::now();
        }
        let ready = sel.select(Some(Duration::from_millis(50)))?;
        if ready.is_empty() {
            continue; // a timeout: only there to look at `stop`
        }
        stats.wakeups.fetch_add(1, Relaxed);
        let mut worked = false;
        for (key, mask) in ready {
            if key.data {
                // The listener: accept until WouldBlock in every mode.
                while let Ok((sock, _)) = listener.accept() {
                    worked = true;
                    sock.set_nonblocking(true)?;
                    let i = if always_both {
                        Interest::READABLE | Interest::WRITABLE
                    } else {
                        Interest::READABLE
                    };
                    sel.register(&sock, i, false)?;
                    conns.insert(sock.as_raw_fd(), Conn { sock, out: vec![] });
                }
                continue;
            }
            let Some(c) = conns.get_mut(&key.fd) else {
                continue;
            };
            let mut close = false;
            if mask.is_writable() && !c.out.is_empty() {
                worked = true;
                close |= flush(c).is_err();
            }
            while mask.is_readable() && !close {
                match c.sock.read(&mut buf) {
                    Ok(0) => close = true,
                    Ok(n) => {
                        stats.reads.fetch_add(1, Relaxed);
                        stats.bytes_in.fetch_add(n as u64, Relaxed);
                        c.out.extend_from_slice(&buf[..n]);
                        close |= flush(c).is_err();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => close = true,
                }
                worked = true;
                if !drain {
                    break; // THE EDGE BUG: more may be waiting; no new edge will say so
                }
            }
            if close {
                sel.unregister(&c.sock)?;
                conns.remove(&key.fd);
            } else if !always_both {
                // THE LEVEL FIX: WRITABLE only while output is queued.
                let want = if c.out.is_empty() {
                    Interest::READABLE
                } else {
                    Interest::READABLE | Interest::WRITABLE
                };
                if want != key.events {
                    sel.modify(&c.sock, want, false)?;
                    stats.modifies.fetch_add(1, Relaxed);
                }
            }
        }
        if !worked {
            stats.idle_wakeups.fetch_add(1, Relaxed);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let addr = &args.addr;
    let bound = TcpListener::bind(addr).map_err(support::cannot(format!("listen on {addr}")));
    support::exit(bound.and_then(|listener| {
        println!("listening on {}", listener.local_addr()?);
        let (mode, stats) = ((args.trigger, args.bug), Stats::default());
        let every = Some(Duration::from_secs(1));
        serve(listener, mode, &stats, &AtomicBool::new(false), every)
    }))
}
