//! The io_uring backend's own faults, each on real sockets: the kernel
//! refusing io_uring, an empty buffer ring, an overflowing completion
//! queue and a multishot accept that ends, a stop with sends in flight,
//! 10,000 connections, and the system calls per message from the loop's
//! own counters.

mod common;

use common::*;
use ioplex::{Action, Backend, Config, Ctx, Handler, Peer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

fn uring(cfg: Config) -> Config {
    Config {
        backend: Backend::Uring,
        ..cfg
    }
}

/// Echoes; the first time it sees `hold`, sleeps 300 ms on the loop's
/// thread, so that everything arriving meanwhile completes at once.
struct Echo {
    held: bool,
}

impl Handler for Echo {
    type Conn = ();
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        if data == b"hold" && !self.held {
            self.held = true;
            std::thread::sleep(Duration::from_millis(300));
        }
        ctx.send(data);
        Action::Continue
    }
}

fn echo() -> Echo {
    Echo { held: false }
}

/// A seccomp filter that answers `io_uring_setup` with EPERM, as a
/// container's default policy does; every other call passes.
fn forbid_io_uring() -> std::io::Result<()> {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let stmt = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let load = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    let filter = [
        stmt(load, 4), // seccomp_data.arch
        jump(AUDIT_ARCH_X86_64, 1, 0),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
        stmt(load, 0), // seccomp_data.nr
        jump(libc::SYS_io_uring_setup as u32, 0, 1),
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut _,
    };
    // SAFETY: both calls only read `prog`, which outlives them; this runs
    // in the child between fork and exec.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[test]
fn io_uring_refused_by_the_kernel_is_an_error_at_start_that_names_the_cause() {
    let mut cmd = Command::new(example_path("echo_select"));
    cmd.args(["--addr", "127.0.0.1:0", "--backend", "uring"]);
    // SAFETY: forbid_io_uring makes only prctl calls, async-signal-safe.
    unsafe { cmd.pre_exec(forbid_io_uring) };
    let out = run_bounded(cmd, b"", Duration::from_secs(20));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(
        err.trim_end().ends_with(
            "io_uring is not available: io_uring_setup was refused (EPERM): \
             a seccomp policy, as containers have, forbids it"
        ),
        "stderr: {err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    // The same server on epoll starts under the same filter: nothing else was refused.
    let mut cmd = Command::new(example_path("echo_select"));
    cmd.args(["--addr", "127.0.0.1:0", "--backend", "epoll", "--help"]);
    // SAFETY: as above.
    unsafe { cmd.pre_exec(forbid_io_uring) };
    assert!(
        run_bounded(cmd, b"", Duration::from_secs(20))
            .status
            .success()
    );
}

#[test]
fn an_empty_buffer_ring_loses_no_byte_and_is_counted() {
    // Two buffers of 512 bytes for forty clients sending 8 KiB each at once.
    let cfg = uring(Config {
        uring_buffers: 2,
        uring_buffer_size: 512,
        ..Config::default()
    });
    let server = Server::start(echo(), cfg);
    let mut clients: Vec<TcpStream> = (0..40).map(|_| server.connect()).collect();
    let m = server.metrics.clone();
    assert!(wait_for(Duration::from_secs(10), || m.snapshot().accepted == 40));
    // The loop sleeps on `hold` while all forty send: their receives then
    // complete in one batch, two buffers for forty of them.
    let mut first = server.connect();
    first.write_all(b"hold").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let block = |i: usize| -> Vec<u8> { (0..8192).map(|j| (i * 7 + j) as u8).collect() };
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(&block(i)).unwrap();
    }
    assert_eq!(read_n(&mut first, 4), b"hold");
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(read_n(c, 8192), block(i), "client {i}");
    }
    let s = server.metrics.snapshot();
    eprintln!(
        "2 buffers, 40 × 8 KiB: {} receives found the ring empty",
        s.uring_nobufs
    );
    assert!(s.uring_nobufs > 0, "the ring never ran out: {s:?}");
    server.stop();
}

