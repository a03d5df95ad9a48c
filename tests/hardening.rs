//! The loop under faults and hostile peers: descriptor exhaustion, accept
//! bursts, slow consumers, resets, floods, oversize datagrams, shutdown
//! under load. Each test says the bound it holds the server to.

mod common;

use common::*;
use ioplex::{Action, CloseReason, Config, Ctx, Handler, Peer};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const GREETING: &[u8] = b"hello...";

/// Starts the select echo example with at most `fds` descriptors.
fn echo_select_with_fd_limit(fds: u64, backend: &str) -> ExampleServer {
    let mut cmd = Command::new(example_path("echo_select"));
    cmd.args(["--addr", "127.0.0.1:0", "--backend", backend]);
    // SAFETY: setrlimit is async-signal-safe; runs in the child before exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: fds,
                rlim_max: fds,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    ExampleServer::start_command("echo_select", cmd)
}

/// Whether a greeting arrives within `limit`.
fn greeted(c: &mut TcpStream, limit: Duration) -> bool {
    c.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 8];
    let ok = c.read_exact(&mut buf).is_ok() && buf == GREETING;
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    ok
}

#[test]
fn out_of_descriptors_the_server_pauses_accepting_without_spinning_and_recovers() {
    // uring: the multishot accept ends with EMFILE and is armed again after the back-off.
    for backend in ["mio", "epoll", "uring"] {
        let server = echo_select_with_fd_limit(64, backend);
        // Far more clients than the server has descriptors for: the kernel
        // completes the handshakes, the server cannot accept them all.
        let mut clients: Vec<TcpStream> = (0..90).map(|_| connect(server.addr)).collect();
        let mut served = Vec::new();
        let mut waiting = Vec::new();
        for mut c in clients.drain(..) {
            if greeted(&mut c, Duration::from_millis(300)) {
                served.push(c);
            } else {
                waiting.push(c);
            }
        }
        assert!(
            served.len() > 40 && !waiting.is_empty(),
            "{backend}: served {} waiting {}",
            served.len(),
            waiting.len()
        );
        // Out of descriptors, with clients queued: the loop must sleep
        // between retries (accept_backoff), not spin on EMFILE.
        let cpu0 = server.cpu_time();
        std::thread::sleep(Duration::from_secs(1));
        let spent = server.cpu_time() - cpu0;
        eprintln!(
            "{backend}: out of fds with {} clients queued: {spent:?} CPU in 1 s",
            waiting.len()
        );
        assert!(
            spent < Duration::from_millis(100),
            "{backend}: {spent:?} of CPU in 1 s while out of fds"
        );
        // The served ones are still served.
        served[0].write_all(b"ok?").unwrap();
        assert_eq!(read_n(&mut served[0], 12), b"response:ok?");
        // Free descriptors: the waiting clients are accepted and greeted.
        let n_waiting = waiting.len().min(20);
        served.truncate(served.len() - n_waiting - 2);
        for c in waiting.iter_mut().take(n_waiting) {
            assert!(
                greeted(c, Duration::from_secs(5)),
                "{backend}: a waiting client was never accepted"
            );
        }
    }
}

/// Greets and echoes.
struct Echo;

impl Handler for Echo {
    type Conn = ();
    fn on_connect(&mut self, ctx: &mut Ctx<'_>, _: Peer) {
        ctx.send(GREETING);
    }
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        ctx.send(data);
        Action::Continue
    }
}

#[test]
fn a_burst_of_500_connects_is_all_accepted() {
    for backend in backends() {
        let server = Server::start(Echo, config_on(backend));
        let mut clients: Vec<TcpStream> = (0..500).map(|_| connect(server.addr)).collect();
        let m = server.metrics.clone();
        assert!(
            wait_for(Duration::from_secs(10), || m.snapshot().accepted == 500),
            "{backend}: accepted {} of 500",
            m.snapshot().accepted
        );
        for c in &mut clients {
            assert_eq!(read_n(c, GREETING.len()), GREETING, "on {backend}");
        }
        server.stop();
    }
}

/// Sends 64 KiB for every byte it gets, and records why connections closed.
struct Amplifier(Arc<Mutex<Vec<CloseReason>>>);

