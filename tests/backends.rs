//! A focused set of behaviours, run on every backend in `common::backends()`
//! (mio, raw epoll level/edge/oneshot, poll, select), plus what only some
//! backends have: select's `FD_SETSIZE` limit and the trigger modes a
//! backend cannot do.

mod common;

use common::*;
use ioplex::{Action, Backend, Ctx, Handler, Interest, Peer, Reactor, Selector, Trigger};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

const GREETING: &[u8] = b"hello...\n";

/// Greets, then echoes every byte back; optionally sends `burst` bytes on connect.
#[derive(Default)]
struct Echo {
    burst: usize,
}

impl Handler for Echo {
    type Conn = ();
    fn on_connect(&mut self, ctx: &mut Ctx<'_>, _: Peer) {
        ctx.send(GREETING);
        if self.burst > 0 {
            ctx.send(&pattern(self.burst));
        }
    }
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        ctx.send(data);
        Action::Continue
    }
}

/// Bytes that show where a reordering or a loss happened.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[test]
fn greeting_and_echo_are_byte_for_byte_on_every_backend() {
    for backend in backends() {
        let server = Server::start(Echo::default(), config_on(backend));
        let mut c = server.connect();
        assert_eq!(read_n(&mut c, GREETING.len()), GREETING, "{backend}");
        for msg in [&b"hi"[..], b"abc", "你好".as_bytes(), &[0, 255, 10, 13]] {
            c.write_all(msg).unwrap();
            assert_eq!(read_n(&mut c, msg.len()), msg, "{backend}");
        }
        c.shutdown(Shutdown::Write).unwrap();
        assert!(
            read_to_eof(&mut c).is_empty(),
            "{backend}: EOF answered by EOF"
        );
        server.stop();
    }
}

#[test]
fn fifty_clients_each_get_fifty_messages_back_in_order_on_every_backend() {
    for backend in backends() {
        let server = Server::start(Echo::default(), config_on(backend));
        let addr = server.addr;
        let clients: Vec<_> = (0..50)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut c = connect(addr);
                    assert_eq!(read_n(&mut c, GREETING.len()), GREETING);
                    let mut sent = Vec::new();
                    for j in 0..50 {
                        let msg = format!("client {i} message {j}\n");
                        c.write_all(msg.as_bytes()).unwrap();
                        sent.extend_from_slice(msg.as_bytes());
                    }
                    read_n(&mut c, sent.len()) == sent
                })
            })
            .collect();
        for (i, c) in clients.into_iter().enumerate() {
            assert!(c.join().unwrap(), "{backend}: client {i} got a wrong echo");
        }
        let m = server.metrics.snapshot();
        assert_eq!(m.accepted, 50, "{backend}");
        server.stop();
    }
}