#[test]
fn an_overflowing_completion_queue_loses_nothing_and_a_multishot_accept_that_ends_goes_on() {
    // 8 submission entries, 16 completion entries, for 200 clients.
    let cfg = uring(Config {
        uring_entries: 8,
        ..Config::default()
    });
    let server = Server::start(echo(), cfg);
    let mut first = server.connect();
    first.write_all(b"hold").unwrap();
    // While the loop sleeps: 200 connects and 200 messages, all completed at once.
    std::thread::sleep(Duration::from_millis(50));
    let mut clients: Vec<TcpStream> = (0..200).map(|_| server.connect()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("message {i:04}").as_bytes()).unwrap();
    }
    assert_eq!(read_n(&mut first, 4), b"hold");
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(read_n(c, 12), format!("message {i:04}").as_bytes());
    }
    let s = server.metrics.snapshot();
    eprintln!(
        "200 connects into a 16-entry completion queue: {} overflows, {} registrations",
        s.uring_overflows, s.registrations
    );
    assert_eq!(s.accepted, 201);
    // Each connection is one registration and the listener one more; a
    // multishot accept that the overflow ended was armed again on top.
    assert!(s.registrations > s.accepted + 1, "never re-armed: {s:?}");
    server.stop();
}

/// Sends 8 MiB to every client that says anything.
struct Firehose;

impl Handler for Firehose {
    type Conn = ();
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), _: &[u8]) -> Action {
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..8 {
            ctx.send(&chunk);
        }
        Action::Continue
    }
}

#[test]
fn a_stop_with_sends_in_flight_to_readers_that_never_read_returns_and_closes_every_fd() {
    let cfg = uring(Config {
        shutdown_timeout: Duration::from_millis(300),
        max_output: 64 << 20,
        ..Config::default()
    });
    let server = Server::start(Firehose, cfg);
    let port = server.addr.port();
    let mut clients: Vec<TcpStream> = (0..20).map(|_| server.connect()).collect();
    for c in &mut clients {
        c.write_all(b"go").unwrap();
    }
    let m = server.metrics.clone();
    // Every client's send is in flight (and stuck: nobody reads).
    assert!(wait_for(Duration::from_secs(10), || m.snapshot().bytes_out
        > 20 << 16));
    let t = Instant::now();
    server.stop();
    let took = t.elapsed();
    eprintln!("stop with 20 sends in flight to non-readers: run returned in {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(fds_on_port(port), 0, "fds left on the port");
    drop(clients);
}

#[test]
fn ten_thousand_connections_are_served_and_leave_nothing_behind() {
    const N: usize = 10_000;
    // The server is a child process: each side holds its own 10,000 fds.
    raise_fd_limit(N as u64 + 1000);
    let mut cmd = Command::new(example_path("echo_select"));
    cmd.args([
        "--addr",
        "127.0.0.1:0",
        "--backend",
        "uring",
        "--max-per-ip",
        "0",
    ]);
    // SAFETY: setrlimit is async-signal-safe; runs in the child before exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: N as u64 + 1000,
                rlim_max: N as u64 + 1000,
            };
            match libc::setrlimit(libc::RLIMIT_NOFILE, &lim) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let mut server = ExampleServer::start_command("echo_select", cmd);
    let pid = server.pid();
    let idle_fds = fds_of(pid);
    let mut clients: Vec<TcpStream> = Vec::with_capacity(N);
    for _ in 0..N {
        clients.push(TcpStream::connect(server.addr).expect("connect"));
    }
    // Every one accepted: each is greeted.
    for (i, c) in clients.iter_mut().enumerate() {
        c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        assert_eq!(read_n(c, 8), b"hello...", "client {i}");
    }
    assert!(
        fds_of(pid) >= idle_fds + N,
        "{} fds in the server",
        fds_of(pid)
    );
    for (i, c) in clients.iter_mut().enumerate().step_by(97) {
        c.write_all(&(i as u32).to_be_bytes()).unwrap();
        let mut want = b"response:".to_vec();
        want.extend((i as u32).to_be_bytes());
        assert_eq!(read_n(c, 13), want);
    }
    drop(clients);
    assert!(
        wait_for(Duration::from_secs(30), || fds_of(pid) == idle_fds),
        "{} fds left in the server, {idle_fds} before the clients",
        fds_of(pid)
    );
    assert!(server.terminate(Duration::from_secs(10)).is_some());
}

