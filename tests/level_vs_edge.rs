//! examples/level_vs_edge.rs: each classic bug fails and each fix passes,
//! shown by the server's own counters.

#[allow(dead_code)]
#[path = "../examples/level_vs_edge.rs"]
mod level_vs_edge;

use level_vs_edge::{Mode, Stats, serve};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

struct Running {
    addr: SocketAddr,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<std::io::Result<()>>>,
}

impl Running {
    fn start(mode: Mode, bug: bool) -> Running {
        // A small send buffer (inherited by accepted sockets), so a client
        // that does not read makes the server queue output.
        let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        l.set_send_buffer_size(32 << 10).unwrap();
        l.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        l.listen(128).unwrap();
        let listener: TcpListener = l.into();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (stats.clone(), stop.clone());
        let join = std::thread::spawn(move || serve(listener, (mode, bug), &s, &st, None));
        Running {
            addr,
            stats,
            stop,
            join: Some(join),
        }
    }
    /// A client whose receive buffer is fixed small (64 KiB: set before
    /// the connect, it does not grow), so what it has not read yet backs up
    /// into the server's queue: 32 MiB of autotuned buffer could hold it all.
    fn client(&self) -> TcpStream {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_recv_buffer_size(64 << 10).unwrap();
        s.connect(&self.addr.into()).unwrap();
        let c: TcpStream = s.into();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c
    }
    fn count(&self, f: fn(&Stats) -> &std::sync::atomic::AtomicU64) -> u64 {
        f(&self.stats).load(Relaxed)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        let j = self.join.take().unwrap();
        let r = j.join().expect("server panicked");
        if !std::thread::panicking() {
            r.expect("server failed");
        }
    }
}

/// 3000 bytes: three `recv(1024)`s' worth, sent in one write.
fn message() -> Vec<u8> {
    (0..3000).map(|i| b'a' + (i % 26) as u8).collect()
}

fn read_n(c: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    c.read_exact(&mut v).expect("read_exact");
    v
}

#[test]
fn edge_triggered_reading_once_per_event_loses_the_wake_up() {
    let server = Running::start(Mode::Edge, true);
    let mut c = server.client();
    let msg = message();
    c.write_all(&msg).unwrap();
    assert_eq!(read_n(&mut c, 1024), &msg[..1024]);
    // The other 1976 bytes are in the server's socket, and it sleeps.
    let wakeups = server.count(|s| &s.wakeups);
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0; 16];
    let e = c
        .read(&mut buf)
        .expect_err("the rest of the echo came after all");
    assert!(matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut
    ));
    assert_eq!(server.count(|s| &s.reads), 1, "one read for one edge");
    assert_eq!(server.count(|s| &s.bytes_in), 1024);
    assert_eq!(server.count(|s| &s.wakeups), wakeups, "nothing woke it");
    // Only new data makes a new edge, and then one more chunk of the old is read.
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"!").unwrap();
    assert_eq!(read_n(&mut c, 1024), &msg[1024..2048]);
    assert_eq!(server.count(|s| &s.reads), 2);
}

#[test]
fn edge_triggered_reading_until_would_block_answers_every_byte() {
    let server = Running::start(Mode::Edge, false);
    let mut c = server.client();
    let msg = message();
    for _ in 0..3 {
        c.write_all(&msg).unwrap();
        assert_eq!(read_n(&mut c, msg.len()), msg);
    }
    assert_eq!(server.count(|s| &s.bytes_in), 9000);
    assert!(
        server.count(|s| &s.reads) >= 9,
        "three reads per message at least"
    );
}

#[test]
fn level_triggered_with_writable_always_on_spins_while_idle() {
    let server = Running::start(Mode::Level, true);
    let mut c = server.client();
    c.write_all(b"ping").unwrap();
    assert_eq!(read_n(&mut c, 4), b"ping");
    // Nothing more is sent, yet the loop keeps waking: an idle socket is
    // always writable. Wait (bounded) for the counter to say so.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.count(|s| &s.idle_wakeups) < 10_000 {
        assert!(
            Instant::now() < deadline,
            "only {} idle wake-ups",
            server.count(|s| &s.idle_wakeups)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn level_triggered_with_writable_only_while_queued_sleeps_when_idle() {
    let server = Running::start(Mode::Level, false);
    let mut c = server.client();
    c.write_all(b"ping").unwrap();
    assert_eq!(read_n(&mut c, 4), b"ping");
    // Queue output: 2 MiB sent before a byte is read back, so the server's
    // socket refuses and WRITABLE has to come on, then go off again.
    let big: Vec<u8> = (0..2 << 20).map(|i| (i % 253) as u8).collect();
    c.write_all(&big).unwrap();
    assert!(read_n(&mut c, big.len()) == big, "echo differs");
    // The last bytes can reach us before the server turns WRITABLE off:
    // give it a moment (bounded) to finish that turn.
    let deadline = Instant::now() + Duration::from_secs(2);
    while server.count(|s| &s.modifies) % 2 != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let toggles = server.count(|s| &s.modifies);
    assert!(
        toggles >= 2 && toggles % 2 == 0,
        "WRITABLE on and off: {toggles}"
    );
    let (wakeups, idle) = (
        server.count(|s| &s.wakeups),
        server.count(|s| &s.idle_wakeups),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.count(|s| &s.wakeups), wakeups, "woke while idle");
    assert_eq!(server.count(|s| &s.idle_wakeups), idle);
    assert_eq!(idle, 0, "a wake-up with nothing to do");
}