#[test]
fn four_mib_to_a_slow_reader_arrive_whole_and_writable_is_off_once_flushed() {
    const SIZE: usize = 4 << 20;
    for backend in backends() {
        let server = SmallBufferServer::start(backend);
        let mut c = small_window_client(server.addr);
        assert_eq!(read_n(&mut c, GREETING.len()), GREETING);
        let mut w = c.try_clone().unwrap();
        let writer = std::thread::spawn(move || w.write_all(&pattern(SIZE)).is_ok());
        // A slow reader: small reads with pauses, so the server's output
        // queues up and WRITABLE has to be switched on and off.
        std::thread::sleep(Duration::from_millis(100));
        let mut got = Vec::with_capacity(SIZE);
        let mut buf = vec![0; 32 << 10];
        while got.len() < SIZE {
            let n = c.read(&mut buf).expect("read");
            assert!(n > 0, "{backend}: EOF after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
            std::thread::sleep(Duration::from_micros(500));
        }
        assert!(writer.join().unwrap(), "{backend}: write failed");
        assert!(got == pattern(SIZE), "{backend}: echo differs");
        let m = server.metrics.snapshot();
        if backend.trigger() == Trigger::Level {
            assert!(
                m.reregistrations >= 2,
                "{backend}: WRITABLE never toggled ({m:?})"
            );
        }
        // Idle now: a loop that left WRITABLE on would wake thousands of times.
        let before = server.metrics.snapshot().wakeups;
        std::thread::sleep(Duration::from_millis(200));
        let idle = server.metrics.snapshot().wakeups - before;
        assert!(
            idle < 20,
            "{backend}: {idle} wake-ups while idle: busy loop"
        );
        drop(c); // else the loop lingers for our EOF after its FIN
        server.handle.stop();
        assert!(server.join.join().unwrap().is_ok(), "{backend}: run failed");
    }
}

/// An echo server whose accepted sockets inherit a 32 KiB send buffer from
/// the listener, so a slow reader makes the loop queue output.
struct SmallBufferServer {
    addr: SocketAddr,
    handle: ioplex::Handle,
    metrics: std::sync::Arc<ioplex::Metrics>,
    join: std::thread::JoinHandle<std::io::Result<()>>,
}

impl SmallBufferServer {
    fn start(backend: Backend) -> SmallBufferServer {
        let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        l.set_send_buffer_size(32 << 10).unwrap();
        l.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        l.listen(128).unwrap();
        let mut reactor = Reactor::new(config_on(backend)).unwrap();
        let addr = reactor.add_listener(l.into()).unwrap();
        let (handle, metrics) = (reactor.handle(), reactor.metrics());
        let join = std::thread::spawn(move || reactor.run(&mut Echo::default()));
        SmallBufferServer {
            addr,
            handle,
            metrics,
            join,
        }
    }
}

/// A client with a 64 KiB receive buffer: loopback's auto-tuned buffers
/// would otherwise swallow megabytes and the server would never queue.
fn small_window_client(addr: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(64 << 10).unwrap();
    s.connect(&addr.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

#[test]
fn stopping_flushes_queued_output_before_closing_on_every_backend() {
    const BURST: usize = 2 << 20;
    for backend in backends() {
        let server = Server::start(Echo { burst: BURST }, config_on(backend));
        let port = server.addr.port();
        let mut c = server.connect();
        // Let the burst fill the socket buffers so most of it is queued.
        assert!(wait_for(IO_TIMEOUT, || {
            server.metrics.snapshot().bytes_out > 0
        }));
        std::thread::sleep(Duration::from_millis(50));
        server.handle.stop();
        let got = read_to_eof(&mut c);
        assert_eq!(got.len(), GREETING.len() + BURST, "{backend}");
        assert!(got[GREETING.len()..] == pattern(BURST), "{backend}");
        drop(c);
        server.stop();
        assert_eq!(fds_on_port(port), 0, "{backend}: a socket was left open");
    }
}

#[test]
fn triggers_a_backend_cannot_do_are_errors_not_fallbacks() {
    let bad = [
        ("poll", "edge"),
        ("poll", "oneshot"),
        ("select", "edge"),
        ("select", "oneshot"),
        ("mio", "level"),
        ("mio", "oneshot"),
    ];
    for (b, t) in bad {
        let e = Backend::parse(b, Some(t)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{b} {t}");
        assert!(e.to_string().contains(b), "{b} {t}: {e}");
    }
    assert_eq!(Backend::parse("poll", None).unwrap(), Backend::Poll);
    assert_eq!(
        Backend::parse("select", Some("level")).unwrap(),
        Backend::Select
    );
    assert_eq!(Backend::Select.trigger(), Trigger::Level);
    assert_eq!(Backend::Poll.to_string(), "poll");
    assert!(Backend::parse("kqueue", None).is_err());
    assert!(Backend::parse("epoll", Some("sideways")).is_err());
}

/// Raises this process's soft fd limit to at least `n` (the hard limit allowing).
fn raise_fd_limit(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur < n {
            lim.rlim_cur = n.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// `fd` duplicated onto descriptor number `at`.
fn dup_to(fd: &impl AsRawFd, at: i32) -> OwnedFd {
    // SAFETY: dup2 onto a number nobody in this process uses (checked by the caller's choice).
    let r = unsafe { libc::dup2(fd.as_raw_fd(), at) };
    assert_eq!(r, at, "dup2: {}", std::io::Error::last_os_error());
    // SAFETY: dup2 returned a fresh descriptor we now own.
    unsafe { OwnedFd::from_raw_fd(r) }
}

#[test]
fn select_refuses_an_fd_at_or_past_fd_setsize_with_a_clear_error() {
    raise_fd_limit(4096);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let high = dup_to(&listener, 1500);
    let mut sel = Selector::with_backend(Backend::Select).unwrap();
    let e = sel.register(&high, Interest::READABLE, ()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("1500"), "{e}");
    assert!(e.to_string().contains("FD_SETSIZE"), "{e}");
    assert!(sel.is_empty());
    // poll has no such limit.
    let mut sel = Selector::with_backend(Backend::Poll).unwrap();
    sel.register(&high, Interest::READABLE, ()).unwrap();
    drop(sel);

    // The reactor says the same for a listener.
    let mut reactor = Reactor::new(config_on(Backend::Select)).unwrap();
    let std_high = TcpListener::from(high);
    let e = reactor.add_listener(std_high).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

/// Set in the child process of the next test.
const CHILD: &str = "IOPLEX_FD_SETSIZE_CHILD";

#[test]
fn a_client_accepted_past_fd_setsize_is_turned_away_and_the_loop_goes_on() {
    if std::env::var_os(CHILD).is_none() {
        // Fill the fd table in a child process, not in this one, where the
        // other tests run.
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_client_accepted_past_fd_setsize_is_turned_away_and_the_loop_goes_on",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "child failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    raise_fd_limit(4096);
    let server = Server::start(Echo::default(), config_on(Backend::Select));
    // Use up every descriptor below 1024.
    let mut fillers = Vec::new();
    loop {
        let fd = std::fs::File::open("/dev/null").unwrap();
        let n = fd.as_raw_fd();
        fillers.push(fd);
        if n >= 1100 {
            break;
        }
    }
    // Its accepted socket gets an fd >= 1024: select cannot watch it.
    let mut c = connect(server.addr);
    let mut buf = [0; 16];
    let r = c.read(&mut buf);
    assert!(
        matches!(r, Ok(0)) || r.is_err(),
        "a client past FD_SETSIZE was served: {r:?}"
    );
    assert_eq!(server.metrics.snapshot().accepted, 0);
    // Free a few low descriptors: the next client is served.
    fillers.truncate(100);
    let mut c = connect(server.addr);
    assert_eq!(read_n(&mut c, GREETING.len()), GREETING);
    c.write_all(b"still here").unwrap();
    assert_eq!(read_n(&mut c, 10), b"still here");
    assert_eq!(server.metrics.snapshot().accepted, 1);
    server.stop();
}