fn round_trips(c: &mut TcpStream, n: usize, burst: usize) {
    let msg = [b'm'; 64];
    let mut back = vec![0; 64 * burst];
    for _ in 0..n {
        let out: Vec<u8> = msg.repeat(burst);
        c.write_all(&out).unwrap();
        c.read_exact(&mut back).unwrap();
    }
}

#[test]
fn system_calls_per_message_come_from_the_loops_own_counters() {
    let server = Server::start(echo(), uring(Config::default()));
    let mut c = server.connect();
    round_trips(&mut c, 10, 1); // warm
    // One message in flight: one receive and one send per message, and two
    // io_uring_enter: the send completes at once, in its own wake-up, and
    // the next receive needs another (against three system calls for a
    // readiness loop: wait, recv, send). Nothing to batch with one message.
    let before = server.metrics.snapshot();
    const N: usize = 2000;
    round_trips(&mut c, N, 1);
    // The last send's completion may be reaped just after the client read its echo.
    let m = server.metrics.clone();
    wait_for(Duration::from_secs(5), || {
        m.snapshot().writes - before.writes == N as u64
    });
    let d = server.metrics.snapshot().since(&before);
    eprintln!(
        "1 in flight: {:.2} io_uring_enter, {:.2} submissions, {:.2} completions per message",
        d.uring_enters as f64 / N as f64,
        d.uring_submissions as f64 / N as f64,
        d.uring_completions as f64 / N as f64
    );
    assert_eq!((d.reads, d.writes), (N as u64, N as u64), "{d:?}");
    assert!(d.uring_enters <= 2 * N as u64 + 5, "{d:?}");
    assert_eq!(d.registrations + d.reregistrations + d.deregistrations, 0);
    // Sixteen in flight, written at once: one receive takes them all, one
    // send answers them all: two enters for sixteen messages. (Across many
    // connections one enter serves them all: the compare bench measures it.)
    let before = server.metrics.snapshot();
    round_trips(&mut c, N / 16, 16);
    let d = server.metrics.snapshot().since(&before);
    let per_msg = d.uring_enters as f64 / N as f64;
    eprintln!("16 in flight: {per_msg:.3} io_uring_enter per message");
    assert!(
        d.uring_enters <= 2 * (N / 16) as u64 + 5,
        "{per_msg:.3} enters per message: {d:?}"
    );
    server.stop();
}

/// The readiness side of the guide's table: a wait, a read and a write per
/// burst, whether the burst is one message or sixteen.
#[test]
fn a_readiness_loop_makes_three_system_calls_per_burst() {
    let server = Server::start(echo(), Config::default());
    let mut c = server.connect();
    round_trips(&mut c, 10, 1); // warm
    for burst in [1, 16] {
        let before = server.metrics.snapshot();
        const BURSTS: usize = 500;
        round_trips(&mut c, BURSTS, burst);
        let m = server.metrics.clone();
        wait_for(Duration::from_secs(5), || {
            m.snapshot().writes - before.writes == BURSTS as u64
        });
        let d = server.metrics.snapshot().since(&before);
        let calls = d.wakeups + d.reads + d.writes;
        eprintln!(
            "mio, {burst} in flight: {:.3} system calls per message",
            calls as f64 / (BURSTS * burst) as f64
        );
        assert!(calls <= 3 * BURSTS as u64 + 5, "{burst} in flight: {d:?}");
    }
    server.stop();
}

#[test]
fn a_reader_that_is_paused_and_resumed_loses_no_byte() {
    // Reading pauses at the high watermark with a receive already armed:
    // what that receive brings is kept and handed over on resume.
    let cfg = uring(Config {
        output_high_water: 64 << 10,
        output_low_water: 16 << 10,
        max_output: 32 << 20,
        ..Config::default()
    });
    let server = Server::start(echo(), cfg);
    let mut c = server.connect();
    let mut reader = c.try_clone().unwrap();
    const TOTAL: usize = 8 << 20;
    let writer = std::thread::spawn(move || {
        let data: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
        c.write_all(&data).unwrap();
        c
    });
    // Not reading yet: the echo queues up past the high watermark.
    let m = server.metrics.clone();
    assert!(
        wait_for(Duration::from_secs(10), || m.snapshot().paused > 0),
        "never paused"
    );
    let mut got = vec![0; TOTAL];
    reader.read_exact(&mut got).unwrap();
    assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    let _c = writer.join().unwrap();
    server.stop();
}