impl Handler for Amplifier {
    type Conn = ();
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        let block = [b'z'; 65536];
        for _ in data {
            ctx.send(&block);
        }
        Action::Continue
    }
    fn on_close(&mut self, _: &mut Ctx<'_>, _: (), reason: CloseReason) {
        self.0.lock().unwrap().push(reason);
    }
}

#[test]
fn a_consumer_that_never_reads_is_closed_at_max_output_and_the_others_go_on() {
    for backend in backends() {
        let reasons = Arc::new(Mutex::new(Vec::new()));
        let config = Config {
            max_output: 2 << 20,
            ..config_on(backend)
        };
        let server = Server::start(Amplifier(reasons.clone()), config);
        let mut hog = server.connect();
        let mut fine = server.connect();
        // 200 × 64 KiB = 12.5 MiB asked for, never read.
        for _ in 0..200 {
            if hog.write_all(b"!").is_err() {
                break;
            }
        }
        let m = server.metrics.clone();
        assert!(
            wait_for(Duration::from_secs(10), || m.snapshot().output_limit == 1),
            "on {backend}"
        );
        assert!(wait_for(Duration::from_secs(10), || !reasons
            .lock()
            .unwrap()
            .is_empty()));
        assert_eq!(
            reasons.lock().unwrap().as_slice(),
            [CloseReason::OutputLimit]
        );
        fine.write_all(b"!").unwrap();
        assert_eq!(read_n(&mut fine, 65536), vec![b'z'; 65536], "on {backend}");
        drop(hog);
        server.stop();
    }
}

#[test]
fn a_reset_mid_write_closes_only_that_connection_and_sigpipe_never_kills() {
    // A library may be embedded in a program that keeps SIGPIPE's default
    // action (terminate): a write to a reset socket must not raise it.
    // SAFETY: restoring a default signal disposition.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    for backend in backends() {
        let reasons = Arc::new(Mutex::new(Vec::new()));
        let server = Server::start(Amplifier(reasons.clone()), config_on(backend));
        let mut other = server.connect();
        for _ in 0..20 {
            let mut c = server.connect();
            c.write_all(b"!!!!!!!!").unwrap(); // 512 KiB on its way
            let mut first = [0u8; 1000];
            c.read_exact(&mut first).unwrap();
            // Close with unread data and SO_LINGER 0: an RST mid-write.
            socket2::SockRef::from(&c)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(c);
        }
        let m = server.metrics.clone();
        assert!(
            wait_for(Duration::from_secs(10), || m.snapshot().closed == 20),
            "on {backend}"
        );
        other.write_all(b"!").unwrap();
        assert_eq!(read_n(&mut other, 65536).len(), 65536, "on {backend}");
        server.stop();
    }
}

/// Echoes; nothing else.
struct PlainEcho;

impl Handler for PlainEcho {
    type Conn = ();
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        ctx.send(data);
        Action::Continue
    }
}

/// The bound this test holds the loop to: with one client streaming as fast
/// as it can, 50 others' 99th-percentile round trip stays under this. The
/// loop's `read_budget` (256 KiB per turn) is what keeps it there.
const FLOOD_P99_BOUND: Duration = Duration::from_millis(100);

#[test]
fn one_flooding_client_does_not_starve_fifty_others() {
    // The readiness loop and the completion loop: the same budget holds both.
    for backend in [ioplex::Backend::Mio, ioplex::Backend::Uring] {
        flood_beside_fifty(backend);
    }
}

fn flood_beside_fifty(backend: ioplex::Backend) {
    let server = Server::start(PlainEcho, config_on(backend));
    let addr = server.addr;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut w = connect(addr);
            let mut r = w.try_clone().unwrap();
            let reader = std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                let mut total = 0u64;
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
                total
            });
            let block = vec![b'f'; 1 << 16];
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                w.write_all(&block).unwrap();
                sent += block.len() as u64;
            }
            w.shutdown(std::net::Shutdown::Write).unwrap();
            (sent, reader.join().unwrap())
        })
    };
    std::thread::sleep(Duration::from_millis(200)); // the flood is on
    let latencies = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..50 {
            s.spawn(|| {
                let mut c = connect(addr);
                let mut mine = Vec::with_capacity(100);
                for i in 0..100u32 {
                    let msg = i.to_be_bytes();
                    let t = Instant::now();
                    c.write_all(&msg).unwrap();
                    assert_eq!(read_n(&mut c, 4), msg);
                    mine.push(t.elapsed());
                }
                latencies.lock().unwrap().extend(mine);
            });
        }
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, echoed) = flood.join().unwrap();
    assert_eq!(sent, echoed, "the flooding client lost bytes");
    let mut l = latencies.into_inner().unwrap();
    l.sort();
    let p99 = l[l.len() * 99 / 100];
    eprintln!(
        "flood on {backend}: {} MiB streamed; others' p50 {:?} p99 {:?}",
        sent >> 20,
        l[l.len() / 2],
        p99
    );
    assert!(
        p99 < FLOOD_P99_BOUND,
        "p99 {p99:?} with a flood beside, on {backend}"
    );
    server.stop();
}

/// Echoes datagrams; on `bounce` also sends to a port nobody listens on.
struct UdpEcho {
    dead: SocketAddr,
}

impl Handler for UdpEcho {
    type Conn = ();
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, _: &mut Ctx<'_>, _: &mut (), _: &[u8]) -> Action {
        Action::Continue
    }
    fn on_datagram(&mut self, ctx: &mut Ctx<'_>, from: SocketAddr, data: &[u8]) {
        if data == b"bounce" {
            // ICMP port unreachable comes back: it must not stop the loop.
            let _ = ctx.send_datagram(self.dead, b"anyone?");
        }
        let _ = ctx.send_datagram(from, data);
    }
}

#[test]
fn udp_survives_port_unreachable_and_reports_oversize_datagrams() {
    for backend in backends() {
        let dead = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap(); // closed again
        let config = Config {
            read_buffer: 1024,
            ..config_on(backend)
        };
        let mut reactor = ioplex::Reactor::new(config).unwrap();
        let addr = reactor.bind_udp("127.0.0.1:0").unwrap();
        let (handle, metrics) = (reactor.handle(), reactor.metrics());
        let join = std::thread::spawn(move || reactor.run(&mut UdpEcho { dead }));
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut buf = [0u8; 4096];
        for _ in 0..3 {
            c.send_to(b"bounce", addr).unwrap();
            let (n, _) = c.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"bounce", "on {backend}");
        }
        // Larger than the 1 KiB read buffer: dropped, counted, not truncated.
        c.send_to(&[b'x'; 2000], addr).unwrap();
        c.send_to(b"after", addr).unwrap();
        let (n, _) = c.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"after", "on {backend}");
        let m = metrics.snapshot();
        assert_eq!(m.datagrams_truncated, 1, "on {backend}");
        handle.stop();
        join.join().unwrap().unwrap();
    }
}

#[test]
fn shutdown_with_1000_busy_connections_flushes_them_all_and_leaves_no_fd() {
    const CLIENTS: usize = 1000;
    const EACH: usize = 32 << 10;
    let server = Server::start(PlainEcho, Config::default());
    let port = server.addr.port();
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| server.connect()).collect();
    let payload: Vec<u8> = (0..EACH).map(|i| (i % 251) as u8).collect();
    for c in &mut clients {
        c.write_all(&payload).unwrap();
    }
    let m = server.metrics.clone();
    assert!(wait_for(Duration::from_secs(20), || m.snapshot().bytes_in
        == (CLIENTS * EACH) as u64));
    let t = Instant::now();
    let stopper = std::thread::spawn(move || server.stop());
    for (i, c) in clients.iter_mut().enumerate() {
        assert!(
            read_to_eof(c) == payload,
            "client {i} lost output at shutdown"
        );
    }
    stopper.join().unwrap();
    eprintln!(
        "shutdown with {CLIENTS} busy connections took {:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Config::default().shutdown_timeout + Duration::from_secs(1));
    drop(clients);
    assert_eq!(fds_on_port(port), 0);
}
